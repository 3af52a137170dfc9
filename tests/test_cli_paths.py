"""Every path argument of every command, given each kind of path a user can hand over (a file, a folder holding a
user's file, a missing path, a symlink loop, a used run folder): the command ends with 0 or one line and exit 2 —
never a traceback —, no file it did not write is deleted or changed, and a refused command leaves no out folder
behind (issue: bad input, round 2)."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from swcm.cli import main

KINDS = ["file", "folder", "missing", "loop", "run"]
USER_TEXT = "a user's own words\n"


def make_path(kind: str, root: Path) -> Path:
    """A path of the given kind under root, with the user's files that must survive whatever the command does."""
    if kind == "file":
        path = root / "given.txt"
        path.write_text(USER_TEXT, encoding="utf-8")
    elif kind == "folder":
        path = root / "given"
        (path / "sub").mkdir(parents=True)
        (path / "thesis.txt").write_text(USER_TEXT, encoding="utf-8")
        (path / "sub" / "notes.txt").write_text(USER_TEXT, encoding="utf-8")
    elif kind == "missing":
        path = root / "nowhere" / "given"
    elif kind == "loop":
        path = root / "loop"
        path.symlink_to(root / "loop")  # resolving it never ends (ELOOP)
    else:  # a folder a finished run left: its own files beside the user's
        path = root / "run"
        (path / "final").mkdir(parents=True)
        (path / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")
        (path / "recipe.json").write_text("{}\n")
        (path / "thesis.txt").write_text(USER_TEXT, encoding="utf-8")
    return path


def user_files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def inputs(tiny_model, tiny_xlmr, tmp_path_factory) -> dict[str, Path]:
    """Valid values for every path argument, so that each case changes exactly one."""
    from tests.test_release import ReleaseModel

    root = tmp_path_factory.mktemp("valid-inputs")
    (root / "in.txt").write_text("中文\n你好\n", encoding="utf-8")
    rows = [{"zh": f"中文 {i}", "ug": f"ئۇيغۇرچە {i}"} for i in range(12)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (root / "mono.txt").write_text("".join(f"ئۇيغۇرچە تىل {i}\n" for i in range(40)), encoding="utf-8")
    torch.save(ReleaseModel(tiny_xlmr).state_dict(), root / "release.bin")
    return {
        "model": tiny_model,
        "encoder": tiny_xlmr,
        "input": root / "in.txt",
        "pairs": root / "pairs.jsonl",
        "mono": root / "mono.txt",
        "release": root / "release.bin",
    }


def command(name: str, arg: str, path: Path, valid: dict[str, Path], work: Path) -> list[str]:
    """The command line of one case: `arg` set to `path`, everything else valid and tiny."""
    out = work / "out"
    values = {
        "generate": {"model": valid["model"], "input": valid["input"], "output": work / "out.txt"},
        "evaluate": {"model": valid["model"], "data": valid["pairs"], "out": out},
        "build": {"encoder": valid["encoder"], "out": out},
        "vocab prune": {"model": valid["encoder"], "corpus": valid["mono"], "out": out},
        "vocab extend": {"model": valid["encoder"], "corpus": valid["mono"], "out": out},
        "convert-release": {"checkpoint": valid["release"], "encoder": valid["encoder"], "out": out},
        "finetune": {"model": valid["model"], "train": valid["pairs"], "out": out},
        "pretrain": {"model": valid["encoder"], "sources": valid["mono"], "out": out},
        "adapt": {"model": valid["encoder"], "sources": valid["mono"], "out": out},
        "serve": {"model": valid["model"]},
        "quickstart": {"out": out, "encoder": valid["encoder"]},
    }[name]
    assert arg in values, f"{name} has no path argument {arg}"
    values = {**values, arg: path}
    if name == "generate":
        return ["generate", "--tgt_lang", "ug", "--num_beams", "1", "--max_new_tokens", "2"] + flags(values)
    if name == "evaluate":
        fixed = ["--task", "translation", "--tgt_langs", "[ug]", "--limit", "2", "--max_new_tokens", "2"]
        return ["evaluate", *fixed, "--num_beams", "1", *flags(values)]
    if name in ("build", "convert-release", "serve"):
        return [name, *flags(values)]
    if name == "vocab prune":
        return ["vocab", "prune", "--corpus", f"[{values.pop('corpus')}]", *flags(values)]
    if name == "vocab extend":
        return ["vocab", "extend", "--corpus", f"[{values.pop('corpus')}]", "--lang", "ug", "--size", "64"] + flags(
            values
        )
    if name == "quickstart":
        return ["quickstart", "--steps", "1", "--max_eval", "1", *flags(values)]
    recipe = {"model": str(values["model"]), "max_steps": 1, "global_batch": 2, "micro_batch": 2, "log_every": 1}
    if name == "finetune":
        recipe["train"] = [{"path": str(values["train"]), "task": "translation", "tgt_lang": "ug"}]
    else:
        recipe["sources"] = [{"path": str(values["sources"]), "task": "dae" if name == "pretrain" else None}]
        recipe["sources"][0]["lang"] = "ug"
        recipe["sources"][0] = {k: v for k, v in recipe["sources"][0].items() if v is not None}
    config = work / f"{name}.yaml"
    config.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    return [name, "--config", str(config), "--out", str(values["out"])]


def flags(values: dict) -> list[str]:
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


# (command, path argument, kinds): serve's model is never valid here (a valid one would serve until stopped), nor
# is a quickstart's out that would run it whole (minutes): only the kinds it must refuse at once.
CASES = [
    *[("generate", arg, KINDS) for arg in ("model", "input", "output")],
    *[("evaluate", arg, KINDS) for arg in ("model", "data", "out")],
    *[("build", arg, KINDS) for arg in ("encoder", "out")],
    *[(name, arg, KINDS) for name in ("vocab prune", "vocab extend") for arg in ("model", "corpus", "out")],
    *[("convert-release", arg, KINDS) for arg in ("checkpoint", "encoder", "out")],
    *[("finetune", arg, KINDS) for arg in ("model", "train", "out")],
    *[(name, arg, KINDS) for name in ("pretrain", "adapt") for arg in ("model", "sources", "out")],
    ("serve", "model", KINDS),
    ("quickstart", "out", ["file", "loop"]),
    ("quickstart", "encoder", ["file", "folder", "missing", "loop", "run"]),
]


@pytest.mark.parametrize(("name", "arg", "kind"), [(name, arg, kind) for name, arg, kinds in CASES for kind in kinds])
def test_no_path_a_user_gives_ends_in_a_traceback_or_a_lost_file(name, arg, kind, inputs, tmp_path, capsys):
    path = make_path(kind, _fresh(tmp_path / "given"))
    before = user_files(tmp_path)
    work = _fresh(tmp_path / "work")
    argv = command(name, arg, path, inputs, work)
    code = main(argv)  # anything but a return (an exception) is the failure this test looks for
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (0, 2), (argv, code, err[-5:])
    if code == 2:
        assert err and err[-1].startswith(f"swcm {name}: error: "), (argv, err[-5:])
        assert "Traceback" not in "\n".join(err)
        assert not (work / "out").exists(), f"{argv}: a refused command left its out folder behind"
    replaced = {path} if (name, arg, kind) == ("generate", "output", "file") else set()  # what -o means
    for file, content in before.items():
        if file not in replaced:
            assert file.exists() and file.read_bytes() == content, f"{argv}: {file} was deleted or changed"


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder
