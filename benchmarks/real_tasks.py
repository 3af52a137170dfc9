"""The paper's three tasks in miniature on real text: shared against random decoder, over seeds, with learning curves.

    python benchmarks/real_tasks.py                                  # shared and random x seeds 0 1 (~50 min a run)
    python benchmarks/real_tasks.py --only encoder                   # just runs/real-tasks/encoder (the recipes' model)
    python benchmarks/real_tasks.py --size tiny --work /tmp/rt --out /tmp/rt/results   # minutes (the test suite's)

Every stage is a `swcm` command on a recipe of recipes/ (real-pretrain-cpu, real-translation-cpu,
real-headline-cpu, real-mrc-cpu), with only the model, out, seed and decoder_init changed (and, at --size tiny,
the budget); the recipe that ran is kept beside each stage (WORK/VARIANT-sN/STAGE.yaml):
1. the encoder: the packaged e5-small cut to 6 layers, pruned to the train side of every training file, with
   4,000 Tibetan sentencepiece pieces added (its vocabulary has none), once for every run;
2. pretraining: denoising on mono/* plus zh <-> X translation of UI strings and OpenPecha (train sides);
3. fine-tuning from it, one model per task: translation, headline generation (ug essays), reading
   comprehension (KazQAD);
4. `swcm evaluate` of each task on its test side, and on NTREX (zh -> X) and CMiLBench (bo / ug / mn headline and
   QA) as out-of-domain / cross-lingual evaluation only (never trained on).

A run interrupted anywhere picks up where it stopped: a finished stage is kept (its done.json), a stopped training
resumes from its last checkpoint, and the results (JSON, markdown, curves PNG in --out) are rewritten after every
stage. Reported per task x language: ROUGE-L F / P / R (the paper's metric, swcm's script tokenizer), chrF++, EM / F1
(QA), off-target %, empty %, distinct %, as mean ± sd over seeds; the held-out loss curves of every stage; sample
outputs; the minutes of every stage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

if __package__ in (None, ""):  # `python benchmarks/real_tasks.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    REPOSITORY,
    SHARED_DATA,
    machine,
    require_shared_data,
    write_json,
    write_report,
)
from benchmarks.real_tasks_report import collect, done, plot, render, summarise
from swcm.choices import DEFAULT_ENCODER

RECIPES = REPOSITORY / "recipes"
RECIPE_DATA = "../shared/data"
"""How the recipes name the data folder (from the repository root); replaced by SHARED_DATA when they run."""
VARIANTS = {
    "shared": ("XLM-SWCM: custom decoder layers copied from the encoder's (swcm's default, gated)", "shared"),
    "random": ("the same decoder randomly initialised (the paper's -WS / Cino-Transformer)", "random"),
}
STAGES = {"translation": "real-translation-cpu.yaml", "headline": "real-headline-cpu.yaml", "mrc": "real-mrc-cpu.yaml"}
"""Fine-tuning stage -> its recipe (pretraining: real-pretrain-cpu.yaml)."""

# (name, the stage whose model is evaluated, swcm evaluate's arguments (data under the data folder), what it is)
UI = "mt/software-ui.en-zh-{lang}.jsonl"
EVALUATIONS: list[tuple[str, str, list[str], str]] = [
    ("ui", "translation", ["--task", "translation", "--data", UI, "--tgt_langs", "[ug,kk,mn]", "--split", "test"],
     "held-out UI strings, zh -> X"),
    ("openpecha", "translation",
     ["--task", "translation", "--data", "mt/openpecha.bo-zh.jsonl", "--tgt_langs", "[bo]", "--split", "test"],
     "held-out OpenPecha, zh -> bo"),
    ("ntrex", "translation", ["--task", "translation", "--data", "mt/ntrex128.dev.jsonl", "--tgt_langs",
     "[ug,kk,mn,bo]"], "NTREX-128 dev news, zh -> X (out of domain, never trained on)"),
    ("essays", "headline", ["--task", "summarization", "--data", "mono/ug.essays.jsonl", "--text_field", "text",
     "--summary_field", "title", "--text_skip_lines", "1", "--tgt_langs", "[ug]", "--split", "test",
     "--test_share", "0.2", "--split_field", "title"], "held-out Uyghur essays, title <- text"),
    ("cmilbench-headline", "headline", ["--task", "summarization", "--data", "qa/cmilbench.{lang}.jsonl",
     "--text_field", "context", "--summary_field", "title", "--tgt_langs", "[bo,ug,mn]"],
     "CMiLBench title <- context (transfer from ug essays; evaluation only)"),
    ("kazqad", "mrc", ["--task", "mrc", "--data", "qa/kazqad.validation.jsonl", "--answer_field", "answers",
     "--tgt_langs", "[kk]", "--split", "test"], "held-out KazQAD passages, answer <- question + passage"),
    ("cmilbench-qa", "mrc", ["--task", "mrc", "--data", "qa/cmilbench.{lang}.jsonl", "--tgt_langs", "[bo,ug,mn]"],
     "CMiLBench QA (transfer from Kazakh KazQAD; evaluation only)"),
]  # fmt: skip
MAX_NEW_TOKENS = {"translation": 64, "headline": 32, "mrc": 32}


@dataclass(frozen=True)
class Size:
    """A budget: what --size changes in the recipes and the evaluations."""

    layers: int
    pieces: int  # sentencepiece size trained for a language the encoder cannot spell (Tibetan)
    corpus_rows: int | None  # rows per file the encoder's vocabulary is pruned to (None: all of the train side)
    steps: dict[str, int | None]  # stage -> max_steps (None: the recipe's)
    batch: int | None  # global and micro batch (None: the recipe's)
    heldout_every: dict[str, int | None]
    eval_limit: int  # examples per evaluated file and language
    max_new_tokens: int | None  # None: MAX_NEW_TOKENS of the stage


SIZES = {
    "full": Size(
        6, 4000, None, dict.fromkeys(["pretrain", *STAGES]), None, dict.fromkeys(["pretrain", *STAGES]), 200, None
    ),
    "tiny": Size(
        2, 400, 300, dict.fromkeys(["pretrain", *STAGES], 2), 4, dict.fromkeys(["pretrain", *STAGES], 2), 3, 6
    ),
}


@dataclass
class RealTasksArgs:
    """Arguments of benchmarks/real_tasks.py."""

    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    """Decoder starts to compare (shared, random)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """Seeds (initialisation, data order, noise) of every stage."""
    size: Literal["full", "tiny"] = "full"
    """full: the recipes' budgets (~50 min a run on 2 CPU cores); tiny: 2 steps a stage, a 2-layer encoder."""
    only: Literal["all", "encoder"] = "all"
    """encoder: only prepare WORK/encoder (the model the recipes name), then stop."""
    encoder: str = DEFAULT_ENCODER
    """The pretrained encoder every run starts from."""
    work: Path = Path("runs/real-tasks")
    """Runs: WORK/encoder, WORK/VARIANT-sN/{pretrain,translation,headline,mrc,eval-*}."""
    out: Path = Path("benchmarks/results/real_tasks")
    """Results: real_tasks.json, real_tasks.md, curves.png."""
    keep_models: bool = True
    """Keep each stage's final model (about 0.3 GB a stage); checkpoints go when a stage is done."""


