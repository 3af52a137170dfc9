"""XLM-SWCM: a pretrained multilingual encoder and a decoder initialised from the encoder's own weights.

Read top-down: attention, feed-forward, decoder layer (custom / normal), decoder, model, generation head.
The encoder is the pretrained transformers model itself (XLM-R / BERT family) and runs with its attention mask.
The decoder embeds its tokens with the encoder's embedding module (shared word + position embeddings).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForSeq2SeqLM, GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation.utils import ALL_CACHE_NAMES
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_swcm import CUSTOM, NORMAL, SWCMConfig
from .encoders import encoder_class, first_decoder_position_id, readable_weights
from .model_card import swcm_card_data, write_card

# The name transformers gives the KV cache in `generate`'s model inputs, its mask helpers' arguments and its output
# fields: "cache" from 5.24, "past_key_values" before. The model's forward takes either (generate passes the
# installed version's; a caller may pass the other) and hands transformers the installed version's name, so that
# neither version warns of a deprecated name and `getattr(outputs, CACHE_NAME)` is the cache.
CACHE_NAME = ALL_CACHE_NAMES[0]


def one_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The cache a forward got, under either name; both at once is a caller's mistake, not a choice to make."""
    if cache is not None and past_key_values is not None:
        raise ValueError("pass the KV cache as `cache` or as `past_key_values`, not both")
    return cache if cache is not None else past_key_values


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out (transformers' "eager"); the mask is additive and holds causality."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.dropout(
        F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype), p=dropout, training=module.training
    )
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class SWCMAttention(nn.Module):
    """Multi-head attention with BERT's projections; self-attention (cached per step) or cross-attention
    (keys / values of the encoder output computed once per generation and kept in the cache). The attention itself
    is transformers' function for `config._attn_implementation` (sdpa, eager, ...)."""

    def __init__(self, config: SWCMConfig, layer_idx: int, is_cross_attention: bool):
        super().__init__()
        self.config = config
        hidden = config.hidden_size
        self.num_heads = config.num_attention_heads
        if hidden % self.num_heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of num_attention_heads {self.num_heads}")
        self.head_dim = hidden // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        self.is_causal = not is_cross_attention  # sdpa's causal flag where the mask helpers leave the mask out
        self.dropout = config.encoder.attention_probs_dropout_prob
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> torch.Tensor:
        query = self._heads(self.q_proj(hidden_states))
        if not self.is_cross_attention:
            key = self._heads(self.k_proj(hidden_states))
            value = self._heads(self.v_proj(hidden_states))
            if cache is not None:
                key, value = cache.self_attention_cache.update(key, value, self.layer_idx)
        elif cache is not None and cache.is_updated.get(self.layer_idx):
            cached = cache.cross_attention_cache.layers[self.layer_idx]
            key, value = cached.keys, cached.values
        else:
            key = self._heads(self.k_proj(key_value_states))
            value = self._heads(self.v_proj(key_value_states))
            if cache is not None:
                key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
                cache.is_updated[self.layer_idx] = True
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, _ = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        return self.out_proj(out.reshape(*hidden_states.shape[:-1], -1))


