"""Which decoder initialisation learns fastest: budget-matched runs, several seeds, held-out loss curves.

    python benchmarks/init_study.py                                  # every variant, 3 seeds (see --help for time)
    python benchmarks/init_study.py --variants paper random --seeds 0 1 2 --steps 300

Every run fine-tunes on the same data with the same steps, batch, schedule and seed list through `swcm`'s own
training loop (`training.finetune`), starting from a model that `swcm.from_encoder` built
with the variant's options. Data: zh <-> ug / kk / mn software UI strings (../shared/data, short segments, both
directions); the held-out loss is the teacher-forced cross-entropy per target token on pairs kept out of training
(zh -> X), measured every `eval_every` steps. Writes init_study.json, init_study.md and curves.png to --out.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/init_study.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import benchmark_encoder, machine, markdown_table, mean_sd, require_shared_data, write_json
from swcm import from_encoder
from swcm.choices import DEFAULT_ENCODER, Precision
from swcm.languages import MINORITY_LANGS

LANGS = tuple(lang for lang in MINORITY_LANGS if lang != "bo")  # the software-UI strings have no Tibetan
# name -> (what it is, from_encoder options, encoder: "raw" or "adapted"); "lr" in the options overrides --lr,
# "encoder_lr" sets the encoder's own peak rate (FinetuneRecipe.encoder_lr), "gate_lr_scale" the gates' multiple of lr
# (FinetuneRecipe.gate_lr_scale, 10 unless set; the variants measured before it existed ran their gates at 1)
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "default": (
        "the paper's copies + learnable sublayer gates starting at 0.02 (near-identity start), gates at lr",
        {"gate_lr_scale": 1.0},
        "raw",
    ),
    "default-gates10-enc1e-4": (
        "swcm's default: copies + gates from 0.02 learning at 10x lr, the encoder and embeddings at lr 1e-4",
        {"encoder_lr": 1e-4},
        "raw",
    ),
    "paper": (
        "the paper's init: custom layer i copies encoder layer i, no gates, head = word embeddings",
        {"decoder_gate_init": None},
        "raw",
    ),
    "default-enc1e-4": (
        "default, with the pretrained encoder and embeddings at lr 1e-4 (the decoder at --lr), gates at lr",
        {"encoder_lr": 1e-4, "gate_lr_scale": 1.0},
        "raw",
    ),
    "default-lr3e-4-enc1e-4": (
        "default at lr 3e-4, with the pretrained encoder and embeddings at lr 1e-4, gates at lr",
        {"lr": 3e-4, "encoder_lr": 1e-4, "gate_lr_scale": 1.0},
        "raw",
    ),
    "paper-enc1e-4": (
        "the paper's init, with the pretrained encoder and embeddings at lr 1e-4 (the decoder at --lr)",
        {"decoder_gate_init": None, "encoder_lr": 1e-4},
        "raw",
    ),
    "random-enc1e-4": (
        "random decoder, with the pretrained encoder and embeddings at lr 1e-4 (the decoder at --lr)",
        {"decoder_init": "random", "encoder_lr": 1e-4},
        "raw",
    ),
    "random-lr3e-4-enc1e-4": (
        "random decoder at lr 3e-4, with the pretrained encoder and embeddings at lr 1e-4",
        {"decoder_init": "random", "lr": 3e-4, "encoder_lr": 1e-4},
        "raw",
    ),
    "random": ("no weight sharing: the same decoder, randomly initialised", {"decoder_init": "random"}, "raw"),
    "random-lr3e-4": (
        "random decoder at lr 3e-4, its better learning rate in a short sweep (the others learn faster at 1e-3)",
        {"decoder_init": "random", "lr": 3e-4},
        "raw",
    ),
    "head-random": (
        "paper, LM head random instead of the word embeddings",
        {"lm_head_init": "random", "decoder_gate_init": None},
        "raw",
    ),
    "gate-0.5": (
        "the copies + learnable sublayer gates starting at 0.5, gates at lr",
        {"decoder_gate_init": 0.5, "gate_lr_scale": 1.0},
        "raw",
    ),
    "gate-0": (
        "the copies + learnable sublayer gates starting at 0 (identity decoder), gates at lr",
        {"decoder_gate_init": 0.0, "gate_lr_scale": 1.0},
        "raw",
    ),
    "lower-layers": (
        "custom layers copy encoder layers 0..8, never the collapsing top three (i -> min(i, 8))",
        {"decoder_source_layers": [min(i, 8) for i in range(12)], "decoder_gate_init": None},
        "raw",
    ),
    "adapted": (
        "paper's init on the MLM-adapted encoder (swcm adapt), head = word embeddings",
        {"decoder_gate_init": None},
        "adapted",
    ),
    "adapted-mlm-head": (
        "adapted encoder, LM head = its trained MLM head (transform + embeddings)",
        {"lm_head_init": "mlm-head", "decoder_gate_init": None},
        "adapted",
    ),
    "adapted-random": ("random decoder on the adapted encoder", {"decoder_init": "random"}, "adapted"),
}


@dataclass
class StudyArgs:
    """Arguments of benchmarks/init_study.py."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """Variants to run (see VARIANTS)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds; each variant runs once per seed (initialisation of new weights, data order, dropout)."""
    steps: int = 150
    """Optimizer steps per run (the budget every variant gets)."""
    batch: int = 16
    """Sequences per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, 10% warm-up, linear decay)."""
    max_length: int = 32
    """Longest source / target in tokens."""
    eval_every: int = 25
    """Held-out loss every N steps."""
    heldout: int = 100
    """Pairs per language kept out of training and scored."""
    train_pairs: int = 4000
    """Training pairs per language (both directions are trained)."""
    adapt_steps: int = 150
    """Continued-MLM steps for the adapted encoder (built once, cached in --work)."""
    encoder: str = DEFAULT_ENCODER
    """Encoder (packaged:NAME, local directory or hub id); its vocabulary is pruned to the benchmark corpus."""
    no_prune: bool = False
    """Use the encoder's vocabulary as it is."""
    precision: Precision = "auto"
    """auto, bf16 or fp32."""
    out: Path = Path("benchmarks/results/init_study")
    """Results folder."""
    work: Path = Path("runs/init_study")
    """Models, logs, the split files and the adapted encoder."""
    reuse: bool = False
    """Keep runs that already finished (their log in --work) instead of training them again."""


