"""The paper's ablations in miniature: same encoder, data, steps and seed for every variant; real data.

    python benchmarks/ablations.py                  # all variants, under 60 min on 2 CPU cores
    python benchmarks/ablations.py --variants xlm-swcm random-decoder --stage1-steps 50   # a subset

Every variant goes through the paper's two stages with `swcm pretrain` and `swcm finetune` (subprocesses, as a
user would run them):
1. pretraining: denoising on monolingual ug / kk / mn text + zh <-> ug / kk / mn translation (software UI strings);
2. fine-tuning: zh -> ug / kk / mn translation plus Uyghur essay title generation (a longer-output task),
then `swcm.evaluation` on NTREX-128 and CMiLBench (zh -> X) and on held-out essays (text -> title), greedy.
Writes ablations.json, ablations.md, curves.png and scores.png to --out; models and logs go to --work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_ENCODER, benchmark_encoder, machine, markdown_table, require_shared_data, write_json  # noqa: E402

# name -> (what it is, recipe fields that differ from XLM-SWCM's). The paper's names in brackets.
VARIANTS: dict[str, tuple[str, dict]] = {
    "xlm-swcm": ("shared weights, one normal layer after every 3 custom layers (X=3)", {}),
    "random-decoder": (
        "no weight sharing: the same decoder, randomly initialised [Cino-Transformer]",
        {"decoder_init": "random"},
    ),
    "base-a": ("no normal layers: custom layers only [BASE-A]", {"normal_every": 0}),
    "base-b": ("normal layers copied from the custom layer before them [BASE-B]", {"normal_init": "copy-previous"}),
    "no-dae": ("pretraining without the denoising objective (translation only) [-DAE]", {"tasks": ["mt"]}),
    "x1": ("one normal layer after every custom layer (X=1)", {"normal_every": 1}),
    "x6": ("one normal layer after every 6 custom layers (X=6)", {"normal_every": 6}),
}
LANGS = ("ug", "kk", "mn")


@dataclass
class AblationArgs:
    """Arguments of benchmarks/ablations.py."""

    encoder: str = DEFAULT_ENCODER
    """Encoder (packaged:NAME, local directory or hub id); its vocabulary is pruned to the benchmark corpus."""
    no_prune: bool = False
    """Use the encoder's vocabulary as it is."""
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """Variants to run (see VARIANTS)."""
    out: Path = Path("benchmarks/results/ablations")
    """Results folder (ablations.json, ablations.md, curves.png, scores.png)."""
    work: Path = Path("runs/ablations")
    """Models, checkpoints and training logs."""
    stage1_steps: int = 120
    """Pretraining steps (DAE + MT)."""
    stage2_steps: int = 80
    """Fine-tuning steps (translation + title generation)."""
    batch: int = 16
    """Sequences per step."""
    max_length: int = 48
    """Longest source / target in tokens."""
    lr: float = 3e-4
    """Peak learning rate (both stages; linear decay, 10% warm-up)."""
    encoder_lr: float | None = None
    """Peak learning rate of the pretrained encoder and embeddings (None: --lr; the quickstart uses 1e-4 at lr 1e-3)."""
    mt_limit: int = 2000
    """Fine-tuning translation pairs per language (software UI strings)."""
    title_upsample: int = 8
    """Fine-tuning: the title-generation examples are listed this many times, so they are not drowned by MT."""
    title_test: int = 20
    """Essays held out (the last ones) to evaluate title generation."""
    eval_limit: int = 30
    """Sentences per language and test set for translation."""
    max_new_tokens: int = 48
    """Generation length limit."""
    precision: str = "auto"
    """auto (bf16 where the CPU has native bf16, else fp32), bf16 or fp32."""
    seed: int = 0
    """Seed of initialisation, data order and noise (the same for every variant)."""
    reuse: bool = False
    """Skip a variant's stage when its final model already exists in --work."""