class SWCMFeedForward(nn.Module):
    """BERT's FFN: intermediate.dense -> activation -> output.dense."""

    def __init__(self, config: SWCMConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.encoder.intermediate_size)
        self.act = ACT2FN[config.encoder.hidden_act]
        self.fc2 = nn.Linear(config.encoder.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


@dataclass(frozen=True)
class Sublayer:
    """One residual step of a decoder layer: its block ("*attn": attention, else FFN), the LayerNorm it uses, and
    what its output is added to."""

    name: str
    norm: str
    residual: Literal["input", "normed", "none"] = "input"
    """input: the step's input (BERT, pre-LN); normed: its LayerNorm's output (the release's normal layers);
    none: nothing (the release's custom self-attention)."""


def _plain(*names: str) -> tuple[Sublayer, ...]:
    return tuple(Sublayer(name, f"{name}_layer_norm") for name in names)


# Each layer kind is its sequence of residual sublayers.
SUBLAYERS: dict[str, tuple[Sublayer, ...]] = {
    CUSTOM: _plain("self_attn", "ffn1", "cross_attn", "ffn2"),
    NORMAL: _plain("self_attn", "cross_attn", "ffn"),
}
# The authors' released layers (`release_compat`, pre-LN): a custom layer adds no residual around self-attention; a
# normal layer's two attentions share one LayerNorm and each of its steps adds the residual after the LayerNorm.
RELEASE_SUBLAYERS: dict[str, tuple[Sublayer, ...]] = {
    CUSTOM: (Sublayer("self_attn", "self_attn_layer_norm", "none"), *_plain("ffn1", "cross_attn", "ffn2")),
    NORMAL: (
        Sublayer("self_attn", "self_attn_layer_norm", "normed"),
        Sublayer("cross_attn", "self_attn_layer_norm", "normed"),
        Sublayer("ffn", "ffn_layer_norm", "normed"),
    ),
}


# Sublayers that get a gate with `decoder_gate_init`. Never cross-attention: a gated cross-attention starts the
# decoder deaf to the source, and it then learns a language model instead (measured: a toy copy task stays at the
# no-source loss for 500 steps with gated cross-attention, and is solved by step 250 without).
GATED_SUBLAYERS = ("self_attn", "ffn1", "ffn2", "ffn")


class SWCMDecoderLayer(GradientCheckpointingLayer):
    """A custom (self-attn -> FFN1 -> cross-attn -> FFN2) or normal (self-attn -> cross-attn -> FFN) layer.

    Every sublayer has its own LayerNorm (`<name>_layer_norm`) and a residual, post-LN like BERT / XLM-R or pre-LN.
    With `decoder_gate_init`, a learnable per-channel gate `<name>_gate` mixes each self-attention and FFN sublayer's
    result with its input, h <- h + g * (sublayer(h) - h): at g = 0 the sublayer passes its input through, at g = 1
    it is the plain layer. Cross-attention is never gated (GATED_SUBLAYERS).
    With `release_compat`, the steps are RELEASE_SUBLAYERS: the authors' released computation.
    """

    def __init__(self, config: SWCMConfig, layer_idx: int):
        super().__init__()
        self.kind = config.decoder_layer_types[layer_idx]
        self.sublayers = (RELEASE_SUBLAYERS if config.release_compat else SUBLAYERS)[self.kind]
        self.pre_norm = config.decoder_layer_norm == "pre"
        self.dropout = nn.Dropout(config.encoder.hidden_dropout_prob)
        for step in self.sublayers:
            if step.name.endswith("attn"):
                block = SWCMAttention(config, layer_idx, is_cross_attention=step.name == "cross_attn")
            else:
                block = SWCMFeedForward(config)
            setattr(self, step.name, block)
            if not hasattr(self, step.norm):
                setattr(self, step.norm, nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps))
            if config.decoder_gate_init is not None and step.name in GATED_SUBLAYERS:
                gate = nn.Parameter(torch.full((config.hidden_size,), config.decoder_gate_init))
                setattr(self, f"{step.name}_gate", gate)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        self_attn_mask: torch.Tensor | None = None,
        cross_attn_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> torch.Tensor:
        for step in self.sublayers:
            name, norm = step.name, getattr(self, step.norm)
            residual = hidden_states
            if self.pre_norm:
                hidden_states = norm(hidden_states)
                if step.residual == "normed":
                    residual = hidden_states
            if name == "self_attn":
                out = self.self_attn(hidden_states, attention_mask=self_attn_mask, cache=cache)
            elif name == "cross_attn":
                out = self.cross_attn(
                    hidden_states,
                    key_value_states=encoder_hidden_states,
                    attention_mask=cross_attn_mask,
                    cache=cache,
                )
            else:
                out = getattr(self, name)(hidden_states)
            out = self.dropout(out)
            updated = out if step.residual == "none" else residual + out
            if not self.pre_norm:
                updated = norm(updated)
            gate = getattr(self, f"{name}_gate", None)
            # residual + gate * (updated - residual) in one kernel, not three (a CPU training step: 2.66 -> 2.58 s)
            hidden_states = updated if gate is None else torch.lerp(residual, updated, gate)
        return hidden_states


class SWCMDecoder(nn.Module):
    """The stack of decoder layers, laid out by `config.decoder_layer_types`; builds the attention masks."""

    def __init__(self, config: SWCMConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(SWCMDecoderLayer(config, j) for j in range(len(config.decoder_layer_types)))
        # Pre-LN stacks end un-normalised; post-LN layers already end in a LayerNorm. The release has none.
        final_norm = config.decoder_layer_norm == "pre" and not config.release_compat
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, config.layer_norm_eps) if final_norm else None
        self.gradient_checkpointing = False

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        # transformers' mask helpers: causal over the cache + current positions with the padding in `attention_mask`,
        # and the source's padding for cross-attention; each in the form `config._attn_implementation` takes
        self_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            **{CACHE_NAME: cache.self_attention_cache if cache is not None else None},
        )
        cross_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )

        hidden_states = inputs_embeds
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                encoder_hidden_states,  # positional, for gradient checkpointing
                self_attn_mask=self_mask,
                cross_attn_mask=cross_mask,
                cache=cache,
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        if self.final_layer_norm is not None:
            hidden_states = self.final_layer_norm(hidden_states)
        return hidden_states, all_hidden_states


