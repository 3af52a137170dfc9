"""The real-text benchmark (benchmarks/real_tasks.py) and its recipes: nothing of a test side is trained on, and the
whole pipeline runs end to end at its tiny size and picks up finished stages when run again."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from benchmarks.real_tasks import EVALUATIONS

from .conftest import SHARED_DATA

REPOSITORY = Path(__file__).resolve().parents[1]
RECIPES = REPOSITORY / "recipes"
REAL_RECIPES = ["real-pretrain-cpu.yaml", "real-translation-cpu.yaml", "real-headline-cpu.yaml", "real-mrc-cpu.yaml"]
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
EVALUATION_ONLY = ("ntrex128", "cmilbench")


def _real(path: str) -> str:
    return str(SHARED_DATA / path.removeprefix("../shared/data/"))


def _recipes() -> dict[str, dict]:
    return {name: yaml.safe_load((RECIPES / name).read_text(encoding="utf-8")) for name in REAL_RECIPES}


def test_the_real_recipes_load_and_train_only_on_train_sides():
    from swcm.recipe import FinetuneRecipe, PretrainRecipe

    recipes = _recipes()
    pretrain = PretrainRecipe(**recipes["real-pretrain-cpu.yaml"])
    finetunes = [FinetuneRecipe(**recipes[name]) for name in REAL_RECIPES[1:]]
    trained = [(s.path, s.split, s.test_share) for s in pretrain.sources]
    trained += [(f.path, f.split, f.test_share) for r in finetunes for f in r.train]
    held = {(h.path, h.test_share) for r in [pretrain, *finetunes] for h in r.heldout}
    assert all(h.split == "test" for r in [pretrain, *finetunes] for h in r.heldout)
    assert not [path for path, _, _ in trained if any(name in path for name in EVALUATION_ONLY)]
    # a file that is tested on is trained on only on the train side of the same split
    for path, share in held:
        sides = [(split, s) for p, split, s in trained if p == path]
        assert sides and all(side == ("train", share) for side in sides), (path, sides)
    assert all(r.model == "runs/real-tasks/pretrain/final" for r in finetunes)
    assert pretrain.model == "runs/real-tasks/encoder" and pretrain.decoder_init == "shared"


@needs_data
def test_no_test_input_of_the_real_tasks_is_in_their_training_text():
    """Every text pretraining and fine-tuning read (their train sides) against every test input the benchmark
    scores (the held-out files of the recipes and its --split test evaluations): none is trained on, not even as
    denoising text (KazQAD passages are also mono/kk, the essays are also mono/ug)."""
    from swcm.data import LocalSource
    from swcm.specs import SourceSpec, TaskSpec, TrainFile
    from swcm.tasks import read_task_file

    recipes = _recipes()
    training: set[str] = set()
    for item in recipes["real-pretrain-cpu.yaml"]["sources"]:
        source = LocalSource(SourceSpec(**{**item, "path": _real(item["path"])}), skip_bad=False, cache_dir=None)
        for f, index in enumerate(source.indexes):
            training.update(v.strip() for line in range(len(index.offsets)) for v in source.read(f, line)[0])
    for name in REAL_RECIPES[1:]:
        for item in recipes[name]["train"]:
            spec = TrainFile(**{**item, "path": _real(item["path"])})
            for e in read_task_file(spec.path, spec.spec(), skip_empty=True).examples:
                training.update(t.strip() for t in [e.source, e.context or "", *e.references])
    tests = [(h["path"], {k: v for k, v in h.items() if k not in ("path", "name", "limit")}) for r in recipes.values()
             for h in r.get("heldout", [])]  # fmt: skip
    for _, _, arguments, _ in EVALUATIONS:
        options = dict(zip(arguments[::2], arguments[1::2], strict=True))
        if options.get("--split") != "test":
            continue
        for lang in options["--tgt_langs"].strip("[]").split(","):
            fields = {k[2:]: v for k, v in options.items() if k.endswith(("_field", "skip_lines"))}
            spec = {"task": options["--task"], "tgt_lang": lang, "split": "test", **fields}
            spec["test_share"] = float(options.get("--test_share", 0.1))
            if spec["task"] == "translation":
                spec.setdefault("src_field", "zh")
                spec.setdefault("tgt_field", lang)
            tests.append(("../shared/data/" + options["--data"].replace("{lang}", lang), spec))
    long_texts = [t for t in training if len(t) > 200]
    checked, quoted = 0, set()
    for path, spec in tests:
        for e in read_task_file(_real(path), TaskSpec(**spec), skip_empty=True).examples:
            key = (e.context if spec["task"] == "mrc" else e.source).strip()
            assert key not in training, f"{path}: test input trained on: {key[:80]}"
            if spec["task"] != "translation":  # nor a passage or essay inside a denoised document
                assert not any(key[:500] in t for t in long_texts), f"{path}: test text inside training text"
                if spec["task"] == "summarization":  # (short answers like a year are everywhere)
                    quoted |= {r for r in e.references if any(r in t for t in long_texts)}
            checked += 1
    assert checked > 1000
    # What the data cannot avoid: three test essays' titles are quoted inside other essays (a list of a book's
    # chapters, a reply to critics), which are on the training side; their texts are not.
    assert quoted == QUOTED_TITLES


QUOTED_TITLES = {
    "تەنقىدنى ئەرەب ئۆلىما قىلىشى كېرەكمىدى؟",
    "ۋەتەن ئەھدىمىز ۋاپا مىزانىدا",
    "يەككە ۋىجدان سادادا، بەغەرەز كوللېكتىپ سامادا",
}


@needs_data
def test_the_benchmark_runs_end_to_end_at_its_tiny_size_and_resumes(e5_dir, tmp_path):
    work, out = tmp_path / "work", tmp_path / "results"
    command = [sys.executable, "benchmarks/real_tasks.py", "--size", "tiny", "--seeds", "[0]", "--encoder", str(e5_dir)]
    command += ["--work", str(work), "--out", str(out)]
    first = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    result = json.loads((out / "real_tasks.json").read_text(encoding="utf-8"))
    assert sorted(result["runs"]) == ["random-s0", "shared-s0"]
    cells = result["summary"]["cells"]
    # every evaluation x language, for both variants, with the paper's metric and the failure counts
    expected = {"ui:ug", "ui:kk", "ui:mn", "openpecha:bo", "essays:ug", "kazqad:kk"}
    expected |= {f"ntrex:{x}" for x in ("ug", "kk", "mn", "bo")}
    expected |= {f"cmilbench-{t}:{x}" for t in ("headline", "qa") for x in ("bo", "ug", "mn")}
    assert set(cells) == expected
    for cell, by_variant in cells.items():
        assert set(by_variant) == {"shared", "random"}, cell
        for values in by_variant.values():
            assert values["n"] == [3] and {"rougeL_f", "rougeL_p", "rougeL_r", "chrf++", "empty", "distinct"} <= set(
                values
            )
    assert "f1" in cells["kazqad:kk"]["shared"] and "f1" not in cells["ui:ug"]["shared"]
    # learning curves: the held-out loss of every stage's held-out files, at its last step
    curves = result["summary"]["curves"]
    assert {"pretrain:mt_bo", "pretrain:mrc_kk", "translation:mt_ug", "headline:headline_ug", "mrc:mrc_kk"} <= set(
        curves
    )
    assert all(set(points["shared"]) == {"2"} for points in curves.values())  # (JSON keys)
    # the recipe each stage ran is kept, with only this run's model, out, seed, start and budget changed
    ran = yaml.safe_load((work / "random-s0" / "pretrain.yaml").read_text(encoding="utf-8"))
    assert ran["decoder_init"] == "random" and ran["max_steps"] == 2 and ran["model"] == str(work / "encoder")
    assert ran["sources"][0]["path"] == str(SHARED_DATA / "mono/bo.esukhia-nanhai.jsonl")
    assert (out / "curves.png").stat().st_size > 1000 and "## kazqad" in (out / "real_tasks.md").read_text()
    # run again: every stage is done, nothing is trained or evaluated again
    done = (work / "shared-s0" / "mrc" / "done.json").read_text()
    second = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "== " not in second.stdout and (work / "shared-s0" / "mrc" / "done.json").read_text() == done
    # a stage whose done.json is gone runs again (an interrupted stage): only that one
    (work / "shared-s0" / "eval-kazqad" / "done.json").unlink()
    third = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert [line for line in third.stdout.splitlines() if line.startswith("== ")] == ["== shared-s0: evaluate kazqad"]