def _run_stage(command: str, recipe: dict, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{command}.yaml"
    config.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False), encoding="utf-8")
    started = time.perf_counter()
    log = folder / f"{command}.out"
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "swcm.cli", command, "--config", str(config), "--overwrite"],  # not reused: anew
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    if done.returncode:
        tail = log.read_text(encoding="utf-8").splitlines()[-15:]
        raise RuntimeError(f"swcm {command} failed ({log}):\n" + "\n".join(tail))
    return time.perf_counter() - started


def _splits(data: Path, work: Path, test: int) -> tuple[Path, Path]:
    """Uyghur essays: all but the last `test` train title generation, the last `test` evaluate it."""
    rows = (data / "mono" / "ug.essays.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [r for r in rows if r.strip()]
    work.mkdir(parents=True, exist_ok=True)
    train, held_out = work / "ug-titles.train.jsonl", work / "ug-titles.test.jsonl"
    train.write_text("\n".join(rows[:-test]) + "\n", encoding="utf-8")
    held_out.write_text("\n".join(rows[-test:]) + "\n", encoding="utf-8")
    return train, held_out


def recipes(args: AblationArgs, encoder_dir: str, data: Path, titles_train: Path, variant: str) -> tuple[dict, dict]:
    overrides = VARIANTS[variant][1]
    folder = args.work / variant
    common = {
        "global_batch": args.batch,
        "micro_batch": args.batch,
        "max_length": args.max_length,
        "lr": args.lr,
        "encoder_lr": args.encoder_lr,
        "warmup_ratio": 0.1,
        "mixed_precision": args.precision,
        "num_workers": 1,
        "keep_checkpoints": 1,
        "log_every": 5,
        "seed": args.seed,
    }
    stage1 = {
        "model": encoder_dir,
        "out": str(folder / "pretrain"),
        "sources": [
            {"path": str(data / "mono/ug.essays.jsonl"), "task": "dae", "lang": "ug", "fields": ["text"]},
            {"path": str(data / "mono/kk.kazqad-contexts.jsonl"), "task": "dae", "lang": "kk"},
            {"path": str(data / "mono/mn.montsame-news.jsonl"), "task": "dae", "lang": "mn"},
            *(
                {"path": str(data / f"mt/software-ui.en-zh-{lang}.jsonl"), "task": "mt", "langs": ["zh", lang]}
                for lang in LANGS
            ),
        ],
        "max_steps": args.stage1_steps,
        "save_every": args.stage1_steps,
        "lang_tags": ["zh", *LANGS],
        **common,
        **{k: v for k, v in overrides.items() if k != "tasks"},
    }
    if "tasks" in overrides:
        stage1["tasks"] = overrides["tasks"]
    mt = [
        {
            "path": str(data / f"mt/software-ui.en-zh-{lang}.jsonl"),
            "task": "translation",
            "src_field": "zh",
            "tgt_field": lang,
            "tgt_lang": lang,
            "limit": args.mt_limit,
            "both_directions": False,
        }
        for lang in LANGS
    ]
    title = {
        "path": str(titles_train),
        "task": "summarization",
        "text_field": "text",
        "summary_field": "title",
        "tgt_lang": "ug",
    }
    stage2 = {
        "model": str(folder / "pretrain" / "final"),
        "out": str(folder / "finetune"),
        "train": mt + [title] * args.title_upsample,
        "max_steps": args.stage2_steps,
        "save_every": args.stage2_steps,
        **common,
    }
    return stage1, stage2


def test_sets(data: Path, titles_test: Path, limit: int, title_test: int) -> list[tuple[str, Path, dict, int]]:
    """(name, file, task spec fields, limit)."""
    sets = [
        (
            f"ntrex zh-{lang}",
            data / "mt/ntrex128.dev.jsonl",
            {"task": "translation", "src_field": "zh", "tgt_field": lang, "tgt_lang": lang},
            limit,
        )
        for lang in LANGS
    ]
    sets += [
        (
            f"cmilbench zh-{lang}",
            data / f"mt/cmilbench.zh-{lang}.jsonl",
            {"task": "translation", "src_field": "zh", "tgt_field": lang, "tgt_lang": lang},
            limit,
        )
        for lang in ("ug", "mn")
    ]
    sets.append(
        (
            "ug essay titles",
            titles_test,
            {"task": "summarization", "text_field": "text", "summary_field": "title", "tgt_lang": "ug"},
            title_test,
        )
    )
    return sets


def evaluate_variant(model_dir: Path, sets, args: AblationArgs) -> list[dict]:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from swcm.evaluation import evaluate_file, heldout_loss
    from swcm.precision import resolve_precision
    from swcm.tasks import TaskSpec

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    choice = resolve_precision(args.precision)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=choice.precision == "bf16"):
        for name, path, spec, limit in sets:
            row, predictions = evaluate_file(
                model,
                tokenizer,
                path,
                TaskSpec(**spec),
                limit=limit,
                skip_empty=True,
                max_source_length=args.max_length,
                num_beams=1,
                max_new_tokens=args.max_new_tokens,
                progress=False,
            )
            row["set"] = name
            row["heldout_loss"], _ = heldout_loss(model, tokenizer, path, TaskSpec(**spec), limit, args.max_length)
            row["samples"] = [{"reference": p["references"][0], "output": p["output"]} for p in predictions[:2]]
            rows.append(row)
    return rows


