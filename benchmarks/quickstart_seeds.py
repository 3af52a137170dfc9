"""The quickstart's default build against the random decoder over several seeds: chrF++ of greedy outputs and the
held-out teacher-forced loss (mean ± sd), and held-out loss curves.

    python benchmarks/quickstart_seeds.py                         # default and random, seeds 0 1 2 (~10 min a run)
    python benchmarks/quickstart_seeds.py --builds default random random-lr3e-4 --reuse

Every run is `swcm quickstart` with its defaults (6-layer e5-small, CLDR names zh <-> ug / kk / mn / bo, 600 steps x
32, decoder lr 1e-3, encoder 1e-4), changing only what the build names and the seed. Writes quickstart_seeds.json,
quickstart_seeds.md and curves.png to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table, write_json  # noqa: E402

# name -> (what it is, QuickstartArgs fields it changes)
BUILDS: dict[str, tuple[str, dict]] = {
    "default": ("swcm's default: shared decoder, gates from 0.02 at 10x lr, encoder at 1e-4", {}),
    "random": ("the paper's baseline: random decoder, same rates", {"decoder_init": "random"}),
    "random-lr3e-4": (
        "random decoder at lr 3e-4 (its better rate on held-out loss in the init study)",
        {"decoder_init": "random", "lr": 3e-4},
    ),
}


@dataclass
class SeedsArgs:
    """Arguments of benchmarks/quickstart_seeds.py."""

    builds: list[str] = field(default_factory=lambda: ["default", "random"])
    """Builds to run (see BUILDS)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds."""
    work: Path = Path("runs/quickstart-seeds")
    """One quickstart folder per build and seed: WORK/BUILD-seedN."""
    out: Path = Path("benchmarks/results/quickstart-seeds")
    """Results folder."""
    reuse: bool = False
    """Keep runs that already have a report.json."""


def run_one(build: str, seed: int, args: SeedsArgs) -> tuple[dict, bool]:
    from swcm.quickstart import QuickstartArgs, run_quickstart

    folder = args.work / f"{build}-seed{seed}"
    report = folder / "report.json"
    if args.reuse and report.is_file():
        return json.loads(report.read_text(encoding="utf-8")), False
    return run_quickstart(QuickstartArgs(out=folder, seed=seed, **BUILDS[build][1])), True


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def summarise(reports: dict[str, dict[int, dict]]) -> dict:
    summary = {}
    for build, by_seed in reports.items():
        langs = list(next(iter(by_seed.values()))["languages"])
        entry = {"seeds": sorted(by_seed), "chrf++": {}, "heldout_loss": {}, "curve": {}}
        for lang in langs:
            entry["chrf++"][lang] = [r["languages"][lang]["chrf++_after"] for r in by_seed.values()]
            entry["heldout_loss"][lang] = [r["languages"][lang]["heldout_loss_after"] for r in by_seed.values()]
        steps = sorted({row["step"] for r in by_seed.values() for row in r.get("heldout_curve", [])})
        for step in steps:
            values = [
                row["heldout"] for r in by_seed.values() for row in r.get("heldout_curve", []) if row["step"] == step
            ]
            entry["curve"][step] = values
        summary[build] = entry
    return summary


def render(result: dict) -> str:
    summary = result["summary"]
    langs = list(next(iter(summary.values()))["chrf++"])
    lines = [
        "# Quickstart: the default build against the random decoder, over seeds",
        "",
        f"{result['machine']['date']} · {result['machine']['cpu']} · `swcm quickstart` defaults, 40 held-out names per "
        "language (32 for Tibetan) for chrF++ (greedy, no script constraint), every held-out pair for the held-out "
        "loss (teacher-forced, per target token); mean ± sd over seeds. Runs trained now: "
        f"{result['trained']}, reused: {result['reused']}.",
        "",
    ]
    header = ["build", "seeds"] + [f"chrF++ {lang}" for lang in langs] + [f"held-out loss {lang}" for lang in langs]
    rows = []
    for build, entry in summary.items():
        rows.append(
            [build, len(entry["seeds"])]
            + [_spread(entry["chrf++"][lang]) for lang in langs]
            + [_spread(entry["heldout_loss"][lang]) for lang in langs]
        )
    lines += [markdown_table(header, rows), ""]
    steps = sorted({s for entry in summary.values() for s in entry["curve"]})
    if steps:
        header = ["build"] + [f"held-out @ {s}" for s in steps]
        rows = [[b] + [_spread(e["curve"][s]) if s in e["curve"] else "" for s in steps] for b, e in summary.items()]
        lines += ["Held-out loss over all four languages while training:", "", markdown_table(header, rows), ""]
    lines += [f"- **{b}**: {BUILDS[b][0]}" for b in summary]
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for build, entry in result["summary"].items():
        steps = sorted(entry["curve"], key=int)
        if not steps:
            continue
        means = [statistics.mean(entry["curve"][s]) for s in steps]
        sds = [statistics.stdev(entry["curve"][s]) if len(entry["curve"][s]) > 1 else 0.0 for s in steps]
        xs = [int(s) for s in steps]
        ax.plot(xs, means, marker="o", label=build)
        ax.fill_between(
            xs,
            [m - s for m, s in zip(means, sds, strict=True)],
            [m + s for m, s in zip(means, sds, strict=True)],
            alpha=0.2,
        )
    ax.set_xlabel("step")
    ax.set_ylabel("held-out loss (zh -> X, per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)


def run(args: SeedsArgs) -> dict:
    unknown = [b for b in args.builds if b not in BUILDS]
    if unknown:
        raise SystemExit(f"unknown builds {unknown}; known: {', '.join(BUILDS)}")
    started, trained, reused = time.time(), 0, 0
    reports: dict[str, dict[int, dict]] = {}
    for build in args.builds:
        for seed in args.seeds:
            report, fresh = run_one(build, seed, args)
            trained, reused = trained + fresh, reused + (not fresh)
            reports.setdefault(build, {})[seed] = report
    result = {
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "trained": trained,
        "reused": reused,
        "seconds": time.time() - started,
        "summary": summarise(reports),
    }
    out = Path(args.out)
    write_json(out / "quickstart_seeds.json", result)
    (out / "quickstart_seeds.md").write_text(render(result), encoding="utf-8")
    plot(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    from swcm.cli import add_dataclass_arguments, dataclass_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, SeedsArgs, {})
    args = dataclass_args(SeedsArgs, parser.parse_args(argv))
    run(args)
    print((Path(args.out) / "quickstart_seeds.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