class SWCMPreTrainedModel(PreTrainedModel):
    config_class = SWCMConfig
    config: SWCMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["SWCMDecoderLayer", "BertLayer", "XLMRobertaLayer", "RobertaLayer", "CamembertLayer"]
    _skip_keys_device_placement = ["cache", "past_key_values"]  # the forward takes the cache under either name

    def _init_weights(self, module):
        # Random (not copied) decoder weights use the encoder's initializer range.
        std = self.config.encoder.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()


class SWCMModel(SWCMPreTrainedModel):
    """Encoder (the pretrained model) + decoder, without the LM head."""

    def __init__(self, config: SWCMConfig):
        super().__init__(config)
        self.encoder = encoder_class(config.encoder)(config.encoder, add_pooling_layer=False)
        if self.encoder.config.vocab_size != config.vocab_size:
            self.encoder.resize_token_embeddings(config.vocab_size, mean_resizing=False)
        self.decoder = SWCMDecoder(config)
        self.first_position_id = first_decoder_position_id(config.encoder)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.set_input_embeddings(value)

    def get_encoder(self, modality: str | None = None):
        return self.encoder

    def embed_decoder_inputs(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, past_length: int
    ) -> torch.Tensor:
        """The encoder's embedding module (word + position + LayerNorm) on decoder tokens at their true positions."""
        reference = input_ids if input_ids is not None else inputs_embeds
        length = reference.shape[1]
        start = self.first_position_id + past_length
        limit = self.config.encoder.max_position_embeddings
        if start + length > limit:
            raise ValueError(
                f"decoder position {start + length - 1} is past the encoder's {limit} position embeddings "
                f"(at most {limit - self.first_position_id} decoder tokens)"
            )
        position_ids = torch.arange(start, start + length, device=reference.device)[None, :]
        return self.encoder.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds, position_ids=position_ids)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | Sequence[torch.Tensor] | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
    ) -> Seq2SeqModelOutput:
        """`cache` (transformers >= 5.24) or `past_key_values` (earlier): the decoder's EncoderDecoderCache."""
        if output_attentions:
            raise NotImplementedError("SWCM decoder layers use fused SDPA and do not return attention weights")
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
            )
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError("pass decoder_input_ids, decoder_inputs_embeds or labels")

        cache = one_cache(cache, past_key_values)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(f"the cache must be an EncoderDecoderCache, got {type(cache).__name__}")
        past_length = cache.get_seq_length() if cache is not None else 0

        hidden_states, decoder_hidden_states = self.decoder(
            self.embed_decoder_inputs(decoder_input_ids, decoder_inputs_embeds, past_length),
            encoder_outputs.last_hidden_state,
            attention_mask=decoder_attention_mask,
            encoder_attention_mask=attention_mask,
            cache=cache if use_cache else None,
            output_hidden_states=bool(output_hidden_states),
        )
        return Seq2SeqModelOutput(
            last_hidden_state=hidden_states,
            **{CACHE_NAME: cache if use_cache else None},
            decoder_hidden_states=decoder_hidden_states,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )


class SWCMHeadTransform(nn.Module):
    """The transform of a masked-LM head (BERT's cls.predictions.transform, XLM-R's lm_head.dense / layer_norm):
    dense -> activation -> LayerNorm, before the vocabulary projection."""

    def __init__(self, config: SWCMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.encoder.hidden_act]
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.encoder.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.act(self.dense(hidden_states)))


