"""Decoding at forced lengths, beams and batch sizes, the models taking turns; what a decoding step costs (FLOPs,
the profiler's split, one token through each Linear shape).
`args` (measure_generation): speed.SpeedArgs, for the fields they read."""

from __future__ import annotations

import statistics
import time

import torch

from benchmarks.common import source_batch
from benchmarks.peers import generation_kwargs


def measure_generation(models: dict, tokenizer, args) -> list[dict]:
    """Per setting, the models take turns (model A, B, C, A, B, C, ...), so a drift of the machine's speed hits
    every model alike; the median of `repeats` runs is reported."""
    rows = []
    for batch_size in args.batch_sizes:
        batch = source_batch(tokenizer, batch_size)
        for beams in args.beams:
            for new_tokens in args.new_tokens:
                kwargs = {name: generation_kwargs(name, batch, beams, new_tokens) for name, m in models.items()}
                times: dict[str, list[float]] = {name: [] for name in models}
                with torch.inference_mode():
                    for name, model in models.items():  # warm-up
                        model.generate(**{**kwargs[name], "min_new_tokens": 4, "max_new_tokens": 4})
                    for _ in range(args.repeats):
                        for name, model in models.items():
                            started = time.perf_counter()
                            out = model.generate(**kwargs[name])
                            times[name].append(time.perf_counter() - started)
                            generated = out.shape[1] - 1  # every model's output starts with its start token
                            if generated != new_tokens:
                                raise RuntimeError(f"{name} generated {generated} positions, expected {new_tokens}")
                for name in models:
                    seconds = statistics.median(times[name])
                    rows.append(
                        {
                            "model": name,
                            "batch": batch_size,
                            "beams": beams,
                            "new_tokens": new_tokens,
                            "seconds": seconds,
                            "seconds_all": times[name],
                            "s_per_token": seconds / (batch_size * new_tokens),
                            "s_per_step": seconds / new_tokens,
                        }
                    )
                    print(
                        f"generate {name:9s} batch {batch_size} beams {beams} tokens {new_tokens}: "
                        f"{seconds:.2f} s, {1e3 * seconds / new_tokens:.1f} ms/step",
                        flush=True,
                    )
    return rows


def generation_flops_per_token(models: dict, tokenizer, new_tokens: int = 32) -> dict[str, float]:
    """FLOPs per generated token (greedy, batch 1, cached), counted by torch: the decoders' real work."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = source_batch(tokenizer, 1)
    flops = {}
    for name, model in models.items():
        kwargs = generation_kwargs(name, batch, 1, new_tokens)
        with torch.inference_mode():
            encoder = model.get_encoder()
            counter = FlopCounterMode(display=False)
            with counter:
                encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            encoder_flops = counter.get_total_flops()
            counter = FlopCounterMode(display=False)
            with counter:
                model.generate(**kwargs)
        flops[name] = (counter.get_total_flops() - encoder_flops) / new_tokens
    return flops


def profile_decode(models: dict, tokenizer, new_tokens: int = 32) -> dict[str, dict]:
    """Where a greedy batch-1 decoding step spends its time (torch profiler): matrix multiplies vs the rest, and the
    weight bytes the decoder + LM head stream per step (a decode step at batch 1 is bound by reading weights)."""
    from torch.profiler import ProfilerActivity, profile

    batch = source_batch(tokenizer, 1)
    report = {}
    for name, model in models.items():
        kwargs = generation_kwargs(name, batch, 1, new_tokens)
        with torch.inference_mode():
            model.generate(**kwargs)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                model.generate(**kwargs)
        events = {e.key: e for e in prof.key_averages()}
        total = sum(e.self_cpu_time_total for e in events.values())
        matmul = sum(events[k].self_cpu_time_total for k in ("aten::addmm", "aten::mm", "aten::bmm") if k in events)
        calls = sum(events[k].count for k in ("aten::addmm", "aten::mm") if k in events)
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.decoder
        head = model.get_output_embeddings()
        # Every decoder / head Linear is read once per step, except cross-attention keys / values (computed once).
        cross_kv = ("cross_attn.k_proj", "cross_attn.v_proj", "crossattention.self.key", "crossattention.self.value")
        cross_kv += ("encoder_attn.k_proj", "encoder_attn.v_proj")
        linears = {
            id(m): m
            for n, m in [*decoder.named_modules(), ("lm_head", head)]
            if isinstance(m, torch.nn.Linear) and not any(t in n for t in cross_kv)
        }
        linear_bytes = sum(m.weight.numel() * m.weight.element_size() for m in linears.values())
        report[name] = {
            "ms_per_step": total / 1e3 / new_tokens,
            "matmul_share": matmul / total,
            "matmul_calls_per_step": calls / new_tokens,
            "weight_mb_per_step": linear_bytes / 1e6,
            "matmul_gb_per_s": linear_bytes / (matmul / 1e6 / new_tokens) / 1e9,
        }
    return report


def linear_microbenchmark(hidden: int, intermediate: int, vocab: int, repeats: int = 300) -> list[dict]:
    """One decoding token through a Linear of each shape the decoder uses: microseconds and weight GB/s. Shows
    the bound (bytes, not FLOPs) and what fusing Q, K and V into one matrix would save."""
    import torch.nn.functional as F

    x_cache = {}
    rows = []
    shapes = [
        ("q / k / v / out (each)", hidden, hidden),
        ("fused q+k+v", 3 * hidden, hidden),
        ("FFN in", intermediate, hidden),
        ("FFN out", hidden, intermediate),
        ("LM head", vocab, hidden),
    ]
    for label, rows_out, cols in shapes:
        weight, bias = torch.randn(rows_out, cols), torch.randn(rows_out)
        x = x_cache.setdefault(cols, torch.randn(1, 1, cols))
        with torch.inference_mode():
            for _ in range(20):
                F.linear(x, weight, bias)
            count = repeats if rows_out * cols < 5e6 else repeats // 10
            started = time.perf_counter()
            for _ in range(count):
                F.linear(x, weight, bias)
            seconds = (time.perf_counter() - started) / count
        rows.append(
            {
                "linear": label,
                "shape": [rows_out, cols],
                "microseconds": 1e6 * seconds,
                "weight_gb_per_s": weight.numel() * 4 / seconds / 1e9,
                "gflop_per_s": 2 * weight.numel() / seconds / 1e9,
            }
        )
    return rows