# --------------------------------------------------------------------------------------------------- encoder


def training_corpus(folder: Path, rows: int | None) -> tuple[dict[str, dict[str, Path]], list[Path]]:
    """The train side of every file the recipes train on, written as {lang: text} jsonl per language (and zh), so
    that nothing of a test side shapes the vocabulary: ({lang: {"train": file}}, [zh file])."""
    import yaml

    from swcm.data import LocalSource
    from swcm.specs import SourceSpec, TrainFile
    from swcm.tasks import read_task_file

    texts: dict[str, list[str]] = {}
    pretrain = yaml.safe_load((RECIPES / "real-pretrain-cpu.yaml").read_text(encoding="utf-8"))
    for item in pretrain["sources"]:
        source = LocalSource(SourceSpec(**{**item, "path": data_path(item["path"])}), skip_bad=False, cache_dir=None)
        langs = [source.spec.lang] if source.spec.task == "dae" else source.spec.langs
        for f, index in enumerate(source.indexes):  # the train side, as pretraining reads it
            for line in range(min(len(index.offsets), rows or len(index.offsets))):
                for lang, value in zip(langs, source.read(f, line)[0], strict=True):
                    texts.setdefault(lang, []).append(value)
    for recipe in STAGES.values():
        for item in yaml.safe_load((RECIPES / recipe).read_text(encoding="utf-8"))["train"]:
            spec = TrainFile(**{**item, "path": data_path(item["path"])})
            for example in read_task_file(spec.path, spec.spec(), rows, skip_empty=True).examples:
                texts.setdefault(spec.tgt_lang, []).extend(example.references)
                if spec.task == "mrc":
                    texts[spec.tgt_lang] += [example.question, example.context]
                elif spec.task == "translation":
                    texts.setdefault(spec.src_field, []).append(example.source)
                else:
                    texts[spec.tgt_lang].append(example.source)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for lang, items in sorted(texts.items()):
        path = folder / f"{lang}.jsonl"
        path.write_text("".join(json.dumps({lang: t}, ensure_ascii=False) + "\n" for t in items), encoding="utf-8")
        files[lang] = path
    zh = files.pop("zh")
    return {lang: {"train": path} for lang, path in files.items()}, [zh]


