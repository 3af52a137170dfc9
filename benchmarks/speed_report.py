"""The speed benchmark's report: ratios to each peer, the markdown tables and the plots, from speed.json's rows."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import markdown_table
from benchmarks.quantized_agreement import TIE_MARGINS
from benchmarks.training_speed import training_markdown, training_ratios


def summarise(result: dict) -> dict:
    """Ratios to each peer and the decode-length scaling, from the raw rows."""
    gen = {(r["model"], r["batch"], r["beams"], r["new_tokens"]): r for r in result["generation"]}
    models = result["models"]
    ratios = []
    for (name, batch, beams, tokens), row in gen.items():
        if name != "swcm":
            continue
        entry = {"batch": batch, "beams": beams, "new_tokens": tokens, "swcm_s_per_token": row["s_per_token"]}
        for peer in models:
            if peer != "swcm" and (peer, batch, beams, tokens) in gen:
                entry[f"speedup_vs_{peer}"] = gen[(peer, batch, beams, tokens)]["seconds"] / row["seconds"]
        ratios.append(entry)
    scaling = []
    lengths = sorted(result["args"]["new_tokens"])
    if len(lengths) > 1:
        short, long = lengths[0], lengths[-1]
        for name in models:
            for batch in result["args"]["batch_sizes"]:
                for beams in result["args"]["beams"]:
                    a, b = gen.get((name, batch, beams, short)), gen.get((name, batch, beams, long))
                    if a and b:
                        scaling.append(
                            {
                                "model": name,
                                "batch": batch,
                                "beams": beams,
                                "lengths": [short, long],
                                "time_ratio": b["seconds"] / a["seconds"],
                                "linear_would_be": long / short,
                            }
                        )
    return {"generation_ratios": ratios, "decode_scaling": scaling, "training": training_ratios(result["training"])}


def file_throughput_markdown(result: dict) -> list[str]:
    out = []
    file = result.get("file_throughput")
    if file:
        rows = file["rows"]
        beams = sorted({r["beams"] for r in rows})
        names = list(dict.fromkeys(r["decoding"] for r in rows))
        by = {(r["decoding"], r["beams"]): r for r in rows}
        reference = "bert2bert fp32" if "bert2bert fp32" in names else names[0]
        header = ["decoding"]
        for b in beams:
            header += [f"tokens/s, beam {b}", f"x {reference}, beam {b}"]
        header += ["batch-1 latency ms (greedy)"]
        table = []
        for name in names:
            cells = [name]
            for b in beams:
                row = by[(name, b)]
                cells += [row["tokens_per_s"], row["tokens_per_s"] / by[(reference, b)]["tokens_per_s"]]
            cells.append(file["latency"][name]["median_ms"])
            table.append(cells)
        counts = ", ".join(f"{by[(names[0], b)]['sentences']} at beam {b}" for b in beams)
        out += [
            "## File throughput (NTREX zh, the way `swcm generate` runs a file)",
            "",
            f"NTREX zh sentences ({counts}) in batches of {file['batch']}, longest first, "
            f"{file['tokens_per_sentence']} tokens generated per sentence (forced: the models are untrained or "
            "random); every way of decoding takes its turn on each batch. Latency: median over "
            f"{next(iter(file['latency'].values()))['sentences']} single sentences.",
            "",
            markdown_table(header, table),
            "",
        ]
    agreement = result.get("quantized_agreement")
    if agreement:
        langs = [k for k in agreement if k not in ("model", "pooled", "near_ties")]
        modes = list(agreement["pooled"])
        header = ["zh ->", "names"]
        for mode in modes:
            header += [f"{mode}: identical outputs %", f"{mode}: chrF++ against fp32"]
        table = []
        for lang in langs:
            table.append([lang, agreement[lang]["sentences"]])
            for mode in modes:
                table[-1] += [agreement[lang][mode]["identical"], agreement[lang][mode]["chrf++_vs_fp32"]]
        table.append(["all", agreement["pooled"][modes[0]]["sentences"]])
        for mode in modes:
            table[-1] += [agreement["pooled"][mode]["identical"], ""]
        out += [
            f"`--quantize` and bf16 weights against fp32, greedy, the held-out CLDR names (zh), model "
            f"`{agreement['model']}`:",
            "",
            markdown_table(header, table),
            "",
        ]
        ties = agreement.get("near_ties")
        if ties:
            shares = ", ".join(f"{share:.1f}% under {gap}" for gap, share in ties["share_with_gap_under"].items())
            rows = [
                [
                    mode,
                    len(gaps),
                    sum(g < TIE_MARGINS[0] for g in gaps),
                    sum(g < TIE_MARGINS[1] for g in gaps),
                    max(gaps, default=0.0),
                ]
                for mode, gaps in ties["divergence_gaps"].items()
            ]
            header = [
                "mode",
                "outputs that differ (tokens)",
                f"fp32 gap < {TIE_MARGINS[0]} there",
                f"< {TIE_MARGINS[1]}",
                "largest gap",
            ]
            out += [
                f"Near-ties in the fp32 outputs: of {ties['sentences']} names, the share with a step whose top-two "
                f"logit gap is small: {shares}. Where each mode's output first differs from fp32's, fp32's gap:",
                "",
                markdown_table(header, rows),
                "",
            ]
    return out


def render_markdown(result: dict) -> str:
    m = result["machine"]
    out = [
        "# Speed: XLM-SWCM vs bert2bert vs mBART",
        "",
        f"{m['date']} · {m['cpu']} · {m['threads']} threads · torch {m['torch']} · "
        f"transformers {m.get('transformers')} · CUDA {m['cuda']}",
        "",
        f"CPU flags: {', '.join(m.get('cpu_flags', [])) or 'none of avx2 / avx512 / amx'}; torch: {m.get('cpu_bf16')}.",
        "",
        f"Encoder: `{result['args']['encoder']}` -> {result['encoder_dir']} (vocabulary {result['vocab_size']:,}). "
        "Parameters: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in result["parameters"].items()) + ".",
        "",
    ]
    out += file_throughput_markdown(result)
    if "generation" not in result:
        return "\n".join(out) + "\n"
    out += [
        "## Generation (fp32, KV cache, forced length)",
        "",
        "Seconds per generated token = wall time / (batch x new tokens); speed-up = peer time / XLM-SWCM time.",
        "",
    ]
    gen = {(r["model"], r["batch"], r["beams"], r["new_tokens"]): r for r in result["generation"]}
    models = result["models"]
    peers = [p for p in models if p != "swcm"]
    header = ["batch", "beams", "new tokens"] + [f"{n} ms/token" for n in models] + [f"x vs {p}" for p in peers]
    rows = []
    for ratio in result["summary"]["generation_ratios"]:
        key = (ratio["batch"], ratio["beams"], ratio["new_tokens"])
        cells = [*key] + [1e3 * gen[(n, *key)]["s_per_token"] if (n, *key) in gen else None for n in models]
        cells += [ratio.get(f"speedup_vs_{p}") for p in peers]
        rows.append(cells)
    out.append(markdown_table(header, rows))
    flops = result["generation_flops_per_token"]
    out.append(
        "Decoder FLOPs per generated token (greedy, batch 1, counted by torch): "
        + ", ".join(f"{n} {v / 1e6:.1f} MFLOP" for n, v in flops.items())
        + (
            f" (XLM-SWCM / bert2bert = {flops['swcm'] / flops['bert2bert']:.2f})"
            if {"swcm", "bert2bert"} <= set(flops)
            else ""
        )
        + ".\n"
    )
    out += [
        "",
        "Anatomy of a greedy batch-1 decoding step (torch profiler, 32 tokens): a step reads every decoder and "
        "LM-head weight once, so at batch 1 its matrix multiplies are bound by memory bandwidth, and time follows "
        "weight bytes:",
        "",
        markdown_table(
            ["model", "ms/step (profiled)", "matmul share", "matmul calls/step", "weights read MB/step", "matmul GB/s"],
            [
                [
                    n,
                    p["ms_per_step"],
                    p["matmul_share"],
                    p["matmul_calls_per_step"],
                    p["weight_mb_per_step"],
                    p["matmul_gb_per_s"],
                ]
                for n, p in result["decode_profile"].items()
            ],
        ),
    ]
    micro = result.get("linear_microbenchmark")
    if micro:
        out += [
            "",
            "One decoding token (batch 1) through each Linear shape of the decoder, fp32:",
            "",
            markdown_table(
                ["linear", "shape", "µs", "weight GB/s", "GFLOP/s"],
                [
                    [
                        r["linear"],
                        "x".join(map(str, r["shape"])),
                        r["microseconds"],
                        r["weight_gb_per_s"],
                        r["gflop_per_s"],
                    ]
                    for r in micro
                ],
            ),
        ]
    if result["summary"]["decode_scaling"]:
        out += ["", "Decode-length scaling, t(long) / t(short) (linear = the length ratio):", ""]
        out.append(
            markdown_table(
                ["model", "batch", "beams", "lengths", "t ratio", "linear"],
                [
                    [
                        s["model"],
                        s["batch"],
                        s["beams"],
                        "/".join(map(str, s["lengths"][::-1])),
                        s["time_ratio"],
                        s["linear_would_be"],
                    ]
                    for s in result["summary"]["decode_scaling"]
                ],
            )
        )
    out += ["", *training_markdown(result["training"], result["args"]["train_batch"], result["args"]["train_length"])]
    pipeline = result.get("data_pipeline")
    if pipeline:
        consume = next(
            (r["examples_per_s"] for r in result["training"] if r["model"] == "swcm" and r["precision"] == "bf16"), None
        )
        out += [
            "",
            "## Data pipeline",
            "",
            f"One worker tokenises and noises {pipeline['examples_per_s_per_worker']:.0f} examples/s "
            f"(DAE + MT mixture of the shared data, max length {pipeline['max_length']}); the XLM-SWCM bf16 training "
            f"step consumes {consume:.1f} examples/s, so one worker keeps "
            f"{pipeline['examples_per_s_per_worker'] / consume:.0f} such steps fed.",
        ]
    out += ["", "Plots: `generation.png`, `training.png`.", ""]
    return "\n".join(out)


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = result["generation"]
    combos = sorted({(r["batch"], r["beams"]) for r in gen})
    fig, axes = plt.subplots(1, len(combos), figsize=(4 * len(combos), 3.5), squeeze=False)
    for ax, (batch, beams) in zip(axes[0], combos, strict=True):
        for name in result["models"]:
            pts = sorted(
                (r["new_tokens"], 1e3 * r["s_per_token"])
                for r in gen
                if (r["model"], r["batch"], r["beams"]) == (name, batch, beams)
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_title(f"batch {batch}, beams {beams}")
        ax.set_xlabel("new tokens")
        ax.set_ylabel("ms per generated token")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out / "generation.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = list(dict.fromkeys(r["model"] for r in result["training"]))
    width = 0.38
    for i, precision in enumerate(("fp32", "bf16")):
        values = [
            next(
                (
                    r["achieved_flops"] / 1e9
                    for r in result["training"]
                    if r["model"] == n and r["precision"] == precision
                ),
                0,
            )
            for n in names
        ]
        ax.bar([j + (i - 0.5) * width for j in range(len(names))], values, width, label=precision)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("achieved GFLOP/s (training step)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    plt.close(fig)
