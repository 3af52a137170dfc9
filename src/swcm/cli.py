"""Command line: build, vocab, adapt, pretrain, finetune, generate, evaluate, convert-release, serve, quickstart.

Built on jsonargparse, as litgpt is: each command's arguments are one dataclass (or a recipe), composed of parts
whose fields carry one-line docstrings; every command takes `--config FILE.yaml`, nested fields as `--noise.mask_ratio`
and lists as `--langs [ug,bo]`. This module imports no torch: each command imports what it needs when it runs.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checks import CheckedPart, check_fields, own_fields
from .choices import Precision, Quantize, Split, Task
from .errors import RecipeError, SWCMError
from .languages import scripts_of_language
from .quickstart import QuickstartArgs
from .recipe import RECIPES, BuildArgs


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
    quantize: Quantize = "none"
    """CPU decoding: none, int8 (decoder and LM head in dynamic int8, fastest) or fp16 (their weights in fp16,
    near-exact); the rest fp32."""

    def __post_init__(self):
        check_fields(self, only=own_fields(InferenceArgs))
        super().__post_init__()


@dataclass(kw_only=True)
class DecodingArgs(CheckedPart):
    """How outputs are searched for (generation.generate_texts takes these by name)."""

    num_beams: int = 5
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
class ServeArgs(InferenceArgs):
    """Arguments of `swcm serve`."""

    model: Path
    """An XLM-SWCM model directory (e.g. the output of swcm finetune: runs/NAME/final)."""
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0 for every interface)."""
    port: int = 8000
    """Port (0-65535)."""
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
        positive = ("max_queue", "max_chars", "max_new_tokens", "max_beams", "max_source_tokens")
        check_fields(self, only=own_fields(ServeArgs), positive=positive)
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


# name -> (what it does, its arguments, the "module:function" that runs them and returns what to print)
COMMANDS: dict[str, tuple[str, type, str]] = {
    "build": ("build an XLM-SWCM model from a pretrained encoder", BuildCommand, "build:build_command"),
    "adapt": (
        "continued masked-LM pretraining of an encoder (the CINO recipe) from a recipe",
        RECIPES["adapt"],
        "adapt:adapt",
    ),
    "pretrain": ("DAE + MT pretraining from a recipe", RECIPES["pretrain"], "training:pretrain"),
    "finetune": (
        "fine-tune on translation / summarization / reading-comprehension files",
        RECIPES["finetune"],
        "training:finetune",
    ),
    "generate": (
        "generate from text lines (file or stdin) into a target language",
        GenerateArgs,
        "generation:generate_file",
    ),
    "evaluate": (
        "generate for a task file and score it (JSON + markdown report)",
        EvaluateArgs,
        "evaluation:evaluate_command",
    ),
    "convert-release": ("convert the authors' released checkpoint", ConvertReleaseArgs, "release:convert_command"),
    "serve": (
        "HTTP API (POST /generate, GET /health, GET /info) and a demo page at /",
        ServeArgs,
        "serving:serve_command",
    ),
    "quickstart": ("offline end-to-end run: build, train, evaluate", QuickstartArgs, "quickstart:quickstart_command"),
}
VOCAB_COMMANDS: dict[str, tuple[str, type, str]] = {
    "prune": ("keep only the pieces a corpus uses", PruneArgs, "vocab:prune_command"),
    "extend": ("add pieces for an uncovered script", ExtendArgs, "vocab:extend_command"),
}


def _command_parser(description: str, args_class: type, training: bool = False):
    import jsonargparse

    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)  # the fields' docstrings are help
    parser = jsonargparse.ArgumentParser(description=description, exit_on_error=False)
    parser.add_argument("--config", action="config", help="YAML file of these arguments; later flags override it")
    parser.add_class_arguments(args_class, fail_untyped=True, sub_configs=True)
    if training:
        parser.add_class_arguments(RunFlags)
    for action in parser._actions:  # booleans as flags: `--resume` means `--resume true`
        if getattr(action, "_typehint", None) is bool:
            action.nargs, action.const = "?", True
    return parser


@functools.cache
def build_parser():
    """The `swcm` parser: one subcommand per entry of COMMANDS, `vocab` with its own two (built once a process)."""
    import jsonargparse

    parser = jsonargparse.ArgumentParser(prog="swcm", description=__doc__.split("\n\n")[0], exit_on_error=False)
    commands = parser.add_subcommands(dest="command", required=True)
    for name, (description, args_class, _) in COMMANDS.items():
        commands.add_subcommand(name, _command_parser(description, args_class, name in RECIPES), help=description)
    vocab = jsonargparse.ArgumentParser(description="prune or extend a vocabulary", exit_on_error=False)
    commands.add_subcommand("vocab", vocab, help="prune or extend a vocabulary")
    vocab_commands = vocab.add_subcommands(dest="command", required=True)
    for name, (description, args_class, _) in VOCAB_COMMANDS.items():
        vocab_commands.add_subcommand(name, _command_parser(description, args_class), help=description)
    return parser


def parse(argv: Sequence[str] | None = None) -> tuple[str, object, RunFlags | None]:
    """(command name, its arguments as their dataclass, the training flags of a training command) from the command
    line."""
    from jsonargparse import ArgumentParser

    parser: ArgumentParser = build_parser()
    config = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    name, config = config.command, config[config.command]
    if name == "vocab":
        name, config = f"vocab {config.command}", config[config.command]
    values = _values(config)
    flags = RunFlags(**{k: values.pop(k) for k in ("resume", "overwrite") if k in values}) if name in RECIPES else None

    return name, _entry(name)[1](**values), flags


