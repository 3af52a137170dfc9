"""The training step (forward + backward + AdamW) of each model on the same batch, fp32 and bf16 autocast: tokens/s,
achieved FLOP/s (torch's FlopCounterMode) and peak memory (in a fresh process per model); the data pipeline's
examples/s. Part of speed.py; alone (the training step only, swcm against bert2bert, about 5 min on 2 CPU cores):

    python benchmarks/training_speed.py --out benchmarks/results/training_speed

Every model steps with swcm training's optimizer (fused AdamW, as HF Trainer's default `adamw_torch_fused` is) and,
on CPU, under training's allocator setting (`keep_freed_memory`, process-wide, so the peers get it too).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/training_speed.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import (
    SHARED_DATA,
    benchmark_encoder,
    in_fresh_process,
    machine,
    machine_line,
    markdown_table,
    run_as_program,
    write_report,
)
from benchmarks.peers import build_models
from swcm.choices import DEFAULT_ENCODER, PRETRAIN_TASKS
from swcm.recipe import regional_compilation
from swcm.training import adamw, keep_freed_memory


@dataclass
class TrainStepArgs:
    """The training step's settings (speed.py's too)."""

    train_batch: int = 16
    """Training step: sequences per batch."""
    train_length: int = 64
    """Training step: source and target tokens per sequence."""
    train_steps: int = 5
    """Training step: timed steps per model and precision (after three warm-up steps; the median is reported)."""
    train_compiled: bool = True
    """Training step: also time swcm with each layer kind compiled (the recipes' `compile: true`)."""


@dataclass
class TrainingSpeedArgs(TrainStepArgs):
    """Arguments of benchmarks/training_speed.py."""

    encoder: str = DEFAULT_ENCODER
    """Encoder both models are built from (packaged:NAME, a local directory or a hub id)."""
    no_prune: bool = False
    """Use the encoder as given, without pruning its vocabulary to the benchmark corpus (pruned by default)."""
    out: Path = Path("benchmarks/results/training_speed")
    """Results folder (training_speed.json, training_speed.md)."""


def _rss_peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def _rss_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def train_batch(vocab: int, size: int, length: int, device) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (size, length), generator=generator)
    labels = torch.randint(5, vocab, (size, length), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(device) for k, v in batch.items()}


def _train_step(model, optimizer, batch: dict, precision: str, device) -> None:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()


def _vocab(name: str, model) -> int:
    return model.config.decoder.vocab_size if name == "bert2bert" else model.config.vocab_size


def peak_training_memory(encoder_dir: str, name: str, size: int, length: int) -> dict[str, int | None]:
    """Per precision, the peak memory of a training step above the memory held before it (weights, optimizer state
    after a warm-up step): activations + gradients + temporaries. On CPU: peak RSS of a process holding only this
    model (run it in a fresh process: see _in_fresh_process)."""
    import warnings

    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # without training's allocator setting (keep_freed_memory): freed memory must leave the RSS for its peak to show
    model = build_models(encoder_dir, [name])[0][name].to(device).train()
    batch = train_batch(_vocab(name, model), size, length, device)
    optimizer = adamw(model.parameters(), 1e-5, device)
    peaks = {}
    for precision in ("fp32", "bf16"):
        _train_step(model, optimizer, batch, precision, device)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            _train_step(model, optimizer, batch, precision, device)
            peaks[precision] = torch.cuda.max_memory_allocated() - before
        elif _rss_peak_reset():
            before = _rss_kib("VmRSS") * 1024
            _train_step(model, optimizer, batch, precision, device)
            peaks[precision] = _rss_kib("VmHWM") * 1024 - before
        else:
            peaks[precision] = None
    return peaks


def _in_fresh_process(encoder_dir: str, name: str, size: int, length: int) -> dict[str, int | None]:
    """peak_training_memory in a new Python process, so that peaks of different models do not mix."""
    return in_fresh_process("training_speed", f"peak_training_memory({encoder_dir!r}, {name!r}, {size}, {length})")


