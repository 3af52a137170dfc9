"""What a training run is told: recipes composed from parts.

Each part is a dataclass whose fields carry one-line docstrings (the CLI's help) and which checks its own fields:
- `BuildArgs`: how XLM-SWCM is built when the recipe's model is an encoder;
- `TrainArgs`: optimisation, schedule, precision, checkpoints (one loop for every recipe);
- `PartRates`: the learning rates of the pretrained encoder and of the decoder's gates;
- `PretrainData`, `FinetuneData`, `AdaptData`: what each recipe reads (`DataArgs`: what they share), from the
  sources and files of `specs`;
- `HeldoutArgs`: the task files whose held-out loss a pretraining or fine-tuning run logs as it goes.

A recipe is the parts its command uses, and nothing else: pretrain = pretraining data + build + train + rates +
held-out, finetune = fine-tuning data + build + train + rates + held-out, adapt = adapt data + train. Their fields
are flat in YAML and on the command line (`--lr 3e-4`, `--noise.mask_ratio 0.3`). Light: no torch, no
transformers, so that `swcm --help` is fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .checks import CheckedPart, build_each, build_one, check_fields, own_fields
from .choices import (
    DEFAULT_GATE_INIT,
    PRETRAIN_TASKS,
    DecoderInit,
    LmHeadInit,
    NormalInit,
    Precision,
    PretrainTask,
)
from .errors import RecipeError
from .languages import LANGS, scripts_of_language
from .noising import MaskingConfig, NoiseConfig
from .specs import HeldoutFile, SourceSpec, TrainFile

# ----------------------------------------------------------------------------------------------- the parts


@dataclass(kw_only=True)
class BuildArgs(CheckedPart):
    """How XLM-SWCM is built from an encoder (`swcm build`, or a recipe whose model is an encoder)."""

    normal_every: int = 3
    """One normal layer after every N custom layers (0: none, the BASE-A ablation)."""
    decoder_init: DecoderInit = "shared"
    """shared: custom layers copy the encoder's layers (XLM-SWCM); random: nothing copied (the baseline)."""
    normal_init: NormalInit = "random"
    """random, or copy-previous: each normal layer copies the custom layer before it (BASE-B)."""
    decoder_gate_init: float | None = DEFAULT_GATE_INIT
    """Start of the learnable gate on every shared decoder sublayer (0: identity; null: the paper's ungated init)."""
    lm_head_init: LmHeadInit = "embeddings"
    """LM head start: embeddings, mlm-head (the encoder's masked-LM head, e.g. after swcm adapt) or random."""
    tie_lm_head: bool = False
    """Tie the LM head to the word embeddings (the paper unties them)."""
    lang_tags: list[str] = field(default_factory=lambda: list(LANGS))
    """Language codes whose tags (<bo> ...) are added to the vocabulary."""

    def __post_init__(self):
        check_fields(self, only=own_fields(BuildArgs), non_empty=("lang_tags",))
        for code in self.lang_tags:  # a tag no metric or script check knows is refused here, not after training
            try:
                scripts_of_language(code)
            except RecipeError as err:
                raise RecipeError(f"lang_tags: {err}") from None
        super().__post_init__()

    def from_encoder_options(self) -> dict:
        """These fields as the keyword arguments of `swcm.from_encoder` (same names)."""
        return {name: getattr(self, name) for name in own_fields(BuildArgs)}


def regional_compilation() -> bool:
    """Whether the installed accelerate compiles a model layer by layer (its TorchDynamoPlugin's
    use_regional_compilation, which older releases lack). Reads the signature without importing torch's compiler."""
    import inspect

    from accelerate.utils import TorchDynamoPlugin

    return "use_regional_compilation" in inspect.signature(TorchDynamoPlugin).parameters


