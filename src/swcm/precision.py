"""Which floating-point precision to train and run in, chosen from what the hardware does fast.

bf16 autocast is only a speed-up where the device has native bf16 arithmetic: CUDA compute capability 8.0+ (Ampere
and later), or a CPU with AVX512-BF16 or AMX. On an AVX2-only CPU a bf16 matmul is emulated and measured 60x
slower than fp32 (1.2 vs 76.5 GFLOP/s), so `auto` picks fp32 there. Older CUDA GPUs get fp16 with a loss scaler.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .choices import PRECISIONS
from .errors import RecipeError

# accelerate's names for the concrete choices
ACCELERATE_NAMES = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    """bf16, fp16 or fp32."""
    reason: str
    """Why, in words (printed once)."""

    @property
    def accelerate(self) -> str:
        """The name accelerate's `mixed_precision` takes."""
        return ACCELERATE_NAMES[self.precision]

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.precision]


def cpu_has_fast_bf16() -> tuple[bool, str]:
    """(native bf16 on this CPU, what was detected)."""
    capability = torch.backends.cpu.get_cpu_capability()
    avx512_bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    detected = (
        f"CPU capability {capability}, AVX512-BF16 {'yes' if avx512_bf16 else 'no'}, AMX {'yes' if amx else 'no'}"
    )
    # torch's kernels follow the dispatch capability (ATEN_CPU_CAPABILITY can lower it): the flag alone is not enough
    return (avx512_bf16 or amx) and capability.startswith("AVX512"), detected


def cpu_has_vnni() -> bool:
    """AVX512-VNNI, where fbgemm's int8 kernels accumulate u8 x s8 products in int32 (`vpdpbusd`); without it they
    add pairs of them in int16 (`vpmaddubsw`), which 8-bit weights with 8-bit activations can saturate."""
    return bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)())


def _legacy(name: str) -> str:
    # recipes written before `auto` say "no" for fp32 (accelerate's word)
    return "fp32" if name == "no" else name


def resolve_precision(requested: str = "auto", device: str | torch.device | None = None) -> PrecisionChoice:
    """The concrete precision for `requested` on `device` (default: CUDA if present, else CPU).

    An explicit bf16 on a CPU without native bf16 is honoured with a warning (it runs, slowly); fp16 on a CPU is
    refused, since CPU autocast in fp16 has no loss scaler and no speed to offer.
    """
    requested = _legacy(requested)
    if requested not in PRECISIONS:
        raise RecipeError(f"precision must be one of {PRECISIONS} (or 'no' for fp32), got {requested!r}")
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        fast_bf16 = major >= 8
        detected = f"CUDA compute capability {major}.{minor}"
        if requested == "auto":
            if fast_bf16:
                return PrecisionChoice("bf16", f"auto: {detected} has native bf16")
            return PrecisionChoice("fp16", f"auto: {detected} has no native bf16; fp16 with a loss scaler")
        return PrecisionChoice(requested, f"requested ({detected})")
    fast_bf16, detected = cpu_has_fast_bf16()
    if requested == "auto":
        if fast_bf16:
            return PrecisionChoice("bf16", f"auto: {detected}: native bf16")
        return PrecisionChoice("fp32", f"auto: {detected}: no native bf16, which would run many times slower")
    if requested == "fp16":
        raise RecipeError(f"precision fp16 needs a CUDA GPU; on this CPU ({detected}) use auto, bf16 or fp32")
    if requested == "bf16" and not fast_bf16:
        warnings.warn(
            f"precision bf16 on a CPU without native bf16 ({detected}) is emulated and can be 20-60x slower than "
            "fp32; use --precision auto or fp32",
            stacklevel=2,
        )
        return PrecisionChoice("bf16", f"requested, without native bf16 ({detected})")
    return PrecisionChoice(requested, f"requested ({detected})")