def measure_training(models: dict, args, encoder_dir: str) -> list[dict]:
    """Forward + backward + AdamW on the same fixed batch; models take turns step by step (as in generation)."""
    import warnings

    from torch.utils.flop_counter import FlopCounterMode

    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)  # bert2bert
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        keep_freed_memory()
    batches, flops = {}, {}
    for name, model in models.items():
        model.to(device).train()
        batches[name] = train_batch(_vocab(name, model), args.train_batch, args.train_length, device)
        counter = FlopCounterMode(display=False)
        with counter:
            model(**batches[name]).loss.backward()
        flops[name] = counter.get_total_flops()
        model.zero_grad(set_to_none=True)
    peaks = {name: _in_fresh_process(encoder_dir, name, args.train_batch, args.train_length) for name in models}
    if "swcm" in models and getattr(args, "train_compiled", False) and regional_compilation():
        # swcm's `compile: true`: each layer kind compiled (inductor); its FLOPs are eager's, warmed up (compiled) here
        import copy

        from accelerate.utils import compile_regions

        models = {**models, "swcm compiled": compile_regions(copy.deepcopy(models["swcm"]), dynamic=True)}
        batches["swcm compiled"], flops["swcm compiled"] = batches["swcm"], flops["swcm"]
        peaks["swcm compiled"] = {"fp32": None, "bf16": None}
        warm = adamw(models["swcm compiled"].parameters(), 0.0, device)
        for precision in ("fp32", "bf16"):
            _train_step(models["swcm compiled"], warm, batches["swcm"], precision, device)
        del warm
    rows = []
    for precision in ("fp32", "bf16"):
        optimizers = {name: adamw(m.parameters(), 1e-5, device) for name, m in models.items()}
        for _ in range(3):  # warm-up: the optimizer state, and the allocator's heap reaching its steady size
            for name, model in models.items():
                _train_step(model, optimizers[name], batches[name], precision, device)
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.train_steps):
            for name, model in models.items():
                started = time.perf_counter()
                _train_step(model, optimizers[name], batches[name], precision, device)
                times[name].append(time.perf_counter() - started)
        del optimizers
        for name in models:
            peak = peaks[name][precision]
            seconds = statistics.median(times[name])
            tokens = 2 * args.train_batch * args.train_length
            rows.append(
                {
                    "model": name,
                    "precision": precision,
                    "seconds_per_step": seconds,
                    "seconds_all": times[name],
                    "tokens_per_s": tokens / seconds,
                    "examples_per_s": args.train_batch / seconds,
                    "flops_per_step": flops[name],
                    "achieved_flops": flops[name] / seconds,
                    "peak_memory_bytes": peak,
                }
            )
            print(
                f"train {name:9s} {precision}: {seconds:.2f} s/step, {tokens / seconds:.0f} tokens/s, "
                f"{flops[name] / seconds / 1e9:.1f} GFLOP/s, peak +{(peak or 0) / 2**20:.0f} MiB",
                flush=True,
            )
    for model in models.values():
        model.zero_grad(set_to_none=True)
        model.to("cpu").eval()
    return rows


