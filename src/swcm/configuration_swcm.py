"""Configuration of XLM-SWCM: a pretrained encoder plus a decoder initialised from its weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .choices import DECODER_INITS, LM_HEAD_INITS, NORMAL_INITS
from .errors import CheckpointError
from .languages import lang_code

CUSTOM = "custom"
NORMAL = "normal"
LAYER_TYPES = (CUSTOM, NORMAL)
LAYER_NORM_POSITIONS = ("post", "pre")


def decoder_layer_types(num_custom_layers: int, normal_every: int = 3) -> list[str]:
    """The paper's layout: one normal layer after every `normal_every` custom layers, none after the last group.

    >>> layout_string(decoder_layer_types(12, 3))
    'C C C N C C C N C C C N C C C'
    """
    if num_custom_layers < 1:
        raise ValueError(f"num_custom_layers must be >= 1, got {num_custom_layers}")
    if normal_every < 0:
        raise ValueError(f"normal_every must be >= 0 (0 = no normal layers), got {normal_every}")
    types: list[str] = []
    for i in range(num_custom_layers):
        types.append(CUSTOM)
        is_last = i == num_custom_layers - 1
        if normal_every and (i + 1) % normal_every == 0 and not is_last:
            types.append(NORMAL)
    return types


def layout_string(layer_types: Sequence[str]) -> str:
    """A layout as letters: "C C C N C ..." (C custom, N normal)."""
    return " ".join(t[0].upper() for t in layer_types)


class SWCMConfig(PreTrainedConfig):
    r"""Configuration of [`SWCMForConditionalGeneration`].

    The encoder is described by its own config (`encoder`, an XLM-R / BERT family config). The decoder has the
    encoder's sizes; its depth and kind of each layer come from `decoder_layer_types`, a list of "custom"
    (self-attn -> FFN1 -> cross-attn -> FFN2) and "normal" (self-attn -> cross-attn -> FFN) layers.

    Args:
        encoder: config of the pretrained encoder (dict or PreTrainedConfig).
        decoder_layer_types: kind of each decoder layer, "custom" or "normal".
        decoder_layer_norm: "post" (BERT / XLM-R style, the default) or "pre" layer norm in decoder sublayers.
        decoder_init: how the decoder was initialised ("shared" from the encoder, or "random"); recorded for
            `weight_sharing_plan`.
        decoder_source_layers: the encoder layer each custom layer copies, in order (None: custom layer i copies
            encoder layer i, the paper's map).
        decoder_gate_init: None (the paper), or the start value of a learnable per-channel gate on every decoder
            self-attention and FFN sublayer (not cross-attention), h <- h + g * (sublayer(h) - h): 1 is the ungated
            layer, 0 passes the input through.
        lm_head_transform: put an MLM-style transform (dense -> activation -> LayerNorm) before the LM head, so the
            head can start as the encoder's own masked-LM head.
        lm_head_init: how the LM head started: "embeddings" (the word embeddings), "mlm-head" (the encoder's MLM
            head) or "random"; recorded.
        normal_init: how normal layers were initialised ("random" or "copy-previous").
        release_compat: reproduce the authors' released layer code: pre-LN, no residual around a custom layer's
            self-attention, and normal layers that reuse one LayerNorm for both attentions and add each residual
            after their LayerNorm; no final LayerNorm. Only for converted release weights (`swcm convert-release`).
        decoder_layer_norm_eps: epsilon of the decoder's LayerNorms (default: the encoder's).
        lang_tags: language codes whose tags (`<bo>` ...) the vocabulary holds.
        lang_tag_ids: token id of each language tag, by code.
        vocab_size: rows of the shared embedding matrix and of the LM head.
        tie_word_embeddings: tie the LM head to the shared word embeddings (default: untied, as in the paper).
        built_from: the encoder as named to `from_encoder` (packaged:NAME, a hub id or a folder); for the model card.
        base_model: the hub model the encoder is or derives from, when known; for the model card's metadata.
        base_model_license: that model's license id, when known; for the model card's metadata.
    """

    model_type: ClassVar[str] = "swcm"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "encoder": SubConfigSpec(config_class=AutoConfig, model_type="xlm-roberta"),
    }
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["cache", "past_key_values"]  # transformers >= 5.24, before

    encoder: PreTrainedConfig | dict | None = None
    decoder_layer_types: list[str] | None = None
    decoder_layer_norm: str = "post"
    decoder_init: str = "shared"
    normal_init: str = "random"
    decoder_source_layers: list[int] | None = None
    decoder_gate_init: float | None = None
    lm_head_transform: bool = False
    lm_head_init: str = "embeddings"
    release_compat: bool = False
    decoder_layer_norm_eps: float | None = None
    lang_tags: list[str] | None = None
    lang_tag_ids: dict[str, int] | None = None
    built_from: str | None = None
    base_model: str | None = None
    base_model_license: str | None = None
    vocab_size: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    decoder_start_token_id: int | None = None
    is_encoder_decoder: bool = True
    use_cache: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        enc = self.encoder
        if self.decoder_layer_types is None:
            self.decoder_layer_types = decoder_layer_types(enc.num_hidden_layers, 3)
        self.decoder_layer_types = list(self.decoder_layer_types)
        if self.decoder_source_layers is not None:
            self.decoder_source_layers = [int(i) for i in self.decoder_source_layers]
        self.lang_tags = list(self.lang_tags or [])
        self.lang_tag_ids = {str(k): int(v) for k, v in (self.lang_tag_ids or {}).items()}
        if self.vocab_size is None:
            self.vocab_size = enc.vocab_size
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(enc, name, None))
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.bos_token_id
        self.validate_swcm()

    def validate_swcm(self) -> None:
        """Fail with one line on an inconsistent configuration."""
        bad = [t for t in self.decoder_layer_types if t not in LAYER_TYPES]
        if bad or not self.decoder_layer_types:
            raise ValueError(
                f"decoder_layer_types must be a non-empty list of {LAYER_TYPES}, got {self.decoder_layer_types}"
            )
        for name, allowed in (
            ("decoder_layer_norm", LAYER_NORM_POSITIONS),
            ("decoder_init", DECODER_INITS),
            ("normal_init", NORMAL_INITS),
            ("lm_head_init", LM_HEAD_INITS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        custom = self.decoder_layer_types.count(CUSTOM)
        layers = self.encoder.num_hidden_layers
        sources = self.decoder_source_layers
        if sources is not None and (len(sources) != custom or not all(0 <= i < layers for i in sources)):
            raise ValueError(
                f"decoder_source_layers must name one encoder layer in [0, {layers}) for each of the {custom} custom "
                f"layers, got {self.decoder_source_layers}"
            )
        if self.release_compat and (self.decoder_gate_init is not None or self.lm_head_transform):
            raise ValueError("release_compat reproduces the released layers, which have no gates and no head transform")
        if self.lm_head_init == "mlm-head" and not self.lm_head_transform:
            raise ValueError("lm_head_init='mlm-head' needs lm_head_transform=True (the MLM head's dense + LayerNorm)")
        if self.release_compat and self.decoder_layer_norm != "pre":
            raise ValueError("release_compat reproduces the released pre-LN layers; set decoder_layer_norm='pre'")
        if self.vocab_size < self.encoder.vocab_size:
            raise ValueError(f"vocab_size {self.vocab_size} is smaller than the encoder's {self.encoder.vocab_size}")
        missing = [t for t in self.lang_tags if t not in self.lang_tag_ids]
        if missing:
            raise ValueError(f"lang_tags {missing} have no entry in lang_tag_ids")

    def lang_tag_id(self, lang: str) -> int:
        """The token id of `lang`'s tag (`ug` or `<ug>`): the one check that a model has a language."""
        code = lang_code(lang)
        if code not in self.lang_tag_ids:
            raise CheckpointError(f"model has no language tag <{code}>; its tags: {sorted(self.lang_tag_ids)}")
        return self.lang_tag_ids[code]

    # Sizes of the decoder are the encoder's (the decoder is initialised from it).
    @property
    def hidden_size(self) -> int:
        return self.encoder.hidden_size

    @property
    def num_attention_heads(self) -> int:
        return self.encoder.num_attention_heads

    @property
    def layer_norm_eps(self) -> float:
        """Epsilon of the decoder's LayerNorms."""
        return self.decoder_layer_norm_eps if self.decoder_layer_norm_eps is not None else self.encoder.layer_norm_eps

    @property
    def num_hidden_layers(self) -> int:
        # What generation's cache reads: one cache slot per decoder layer.
        return len(self.decoder_layer_types)

    @property
    def num_custom_layers(self) -> int:
        return self.decoder_layer_types.count(CUSTOM)

    @property
    def source_layers(self) -> list[int]:
        """The encoder layer each custom layer copies: `decoder_source_layers`, by default custom layer i <- i."""
        if self.decoder_source_layers is not None:
            return list(self.decoder_source_layers)
        return list(range(self.num_custom_layers))

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        # The base class would rename `decoder_*` fields of a flat encoder-decoder config (decoder_layer_types ->
        # layer_types), which the KV cache then misreads as attention kinds. This config is already the decoder's.
        return self


AutoConfig.register(SWCMConfig.model_type, SWCMConfig, exist_ok=True)

__all__ = ["SWCMConfig", "decoder_layer_types", "CUSTOM", "NORMAL"]
