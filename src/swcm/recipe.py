"""Pretraining recipes: one dataclass, loaded from YAML, every scalar field overridable on the command line."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from .checks import RecipeError, build_each, build_one, check_fields
from .configuration_swcm import DEFAULT_GATE_INIT
from .data import TASKS, DataError, SourceSpec
from .noising import NoiseConfig
from .precision import PRECISIONS
from .tasks import TrainFile
from .tokenization import DEFAULT_LANG_TAGS

# recipe fields that must be > 0 (every other number must be >= 0; see checks.check_fields)
POSITIVE_FIELDS = (
    "max_steps",
    "epochs",
    "global_batch",
    "micro_batch",
    "lr",
    "max_length",
    "save_every",
    "keep_checkpoints",
    "log_every",
    "grad_clip",
    "gate_lr_scale",
)


class StepsMixin:
    """Steps and accumulation from `max_steps` / `epochs`, `global_batch` and `micro_batch` (every recipe has them)."""

    def check_schedule(self) -> None:
        """The checks every training recipe shares: one of max_steps / epochs, a known precision."""
        if (self.max_steps is None) == (self.epochs is None):
            raise DataError("set exactly one of max_steps and epochs")
        if self.mixed_precision not in (*PRECISIONS, "no"):
            raise DataError(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")

    def accumulation(self, world: int) -> int:
        per_step = self.micro_batch * world
        if self.global_batch % per_step:
            raise DataError(
                f"global_batch {self.global_batch} is not a multiple of "
                f"micro_batch {self.micro_batch} x {world} processes"
            )
        return self.global_batch // per_step

    def total_steps(self, usable_lines: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * usable_lines / self.global_batch))


@dataclass
class PretrainRecipe(StepsMixin):
    """XLM-SWCM pretraining: denoising on monolingual text plus zh <-> X translation (the paper's settings are the
    defaults of the optimisation fields)."""

    REQUIRED_LISTS: ClassVar[tuple[str, ...]] = ("sources", "tasks", "lang_tags")

    model: str
    """An XLM-SWCM model directory to continue, or an encoder (path, hub id, packaged:NAME) to build one from."""
    sources: list[SourceSpec]
    """Data sources (see SourceSpec)."""
    out: str = "runs/pretrain"
    """Output folder: checkpoints/, final/, log.jsonl, tb/, loss.png."""
    normal_every: int = 3
    """Building from an encoder: one normal layer after every N custom layers (0 = BASE-A)."""
    decoder_init: str = "shared"
    """Building from an encoder: 'shared' (XLM-SWCM) or 'random'."""
    normal_init: str = "random"
    """Building from an encoder: 'random' or 'copy-previous' (BASE-B)."""
    decoder_gate_init: float | None = DEFAULT_GATE_INIT
    """Building from an encoder: start of the shared decoder's sublayer gates (null: the paper's ungated init)."""
    lang_tags: list[str] = field(default_factory=lambda: list(DEFAULT_LANG_TAGS))
    """Building from an encoder: language tags to add."""
    prune_vocab: bool = False
    """Building from an encoder: first prune its vocabulary to the pieces the sources use."""
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    """Objectives: [dae, mt]; the paper's ablations are [mt] (-DAE) and [dae] (-MT)."""
    mt_share: float = 0.5
    """Share of translation examples when both tasks are on."""
    alpha: float = 0.3
    """Language sampling temperature: p ~ n^alpha over each language's bytes."""
    max_length: int = 256
    """Longest source / target in tokens (documents are cut into windows of this size)."""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """Denoising noise rates."""
    skip_bad_lines: bool = False
    """Count and skip malformed lines instead of failing at the first (file:line)."""
    num_workers: int = 2
    """Dataloader workers (tokenisation and noising run there)."""
    max_steps: int | None = None
    """Optimizer steps; or set epochs."""
    epochs: float | None = None
    """Passes over the usable lines of the sources (converted to steps with global_batch)."""
    global_batch: int = 600
    """Sequences per optimizer step, over all processes (micro_batch x processes x accumulation)."""
    micro_batch: int = 8
    """Sequences per forward pass on one process."""
    lr: float = 1e-4
    """Peak learning rate (AdamW, linear decay)."""
    encoder_lr: float | None = None
    """Peak learning rate of the pretrained encoder and the shared embeddings (None: lr; 0: frozen)."""
    gate_lr_scale: float = 10.0
    """The decoder's sublayer gates (decoder_gate_init) learn at this multiple of lr: at lr they stay near their
    0.02 start, and the copied sublayers stay shut (measured in README / docs/results.md)."""
    warmup_ratio: float = 0.1
    """Share of steps warming up."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    mixed_precision: str = "auto"
    """'auto' (bf16 where the hardware has native bf16, fp16 on older CUDA, else fp32), 'bf16', 'fp16' or 'fp32'."""
    seed: int = 0
    """Seed of initialisation, data order and noise."""
    save_every: int = 500
    """Checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 3
    """Checkpoints kept (oldest deleted)."""
    log_every: int = 1
    """Log every N steps."""

    def __post_init__(self):
        self.sources = build_each(SourceSpec, self.sources, "sources")
        self.noise = build_one(NoiseConfig, self.noise, "noise")
        check_fields(self, positive=POSITIVE_FIELDS, shares=("warmup_ratio",), non_empty=self.REQUIRED_LISTS)
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise DataError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        self.check_schedule()
        if not 0.0 < self.mt_share < 1.0 and set(self.tasks) == set(TASKS):
            raise DataError(f"mt_share must be in (0, 1) when both tasks are on, got {self.mt_share}")


