"""`swcm build`: an XLM-SWCM model from a pretrained encoder, saved with its tokenizer and a summary (build.json)
that says what was copied and how the untrained decoder starts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .configuration_swcm import layout_string
from .diagnostics import decoder_start
from .languages import MINORITY_LANGS
from .modeling_swcm import SWCMForConditionalGeneration
from .weight_sharing import copy_previous_plan, weight_sharing_plan

if TYPE_CHECKING:
    from .cli import BuildCommand


def build_command(args: BuildCommand) -> str:
    """Builds, saves and describes the model; what `swcm build` prints."""
    model, tokenizer = SWCMForConditionalGeneration.from_encoder(
        args.encoder, **args.from_encoder_options(), return_tokenizer=True
    )
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
