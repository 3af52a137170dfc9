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
from pathlib import Path

from .arguments import (
    BuildCommand,
    ConvertReleaseArgs,
    EvaluateArgs,
    ExtendArgs,
    GenerateArgs,
    ModelOut,
    PruneArgs,
    QuickstartArgs,
    RunFlags,
    ServeArgs,
)
from .errors import SWCMError, TrainingInterrupted
from .recipe import RECIPES

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
        "generation:generate_command",
    ),
    "evaluate": (
        "generate for a task file and score it (JSON + markdown report)",
        EvaluateArgs,
        "evaluation:evaluate_command",
    ),
    "convert-release": (
        "convert the authors' released checkpoint",
        ConvertReleaseArgs,
        "release:convert_release_command",
    ),
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


def _command_parser(description: str, args_class: type, run_flags: bool = False):
    import jsonargparse

    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)  # the fields' docstrings are help
    parser = jsonargparse.ArgumentParser(description=description, exit_on_error=False)
    parser.add_argument("--config", action="config", help="YAML file of these arguments; later flags override it")
    parser.add_class_arguments(args_class, fail_untyped=True, sub_configs=True)
    if run_flags:  # --resume / --overwrite of a training run
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
