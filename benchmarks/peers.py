"""The peers XLM-SWCM is timed against, built from the same encoder with the same sizes, and how each generates:

- bert2bert: HF `EncoderDecoderModel` warm-started from the same encoder (decoder = the encoder's layers with
  cross-attention added; KV cache on);
- mBART: HF `MBartForConditionalGeneration` with the same hidden size, FFN size, heads, vocabulary and number of
  encoder / decoder layers as XLM-SWCM (random weights: speed does not depend on them).
"""

from __future__ import annotations

import torch

from swcm import from_encoder


def build_models(encoder_dir: str, names: list[str]) -> tuple[dict, object]:
    """name -> (model, decoder prompt ids or None). All share the encoder's vocabulary and sizes."""
    from transformers import EncoderDecoderModel, MBartConfig, MBartForConditionalGeneration

    torch.manual_seed(0)
    swcm, tokenizer = from_encoder(encoder_dir, return_tokenizer=True)
    enc = swcm.config.encoder
    models = {}
    if "swcm" in names:
        models["swcm"] = swcm
    if "bert2bert" in names:
        b2b = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder_dir, encoder_dir)
        if b2b.config.decoder.vocab_size != swcm.config.vocab_size:
            b2b.encoder.resize_token_embeddings(swcm.config.vocab_size)
            b2b.decoder.resize_token_embeddings(swcm.config.vocab_size)
        for cfg in (b2b.config, b2b.generation_config):
            cfg.decoder_start_token_id = swcm.config.decoder_start_token_id
            cfg.pad_token_id = swcm.config.pad_token_id
            cfg.eos_token_id = swcm.config.eos_token_id
        b2b.config.vocab_size = swcm.config.vocab_size
        models["bert2bert"] = b2b
    if "mbart" in names:
        config = MBartConfig(
            vocab_size=swcm.config.vocab_size,
            d_model=enc.hidden_size,
            encoder_layers=enc.num_hidden_layers,
            decoder_layers=len(swcm.config.decoder_layer_types),
            encoder_attention_heads=enc.num_attention_heads,
            decoder_attention_heads=enc.num_attention_heads,
            encoder_ffn_dim=enc.intermediate_size,
            decoder_ffn_dim=enc.intermediate_size,
            max_position_embeddings=enc.max_position_embeddings,
            activation_function=enc.hidden_act,
            pad_token_id=swcm.config.pad_token_id,
            bos_token_id=swcm.config.bos_token_id,
            eos_token_id=swcm.config.eos_token_id,
            decoder_start_token_id=swcm.config.decoder_start_token_id,
            forced_eos_token_id=None,
            scale_embedding=True,
        )
        models["mbart"] = MBartForConditionalGeneration(config)
    for model in models.values():
        model.eval()
    return models, tokenizer


def generation_kwargs(name: str, batch: dict, beams: int, new_tokens: int) -> dict:
    kwargs = dict(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        num_beams=beams,
        do_sample=False,
        min_new_tokens=new_tokens,
        max_new_tokens=new_tokens,
        use_cache=True,
        early_stopping=False,
    )
    if name == "swcm":
        kwargs["tgt_lang"] = "ug"
        kwargs["max_new_tokens"] = kwargs["min_new_tokens"] = new_tokens - 1  # the language tag is the first
    return kwargs