def prepare_encoder(args: RealTasksArgs, size: Size) -> Path:
    """WORK/encoder (reused while its inputs are unchanged: swcm.quickstart.prepare_encoder's stamp)."""
    from swcm.quickstart import prepare_encoder as cut_prune_extend

    files, extra = training_corpus(args.work / "corpus", size.corpus_rows)
    return cut_prune_extend(args.encoder, files, extra, args.work / "encoder", size.layers, size.pieces)


# ---------------------------------------------------------------------------------------------------- stages


def data_path(path: str) -> str:
    return str(SHARED_DATA / path[len(RECIPE_DATA) + 1 :]) if path.startswith(RECIPE_DATA + "/") else path


def stage_recipe(name: str, model: Path, out: Path, variant: str, seed: int, size: Size) -> dict:
    """The recipe file of a stage as it runs: the data where it is, this run's model, out, seed, decoder start, and
    the size's budget."""
    import yaml

    recipe = yaml.safe_load((RECIPES / ("real-pretrain-cpu.yaml" if name == "pretrain" else STAGES[name])).read_text())
    for key in ("sources", "train", "heldout"):
        recipe[key] = [{**item, "path": data_path(item["path"])} for item in recipe.get(key, [])] or recipe.get(key)
    recipe.update(model=str(model), out=str(out), seed=seed)
    if name == "pretrain":
        recipe["decoder_init"] = VARIANTS[variant][1]
    if size.steps[name] is not None:
        recipe["max_steps"] = recipe["save_every"] = size.steps[name]
    if size.heldout_every[name] is not None:
        recipe["heldout_every"] = recipe["log_every"] = size.heldout_every[name]
    if size.batch is not None:
        recipe["global_batch"] = recipe["micro_batch"] = size.batch
    return {k: v for k, v in recipe.items() if v is not None}