@dataclass(kw_only=True)
class TrainArgs(CheckedPart):
    """Optimisation, schedule, precision and checkpoints: the one training loop's settings."""

    max_steps: int | None = None
    """Optimizer steps; or set epochs."""
    epochs: float | None = None
    """Passes over the usable lines of the data (converted to steps with global_batch)."""
    global_batch: int = 600
    """Sequences per optimizer step, over all processes (micro_batch x processes x accumulation)."""
    micro_batch: int = 8
    """Sequences per forward pass on one process."""
    lr: float = 1e-4
    """Peak learning rate (AdamW, linear decay)."""
    warmup_ratio: float = 0.1
    """Share of steps warming up."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    mixed_precision: Precision = "auto"
    """auto (bf16 where the hardware has native bf16, fp16 on older CUDA, else fp32), bf16, fp16 or fp32."""
    seed: int = 0
    """Seed of initialisation, data order and noise."""
    save_every: int = 500
    """Checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 3
    """Checkpoints kept (oldest deleted)."""
    log_every: int = 1
    """Log every N steps."""
    compile: bool = False
    """torch.compile each encoder and decoder layer (inductor, one compile per layer kind, shapes dynamic): fuses
    the element-wise work around the multiplies; the first steps wait for the compiler."""
    gradient_checkpointing: bool = False
    """Recompute each encoder and decoder layer's activations in the backward pass instead of keeping them: less
    memory per sequence (larger micro-batches), about a third more compute; the same losses and gradients."""

    def __post_init__(self):
        positive = ("max_steps", "epochs", "global_batch", "micro_batch", "lr", "grad_clip")
        positive += ("save_every", "keep_checkpoints", "log_every")
        check_fields(self, only=own_fields(TrainArgs), positive=positive, shares=("warmup_ratio",))
        if (self.max_steps is None) == (self.epochs is None):
            raise RecipeError("set exactly one of max_steps and epochs")
        if self.compile and not regional_compilation():
            from importlib.metadata import version

            raise RecipeError(
                f"compile: the installed accelerate {version('accelerate')} cannot compile layer by layer "
                "(TorchDynamoPlugin's use_regional_compilation); upgrade accelerate, or leave compile off"
            )
        super().__post_init__()

    def accumulation(self, world: int) -> int:
        per_step = self.micro_batch * world
        if self.global_batch % per_step:
            raise RecipeError(
                f"global_batch {self.global_batch} is not a multiple of "
                f"micro_batch {self.micro_batch} x {world} processes"
            )
        return self.global_batch // per_step

    def total_steps(self, usable_lines: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * usable_lines / self.global_batch))


@dataclass(kw_only=True)
class PartRates(CheckedPart):
    """Learning rates of XLM-SWCM's parts: the pretrained encoder, and the gates of the copied decoder sublayers."""

    encoder_lr: float | None = None
    """Peak learning rate of the pretrained encoder and the shared embeddings (null: lr; 0: frozen)."""
    gate_lr_scale: float = 10.0
    """The decoder's sublayer gates (decoder_gate_init) learn at this multiple of lr: at lr they stay near their
    0.02 start, and the copied sublayers stay shut (measured in README / docs/results.md)."""

    def __post_init__(self):
        check_fields(self, only=own_fields(PartRates), positive=("gate_lr_scale",))
        super().__post_init__()


@dataclass(kw_only=True)
class HeldoutArgs(CheckedPart):
    """Learning curves: the teacher-forced loss on held-out task files, logged while training."""

    heldout: list[HeldoutFile] = field(default_factory=list)
    """Task files (see HeldoutFile: a task file's fields plus path, name, limit) measured every heldout_every steps
    and at the last, as heldout_<name> in log.jsonl (and heldout: over all their tokens)."""
    heldout_every: int = 100
    """Steps between measurements; a multiple of log_every (they join the log rows)."""

    def __post_init__(self):
        self.heldout = build_each(HeldoutFile, self.heldout, "heldout")
        check_fields(self, only=own_fields(HeldoutArgs), positive=("heldout_every",))
        names = [h.name for h in self.heldout]
        if len(set(names)) != len(names):
            raise RecipeError(f"heldout: each name at most once, got {names}")
        log_every = getattr(self, "log_every", 1)
        if self.heldout and self.heldout_every % log_every:
            raise RecipeError(f"heldout_every: must be a multiple of log_every {log_every}, got {self.heldout_every}")
        super().__post_init__()


MIN_LENGTH = 8
"""The shortest max_length: <s>, the language tag and </s> take three tokens of a window."""


@dataclass(kw_only=True)
class DataArgs(CheckedPart):
    """What every recipe's data pipeline takes."""

    max_length: int = 256
    """Longest source / target in tokens (documents are cut into windows of this size); at least 8."""
    prune_vocab: bool = False
    """Building from an encoder: first prune its vocabulary to the pieces the data uses."""
    skip_bad_lines: bool = False
    """Count and skip malformed lines instead of failing at the first (file:line)."""
    num_workers: int = 2
    """Dataloader workers (tokenisation and noising run there)."""

    def __post_init__(self):
        check_fields(self, only=own_fields(DataArgs), positive=("max_length",))
        if self.max_length < MIN_LENGTH:
            raise RecipeError(
                f"max_length: must be at least {MIN_LENGTH} (the special tokens, the language tag and some text), "
                f"got {self.max_length}"
            )
        super().__post_init__()