@dataclass
class FinetuneRecipe(PretrainRecipe):
    """Fine-tuning on task files, with pretraining's loop, data order and checkpoints."""

    REQUIRED_LISTS: ClassVar[tuple[str, ...]] = ("tasks", "lang_tags")  # `train`, not `sources`

    sources: list[SourceSpec] = field(default_factory=list)
    """Unused in fine-tuning."""
    train: list[TrainFile] = field(default_factory=list)
    """Training files (see tasks.TrainFile): task, fields, target language, limit k."""

    def __post_init__(self):
        self.train = build_each(TrainFile, self.train, "train")
        if not self.train:
            raise DataError("a fine-tuning recipe needs `train` files")
        super().__post_init__()


_CASTS = {"int": int, "float": float, "str": str, "Path": Path}


def _cast(kind: str, text: str, name: str):
    if text.lower() in ("none", "null") and "None" in kind:
        return None
    kind = kind.replace(" | None", "")
    if kind == "bool":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise DataError(f"--{name}: expected true or false, got {text!r}")
    if kind == "list[str]":
        return [t for t in text.split(",") if t]
    try:
        return _CASTS.get(kind, str)(text)
    except ValueError:
        raise DataError(f"--{name}: expected {kind}, got {text!r}") from None


def _nested_kinds(cls: type) -> dict[str, dict[str, str]]:
    """Dataclass-valued fields of a recipe (noise, masking) and the kinds of their own fields."""
    nested = {}
    for f in fields(cls):
        if f.default_factory is not MISSING:
            value = f.default_factory()
            if is_dataclass(value):
                nested[f.name] = {g.name: str(g.type) for g in fields(value)}
    return nested


def apply_overrides(data: dict, overrides: list[str], cls: type = PretrainRecipe) -> dict:
    """`--lr 3e-4 --noise.mask_ratio 0.3 --tasks mt`: scalar fields of the recipe (and of its nested parts) by name."""
    nested = _nested_kinds(cls)
    kinds = {f.name: str(f.type) for f in fields(cls) if f.name not in nested}
    if len(overrides) % 2:
        raise DataError(f"overrides come in pairs (--name value), got {overrides}")
    data = dict(data)
    for flag, value in zip(overrides[::2], overrides[1::2], strict=True):
        if not flag.startswith("--"):
            raise DataError(f"expected --name before {value!r}, got {flag!r}")
        name = flag[2:].replace("-", "_")
        part, _, key = name.partition(".")
        if key and part in nested:
            if key not in nested[part]:
                raise DataError(f"unknown {part} field {key!r}; known: {', '.join(nested[part])}")
            data[part] = {**dict(data.get(part) or {}), key: _cast(nested[part][key], value, name)}
        elif name in kinds and not kinds[name].startswith(("list[SourceSpec]", "list[TrainFile]", "dict")):
            data[name] = _cast(kinds[name], value, name)
        else:
            raise DataError(f"unknown recipe field {name!r}; known: {', '.join(k for k in kinds if k != 'sources')}")
    return data


def load_recipe(path: str | Path | None, overrides: list[str] | None = None, cls: type = PretrainRecipe):
    data = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"recipe {path} not found")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise DataError(f"{path}: a recipe is a mapping of fields, got {type(data).__name__}")
    data = apply_overrides(data, overrides or [], cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DataError(f"{path}: unknown recipe field(s) {unknown}; known: {', '.join(sorted(known))}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise DataError(f"{path}: recipe needs {missing}")
    try:
        return cls(**data)
    except TypeError as err:
        raise DataError(f"{path}: {err}") from None
    except RecipeError as err:
        raise RecipeError(f"{path or 'recipe'}: {err}") from None