class SWCMForConditionalGeneration(SWCMPreTrainedModel, GenerationMixin):
    """XLM-SWCM with an LM head (untied by default, as in the paper); `generate(..., tgt_lang="bo")`."""

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embeddings.word_embeddings.weight"}

    def __init__(self, config: SWCMConfig):
        super().__init__(config)
        self.model = SWCMModel(config)
        self.head_transform = SWCMHeadTransform(config) if config.lm_head_transform else None
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def get_encoder(self, modality: str | None = None):
        return self.model.encoder

    def lang_tag_id(self, tgt_lang: str) -> int:
        return self.config.lang_tag_id(tgt_lang)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' save, then the model card (README.md): what the model is built from, its layout, its
        training stages (`self.training_record`, set by the training loop, after those of the folder it was loaded
        from)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            write_card(save_directory, swcm_card_data(self.config, getattr(self, "training_record", None)))

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """`<tgt> y1 .. yn </s>` -> `<s> <tgt> y1 .. yn`: exactly one start token, -100 padding -> pad."""
        start = self.config.decoder_start_token_id
        if (labels[:, 0] == start).any():
            raise ValueError(
                f"labels start with the decoder start token (id {start}); labels are `<tgt-lang> y1 .. yn </s>` and "
                "the model prepends the start token itself (build them with swcm.encode_targets)"
            )
        shifted = labels.new_full(labels.shape, start)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == -100, self.config.pad_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | Sequence[torch.Tensor] | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int = 0,
        past_key_values: Cache | None = None,
    ) -> Seq2SeqLMOutput:
        """`cache` (transformers >= 5.24) or `past_key_values` (earlier): the decoder's EncoderDecoderCache; the
        output holds it under the installed version's name (`getattr(outputs, CACHE_NAME)`)."""
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            past_key_values=past_key_values,  # SWCMModel takes the one given (one_cache)
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        hidden_states = outputs.last_hidden_state
        if logits_to_keep:  # generation needs only the last position's logits
            hidden_states = hidden_states[:, -logits_to_keep:]
        if self.head_transform is not None:
            hidden_states = self.head_transform(hidden_states)
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100)
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
            decoder_hidden_states=outputs.decoder_hidden_states,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
        )

    def generate(self, inputs: torch.Tensor | None = None, tgt_lang: str | None = None, **kwargs):
        """`GenerationMixin.generate`; `tgt_lang` starts every output with `<s> <tgt_lang>`."""
        if tgt_lang is not None:
            if kwargs.get("decoder_input_ids") is not None:
                raise ValueError("pass either tgt_lang or decoder_input_ids, not both")
            source = inputs if inputs is not None else kwargs.get("input_ids")
            if source is None and kwargs.get("encoder_outputs") is not None:
                source = kwargs["encoder_outputs"][0]
            if source is None:
                raise ValueError("tgt_lang needs input_ids (or encoder_outputs) to know the batch size")
            prompt = torch.tensor([self.config.decoder_start_token_id, self.lang_tag_id(tgt_lang)], device=self.device)
            kwargs["decoder_input_ids"] = prompt.expand(source.shape[0], 2).contiguous()
        return super().generate(inputs, **kwargs)

    @staticmethod
    def _reorder_cache(cache, beam_idx: torch.LongTensor):
        """Beam search's reorder of the cache after each step (GenerationMixin calls this hook when a model has it):
        only the self-attention keys and values move. Every beam of one input holds the same cross-attention keys
        and values (the same encoder output) and beams are only ever chosen among one input's own, so moving those
        would copy each layer's source-length states every step for nothing."""
        if isinstance(cache, EncoderDecoderCache):
            cache.self_attention_cache.reorder_cache(beam_idx)
        else:
            cache.reorder_cache(beam_idx)
        return cache

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part; the shared embeddings count once, with the encoder."""
        encoder = sum(p.numel() for p in self.model.encoder.parameters())
        decoder = sum(p.numel() for p in self.model.decoder.parameters())
        tied = self.lm_head.weight is self.get_input_embeddings().weight
        head = (0 if tied else self.lm_head.weight.numel()) + self.lm_head.bias.numel()
        if self.head_transform is not None:
            head += sum(p.numel() for p in self.head_transform.parameters())
        return {"encoder": encoder, "decoder": decoder, "lm_head": head, "total": encoder + decoder + head}


def load_model_folder(path: str | os.PathLike) -> SWCMForConditionalGeneration:
    """An XLM-SWCM model from a saved folder or hub id; a damaged weights file is one line."""
    with readable_weights(path):
        return SWCMForConditionalGeneration.from_pretrained(path)


# `AutoModelForSeq2SeqLM.from_pretrained` opens saved XLM-SWCM models once this module is loaded
AutoModel.register(SWCMConfig, SWCMModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(SWCMConfig, SWCMForConditionalGeneration, exist_ok=True)

__all__ = ["SWCMModel", "SWCMForConditionalGeneration", "SWCMPreTrainedModel", "load_model_folder"]
