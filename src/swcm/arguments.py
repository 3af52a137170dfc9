"""The arguments of every `swcm` command that is not a training recipe (those are in recipe.py): one dataclass per
command, composed of parts whose fields carry one-line docstrings (the command line's help) and check themselves.
The command modules take their arguments from here; cli.py only maps command names to them. Light: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .checks import CheckedPart, check_fields, own_fields
from .choices import DEFAULT_ENCODER, DecoderInit, Precision, Quantize, Split, Task
from .errors import RecipeError
from .languages import MINORITY_LANGS, scripts_of_language
from .recipe import BuildArgs

DEFAULT_BEAMS = 5
"""Beam size of `swcm generate`, `swcm evaluate` and a served request that does not say."""


@dataclass(kw_only=True)
class ModelOut:
    """A command that writes a model folder into `out`."""

    overwrite: bool = False
    """Replace a model swcm wrote in out (its files only; anything else there stops the command)."""


@dataclass(kw_only=True)
class BuildCommand(BuildArgs, ModelOut):
    """Arguments of `swcm build`."""

    encoder: str
    """Pretrained encoder: a local directory, a hub id (XLM-R / BERT family) or packaged:NAME."""
    out: Path
    """Directory to write the model and tokenizer to."""


@dataclass(kw_only=True)
class PruneArgs(ModelOut):
    """Arguments of `swcm vocab prune`."""

    model: Path
    """An XLM-SWCM model directory or an encoder directory (with its tokenizer)."""
    corpus: list[str]
    """Text or .jsonl files whose pieces are kept."""
    out: Path
    """Directory for the pruned model and tokenizer."""
    min_count: int = 1
    """Keep pieces used at least this often (above 1, single characters are kept regardless)."""
    fields: list[str] | None = None
    """jsonl fields to read (default: every string field)."""

    def __post_init__(self):
        check_fields(self, positive=("min_count",), non_empty=("corpus",))


@dataclass(kw_only=True)
class ExtendArgs(ModelOut):
    """Arguments of `swcm vocab extend`."""

    model: Path
    """An XLM-SWCM model directory or an encoder directory (XLM-R style sentencepiece vocabulary)."""
    corpus: list[str]
    """Text or .jsonl files in the language to cover."""
    lang: str
    """Language code of the corpus (reported)."""
    size: int
    """Size of the sentencepiece model trained on the corpus; its pieces missing from the vocabulary are added."""
    out: Path
    """Directory for the extended model and tokenizer."""
    heldout_fraction: float = 0.1
    """Share of the corpus (its end) held out to measure <unk> rate and tokens per character."""
    fields: list[str] | None = None
    """jsonl fields to read (default: every string field)."""

    def __post_init__(self):
        check_fields(self, positive=("size",), shares=("heldout_fraction",), non_empty=("corpus",))
        try:
            scripts_of_language(self.lang)
        except RecipeError as err:
            raise RecipeError(f"lang: {err}") from None


@dataclass(kw_only=True)
class ConvertReleaseArgs(ModelOut):
    """Arguments of `swcm convert-release`."""

    checkpoint: Path
    """The authors' xlm-swcm.bin (a torch state_dict; read with weights_only=True)."""
    encoder: str
    """The encoder the release was built on, for its config and tokenizer (hfl/cino-base-v2)."""
    out: Path
    """Directory for the converted model and tokenizer."""


@dataclass(kw_only=True)
class InferenceArgs(CheckedPart):
    """How a model is put on the device for generation."""

    precision: Precision = "auto"
    """auto (bf16 weights where the device has native bf16, else fp32), bf16, fp16 (CUDA only) or fp32."""
    quantize: Quantize = "auto"
    """CPU decoding: auto (with --precision auto: int8 where a step decodes under 32 rows, batch x beams, or the CPU
    has no native bf16; bf16 weights from 32 rows where it has), none (--precision's weights), int8 (decoder and LM
    head in dynamic int8) or fp16 (their weights in fp16, near-exact); the rest fp32. On a GPU, auto is none."""

    def __post_init__(self):
        check_fields(self, only=own_fields(InferenceArgs))
        super().__post_init__()