def _entry(name: str) -> tuple[str, type, str]:
    """The COMMANDS entry of a command name (`vocab prune`: VOCAB_COMMANDS')."""
    return VOCAB_COMMANDS[name.removeprefix("vocab ")] if name.startswith("vocab ") else COMMANDS[name]


def parse_dataclass(args_class: type, argv: Sequence[str] | None = None, description: str | None = None):
    """`args_class` from a command line, with the parser, help and one-line errors of swcm's commands (for the
    benchmark programs)."""
    from jsonargparse import ArgumentError

    parser = _command_parser(description or args_class.__doc__, args_class)
    try:
        config = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        return args_class(**_values(config))
    except ArgumentError as err:
        raise SystemExit(f"error: {argument_error(err)}") from None
    except SWCMError as err:
        raise SystemExit(f"error: {err}") from None


def _values(config) -> dict:
    """A parsed namespace as plain values: the dataclasses build and check their parts themselves (one-line
    RecipeErrors naming the field)."""
    return {k: v for k, v in config.as_dict().items() if k not in ("config", "__path__")}


def run_command(name: str, args, flags: RunFlags | None) -> int:
    """Runs one parsed command with the function COMMANDS names for it (imported only now: the heavy imports are
    the command's own); prints what it returns, a training summary as JSON."""
    module, function = _entry(name)[2].split(":")
    runner = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    if isinstance(args, ModelOut):  # a used folder refused before any model work; --overwrite only over a model
        from .folders import replacing_model
        from .paths import check_model_out

        check_model_out(Path(args.out), args.overwrite)
        with replacing_model(Path(args.out), args.overwrite):
            result = runner(args)
    elif name in RECIPES:
        result = runner(args, resume=flags.resume, overwrite=flags.overwrite)
    else:
        result = runner(args)
    if result is not None:
        print(json.dumps(result, indent=1) if isinstance(result, dict) else result)
    return 0


def argument_error(err: Exception) -> str:
    """jsonargparse's message on one line, in the words of the fields: `task: expected one of a, b; got 'c'`."""
    text = " ".join(str(err).split())
    unknown = re.match(r"Subcommand '[^']+' does not accept option '([^']+)'", text)
    if unknown:
        return f"{unknown.group(1)}: unknown field (see --help)"
    required = re.match(r"the following arguments are required: (.*)", text)
    if required:
        names = ", ".join(name.split(".", 1)[-1] for name in required.group(1).split(", "))
        return f"missing {names}"
    key = re.match(r'Parser key "([^"]+)": (.*)', text)
    if not key:
        return text
    name, text = key.groups()
    given = re.search(r"(?:Got|Given) value: (.*?)(?: Subclass types expect| Given value type|$)", text)
    value = f"; got {given.group(1)!r}" if given else ""
    choices = re.match(r"Expected a typing\.Literal\[(.*?)\]", text)
    field = re.search(r"Option '([^']+)' is not accepted", text)
    kinds = [k if k != "NoneType" else "null" for k in re.findall(r"Expected a <class '([^']+)'>", text)]
    if choices:
        return f"{name}: expected one of {choices.group(1).replace(chr(39), '')}{value}"
    if field:
        return f"{name}: unknown field {field.group(1)!r} (see --help)"
    if "Not a valid subclass of" in text:
        kind = re.search(r"Not a valid subclass of (\w+)", text).group(1)
        return f"{name}: expected a mapping of {kind} fields{value}"
    if kinds:
        kinds = ["a list (on the command line: [a,b])" if k == "list" else k for k in dict.fromkeys(kinds)]
        kinds.sort(key=lambda k: k == "null")  # the field's own type first, whatever order jsonargparse tried them in
        return f"{name}: expected {' or '.join(kinds)}{value}"
    return f"{name}: {text}"


def _command_name(argv: Sequence[str]) -> str:
    """The command named on the command line (`vocab prune` for the vocab ones), for error messages."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if words and words[0] == "vocab" and len(words) > 1 and words[1] in VOCAB_COMMANDS:
        return " ".join(words)
    return words[0] if words and words[0] in COMMANDS else ""


def main(argv: Sequence[str] | None = None) -> int:
    """`swcm ...`: 0 on success; 2 and one line on stderr for a mistake in what was asked (SWCMError or a bad
    argument); 128 + N when signal N stopped a run. Anything else is a bug and shows its traceback."""
    from jsonargparse import ArgumentError

    argv = list(sys.argv[1:] if argv is None else argv)
    prefix = " ".join(filter(None, ["swcm", _command_name(argv)]))
    try:
        name, args, flags = parse(argv)
    except ArgumentError as err:
        print(f"{prefix}: error: {argument_error(err)}", file=sys.stderr)
        return 2
    except SWCMError as err:
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return 2
    from .training import TrainingInterrupted

    try:
        return run_command(name, args, flags)
    except TrainingInterrupted as err:
        print(f"swcm {name}: {err}", file=sys.stderr)
        return err.exit_code
    except SWCMError as err:
        print(f"swcm {name}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