def split_files(args: StudyArgs, data: Path) -> tuple[list[Path], dict[str, Path]]:
    """Train / held-out jsonl per language ({"zh", X}), a fixed shuffle of the software UI pairs."""
    folder = args.work / "data"
    folder.mkdir(parents=True, exist_ok=True)
    train, held = [], {}
    for lang in LANGS:
        rows = []
        for line in (data / f"mt/software-ui.en-zh-{lang}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("zh", "").strip() and row.get(lang, "").strip():
                rows.append({"zh": row["zh"], lang: row[lang]})
        random.Random(lang).shuffle(rows)
        for name, part in (
            ("held", rows[: args.heldout]),
            ("train", rows[args.heldout : args.heldout + args.train_pairs]),
        ):
            path = folder / f"zh-{lang}.{name}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
            (train.append(path) if name == "train" else held.__setitem__(lang, path))
    return train, held


def adapted_encoder(args: StudyArgs, encoder: str, data: Path) -> str:
    """The pruned encoder after `swcm adapt` on the monolingual ug / kk / mn text plus the Chinese UI strings."""
    from swcm.adapt import AdaptRecipe, adapt

    out = args.work / f"adapt-{args.adapt_steps}"
    if (out / "final" / "config.json").is_file():
        return str(out / "final")
    zh = args.work / "data" / "zh-ui.txt"
    texts = {json.loads(line)["zh"] for f in sorted((args.work / "data").glob("*.train.jsonl")) for line in f.open()}
    zh.write_text("\n".join(sorted(texts)) + "\n", encoding="utf-8")
    sources = [
        {"path": str(data / "mono/ug.essays.jsonl"), "task": "dae", "lang": "ug"},
        {"path": str(data / "mono/kk.kazqad-contexts.jsonl"), "task": "dae", "lang": "kk"},
        {"path": str(data / "mono/mn.montsame-news.jsonl"), "task": "dae", "lang": "mn"},
        {"path": str(zh), "task": "dae", "lang": "zh"},
    ]
    recipe = AdaptRecipe(
        model=encoder,
        sources=sources,
        out=str(out),
        max_steps=args.adapt_steps,
        global_batch=16,
        micro_batch=16,
        max_length=64,
        lr=2e-4,
        mixed_precision=args.precision,
        num_workers=0,
        save_every=args.adapt_steps,
        keep_checkpoints=1,
        heldout_lines=min(30, len(texts) // 2),  # (the smallest source, zh, at the test suite's tiny size)
    )
    summary = adapt(recipe, overwrite=True)  # no finished adaptation here: start again
    print(f"adapted encoder: held-out MLM {json.dumps(summary.get('heldout'))}", flush=True)
    return str(out / "final")


def run_variant(
    name: str, seed: int, args: StudyArgs, encoders: dict[str, str], train, held
) -> tuple[list[dict], bool]:
    """The run's log rows (step 0: the start diagnostics), and whether it was trained now (False: reused)."""
    import torch

    from swcm.diagnostics import decoder_start
    from swcm.evaluation import heldout_evaluator
    from swcm.recipe import FinetuneRecipe
    from swcm.specs import HeldoutFile
    from swcm.training import finetune

    _, options, encoder_kind = VARIANTS[name]
    options = dict(options)
    lr = options.pop("lr", args.lr)
    encoder_lr = options.pop("encoder_lr", None)
    rates = {"gate_lr_scale": options.pop("gate_lr_scale")} if "gate_lr_scale" in options else {}
    run = args.work / f"{name}-seed{seed}"
    log = run / "train" / "log.jsonl"
    if args.reuse and (run / "train" / "final").is_dir() and log.is_file():
        return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line], False
    torch.manual_seed(seed)
    model, tokenizer = from_encoder(encoders[encoder_kind], lang_tags=(*LANGS, "zh"), return_tokenizer=True, **options)
    start = decoder_start(model, tokenizer).as_dict()
    model.save_pretrained(run / "start")
    tokenizer.save_pretrained(run / "start")
    files = [
        {
            "path": str(p),
            "task": "translation",
            "src_field": "zh",
            "tgt_field": p.name.split(".")[0][3:],
            "tgt_lang": p.name.split(".")[0][3:],
            "src_lang": "zh",
        }
        for p in train
    ]
    recipe = FinetuneRecipe(
        model=str(run / "start"),
        train=files,
        out=str(run / "train"),
        max_steps=args.steps,
        global_batch=args.batch,
        micro_batch=args.batch,
        max_length=args.max_length,
        lr=lr,
        encoder_lr=encoder_lr,
        **rates,
        warmup_ratio=0.1,
        mixed_precision=args.precision,
        seed=seed,
        num_workers=0,
        save_every=args.steps,
        keep_checkpoints=1,
        log_every=args.eval_every,
    )
    shutil.rmtree(run / "train", ignore_errors=True)
    held_files = [
        HeldoutFile(task="translation", tgt_lang=k, src_field="zh", tgt_field=k, path=str(v), name=k, limit=None)
        for k, v in held.items()
    ]
    finetune(recipe, evaluate=heldout_evaluator(held_files, args.max_length), overwrite=True)  # not reused: start again
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
    rows.insert(0, {"step": 0, "heldout": start["probe_loss"], "decoder_start": start})
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows, True


def summarise(results: dict[str, dict[int, list[dict]]]) -> tuple[list[list], list[int]]:
    steps = sorted({r["step"] for runs in results.values() for rows in runs.values() for r in rows if r["step"] > 0})
    table = []
    for name, runs in results.items():
        cells = [name]
        for step in steps:
            values = [r["heldout"] for rows in runs.values() for r in rows if r["step"] == step and "heldout" in r]
            cells.append(_mean_sd(values))
        starts = [rows[0]["decoder_start"] for rows in runs.values()]
        cells += [
            f"{statistics.mean(s['top_state_cosine'] for s in starts):.3f}",
            f"{statistics.mean(s['entropy'] for s in starts):.2f}",
        ]
        table.append(cells)
    return table, steps


def _mean_sd(values: list[float]) -> str:
    return mean_sd(values, 3)


def plot(results: dict[str, dict[int, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, runs in results.items():
        steps = sorted({r["step"] for rows in runs.values() for r in rows if r["step"] > 0 and "heldout" in r})
        curves = np.array(
            [[next(r["heldout"] for r in rows if r["step"] == s) for s in steps] for rows in runs.values()]
        )
        mean, sd = curves.mean(0), curves.std(0)
        ax.plot(steps, mean, marker="o", label=f"{name} (n={len(curves)})")
        ax.fill_between(steps, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("held-out cross-entropy per target token (zh -> ug / kk / mn)")
    ax.set_title("Decoder initialisation: held-out loss, mean ± sd over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: StudyArgs) -> dict:
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    data = require_shared_data()
    started = time.time()
    encoder = benchmark_encoder(args.encoder, prune=not args.no_prune)
    train, held = split_files(args, data)
    encoders = {"raw": encoder}
    if any(VARIANTS[v][2] == "adapted" for v in args.variants):
        encoders["adapted"] = adapted_encoder(args, encoder, data)
    results: dict[str, dict[int, list[dict]]] = {}
    seconds: dict[str, float] = {}
    trained = reused = 0
    for seed in args.seeds:  # seeds outermost: a cut-short run still compares every variant
        for name in args.variants:
            began = time.time()
            print(f"== {name}, seed {seed}", flush=True)
            rows, fresh = run_variant(name, seed, args, encoders, train, held)
            results.setdefault(name, {})[seed] = rows
            trained, reused = trained + fresh, reused + (not fresh)
            if fresh:
                seconds[name] = seconds.get(name, 0.0) + time.time() - began
    table, steps = summarise(results)
    args.out.mkdir(parents=True, exist_ok=True)
    header = ["variant", *[f"held-out @ {s}" for s in steps], "start cosine", "start entropy"]
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()}
    payload = {
        "settings": settings,
        "machine": machine(),
        "variants": {name: VARIANTS[name][0] for name in args.variants},
        "seconds_per_variant": seconds,
        "total_seconds": time.time() - started,
        "runs_trained": trained,
        "runs_reused": reused,
        "results": {name: {str(seed): rows for seed, rows in runs.items()} for name, runs in results.items()},
    }
    write_json(args.out / "init_study.json", payload)
    text = [
        "# Decoder initialisation study",
        "",
        f"{len(args.seeds)} seeds x {args.steps} steps x {args.batch} sequences, lr {args.lr} unless the variant "
        f"sets its own, zh <-> ug / kk / mn software UI strings ({args.train_pairs} pairs per language); held-out: "
        f"{args.heldout} pairs per language, teacher-forced loss per target token, mean ± sd over seeds. "
        f"{payload['machine']['cpu']}: {trained} runs trained in {payload['total_seconds'] / 60:.0f} min"
        + (f", {reused} reused from {args.work} (--reuse)." if reused else "."),
        "",
        markdown_table(header, table),
        "",
        *[f"- **{name}**: {VARIANTS[name][0]}" for name in args.variants],
        "",
    ]
    (args.out / "init_study.md").write_text("\n".join(text), encoding="utf-8")
    plot(results, args.out / "curves.png")
    print("\n".join(text))
    return payload


def main(argv: list[str] | None = None) -> dict:
    from swcm.cli import parse_dataclass

    return run(parse_dataclass(StudyArgs, argv, __doc__))


if __name__ == "__main__":
    main()
