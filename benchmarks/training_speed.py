"""The training step (forward + backward + AdamW) of each model on the same batch, fp32 and bf16 autocast: tokens/s,
achieved FLOP/s (torch's FlopCounterMode) and peak memory (in a fresh process per model); the data pipeline's
examples/s.
`args` (measure_training): speed.SpeedArgs, for the fields they read."""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import SHARED_DATA, in_fresh_process
from benchmarks.peers import build_models
from swcm.choices import PRETRAIN_TASKS
from swcm.recipe import regional_compilation


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
    model = build_models(encoder_dir, [name])[0][name].to(device).train()
    batch = train_batch(_vocab(name, model), size, length, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
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
        warm = torch.optim.AdamW(models["swcm compiled"].parameters(), lr=0.0)
        for precision in ("fp32", "bf16"):
            _train_step(models["swcm compiled"], warm, batches["swcm"], precision, device)
        del warm
    rows = []
    for precision in ("fp32", "bf16"):
        optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}
        for name, model in models.items():  # warm-up, allocates the optimizer state
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