def measure_data_pipeline(tokenizer, tag_ids: dict, count: int = 200) -> dict | None:
    """Examples/s one worker makes (tokenise + noise) on the pretraining mixture of the shared data."""
    if not (SHARED_DATA / "mono").is_dir():
        return None
    from swcm.data import ExampleSettings, PretrainExamples, build_mixture, open_source
    from swcm.noising import NoiseConfig
    from swcm.specs import SourceSpec

    specs = [
        SourceSpec(path=str(SHARED_DATA / "mono/ug.essays.jsonl"), task="dae", lang="ug", fields=["text"]),
        SourceSpec(path=str(SHARED_DATA / "mono/kk.kazqad-contexts.jsonl"), task="dae", lang="kk"),
        SourceSpec(path=str(SHARED_DATA / "mono/mn.montsame-news.jsonl"), task="dae", lang="mn"),
        SourceSpec(path=str(SHARED_DATA / "mt/software-ui.en-zh-ug.jsonl"), task="mt", langs=["zh", "ug"]),
        SourceSpec(path=str(SHARED_DATA / "mt/software-ui.en-zh-kk.jsonl"), task="mt", langs=["zh", "kk"]),
    ]
    import tempfile

    with tempfile.TemporaryDirectory() as index_dir:
        sources = [open_source(s, False, Path(index_dir)) for s in specs]
        mixture = build_mixture(sources, 0.3, 0.5, list(PRETRAIN_TASKS))
        examples = PretrainExamples(sources, mixture, tokenizer, tag_ids, ExampleSettings(64, NoiseConfig(), 0))
        examples.example(0)
        started = time.perf_counter()
        for i in range(count):
            examples.example(i + 1)
        rate = count / (time.perf_counter() - started)
    return {"examples_per_s_per_worker": rate, "examples": count, "max_length": 64}


def training_ratios(rows: list[dict]) -> list[dict]:
    """Per model: its bf16 speed-up and its FLOP rate over each other model's, per precision."""
    train = {(r["model"], r["precision"]): r for r in rows}
    trained = list(dict.fromkeys(r["model"] for r in rows))  # the models and "swcm compiled"
    ratios = []
    for name in trained:
        fp32, bf16 = train.get((name, "fp32")), train.get((name, "bf16"))
        if fp32 and bf16:
            entry = {"model": name, "bf16_speedup": fp32["seconds_per_step"] / bf16["seconds_per_step"]}
            for peer in trained:
                if peer != name and (peer, "fp32") in train:
                    entry[f"flops_ratio_vs_{peer}_fp32"] = (
                        fp32["achieved_flops"] / train[(peer, "fp32")]["achieved_flops"]
                    )
                    entry[f"flops_ratio_vs_{peer}_bf16"] = (
                        bf16["achieved_flops"] / train[(peer, "bf16")]["achieved_flops"]
                    )
            ratios.append(entry)
    return ratios


def training_markdown(rows: list[dict], batch: int, length: int) -> list[str]:
    """The training step's table and ratios (speed.md's section, training_speed.md's body)."""
    out = [
        f"## Training step (forward + backward + fused AdamW, batch {batch} x {length} source + {length} target "
        "tokens)",
        "",
        markdown_table(
            [
                "model",
                "precision",
                "s/step (median)",
                "every step, s",
                "tokens/s",
                "GFLOP/step",
                "achieved GFLOP/s",
                "peak memory MiB (above weights + optimizer)",
            ],
            [
                [
                    r["model"],
                    r["precision"],
                    r["seconds_per_step"],
                    " ".join(f"{t:.2f}" for t in r["seconds_all"]),
                    r["tokens_per_s"],
                    r["flops_per_step"] / 1e9,
                    r["achieved_flops"] / 1e9,
                    r["peak_memory_bytes"] / 2**20 if r["peak_memory_bytes"] is not None else None,
                ]
                for r in rows
            ],
        ),
        "",
        "Ratios:",
        "",
    ]
    for entry in training_ratios(rows):
        extras = ", ".join(f"{k} {v:.3f}" for k, v in entry.items() if k != "model")
        out.append(f"- {entry['model']}: {extras}")
    return out


def run(args: TrainingSpeedArgs) -> dict:
    encoder_dir = benchmark_encoder(args.encoder, prune=not args.no_prune)
    models, _ = build_models(encoder_dir, ["swcm", "bert2bert"])
    result = {
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "training": measure_training(models, args, encoder_dir),
    }
    info = result["machine"]
    markdown = [
        "# Training step: XLM-SWCM against bert2bert, the same run",
        "",
        machine_line(info),
        "",
        *training_markdown(result["training"], args.train_batch, args.train_length),
        "",
    ]
    write_report(args.out, "training_speed", result, "\n".join(markdown))
    return result


def main(argv: list[str] | None = None) -> int:
    return run_as_program(TrainingSpeedArgs, run, "training_speed.md", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
