"""The paper's ablations in miniature, over seeds, at a budget where the variants separate.

    python benchmarks/ablations.py                      # 7 variants x seeds 0 1 2 x 300 steps (~90 min, 2 CPU cores)
    python benchmarks/ablations.py --variants xlm-swcm random-decoder random-lr3e-4 --steps 600   # the quickstart

Every run is `swcm quickstart` on the real pipeline: the packaged e5-small cut to 6 layers and pruned to the data ->
XLM-SWCM built from it -> `pretrain` (denoising + zh <-> X translation of CLDR names, the paper's pretraining tasks)
-> `evaluate_file` on held-out zh -> X names. Variants change only the build / recipe fields that VARIANTS names;
every variant gets the same data, steps, batch, schedule and seeds. The 200-step two-stage runs on news text that
this benchmark used to make taught no variant to translate (chrF++ ~0 everywhere), so nothing separated.

Reported per variant: chrF++ of greedy outputs and the teacher-forced held-out loss per language (mean ± sd over
seeds), the held-out loss curve while training, and training minutes. Writes ablations.json, ablations.md and
curves.png to --out; one quickstart folder per run in --work (VARIANT-seedN).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/ablations.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, markdown_table, mean_sd, write_json
from swcm.choices import DEFAULT_ENCODER, Precision
from swcm.languages import MINORITY_LANGS

# name -> (what it is, QuickstartArgs fields it changes, PretrainRecipe fields it changes). The paper's names in [].
# -MT is left out: the held-out task is zh -> X translation, which a denoising-only model is never asked to do.
VARIANTS: dict[str, tuple[str, dict, dict]] = {
    "xlm-swcm": (
        "swcm's default: shared decoder (custom layer i from encoder layer i), gates from 0.02 at 10x lr, one normal "
        "layer after every 3 custom layers",
        {},
        {},
    ),
    "paper-init": ("the paper's init exactly: no sublayer gates", {}, {"decoder_gate_init": None}),
    "random-decoder": (
        "no weight sharing: the same decoder, randomly initialised [Cino-Transformer]",
        {"decoder_init": "random"},
        {},
    ),
    "random-lr3e-4": (
        "random decoder at lr 3e-4, its better rate in the init study",
        {"decoder_init": "random", "lr": 3e-4},
        {},
    ),
    "base-a": ("no normal layers: custom layers only [BASE-A]", {}, {"normal_every": 0}),
    "base-b": ("normal layers copied from the custom layer before them [BASE-B]", {}, {"normal_init": "copy-previous"}),
    "no-dae": ("translation only, no denoising [-DAE]", {"dae_share": 0.0}, {}),
    "x1": ("one normal layer after every custom layer (X=1)", {}, {"normal_every": 1}),
    "x6": (
        "one normal layer after every 6 custom layers (X=6); with a 6-layer encoder none (the last group gets none): "
        "the same model as base-a",
        {},
        {"normal_every": 6},
    ),
}
DEFAULT_VARIANTS = ["xlm-swcm", "random-decoder", "base-a", "base-b", "no-dae", "x1", "x6"]


@dataclass
class AblationArgs:
    """Arguments of benchmarks/ablations.py."""

    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    """Variants to run (see VARIANTS)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds (initialisation, data order, noise)."""
    steps: int = 300
    """Training steps of every run (the quickstart's default is 600)."""
    encoder: str = DEFAULT_ENCODER
    """Encoder every variant is built from."""
    langs: list[str] = field(default_factory=lambda: list(MINORITY_LANGS))
    """Target languages (paired with zh)."""
    precision: Precision = "auto"
    """auto (bf16 where the CPU has native bf16, else fp32), bf16 or fp32."""
    work: Path = Path("runs/ablations")
    """One quickstart folder per run: WORK/VARIANT-seedN."""
    out: Path = Path("benchmarks/results/ablations")
    """Results folder (ablations.json, ablations.md, curves.png)."""
    reuse: bool = False
    """Keep runs whose report.json was made with the same settings; others are trained again."""
    keep_models: bool = False
    """Keep each run's checkpoints and models (about 0.8 GB a run); by default only reports and logs stay."""


def quickstart_args(args: AblationArgs, variant: str, seed: int):
    from swcm.arguments import QuickstartArgs

    return QuickstartArgs(
        out=args.work / f"{variant}-seed{seed}",
        encoder=args.encoder,
        langs=list(args.langs),
        steps=args.steps,
        precision=args.precision,
        seed=seed,
        **VARIANTS[variant][1],
    )


def _settings(args: dict, changes: dict) -> dict:
    """What makes two runs the same run (not where they are kept)."""
    kept = {k: str(v) if isinstance(v, Path) else v for k, v in args.items() if k != "out"}
    return {"args": kept, "changes": changes}


def run_one(args: AblationArgs, variant: str, seed: int) -> tuple[dict, bool]:
    """(the run's report, whether it was trained now)."""
    from swcm.quickstart import run_quickstart

    qargs = quickstart_args(args, variant, seed)
    changes = VARIANTS[variant][2]
    path = qargs.out / "report.json"
    if args.reuse and path.is_file():
        report = json.loads(path.read_text(encoding="utf-8"))
        if _settings(asdict(qargs), changes) == _settings(report["args"], report.get("recipe_changes", {})):
            return report, False
        print(f"{qargs.out}: made with other settings; training it again", flush=True)
    encoder = qargs.out / "encoder"
    done = sorted(args.work.glob("*/encoder/swcm-inputs.txt"))
    if done and not encoder.exists():  # the quickstart checks the stamp against its inputs: a stale copy is redone
        shutil.copytree(done[0].parent, encoder)
    report = run_quickstart(qargs, changes)
    if not args.keep_models:
        for folder in ("checkpoints", "initial", "final"):
            shutil.rmtree(qargs.out / "train" / folder, ignore_errors=True)
    return report, True


def _spread(values: list[float]) -> str:
    return mean_sd(values, 2)


def summarise(reports: dict[str, dict[int, dict]]) -> dict:
    summary = {}
    for variant, by_seed in reports.items():
        runs = list(by_seed.values())
        entry = {"seeds": sorted(by_seed), "chrf++": {}, "heldout_loss": {}, "curve": {}}
        for lang in runs[0]["languages"]:
            entry["chrf++"][lang] = [r["languages"][lang]["chrf++_after"] for r in runs]
            entry["heldout_loss"][lang] = [r["languages"][lang]["heldout_loss_after"] for r in runs]
        for step in sorted({row["step"] for r in runs for row in r.get("heldout_curve", [])}):
            entry["curve"][step] = [row["heldout"] for r in runs for row in r["heldout_curve"] if row["step"] == step]
        entry["train_minutes"] = [r["train_seconds"] / 60 for r in runs if "train_seconds" in r]
        summary[variant] = entry
    return summary


def render(result: dict) -> str:
    summary, args = result["summary"], result["args"]
    langs = list(next(iter(summary.values()))["chrf++"])
    flags = ", ".join(result["machine"].get("cpu_flags", [])) or "none listed"
    lines = [
        "# Ablations in miniature: the quickstart's pipeline, over seeds",
        "",
        f"{result['machine']['date']} · {result['machine']['cpu']} (CPU flags: {flags}) · "
        f"{result['machine']['threads']} threads · `swcm quickstart` with {args['steps']} steps x "
        f"{result['batch_size']} sequences, "
        "everything else its defaults; chrF++ of greedy outputs on 40 held-out names per language (32 for Tibetan), "
        "no script constraint; held-out loss teacher-forced over every held-out pair, per target token; mean ± sd "
        f"over seeds. Runs trained now: {result['trained']}, reused: {result['reused']}.",
        "",
    ]
    header = ["variant", "seeds"] + [f"chrF++ {lang}" for lang in langs]
    header += [f"held-out loss {lang}" for lang in langs] + ["train min"]
    rows = []
    for variant, entry in summary.items():
        minutes = entry["train_minutes"]
        rows.append(
            [variant, len(entry["seeds"])]
            + [_spread(entry["chrf++"][lang]) for lang in langs]
            + [_spread(entry["heldout_loss"][lang]) for lang in langs]
            + [f"{statistics.mean(minutes):.1f}" if minutes else ""]
        )
    lines += [markdown_table(header, rows), ""]
    steps = sorted({s for entry in summary.values() for s in entry["curve"]})
    if steps:
        header = ["variant"] + [f"held-out @ {s}" for s in steps]
        rows = [[v] + [_spread(e["curve"][s]) if s in e["curve"] else "" for s in steps] for v, e in summary.items()]
        lines += ["Held-out loss over all languages while training:", "", markdown_table(header, rows), ""]
    lines += [f"- **{v}**: {VARIANTS[v][0]}" for v in summary]
    return "\n".join(lines) + "\n"


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, entry in result["summary"].items():
        steps = sorted(entry["curve"], key=int)
        if not steps:
            continue
        means = [statistics.mean(entry["curve"][s]) for s in steps]
        sds = [statistics.stdev(entry["curve"][s]) if len(entry["curve"][s]) > 1 else 0.0 for s in steps]
        xs = [int(s) for s in steps]
        ax.plot(xs, means, marker="o", label=variant)
        low, high = [m - s for m, s in zip(means, sds, strict=True)], [m + s for m, s in zip(means, sds, strict=True)]
        ax.fill_between(xs, low, high, alpha=0.15)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out loss (zh -> X, per token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)


def run(args: AblationArgs) -> dict:
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    started, trained, reused = time.time(), 0, 0
    reports: dict[str, dict[int, dict]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            report, fresh = run_one(args, variant, seed)
            trained, reused = trained + fresh, reused + (not fresh)
            reports.setdefault(variant, {})[seed] = report
            # written after every run: a stopped benchmark leaves the runs it finished reported
            result = {
                "machine": machine(),
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
                "batch_size": report["batch_size"],
                "trained": trained,
                "reused": reused,
                "seconds": time.time() - started,
                "summary": summarise(reports),
            }
            out = Path(args.out)
            write_json(out / "ablations.json", result)
            (out / "ablations.md").write_text(render(result), encoding="utf-8")
            plot(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    from swcm.cli import parse_dataclass

    args = parse_dataclass(AblationArgs, argv, __doc__)
    run(args)
    print((Path(args.out) / "ablations.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