@dataclass(kw_only=True)
class PretrainData(DataArgs):
    """Pretraining data: denoising on monolingual text plus zh <-> X translation, mixed by language."""

    sources: list[SourceSpec]
    """Data sources (see SourceSpec)."""
    tasks: list[PretrainTask] = field(default_factory=lambda: list(PRETRAIN_TASKS))
    """Objectives: [dae, mt]; the paper's ablations are [mt] (-DAE) and [dae] (-MT)."""
    mt_share: float = 0.5
    """Share of translation examples when both tasks are on."""
    alpha: float = 0.3
    """Language sampling temperature: p ~ n^alpha over each language's bytes."""
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    """Denoising noise rates."""

    def __post_init__(self):
        self.sources = build_each(SourceSpec, self.sources, "sources")
        self.noise = build_one(NoiseConfig, self.noise, "noise")
        check_fields(self, only=own_fields(PretrainData), non_empty=("sources", "tasks"))
        if len(set(self.tasks)) != len(self.tasks):
            raise RecipeError(f"tasks: each at most once, got {self.tasks}")
        if set(self.tasks) == set(PRETRAIN_TASKS) and not 0.0 < self.mt_share < 1.0:
            raise RecipeError(f"mt_share must be in (0, 1) when both tasks are on, got {self.mt_share}")
        super().__post_init__()


@dataclass(kw_only=True)
class FinetuneData(DataArgs):
    """Fine-tuning data: task files (translation, summarization, reading comprehension)."""

    train: list[TrainFile]
    """Training files (see TrainFile): task, fields, target language, limit k."""

    def __post_init__(self):
        self.train = build_each(TrainFile, self.train, "train")
        check_fields(self, only=own_fields(FinetuneData), non_empty=("train",))
        super().__post_init__()


@dataclass(kw_only=True)
class AdaptData(DataArgs):
    """Continued-MLM data: monolingual sources, and what the vocabulary gets first."""

    sources: list[SourceSpec]
    """Monolingual sources (task: dae, with lang); see SourceSpec."""
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    """What is masked."""
    extend: dict[str, int] = field(default_factory=dict)
    """Languages whose vocabulary to extend first, with the sentencepiece size to train: e.g. {bo: 8000}."""
    heldout_lines: int = 50
    """Last usable lines of each source kept out of training, for the before / after report."""
    alpha: float = 0.3
    """Language sampling temperature: p ~ n^alpha over each language's bytes."""

    def __post_init__(self):
        self.sources = build_each(SourceSpec, self.sources, "sources")
        self.masking = build_one(MaskingConfig, self.masking, "masking")
        check_fields(self, only=own_fields(AdaptData), non_empty=("sources",))
        bad = [s.path for s in self.sources if s.task != "dae"]
        if bad:
            raise RecipeError(f"adapt takes monolingual sources (task: dae, lang: X); not: {bad}")
        super().__post_init__()


# --------------------------------------------------------------------------------------------- the recipes


class _RunFields(CheckedPart):
    """Checks the two fields every recipe declares itself, `model` and `out`, before its parts check theirs."""

    def __post_init__(self):
        check_fields(self, only=("model", "out"))
        super().__post_init__()


@dataclass(kw_only=True)
class PretrainRecipe(_RunFields, PretrainData, BuildArgs, TrainArgs, PartRates, HeldoutArgs):
    """XLM-SWCM pretraining: denoising on monolingual text plus zh <-> X translation (the paper's settings are the
    defaults of the optimisation fields)."""

    model: str
    """An XLM-SWCM model directory to continue, or an encoder (path, hub id, packaged:NAME) to build one from."""
    out: str = "runs/pretrain"
    """Output folder: checkpoints/, final/, log.jsonl, tb/, loss.png."""


@dataclass(kw_only=True)
class FinetuneRecipe(_RunFields, FinetuneData, BuildArgs, TrainArgs, PartRates, HeldoutArgs):
    """Fine-tuning on task files, with pretraining's loop, data order and checkpoints."""

    model: str
    """An XLM-SWCM model directory (e.g. a pretraining run's final/), or an encoder to build one from."""
    out: str = "runs/finetune"
    """Output folder: checkpoints/, final/, log.jsonl, tb/, loss.png."""


@dataclass(kw_only=True)
class AdaptRecipe(_RunFields, AdaptData, TrainArgs):
    """Continued MLM pretraining of an encoder on monolingual sources (the CINO recipe)."""

    model: str
    """Encoder to adapt: a local folder, a hub id or packaged:NAME."""
    out: str = "runs/adapt"
    """Output folder: final/ (the adapted encoder with its MLM head), checkpoints/, log.jsonl, report.json."""
    # adapt's own defaults for the shared parts' fields
    max_length: int = 128
    """Longest window in tokens."""
    num_workers: int = 1
    """Dataloader workers."""
    global_batch: int = 64
    """Sequences per optimizer step, over all processes."""
    micro_batch: int = 16
    """Sequences per forward pass on one process."""
    warmup_ratio: float = 0.06
    """Share of steps warming up."""
    keep_checkpoints: int = 2
    """Checkpoints kept."""
    log_every: int = 10
    """Log every N steps."""


RECIPES = {"pretrain": PretrainRecipe, "finetune": FinetuneRecipe, "adapt": AdaptRecipe}
"""The recipe each training command takes."""
