"""Type and range checks of recipe values, as YAML and the command line hand them over.

YAML reads `lr: 3e-4` as the string "3e-4" (its floats need a dot), and `max_steps: 4.5` or `max_steps: "ten"` would
otherwise reach the training loop. `check_fields` coerces what is safe (a numeric string to a number, 4.0 to 4) and
refuses the rest with one line naming the field, the value and the type it needs.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path

from .errors import RecipeError

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _number(value, name: str, kind: type, signed: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RecipeError(f"{name}: expected {'a whole number' if kind is int else 'a number'}, got {value!r}")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise RecipeError(
            f"{name}: expected {'a whole number' if kind is int else 'a number'}, got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise RecipeError(f"{name}: expected a finite number, got {value!r}")
    if number < 0 and not signed:  # few settings have a meaning below 0 (rates, sizes, counts, seeds, shares)
        raise RecipeError(f"{name}: must be >= 0, got {value!r}")
    if kind is int:
        if float(number) != int(number):
            raise RecipeError(f"{name}: expected a whole number, got {value!r}")
        return int(number)
    return float(number)


def coerce(value, annotation, name: str, signed: bool = False):
    """`value` as `annotation` (int, float, bool, str, Path, X | None, list[X], dict[str, X]); RecipeError if not.
    Numbers must be finite, and >= 0 unless `signed`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            if len(options) < len(typing.get_args(annotation)):
                return None
            raise RecipeError(f"{name}: a value is required, got null")
        if len(options) == 1:
            return coerce(value, options[0], name, signed)
        return value
    if value is None:
        raise RecipeError(f"{name}: a value is required, got null")
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise RecipeError(f"{name}: expected one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise RecipeError(f"{name}: expected true or false, got {value!r}")
    if annotation in (int, float):
        return _number(value, name, annotation, signed)
    if annotation is str:
        if isinstance(value, (str, Path)):
            return str(value)
        raise RecipeError(f"{name}: expected text, got {value!r}")
    if annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise RecipeError(f"{name}: expected a path, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{name}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation) or (typing.Any,)
        return [coerce(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{name}: expected a mapping, got {value!r}")
        _, item = typing.get_args(annotation) or (str, typing.Any)
        return {str(k): coerce(v, item, f"{name}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation) and not isinstance(value, (annotation, dict)):
        raise RecipeError(f"{name}: expected a mapping of {annotation.__name__} fields, got {value!r}")
    return value


def check_fields(
    obj,
    where: str = "",
    positive: tuple[str, ...] = (),
    shares: tuple[str, ...] = (),
    non_empty: tuple[str, ...] = (),
    signed: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> None:
    """Coerce every field of the dataclass `obj` (or those named in `only`) to its annotation, in place; numbers must
    be >= 0, those in `positive` > 0, those in `shares` in [0, 1), those in `signed` may be negative; lists in
    `non_empty` need an item. `where` prefixes field names."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if only is not None and f.name not in only:
            continue
        name = f"{where}{f.name}"
        # a positive field says "> 0" for a negative value too, not the ">= 0" of every other number
        value = coerce(getattr(obj, f.name), hints[f.name], name, signed=f.name in signed or f.name in positive)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if f.name in positive and not value > 0:
                raise RecipeError(f"{name}: must be > 0, got {value!r}")
            if f.name in shares and not value < 1:
                raise RecipeError(f"{name}: must be in [0, 1), got {value!r}")
        if f.name in non_empty and isinstance(value, list) and not value:
            raise RecipeError(f"{name}: needs at least one item, got []")
        setattr(obj, f.name, value)


def build_each(cls: type, items, name: str) -> list:
    """`items` (mappings or `cls` instances) as `cls` instances; errors name the item: `sources[1].lang: ...`."""
    if not isinstance(items, (list, tuple)):
        raise RecipeError(f"{name}: expected a list of {cls.__name__} mappings, got {items!r}")
    return [build_one(cls, item, f"{name}[{i}]") for i, item in enumerate(items)]


def build_one(cls: type, value, name: str):
    """`value` (a mapping or a `cls` instance) as `cls`; errors name the field: `noise.mask_ratio: ...`."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise RecipeError(f"{name}: expected a mapping of {cls.__name__} fields, got {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise RecipeError(f"{name}: unknown field(s) {unknown}; known: {', '.join(sorted(known))}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in value and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RecipeError(f"{name}: needs {', '.join(missing)}")
    try:
        return cls(**value)
    except RecipeError as err:
        raise RecipeError(f"{name}: {err}") from None


def own_fields(cls) -> tuple[str, ...]:
    """The fields dataclass `cls` declares itself (not those of the parts it is combined with)."""
    return tuple(name for name in cls.__dict__.get("__annotations__", {}) if not name.isupper())


class CheckedPart:
    """The end of the cooperative `__post_init__` chain of combined argument dataclasses: each part checks its own
    fields (`check_fields(self, only=own_fields(Part))`), then calls `super().__post_init__()`."""

    def __post_init__(self):
        pass


__all__ = [
    "CheckedPart",
    "RecipeError",
    "build_each",
    "build_one",
    "check_fields",
    "coerce",
    "own_fields",
]
