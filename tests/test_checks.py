"""Recipe values: safe coercion, and one line naming the field for everything else (issue: bad input)."""

import dataclasses
import math
import types
import typing

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from swcm.checks import coerce
from swcm.cli import main, parse
from swcm.recipe import RECIPES as RECIPE_CLASSES

SOURCE = {"path": "mono.txt", "task": "dae", "lang": "ug"}
TRAIN = {"path": "pairs.jsonl", "task": "translation", "tgt_lang": "ug", "src_field": "zh", "tgt_field": "ug"}
# command -> (recipe class, a valid recipe that the bad value is put into)
RECIPES = {
    "pretrain": (RECIPE_CLASSES["pretrain"], {"model": "enc", "sources": [SOURCE], "max_steps": 4}),
    "finetune": (RECIPE_CLASSES["finetune"], {"model": "m", "train": [TRAIN], "max_steps": 4}),
    "adapt": (RECIPE_CLASSES["adapt"], {"model": "enc", "sources": [SOURCE], "max_steps": 4}),
}


def test_yaml_strings_that_are_numbers_become_numbers(tmp_path):
    path = tmp_path / "recipe.yaml"
    # YAML reads 3e-4 (no dot) as a string: the common trap
    path.write_text("model: m\nmax_steps: '10'\nlr: 3e-4\nepochs: null\ntrain:\n  - " + str(TRAIN) + "\n")
    _, recipe, _ = parse(["finetune", "--config", str(path)])
    assert recipe.lr == 3e-4 and isinstance(recipe.lr, float)
    assert recipe.max_steps == 10 and isinstance(recipe.max_steps, int)
    assert coerce(4.0, int, "x") == 4 and coerce("yes", bool, "x") is True and coerce(None, float | None, "x") is None


@pytest.mark.parametrize(
    "command, field, value, message",
    [
        ("finetune", "max_steps", "ten", "max_steps: expected int or null; got 'ten'"),
        ("finetune", "max_steps", 4.5, "max_steps: expected int or null; got '4.5'"),  # ran 5 steps once
        ("finetune", "lr", math.nan, "lr: expected a finite number, got nan"),
        ("finetune", "lr", -3e-4, "lr: must be > 0, got -0.0003"),
        ("finetune", "lr", 0, "lr: must be > 0, got 0"),
        ("finetune", "decoder_init", "copied", "decoder_init: expected one of shared, random; got 'copied'"),
        ("finetune", "sources", [SOURCE], "sources: unknown field (see --help)"),  # fine-tuning has no sources
        ("pretrain", "tasks", [], "tasks: needs at least one item, got []"),
        ("pretrain", "noise", {"mask_ratio": "x"}, "noise.mask_ratio: expected float; got 'x'"),
        ("finetune", "train", [{**TRAIN, "limit": -2}], "train[0]: train file pairs.jsonl: limit: must be >= 0"),
        ("finetune", "train", [{**TRAIN, "shuffle": True}], "train: unknown field 'shuffle'"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_field(tmp_path, capsys, command, field, value, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**RECIPES[command][1], field: value}), encoding="utf-8")
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"swcm {command}: error: {message}"), err


def _field_kinds(cls) -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _bad_values(annotation) -> st.SearchStrategy:
    """Values a field of this type must refuse: wrong types, negatives, NaN / inf, empty lists."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    kind = [a for a in typing.get_args(annotation) if a is not type(None)][0] if union else annotation
    containers = st.sampled_from([{"a": 1}, [1, 2]])
    if kind in (int, float):
        bad = [st.sampled_from(["ten", "", "1e400x", math.nan, math.inf, -math.inf, True]), containers]
        bad.append(st.integers(max_value=-1))
        bad.append(st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False))
        if kind is int:
            bad.append(st.floats(min_value=0.01, max_value=1e6).filter(lambda x: not float(x).is_integer()))
        return st.one_of(*bad)
    if kind is bool:
        return st.one_of(st.sampled_from(["maybe", 2, -1, 0.5]), containers)
    if kind in (str,):
        return st.one_of(st.integers(), st.floats(allow_nan=True), containers)
    if typing.get_origin(kind) is list:
        return st.one_of(st.just([]), st.sampled_from(["ug", 5, {"a": 1}]))
    if typing.get_origin(kind) is typing.Literal:
        return st.sampled_from(["bogus", 5, [1]])
    if typing.get_origin(kind) is dict:
        return st.sampled_from(["bo", [1], {"bo": "many"}, {"bo": -3}])
    return st.nothing()


def _cases():
    cases = []
    for command, (cls, _) in RECIPES.items():
        for name, annotation in _field_kinds(cls).items():
            if name == "model":
                continue  # any text
            cases.append((command, name, annotation))
    return cases


CASES = _cases()
MAY_BE_EMPTY = ("heldout",)  # lists whose empty value is the default, not a mistake


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(CASES), data=st.data())
def test_any_wrong_type_negative_nan_or_empty_list_is_one_line_naming_the_field(tmp_path, capsys, case, data):
    command, name, annotation = case
    cls, base = RECIPES[command]
    value = data.draw(_bad_values(annotation), label=name)
    assume(not (value == [] and name in MAY_BE_EMPTY))
    if typing.get_origin(annotation) is list and typing.get_args(annotation)[0] is not str and value != []:
        value = [value]  # a list of sources / files holding a bad item
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**base, name: value}, allow_unicode=True), encoding="utf-8")
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"swcm {command}: error: ") and name in err, err
    assert "Traceback" not in err