@dataclass(kw_only=True)
class DecodingArgs(CheckedPart):
    """How outputs are searched for (generation.generate_texts takes these by name; serving's requests start from
    the same defaults)."""

    num_beams: int = DEFAULT_BEAMS
    """Beam size (1: greedy)."""
    max_new_tokens: int = 128
    """Longest output in tokens."""
    length_penalty: float = 1.0
    """Beam length penalty (> 1 favours longer outputs)."""
    no_repeat_ngram_size: int = 0
    """Forbid repeating n-grams of this size (0: off)."""
    batch_size: int = 16
    """Inputs per batch (batched by length)."""
    constrain_script: bool = False
    """Mask tokens of other scripts than the target language's (digits, punctuation, Latin allowed)."""

    def __post_init__(self):
        positive = ("num_beams", "max_new_tokens", "batch_size")
        check_fields(self, only=own_fields(DecodingArgs), positive=positive, signed=("length_penalty",))
        super().__post_init__()

    def decoding(self) -> dict:
        return {name: getattr(self, name) for name in own_fields(DecodingArgs)}


@dataclass(kw_only=True)
class GenerateArgs(DecodingArgs, InferenceArgs):
    """Arguments of `swcm generate`."""

    model: Path
    """An XLM-SWCM model directory (with its tokenizer)."""
    tgt_lang: str
    """Target language code; its tag starts every output."""
    input: str = "-"
    """Text file, one input per line, or - for standard input."""
    output: str = "-"
    """File to write, one output per line, or - for standard output."""
    skip_empty: bool = False
    """Answer empty input lines with an empty line (counted) instead of failing."""


@dataclass(kw_only=True)
class EvaluateArgs(DecodingArgs, InferenceArgs):
    """Arguments of `swcm evaluate`. Paths and field names may hold {lang}, filled with each target language."""

    model: Path
    """An XLM-SWCM model directory."""
    data: str
    """JSON Lines file, e.g. ../shared/data/qa/cmilbench.{lang}.jsonl."""
    task: Task
    """translation, summarization or mrc."""
    tgt_langs: list[str]
    """Target languages, e.g. [ug,kk,mn,bo]."""
    out: Path
    """Folder for report.json, report.md and predictions/."""
    src_field: str = "zh"
    """translation: source field."""
    tgt_field: str = "{lang}"
    """translation: reference field."""
    text_field: str = "{lang}.body"
    """summarization: document field (dotted reaches into objects)."""
    summary_field: str = "{lang}.headline"
    """summarization: reference field."""
    text_skip_lines: int = 0
    """summarization: leading non-empty lines of the document left out (1: a heading that repeats the title)."""
    question_field: str = "question"
    """mrc: question field."""
    context_field: str = "context"
    """mrc: context field."""
    answer_field: str = "answer"
    """mrc: answer field (a string, or a list of answers: e.g. answers)."""
    limit: int | None = None
    """Evaluate at most this many examples per language."""
    max_new_tokens: int = 64
    """Longest output in tokens."""
    max_source_length: int = 256
    """Longest input in tokens (MRC inputs are cut from the context)."""
    skip_empty: bool = False
    """Count and skip examples with an empty field instead of failing at file:line."""
    split: Split = "all"
    """all, or the train / test side of the file's stable hash split (as a fine-tuning file with the same split)."""
    test_share: float = 0.1
    """With split: the share of inputs on the test side."""
    split_field: str | None = None
    """With split: the field it hashes (default: the input; MRC: the context), as in the fine-tuning file."""

    def __post_init__(self):
        check_fields(
            self,
            only=own_fields(EvaluateArgs),
            positive=("limit", "max_source_length"),
            non_empty=("tgt_langs",),
            shares=("test_share",),
        )
        super().__post_init__()


