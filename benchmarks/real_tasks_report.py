"""The real-text benchmark's results (benchmarks/real_tasks.py): what the finished stages of every run hold, summed
over seeds, as markdown and loss-curve plots."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.common import machine_line, markdown_table, mean_sd


def done(folder: Path) -> dict | None:
    path = folder / "done.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def collect(work: Path, variants: list[str], seeds: list[int], stages: list[str], evaluations: list[str]) -> dict:
    """What the finished stages of every run hold: scores per cell, curves, samples, minutes."""
    runs = {}
    for variant in variants:
        for seed in seeds:
            run = work / f"{variant}-s{seed}"
            entry = {"minutes": {}, "curves": {}, "cells": {}, "samples": {}}
            for stage in ["pretrain", *stages]:
                record = done(run / stage)
                if record is None:
                    continue
                entry["minutes"][stage] = record["minutes"]
                rows = [json.loads(line) for line in (run / stage / "log.jsonl").read_text().splitlines()]
                for row in rows:
                    for key, value in row.items():
                        if key.startswith("heldout_") and value is not None:
                            entry["curves"].setdefault(f"{stage}:{key[8:]}", []).append((row["step"], value))
            for name in evaluations:
                folder = run / f"eval-{name}"
                record = done(folder)
                if record is None:
                    continue
                entry["minutes"][f"eval-{name}"] = record["minutes"]
                for row in json.loads((folder / "report.json").read_text(encoding="utf-8"))["results"]:
                    entry["cells"][f"{name}:{row['lang']}"] = row
                    predictions = folder / "predictions" / f"{row['task']}.{row['lang']}.jsonl"
                    if predictions.is_file():
                        items = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
                        entry["samples"][f"{name}:{row['lang']}"] = items[:3]
            if entry["minutes"]:
                runs[f"{variant}-s{seed}"] = entry
    return runs


METRICS = [
    ("rougeL_f", "ROUGE-L F"),
    ("rougeL_p", "P"),
    ("rougeL_r", "R"),
    ("chrf++", "chrF++"),
    ("exact_match", "EM"),
    ("f1", "F1"),
    ("off_target", "off-target %"),
    ("empty", "empty %"),
    ("distinct", "distinct %"),
]


def spread(values: list[float]) -> str:
    return mean_sd(values, 1)


def summarise(runs: dict) -> dict:
    """Per cell and variant: every metric's values over the seeds that finished it; the curves likewise."""
    cells: dict[str, dict[str, dict[str, list[float]]]] = {}
    curves: dict[str, dict[str, dict[int, list[float]]]] = {}
    for key, entry in runs.items():
        variant = key.rsplit("-s", 1)[0]
        for cell, row in entry["cells"].items():
            by_metric = cells.setdefault(cell, {}).setdefault(variant, {})
            for metric, _ in METRICS:
                if row.get(metric) is not None:
                    by_metric.setdefault(metric, []).append(row[metric])
            by_metric.setdefault("n", []).append(row["n"])
        for curve, points in entry["curves"].items():
            for step, value in points:
                curves.setdefault(curve, {}).setdefault(variant, {}).setdefault(step, []).append(value)
    return {"cells": cells, "curves": curves}


def render(result: dict, evaluations: list[tuple[str, str]], stages: list[str], variant_notes: dict[str, str]) -> str:
    """The markdown: per evaluation (name, what it is) a table of every metric per language and variant; the
    held-out curves' first and last points; minutes per stage; sample outputs; what each variant is."""
    info, summary, runs = result["machine"], result["summary"], result["runs"]
    variants = result["args"]["variants"]
    lines = [
        "# Real text: the paper's three tasks in miniature, shared against random decoder",
        "",
        f"{machine_line(info)} · size "
        f"`{result['args']['size']}` · runs finished or in part: {', '.join(sorted(runs)) or 'none'}. Greedy "
        "decoding, no repeated 3-grams; ROUGE-L with swcm's script tokenizer, mean of per-example F / P / R; mean ± sd "
        "over the seeds that finished a cell (n: examples per seed).",
        "",
    ]
    for name, what in evaluations:
        cells = {c: v for c, v in summary["cells"].items() if c.split(":")[0] == name}
        if not cells:
            continue
        lines += [f"## {name}: {what}", ""]
        header = ["lang", "variant", "seeds", "n"] + [title for _, title in METRICS]
        rows = []
        for cell, by_variant in sorted(cells.items()):
            for variant in variants:
                values = by_variant.get(variant)
                if values:
                    row = [cell.split(":")[1], variant, len(values["n"]), int(statistics.mean(values["n"]))]
                    rows.append(row + [spread(values.get(m, [])) for m, _ in METRICS])
        lines += [markdown_table(header, rows), ""]
    steps_table = []
    for curve, by_variant in sorted(summary["curves"].items()):
        for variant in variants:
            points = by_variant.get(variant)
            if points:
                last = max(points)
                first = min(points)
                steps_table.append(
                    [curve, variant, f"{spread(points[first])} @ {first}", f"{spread(points[last])} @ {last}"]
                )
    if steps_table:
        lines += ["## Held-out loss (teacher-forced, per target token): first and last measurement", ""]
        lines += [markdown_table(["stage:curve", "variant", "first", "last"], steps_table), ""]
    minutes = []
    for key, entry in sorted(runs.items()):
        minutes.append([key, *(f"{entry['minutes'].get(s, 0):.1f}" for s in ["pretrain", *stages])])
        minutes[-1].append(f"{sum(v for k, v in entry['minutes'].items() if k.startswith('eval-')):.1f}")
    lines += ["## Minutes per stage", "", markdown_table(["run", "pretrain", *stages, "evaluations"], minutes), ""]
    lines += ["## Sample outputs (seed 0, first test examples)", ""]
    for key, entry in sorted(runs.items()):
        if not key.endswith("-s0"):
            continue
        for cell, items in sorted(entry["samples"].items()):
            for item in items[:2]:
                source = item["source"].replace("\n", " ")[:90]
                lines.append(
                    f"- {key} {cell}: `{source}` -> **{item['output'] or '(empty)'}** (ref: {item['references'][0]})"
                )
    lines += ["", *(f"- **{v}**: {variant_notes[v]}" for v in variants)]
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result["summary"]["curves"]
    if not curves:
        return
    names = sorted(curves)
    columns = min(4, len(names))
    rows = (len(names) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for variant, points in sorted(curves[name].items()):
            steps = sorted(points, key=int)
            means = [statistics.mean(points[s]) for s in steps]
            low = [min(points[s]) for s in steps]
            high = [max(points[s]) for s in steps]
            line = ax.plot([int(s) for s in steps], means, marker="o", markersize=3, label=variant)[0]
            ax.fill_between([int(s) for s in steps], low, high, alpha=0.15, color=line.get_color())
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle("held-out loss per target token (mean over seeds, band: min-max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
