"""Building XLM-SWCM from a pretrained encoder (`from_encoder`, also `swcm.from_encoder`), and `swcm build`, which
saves the model with its tokenizer and a summary (build.json) of what was copied and how the untrained decoder
starts. The encoder, its tokenizer and (for lm_head_init="mlm-head") its masked-LM head are each read once."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .choices import DEFAULT_GATE_INIT
from .configuration_swcm import SWCMConfig, decoder_layer_types, layout_string
from .diagnostics import decoder_start
from .encoders import EncoderError, load_encoder, load_encoder_config, load_masked_lm, load_tokenizer, mlm_head_state
from .languages import LANGS, MINORITY_LANGS, lang_code
from .model_card import provenance
from .modeling_swcm import SWCMForConditionalGeneration
from .tokenization import add_lang_tags, end_token_id, init_lang_tag_embeddings, start_token_id
from .weight_sharing import copy_previous_plan, copy_weights, weight_sharing_plan

if TYPE_CHECKING:
    from .arguments import BuildCommand


def from_encoder(
    encoder_name_or_path: str | os.PathLike,
    normal_every: int = 3,
    decoder_init: str = "shared",
    normal_init: str = "random",
    decoder_source_layers: Sequence[int] | None = None,
    decoder_gate_init: float | None = DEFAULT_GATE_INIT,
    lm_head_init: str = "embeddings",
    tie_lm_head: bool = False,
    lang_tags: Sequence[str] = LANGS,
    tokenizer=None,
    return_tokenizer: bool = False,
    **config_overrides,
):
    """Build XLM-SWCM from a pretrained XLM-R / BERT family encoder (local path or hub id).

    decoder_init="shared" copies encoder layer i's attention into custom layer i's self- AND cross-attention
    and its FFN into FFN1 AND FFN2 (see `swcm.weight_sharing`); "random" shares nothing (Cino-Transformer).
    normal_every=0 leaves out normal layers (BASE-A); normal_init="copy-previous" copies each normal layer
    from the custom layer before it (BASE-B). `decoder_source_layers` picks the encoder layer each custom layer
    copies (default: its own index). `decoder_gate_init` (shared decoders) adds a learnable per-channel gate to
    every decoder self-attention and FFN sublayer (never cross-attention), starting at that value; the default
    0.02 starts the copied decoder close to the identity, a deviation from the paper (None: the paper's ungated
    init; see benchmarks/init_study.py).
    The LM head starts as the word embeddings (`lm_head_init="embeddings"`), as the encoder's own masked-LM head
    with its transform ("mlm-head"; e.g. after `swcm adapt`), or random. Language tags become special tokens,
    their embeddings the mean of their language name's pieces. Returns the model, or (model, tokenizer) with
    return_tokenizer=True.
    """
    load_encoder_config(encoder_name_or_path)  # an unsupported architecture or a missing tokenizer fail fast
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(encoder_name_or_path)
    if lm_head_init == "mlm-head":  # one read of the weights gives the encoder and its masked-LM head
        mlm, has_head = load_masked_lm(encoder_name_or_path)
        head = mlm_head_state(mlm, has_head, encoder_name_or_path)
        encoder = mlm.base_model
    else:
        encoder, head = load_encoder(encoder_name_or_path), None
    pieces, rows = len(tokenizer), encoder.config.vocab_size
    if not rows // 2 <= pieces <= rows:  # rows may be padded past the tokenizer, never far
        raise EncoderError(
            f"encoder {encoder_name_or_path}: its tokenizer has {pieces} pieces but its embeddings {rows} rows; "
            "the tokenizer does not belong to these weights"
        )
    tag_ids, new_tags = add_lang_tags(tokenizer, lang_tags)
    aliased = {c: tag_ids[c] for c in new_tags if tag_ids[c] < pieces}
    if aliased:
        raise EncoderError(f"new language tags {aliased} would take rows the encoder's pieces use")
    vocab_size = max(encoder.config.vocab_size, len(tokenizer))
    if vocab_size > encoder.config.vocab_size:
        encoder.resize_token_embeddings(vocab_size, mean_resizing=False)
    init_lang_tag_embeddings(encoder.get_input_embeddings(), tokenizer, tag_ids, new_tags)

    origin = provenance(encoder_name_or_path)
    settings = {
        "built_from": str(encoder_name_or_path),
        "base_model": origin["base_model"],
        "base_model_license": origin["license"],
        "decoder_layer_types": decoder_layer_types(encoder.config.num_hidden_layers, normal_every),
        "decoder_init": decoder_init,
        "normal_init": normal_init,
        "decoder_source_layers": list(decoder_source_layers) if decoder_source_layers is not None else None,
        # gates belong to the shared init (see DEFAULT_GATE_INIT); the random baseline stays the plain decoder
        "decoder_gate_init": decoder_gate_init if decoder_init == "shared" else None,
        "lm_head_transform": lm_head_init == "mlm-head",
        "lm_head_init": lm_head_init,
        "lang_tags": [lang_code(c) for c in lang_tags],
        "lang_tag_ids": tag_ids,
        "vocab_size": vocab_size,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": start_token_id(tokenizer),
        "eos_token_id": end_token_id(tokenizer),
        "decoder_start_token_id": start_token_id(tokenizer),
        "tie_word_embeddings": tie_lm_head,
    }
    config = SWCMConfig(encoder=encoder.config.to_dict(), **{**settings, **config_overrides})
    model = SWCMForConditionalGeneration(config)
    model.model.encoder.load_state_dict(encoder.state_dict(), strict=True)
    copy_weights(model, weight_sharing_plan(model))
    copy_weights(model, copy_previous_plan(model))
    with torch.no_grad():
        if tie_lm_head:
            model.tie_weights()
        elif lm_head_init != "random":
            # An untied head starts as the (transposed) word embeddings: meaningful logits from step one.
            model.lm_head.weight.copy_(model.get_input_embeddings().weight)
        model.lm_head.bias.zero_()
        if head is not None:
            rows = head["lm_head.weight"].shape[0]  # the encoder's vocabulary; the tags' rows stay as set above
            for name, tensor in head.items():
                target = model.get_parameter(name)
                if name.startswith("lm_head."):
                    if not (tie_lm_head and name == "lm_head.weight"):
                        target[:rows].copy_(tensor)
                else:
                    target.copy_(tensor)
    model.generation_config.decoder_start_token_id = config.decoder_start_token_id
    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return (model, tokenizer) if return_tokenizer else model


def build_command(args: BuildCommand) -> str:
    """Builds, saves and describes the model; what `swcm build` prints."""
    model, tokenizer = from_encoder(args.encoder, **args.from_encoder_options(), return_tokenizer=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    counts = model.parameter_counts()
    config = model.config
    copied, copied_previous = len(weight_sharing_plan(model)), len(copy_previous_plan(model))
    # the probe translates zh -> ug / kk / mn / bo: a model with none of their tags is not measured
    start = decoder_start(model, tokenizer) if set(MINORITY_LANGS) & set(config.lang_tag_ids) else None
    summary = {
        "encoder": args.encoder,
        "layout": layout_string(config.decoder_layer_types),
        "parameters": counts,
        "copied_from_encoder": copied,
        "copied_from_previous_layer": copied_previous,
        "decoder_init": config.decoder_init,
        "lm_head_init": config.lm_head_init,
        "decoder_gate_init": config.decoder_gate_init,
        "decoder_start": start.as_dict() if start else None,
    }
    (args.out / "build.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    lines = [
        f"built XLM-SWCM from {args.encoder} -> {args.out}",
        f"decoder layout ({len(config.decoder_layer_types)} layers): {layout_string(config.decoder_layer_types)}",
        f"parameters: encoder {counts['encoder']:,} | decoder {counts['decoder']:,} | "
        f"lm_head {counts['lm_head']:,}{' (tied)' if config.tie_word_embeddings else ''} | total {counts['total']:,}",
        f"copied from the encoder: {copied} tensors (decoder_init={config.decoder_init}); "
        f"copied from the previous layer: {copied_previous} tensors (normal_init={config.normal_init})",
        f"language tags: {' '.join(f'<{c}>={i}' for c, i in config.lang_tag_ids.items())}; vocab {config.vocab_size:,}",
        start.describe() if start else "decoder start: not measured (the probe needs a tag of ug, kk, mn or bo)",
        f"summary: {args.out / 'build.json'}",
    ]
    return "\n".join(lines)