def _log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(args: AblationArgs) -> dict:
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    data = require_shared_data()
    encoder_dir = benchmark_encoder(args.encoder, prune=not args.no_prune)
    titles_train, titles_test = _splits(data, args.work, args.title_test)
    sets = test_sets(data, titles_test, args.eval_limit, args.title_test)
    started = time.perf_counter()
    results = {}
    for variant in args.variants:
        stage1, stage2 = recipes(args, encoder_dir, data, titles_train, variant)
        folder = args.work / variant
        timing = {}
        for command, recipe in (("pretrain", stage1), ("finetune", stage2)):
            timing_file = folder / f"{command}.seconds"
            if args.reuse and (Path(recipe["out"]) / "final" / "config.json").is_file() and timing_file.is_file():
                timing[command] = float(timing_file.read_text())  # trained earlier: keep that run's time
                continue
            timing[command] = _run_stage(command, recipe, folder)
            timing_file.write_text(f"{timing[command]:.1f}\n")
        t0 = time.perf_counter()
        scores = evaluate_variant(folder / "finetune" / "final", sets, args)
        timing["evaluate"] = time.perf_counter() - t0
        results[variant] = {
            "description": VARIANTS[variant][0],
            "seconds": timing,
            "scores": scores,
            "curves": {
                "pretrain": _log(folder / "pretrain" / "log.jsonl"),
                "finetune": _log(folder / "finetune" / "log.jsonl"),
            },
        }
        print(f"{variant}: " + ", ".join(f"{k} {v:.0f} s" for k, v in timing.items()), flush=True)
    report = {
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "encoder_dir": encoder_dir,
        "total_seconds": sum(sum(v["seconds"].values()) for v in results.values()),
        "wall_seconds": time.perf_counter() - started,
        "variants": results,
    }
    out = Path(args.out)
    write_json(out / "ablations.json", report)
    (out / "ablations.md").write_text(render_markdown(report), encoding="utf-8")
    plot(report, out)
    return report


def _mean(rows: list[dict], key: str, sets: list[str]) -> float:
    values = [r[key] for r in rows if r["set"] in sets]
    return sum(values) / len(values) if values else float("nan")