@dataclass(kw_only=True)
class ServeLimits(CheckedPart):
    """What one request may ask for, and how many requests may be admitted at once."""

    max_queue: int = 8
    """Requests admitted at once (running + waiting); more get 503 at once."""
    max_chars: int = 5000
    """Longest text / question / passage accepted, in characters."""
    max_new_tokens: int = 256
    """Most tokens one request may generate."""
    max_beams: int = 8
    """Largest beam a request may ask for."""
    max_source_tokens: int = 256
    """Inputs are cut to this many tokens (reading comprehension cuts the passage only)."""

    def __post_init__(self):
        check_fields(self, only=own_fields(ServeLimits), positive=own_fields(ServeLimits))
        super().__post_init__()

    def limits(self) -> ServeLimits:
        """These limits alone (of ServeArgs: without the server's other settings)."""
        return ServeLimits(**{name: getattr(self, name) for name in own_fields(ServeLimits)})


@dataclass(kw_only=True)
class ServeArgs(ServeLimits, InferenceArgs):
    """Arguments of `swcm serve`."""

    model: Path
    """An XLM-SWCM model directory (e.g. the output of swcm finetune: runs/NAME/final)."""
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0 for every interface)."""
    port: int = 8000
    """Port (0-65535; 0: any free port, printed)."""

    def __post_init__(self):
        check_fields(self, only=own_fields(ServeArgs))
        if self.port > 65535:
            raise RecipeError(f"port: must be at most 65535, got {self.port}")
        super().__post_init__()


@dataclass(kw_only=True)
class RunFlags:
    """What a training command does with an output folder that holds a run already."""

    resume: bool = False
    """Continue the run in `out` from its newest good checkpoint (the recipe must match)."""
    overwrite: bool = False
    """Replace the run in `out` (what a run wrote; other files stay), once the new run has started."""


@dataclass(kw_only=True)
class QuickstartArgs:
    """Arguments of `swcm quickstart`."""

    out: Path = Path("swcm-quickstart")
    """Output folder: data/, encoder/ (pruned, cached), train/ (initial/, final/, log.jsonl), report.json, report.md."""
    encoder: str = DEFAULT_ENCODER
    """Encoder to build on (default: the packaged multilingual-e5-small, no download)."""
    langs: list[str] = field(default_factory=lambda: list(MINORITY_LANGS))
    """Target languages (paired with zh)."""
    decoder_init: DecoderInit = "shared"
    """'shared' (XLM-SWCM: decoder copied from the encoder) or 'random' (the paper's baseline)."""
    encoder_layers: int = 6
    """Keep the encoder's first N layers (fewer: faster on CPU; the decoder gets N custom layers)."""
    steps: int = 600
    """Training steps."""
    batch_size: int = 32
    """Sequences per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, linear schedule)."""
    encoder_lr: float | None = 1e-4
    """Peak learning rate of the pretrained encoder and embeddings (None: lr; 0: frozen). At the decoder's 1e-3 the
    encoder forgets what it knows and every input gets the same output."""
    warmup_ratio: float = 0.05
    """Share of steps spent warming up the learning rate."""
    dae_share: float = 0.2
    """Share of training examples that are denoising of a target-language name (the rest: translation)."""
    precision: Precision = "auto"
    """auto (bf16 where the hardware has native bf16, else fp32), bf16, fp16 (CUDA) or fp32."""
    max_eval: int = 40
    """Held-out pairs per language to evaluate (zh -> X)."""
    seed: int = 0
    """Random seed."""

    def __post_init__(self):
        positive = ("encoder_layers", "steps", "batch_size", "lr", "max_eval")
        check_fields(self, positive=positive, shares=("warmup_ratio", "dae_share"), non_empty=("langs",))
        unknown = [lang for lang in self.langs if lang not in MINORITY_LANGS]
        if unknown:
            raise RecipeError(f"langs: {unknown} unknown; choose from {', '.join(MINORITY_LANGS)}")
