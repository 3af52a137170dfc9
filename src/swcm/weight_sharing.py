"""The encoder -> decoder weight map of XLM-SWCM, as explicit names.

A custom decoder layer built from encoder layer i gets that layer's self-attention (Q, K, V, output projection and
the LayerNorm after it) twice, for its self-attention and its cross-attention, and that layer's FFN (two linears and
the LayerNorm after it) twice, for FFN1 and FFN2. Every pair is checked by name and shape; anything unmapped fails.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_swcm import CUSTOM, NORMAL
from .errors import CheckpointError

ENCODER_LAYER = "encoder.encoder.layer.{i}."
DECODER_LAYER = "decoder.layers.{j}."

# decoder custom-layer module -> encoder layer module (each module's weight and bias are copied)
CUSTOM_LAYER_SOURCES: dict[str, str] = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.output.LayerNorm",
    "ffn1.fc1": "intermediate.dense",
    "ffn1.fc2": "output.dense",
    "ffn1_layer_norm": "output.LayerNorm",
    "cross_attn.q_proj": "attention.self.query",
    "cross_attn.k_proj": "attention.self.key",
    "cross_attn.v_proj": "attention.self.value",
    "cross_attn.out_proj": "attention.output.dense",
    "cross_attn_layer_norm": "attention.output.LayerNorm",
    "ffn2.fc1": "intermediate.dense",
    "ffn2.fc2": "output.dense",
    "ffn2_layer_norm": "output.LayerNorm",
}

# BASE-B: normal-layer module -> module of the preceding custom layer it copies (the FFN after cross-attention).
NORMAL_FROM_CUSTOM: dict[str, str] = {
    "self_attn": "self_attn",
    "self_attn_layer_norm": "self_attn_layer_norm",
    "cross_attn": "cross_attn",
    "cross_attn_layer_norm": "cross_attn_layer_norm",
    "ffn": "ffn2",
    "ffn_layer_norm": "ffn2_layer_norm",
}


class WeightMapError(CheckpointError):
    """A decoder parameter the map cannot source, or a source that is missing or of another shape."""


def _prefix(model: nn.Module) -> str:
    # Accept SWCMForConditionalGeneration (parameters under "model.") and SWCMModel alike.
    return "model." if hasattr(model, "lm_head") else ""


# Decoder parameters that exist only in the decoder and start from their own init (sublayer gates).
NEW_PARAMETER_SUFFIXES = ("_gate",)


def _map_layer(params: dict[str, torch.Tensor], dst_prefix: str, src_prefix: str, module_map: dict[str, str]):
    pairs, used = [], set()
    for name in sorted(n for n in params if n.startswith(dst_prefix)):
        if name.endswith(NEW_PARAMETER_SUFFIXES):
            continue
        module, leaf = name[len(dst_prefix) :].rsplit(".", 1)
        key = next((m for m in module_map if module == m or module.startswith(m + ".")), None)
        if key is None:
            raise WeightMapError(f"decoder parameter {name} has no source in the weight map")
        source = src_prefix + module_map[key] + module[len(key) :] + "." + leaf
        if source not in params:
            raise WeightMapError(f"source {source} of {name} does not exist")
        if params[source].shape != params[name].shape:
            raise WeightMapError(
                f"shape of {name} {tuple(params[name].shape)} != shape of {source} {tuple(params[source].shape)}"
            )
        pairs.append((name, source))
        used.add(key)
    unused = sorted(set(module_map) - used)
    if unused:
        raise WeightMapError(f"weight map entries {unused} match no parameter under {dst_prefix}")
    return pairs


def weight_sharing_plan(model: nn.Module) -> list[tuple[str, str]]:
    """(decoder_param_name, encoder_param_name) pairs that `from_encoder` copied; [] for a random decoder. Custom
    layer k copies encoder layer `config.source_layers[k]` (by default k)."""
    config = model.config
    if config.decoder_init != "shared":
        return []
    prefix = _prefix(model)
    params = dict(model.named_parameters(remove_duplicate=False))
    num_encoder_layers = config.encoder.num_hidden_layers
    if config.num_custom_layers > num_encoder_layers:
        raise WeightMapError(
            f"{config.num_custom_layers} custom decoder layers but only {num_encoder_layers} encoder layers to copy"
        )
    pairs = []
    custom_layers = [j for j, kind in enumerate(config.decoder_layer_types) if kind == CUSTOM]
    for i, j in zip(config.source_layers, custom_layers, strict=True):
        dst = prefix + DECODER_LAYER.format(j=j)
        src = prefix + ENCODER_LAYER.format(i=i)
        pairs += _map_layer(params, dst, src, CUSTOM_LAYER_SOURCES)
    return pairs


def copy_previous_plan(model: nn.Module) -> list[tuple[str, str]]:
    """(normal_layer_param, custom_layer_param) pairs for BASE-B; [] unless normal_init == "copy-previous"."""
    config = model.config
    if config.normal_init != "copy-previous":
        return []
    prefix = _prefix(model)
    params = dict(model.named_parameters(remove_duplicate=False))
    pairs, last_custom = [], None
    for j, kind in enumerate(config.decoder_layer_types):
        if kind == CUSTOM:
            last_custom = j
        elif kind == NORMAL:
            if last_custom is None:
                raise WeightMapError(f"normal decoder layer {j} has no preceding custom layer to copy")
            dst = prefix + DECODER_LAYER.format(j=j)
            src = prefix + DECODER_LAYER.format(j=last_custom)
            pairs += _map_layer(params, dst, src, NORMAL_FROM_CUSTOM)
    return pairs


@torch.no_grad()
def copy_weights(model: nn.Module, plan: list[tuple[str, str]]) -> int:
    """Copy (not alias) each source tensor into its destination; returns the number of tensors copied."""
    for dst, src in plan:
        model.get_parameter(dst).copy_(model.get_parameter(src))
    return len(plan)
