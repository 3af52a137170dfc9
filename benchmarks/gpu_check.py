"""The first hour on a GPU: does every fast path work, and how fast is the paper's configuration? One script, each
check timed and reported side by side with what the CPU rehearsal (benchmarks/paper_scale.py) projects.

    python benchmarks/gpu_check.py                       # on a GPU: the paper's shape (CINO-base-v2), ~5 min
    python benchmarks/gpu_check.py --size tiny           # anywhere, seconds (the test suite runs it on CPU)

Checks, each PASS / FAIL / SKIP with its numbers:
1. bf16 autocast: a training step's loss finite and within 2% of fp32's on the same batch;
2. attention: SDPA (flash / memory-efficient kernels where the GPU has them) against eager, same logits;
3. torch.compile: the compiled forward equals the eager one; its step time beside eager's;
4. the pretraining step at the paper's length 256: tokens/s, achieved TFLOP/s, MFU against the card's bf16 peak,
   peak memory per micro-batch;
5. generation: greedy and beam 5, batch 16, 64 new tokens: tokens/s;
6. swcm's own training loop under accelerate with configs/accelerate/fsdp.yaml (1 process per GPU; GPUs only:
   accelerate turns FSDP on only there).
Writes gpu_check.json and gpu_check.md to --out.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/gpu_check.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import REPOSITORY, machine, markdown_table, run_as_program, write_report
from benchmarks.paper_scale import SHAPES, ShapeArgs, batch, build

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}
"""Dense bf16 peaks (FLOP/s) by GPU name fragment, for MFU."""


@dataclass
class GpuCheckArgs(ShapeArgs):
    """Arguments of benchmarks/gpu_check.py."""

    micro_batches: list[int] = field(default_factory=lambda: [8, 16, 32])
    """Micro-batches of the timed pretraining step (one that runs out of memory is reported as such)."""
    steps: int = 5
    """Timed steps per micro-batch (after two warm-up steps; the median is reported)."""
    compile: bool = True
    """Run the torch.compile check."""
    fsdp: bool = True
    """Run swcm's training loop under accelerate's FSDP (GPUs only)."""
    out: Path = Path("benchmarks/results/gpu_check")
    """Results folder."""


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_bf16(model, inputs, device) -> dict:
    with torch.no_grad():
        fp32 = float(model(**inputs).loss)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bf16 = float(model(**inputs).loss)
    close = abs(bf16 - fp32) <= 0.02 * abs(fp32) and bf16 == bf16
    return {"status": "PASS" if close else "FAIL", "fp32_loss": fp32, "bf16_loss": bf16}


def check_attention(model, inputs, device) -> dict:
    flash = bool(device.type == "cuda" and torch.backends.cuda.flash_sdp_enabled())
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        sdpa = model(**inputs).logits.float()
        model.set_attn_implementation("eager")
        eager = model(**inputs).logits.float()
        model.set_attn_implementation("sdpa")
    largest = float((sdpa - eager).abs().max())
    return {"status": "PASS" if largest < 1e-2 else "FAIL", "largest_difference": largest, "flash_enabled": flash}


def check_compile(model, inputs, device) -> dict:
    try:
        compiled = torch.compile(model)
        with torch.no_grad():
            expected = model(**inputs).logits.float()
            got = compiled(**inputs).logits.float()  # compiles here
            times = {}
            for name, runner in (("eager", model), ("compiled", compiled)):
                runner(**inputs)
                _sync(device)
                started = time.perf_counter()
                for _ in range(3):
                    runner(**inputs)
                _sync(device)
                times[name] = (time.perf_counter() - started) / 3
    except Exception as err:  # a compiler that fails here is what this check reports
        return {"status": "FAIL", "error": f"{type(err).__name__}: {str(err)[:300]}"}
    largest = float((got - expected).abs().max())
    return {"status": "PASS" if largest < 1e-2 else "FAIL", "largest_difference": largest, "forward_seconds": times}


def time_training(model, args: GpuCheckArgs, device) -> list[dict]:
    from torch.utils.flop_counter import FlopCounterMode

    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((value for key, value in PEAK_BF16.items() if key in name), None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rows = []
    for micro in args.micro_batches:
        inputs = {k: v.to(device) for k, v in batch(model, micro, args.length).items()}
        try:
            counter = FlopCounterMode(display=False)
            with counter, torch.autocast(device.type, dtype=torch.bfloat16):
                model(**inputs).loss.backward()
            flops = counter.get_total_flops()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times = []
            for number in range(2 + args.steps):
                _sync(device)
                started = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = model(**inputs).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                _sync(device)
                if number >= 2:
                    times.append(time.perf_counter() - started)
        except torch.OutOfMemoryError:
            rows.append({"micro_batch": micro, "status": "out of memory"})
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            continue
        seconds = statistics.median(times)
        achieved = flops / seconds
        rows.append(
            {
                "micro_batch": micro,
                "status": "PASS",
                "seconds_per_step": seconds,
                "target_tokens_per_s": micro * args.length / seconds,
                "achieved_tflops": achieved / 1e12,
                "mfu": achieved / peak if peak else None,
                "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            }
        )
    return rows


def time_generation(model, device) -> list[dict]:
    model.eval()
    inputs = {k: v.to(device) for k, v in batch(model, 16, 48).items() if k != "labels"}
    rows = []
    for beams in (1, 5):
        options = dict(num_beams=beams, min_new_tokens=64, max_new_tokens=64, do_sample=False)
        options.update(decoder_start_token_id=0, eos_token_id=2, pad_token_id=1, bos_token_id=0)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            model.generate(**inputs, **{**options, "min_new_tokens": 4, "max_new_tokens": 4})
            _sync(device)
            started = time.perf_counter()
            out = model.generate(**inputs, **options)
            _sync(device)
        seconds = time.perf_counter() - started
        rows.append({"beams": beams, "tokens_per_s": 16 * (out.shape[1] - 1) / seconds, "seconds": seconds})
    model.train()
    return rows


def check_fsdp(device, work: Path) -> dict:
    """swcm pretrain on a tiny recipe under `accelerate launch --config_file configs/accelerate/fsdp.yaml`."""
    if device.type != "cuda":
        return {"status": "SKIP", "why": "accelerate turns FSDP on only on GPUs"}
    from tests.conftest import save_tiny_xlmr

    work.mkdir(parents=True, exist_ok=True)
    encoder = save_tiny_xlmr(work / "encoder", dropout=0.0)
    text = work / "mono.txt"
    text.write_text("".join(f"ئۇيغۇرچە تىل {i}. قازاق {i % 7}.\n" for i in range(200)), encoding="utf-8")
    recipe = work / "recipe.yaml"
    recipe.write_text(
        json.dumps(
            {
                "model": str(encoder),
                "sources": [{"path": str(text), "task": "dae", "lang": "ug"}],
                "max_steps": 4,
                "global_batch": 8,
                "micro_batch": 8,
                "max_length": 32,
                "save_every": 2,
                "mixed_precision": "bf16",
            }
        )
    )
    command = ["accelerate", "launch", "--config_file", str(REPOSITORY / "configs/accelerate/fsdp.yaml")]
    command += ["--num_processes", str(torch.cuda.device_count()), "-m", "swcm.cli", "pretrain", "--config"]
    command += [str(recipe), "--out", str(work / "run"), "--overwrite"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPOSITORY)
    final = work / "run" / "final" / "config.json"
    ok = done.returncode == 0 and final.is_file()
    return {"status": "PASS" if ok else "FAIL", "tail": (done.stderr or done.stdout)[-600:] if not ok else ""}


def run(args: GpuCheckArgs) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(SHAPES[args.size]).to(device).train()
    model.config.decoder_start_token_id = 0
    probe = {k: v.to(device) for k, v in batch(model, 2, min(args.length, 64)).items()}
    result = {"machine": machine(), "device": str(device), "args": asdict(args) | {"out": str(args.out)}}
    model.eval()  # the comparisons: no dropout
    result["bf16"] = check_bf16(model, probe, device)
    result["attention"] = check_attention(model, probe, device)
    result["compile"] = check_compile(model, probe, device) if args.compile else {"status": "SKIP"}
    model.train()
    result["training"] = time_training(model, args, device)
    result["generation"] = time_generation(model, device)
    result["fsdp"] = check_fsdp(device, Path(args.out) / "fsdp-work") if args.fsdp else {"status": "SKIP"}
    write_report(Path(args.out), "gpu_check", result, render(result))
    return result


def render(result: dict) -> str:
    info = result["machine"]
    lines = [
        f"# GPU check on {info.get('cuda') or info['cpu']} ({result['args']['size']} shape)",
        "",
        f"{info['date']} · torch {info['torch']} · transformers {info.get('transformers')}",
        "",
    ]
    checks = []
    for name in ("bf16", "attention", "compile", "fsdp"):
        details = {k: v for k, v in result[name].items() if k != "status"}
        checks.append([name, result[name]["status"], json.dumps(details)[:160]])
    lines += [markdown_table(["check", "status", "details"], checks), ""]
    rows = [
        [r["micro_batch"], r["status"], r.get("target_tokens_per_s"), r.get("achieved_tflops"), r.get("mfu")]
        + [r.get("peak_memory_gib")]
        for r in result["training"]
    ]
    header = ["micro-batch", "status", "target tokens/s", "TFLOP/s", "MFU", "peak GiB"]
    lines += [f"Pretraining step, length {result['args']['length']}, bf16 autocast:", "", markdown_table(header, rows)]
    lines += ["", "Generation, batch 16, 64 new tokens:", ""]
    lines += [markdown_table(["beams", "tokens/s"], [[r["beams"], r["tokens_per_s"]] for r in result["generation"]])]
    lines += ["", "Compare with benchmarks/results/paper_scale/paper_scale.md (the CPU rehearsal's projections)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_as_program(GpuCheckArgs, run, "gpu_check.md", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