def render_markdown(report: dict) -> str:
    args = report["args"]
    m = report["machine"]
    variants = report["variants"]
    first = next(iter(variants.values()))
    set_names = [r["set"] for r in first["scores"]]
    mt_sets = [s for s in set_names if s.startswith(("ntrex", "cmilbench"))]
    lines = [
        "# Ablations in miniature",
        "",
        f"{m['date']} · {m['cpu']} · {m['threads']} threads · torch {m['torch']} · "
        f"total {report['total_seconds'] / 60:.1f} min for {len(variants)} variants.",
        "",
        f"Encoder `{args['encoder']}` (vocabulary pruned to ug / kk / mn / zh text). Every variant: "
        f"{args['stage1_steps']} pretraining steps (DAE + zh <-> X MT) then {args['stage2_steps']} fine-tuning "
        f"steps (zh -> X translation, {args['mt_limit']} pairs per language, + Uyghur essay titles "
        f"x{args['title_upsample']}), batch {args['batch']}, max length {args['max_length']}, lr {args['lr']} "
        f"(encoder {args.get('encoder_lr') or args['lr']}), "
        f"{args['precision']}, seed {args['seed']}. Evaluation: greedy, {args['eval_limit']} sentences per "
        f"translation set, {args['title_test']} held-out essays.",
        "",
        "## Summary (means over the translation sets; titles separately)",
        "",
    ]
    header = [
        "variant",
        "MT held-out loss",
        "MT chrF++",
        "MT ROUGE-L F",
        "MT off-target %",
        "title held-out loss",
        "title chrF++",
        "title ROUGE-L F/P/R",
        "pretrain loss (last)",
        "finetune loss (last)",
        "minutes",
    ]
    rows = []
    for name, v in variants.items():
        s = v["scores"]
        title = next(r for r in s if r["set"] == "ug essay titles")
        last = {k: (c[-1]["loss"] if c else None) for k, c in v["curves"].items()}
        rows.append(
            [
                name,
                _mean(s, "heldout_loss", mt_sets),
                _mean(s, "chrf++", mt_sets),
                _mean(s, "rougeL_f", mt_sets),
                _mean(s, "off_target", mt_sets),
                title["heldout_loss"],
                title["chrf++"],
                f"{title['rougeL_f']:.2f} / {title['rougeL_p']:.2f} / {title['rougeL_r']:.2f}",
                last["pretrain"],
                last["finetune"],
                sum(v["seconds"].values()) / 60,
            ]
        )
    lines.append(markdown_table(header, rows))
    lines += ["", "## Per test set: chrF++ | ROUGE-L F / P / R | off-target %", ""]
    header = ["variant", *set_names]
    rows = []
    for name, v in variants.items():
        by_set = {r["set"]: r for r in v["scores"]}
        rows.append(
            [name]
            + [
                f"{by_set[s]['chrf++']:.1f} \\| {by_set[s]['rougeL_f']:.1f} / {by_set[s]['rougeL_p']:.1f} / "
                f"{by_set[s]['rougeL_r']:.1f} \\| {by_set[s]['off_target']:.0f}"
                for s in set_names
            ]
        )
    lines.append(markdown_table(header, rows))
    lines += ["", "## Variants", ""]
    lines += [f"- `{name}`: {v['description']}" for name, v in variants.items()]
    lines += ["", "## Sample outputs (first two of each set, xlm-swcm and random-decoder)", ""]
    for name in ("xlm-swcm", "random-decoder"):
        if name not in variants:
            continue
        for r in variants[name]["scores"]:
            for sample in r["samples"]:
                lines.append(
                    f"- {name} · {r['set']}: `{sample['output'][:80]}` (reference: `{sample['reference'][:80]}`)"
                )
    lines += ["", "Plots: `curves.png` (training loss per variant, both stages), `scores.png`.", ""]
    return "\n".join(lines)


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["variants"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, stage in zip(axes, ("pretrain", "finetune"), strict=True):
        for name, v in variants.items():
            points = [(r["step"], r["loss"]) for r in v["curves"][stage]]
            if points:
                ax.plot(*zip(*points, strict=True), label=name)
        ax.set_title(f"{stage} (training loss)")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy per token")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)

    set_names = [r["set"] for r in next(iter(variants.values()))["scores"]]
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(1, len(variants))
    for i, (name, v) in enumerate(variants.items()):
        by_set = {r["set"]: r["chrf++"] for r in v["scores"]}
        ax.bar([j + i * width for j in range(len(set_names))], [by_set[s] for s in set_names], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(set_names))], set_names, fontsize=8)
    ax.set_ylabel("chrF++")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from swcm.cli import add_dataclass_arguments, dataclass_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_arguments(parser, AblationArgs, {"precision": ("auto", "bf16", "fp32"), "variants": tuple(VARIANTS)})
    args = dataclass_args(AblationArgs, parser.parse_args(argv))
    run(args)
    print((Path(args.out) / "ablations.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