def swcm(*arguments: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from swcm.cli import main; sys.exit(main())", *arguments]


def run_stage(command: list[str], folder: Path, what: str) -> dict:
    """Run one swcm command whose results go to `folder` (unless done.json says it finished); its minutes."""
    record = done(folder)
    if record is not None:
        return record
    print(f"== {what}", flush=True)
    started = time.time()
    result = subprocess.run(command, cwd=REPOSITORY)
    if result.returncode:
        raise SystemExit(f"{what}: `{' '.join(command[3:])}` failed (exit {result.returncode}); run again to resume")
    record = {"minutes": (time.time() - started) / 60, "command": command[3:], "finished": time.strftime("%F %T")}
    write_json(folder / "done.json", record)
    return record


def train_stage(name: str, model: Path, run: Path, variant: str, seed: int, size: Size, keep: bool) -> dict:
    """A pretraining or fine-tuning stage: fresh, or resumed from its last checkpoint."""
    import yaml

    out = run / name
    if done(out) is not None:
        return done(out)
    recipe = stage_recipe(name, model, out, variant, seed, size)
    config = run / f"{name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False), encoding="utf-8")
    command = swcm("pretrain" if name == "pretrain" else "finetune", "--config", str(config))
    if any((out / "checkpoints").glob("step-*")):
        command += ["--resume", "true"]
    elif (out / "recipe.json").exists():
        command += ["--overwrite", "true"]  # stopped before its first checkpoint: only swcm's own files go
    record = run_stage(command, out, f"{run.name}: {name}")
    if not keep:
        shutil.rmtree(out / "final", ignore_errors=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return record


def eval_stage(name: str, stage: str, arguments: list[str], run: Path, size: Size) -> dict:
    task_args = [data_path(f"{RECIPE_DATA}/{a}") if a.endswith(".jsonl") else a for a in arguments]
    command = swcm(
        "evaluate",
        "--model", str(run / stage / "final"),
        *task_args,
        "--limit", str(size.eval_limit),
        "--num_beams", "1",
        "--max_new_tokens", str(size.max_new_tokens or MAX_NEW_TOKENS[stage]),
        "--no_repeat_ngram_size", "3",
        "--skip_empty", "true",
        "--batch_size", "32",
        "--out", str(run / f"eval-{name}"),
    )  # fmt: skip
    return run_stage(command, run / f"eval-{name}", f"{run.name}: evaluate {name}")


def run_one(args: RealTasksArgs, encoder: Path, variant: str, seed: int, size: Size, report) -> None:
    run = args.work / f"{variant}-s{seed}"
    train_stage("pretrain", encoder, run, variant, seed, size, args.keep_models)
    report()
    for stage in STAGES:
        train_stage(stage, run / "pretrain" / "final", run, variant, seed, size, args.keep_models)
        report()
        for name, of_stage, arguments, _ in EVALUATIONS:
            if of_stage == stage:
                eval_stage(name, stage, arguments, run, size)
                report()


def write_results(args: RealTasksArgs, started: float) -> dict:
    runs = collect(args.work, args.variants, args.seeds, list(STAGES), [name for name, _, _, _ in EVALUATIONS])
    result = {
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "seconds_this_call": time.time() - started,
        "runs": runs,
        "summary": summarise(runs),
    }
    out = Path(args.out)
    text = render(
        result, [(n, what) for n, _, _, what in EVALUATIONS], list(STAGES), {v: VARIANTS[v][0] for v in VARIANTS}
    )
    write_report(out, "real_tasks", result, text)
    plot(result, out)
    return result


def run(args: RealTasksArgs) -> dict:
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    require_shared_data()
    size = SIZES[args.size]
    started = time.time()
    encoder = prepare_encoder(args, size)
    if args.only == "encoder":
        print(f"encoder ready: {encoder}")
        return {}
    for seed in args.seeds:  # seed by seed: after two runs, one paired comparison is complete
        for variant in args.variants:
            run_one(args, encoder, variant, seed, size, lambda: write_results(args, started))
    return write_results(args, started)


def main(argv: list[str] | None = None) -> int:
    from swcm.cli import parse_dataclass

    args = parse_dataclass(RealTasksArgs, argv, __doc__)
    args.work, args.out = args.work.resolve(), args.out.resolve()
    run(args)
    if args.only == "all":
        print((Path(args.out) / "real_tasks.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
