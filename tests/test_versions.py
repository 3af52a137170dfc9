"""The lock (constraints.txt), pyproject.toml's ranges and ./run's torch pin agree with each other."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ci_versions", ROOT / ".ci" / "versions.py")
versions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(versions)

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = [Requirement(line) for line in PROJECT["dependencies"]]
TEST_EXTRAS = [Requirement(line) for line in PROJECT["optional-dependencies"]["test"]]


def test_every_runtime_and_test_dependency_is_locked_inside_its_range():
    locked = versions.locked()
    for requirement in RUNTIME + TEST_EXTRAS:
        name = versions.canonical(requirement.name)
        assert name in locked, f"{name} is not in constraints.txt: run ./run lock"
        assert Version(locked[name]) in requirement.specifier, (
            f"constraints.txt locks {name} {locked[name]}, outside pyproject.toml's {requirement}"
        )


def test_the_oldest_versions_are_pyproject_lower_bounds():
    """Each runtime dependency's `>=X` becomes `==X` in CI's oldest environment (that X installs, CI shows)."""
    floors = versions.runtime_floors()
    assert set(floors) == {versions.canonical(r.name) for r in RUNTIME}
    for requirement in RUNTIME:
        floor = floors[versions.canonical(requirement.name)]
        assert Version(floor) in requirement.specifier
        assert Version(floor).release and not Version(floor).is_prerelease and Version(floor).local is None


def test_run_installs_the_locked_torch_first():
    pin = re.search(r'^TORCH="torch==([^"]+)"', (ROOT / "run").read_text(encoding="utf-8"), re.M).group(1)
    assert versions.locked()["torch"] == pin
    assert Version(versions.runtime_floors()["torch"]) == Version(pin), "CI can install no other torch: test that one"


def test_a_dependency_without_a_lower_bound_is_refused(monkeypatch, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\ndependencies = ["torch>=2.13", "tqdm"]\n', encoding="utf-8")
    monkeypatch.setattr(versions, "ROOT", tmp_path)
    with pytest.raises(SystemExit, match="'tqdm' has no lower bound"):
        versions.runtime_floors()


def test_the_lock_names_a_bad_line_by_its_number(monkeypatch, tmp_path):
    lock = tmp_path / "constraints.txt"
    lock.write_text("# header\ntorch==2.13.0\ntransformers>=5\n", encoding="utf-8")
    monkeypatch.setattr(versions, "LOCK", lock)
    with pytest.raises(SystemExit, match=r"constraints.txt:3: expected NAME==VERSION, got 'transformers>=5'"):
        versions.locked()
