"""Command line: build, vocab, adapt, pretrain, finetune, generate, evaluate, convert-release, serve, quickstart."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from .checks import RecipeError, check_fields
from .configuration_swcm import DECODER_INITS, DEFAULT_GATE_INIT, LM_HEAD_INITS, NORMAL_INITS, layout_string
from .quickstart import QuickstartArgs, run_quickstart
from .tokenization import DEFAULT_LANG_TAGS


@dataclass
class BuildArgs:
    """Arguments of `swcm build`."""

    encoder: str
    """Pretrained encoder: a local directory or a hub id (XLM-R / BERT family)."""
    out: Path
    """Directory to write the model and tokenizer to."""
    normal_every: int = 3
    """Insert one normal layer after every N custom layers (0: none, the BASE-A ablation)."""
    decoder_init: str = "shared"
    """'shared': custom layers copy the encoder's layers (XLM-SWCM); 'random': nothing copied."""
    normal_init: str = "random"
    """'random', or 'copy-previous': each normal layer copies the custom layer before it (BASE-B)."""
    tie_lm_head: bool = False
    """Tie the LM head to the word embeddings (the paper unties them)."""
    lm_head_init: str = "embeddings"
    """LM head start: 'embeddings', 'mlm-head' (the encoder's masked-LM head, e.g. after swcm adapt) or 'random'."""
    decoder_gate_init: float | None = DEFAULT_GATE_INIT
    """Start of the learnable gate on every shared decoder sublayer (0: identity; none: the paper's ungated init)."""
    lang_tags: str = ",".join(DEFAULT_LANG_TAGS)
    """Comma-separated language codes whose tags (<bo> ...) are added to the vocabulary."""


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, choices: dict[str, Sequence[str]]) -> None:
    docs = _field_docs(cls)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        required = f.default is MISSING and f.default_factory is MISSING
        kind = str(f.type).replace(" | None", "")
        if kind == "bool":
            parser.add_argument(flag, action="store_true", help=docs.get(f.name))
            continue
        default = None if required else (f.default_factory() if f.default_factory is not MISSING else f.default)
        parser.add_argument(
            flag,
            type=_optional_float if str(f.type) == "float | None" else _ARG_TYPES.get(kind, str),
            nargs="+" if kind.startswith("list[") else None,
            required=required,
            default=default,
            choices=choices.get(f.name),
            help=docs.get(f.name),
        )


_ARG_TYPES = {"int": int, "float": float, "Path": Path, "list[str]": str, "list[int]": int}


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def _field_docs(cls) -> dict[str, str]:
    """The one-line docstrings written under each dataclass field."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = nxt.value.value
    return docs


@dataclass
class PruneArgs:
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


@dataclass
class ExtendArgs:
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


@dataclass
class ConvertReleaseArgs:
    """Arguments of `swcm convert-release`."""

    checkpoint: Path
    """The authors' xlm-swcm.bin (a torch state_dict; read with weights_only=True)."""
    encoder: str
    """The encoder the release was built on, for its config and tokenizer (hfl/cino-base-v2)."""
    out: Path
    """Directory for the converted model and tokenizer."""


@dataclass
class GenerateArgs:
    """Arguments of `swcm generate`."""

    model: Path
    """An XLM-SWCM model directory (with its tokenizer)."""
    tgt_lang: str
    """Target language code; its tag starts every output."""
    input: str = "-"
    """Text file, one input per line, or - for standard input."""
    output: str = "-"
    """File to write, one output per line, or - for standard output."""
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
    skip_empty: bool = False
    """Answer empty input lines with an empty line (counted) instead of failing."""
    precision: str = "auto"
    """auto (bf16 weights where the device has native bf16, else fp32), bf16, fp16 (CUDA only) or fp32."""
    quantize: str = "none"
    """none, or int8: the decoder and LM head in dynamic int8 for CPU decoding (the rest fp32)."""


@dataclass
class EvaluateArgs:
    """Arguments of `swcm evaluate`. Paths and field names may hold {lang}, filled with each target language."""

    model: Path
    """An XLM-SWCM model directory."""
    data: str
    """JSON Lines file, e.g. ../shared/data/qa/cmilbench.{lang}.jsonl."""
    task: str
    """translation, summarization or mrc."""
    tgt_langs: str
    """Comma-separated target languages, e.g. ug,kk,mn,bo."""
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
    question_field: str = "question"
    """mrc: question field."""
    context_field: str = "context"
    """mrc: context field."""
    answer_field: str = "answer"
    """mrc: answer field (a string, or a list of answers: e.g. answers)."""
    limit: int | None = None
    """Evaluate at most this many examples per language."""
    num_beams: int = 5
    """Beam size."""
    max_new_tokens: int = 64
    """Longest output in tokens."""
    max_source_length: int = 256
    """Longest input in tokens (MRC inputs are cut from the context)."""
    batch_size: int = 16
    """Inputs per batch."""
    length_penalty: float = 1.0
    """Beam length penalty."""
    no_repeat_ngram_size: int = 0
    """Forbid repeating n-grams of this size (0: off)."""
    constrain_script: bool = False
    """Script-constrained decoding."""
    skip_empty: bool = False
    """Count and skip examples with an empty field instead of failing at file:line."""
    precision: str = "auto"
    """auto (bf16 weights where the device has native bf16, else fp32), bf16, fp16 (CUDA only) or fp32."""
    quantize: str = "none"
    """none, or int8: the decoder and LM head in dynamic int8 for CPU decoding (the rest fp32)."""


@dataclass
class ServeArgs:
    """Arguments of `swcm serve`."""

    model: Path
    """An XLM-SWCM model directory (e.g. the output of swcm finetune: runs/NAME/final)."""
    host: str = "127.0.0.1"
    """Interface to listen on (0.0.0.0 for every interface)."""
    port: int = 8000
    """Port."""
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
    precision: str = "auto"
    """auto (bf16 weights where the device has native bf16, else fp32), bf16, fp16 (CUDA only) or fp32."""
    quantize: str = "none"
    """none, or int8: the decoder and LM head in dynamic int8 for CPU decoding (the rest fp32)."""


# precision.PRECISIONS and generation.QUANTIZE_MODES, spelled out so that the parser does not import torch
INFERENCE_CHOICES = {"precision": ("auto", "bf16", "fp16", "fp32"), "quantize": ("none", "int8")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swcm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build an XLM-SWCM model from a pretrained encoder")
    add_dataclass_arguments(
        build, BuildArgs, {"decoder_init": DECODER_INITS, "normal_init": NORMAL_INITS, "lm_head_init": LM_HEAD_INITS}
    )
    vocab = sub.add_parser("vocab", help="prune or extend a vocabulary").add_subparsers(
        dest="vocab_command", required=True
    )
    add_dataclass_arguments(vocab.add_parser("prune", help="keep only the pieces a corpus uses"), PruneArgs, {})
    add_dataclass_arguments(vocab.add_parser("extend", help="add pieces for an uncovered script"), ExtendArgs, {})
    generate = sub.add_parser("generate", help="generate from text lines (file or stdin) into a target language")
    add_dataclass_arguments(generate, GenerateArgs, INFERENCE_CHOICES)
    evaluate = sub.add_parser("evaluate", help="generate for a task file and score it (JSON + markdown report)")
    add_dataclass_arguments(
        evaluate, EvaluateArgs, {"task": ("translation", "summarization", "mrc"), **INFERENCE_CHOICES}
    )
    convert = sub.add_parser("convert-release", help="convert the authors' released checkpoint")
    add_dataclass_arguments(convert, ConvertReleaseArgs, {})
    pretrain = sub.add_parser(
        "pretrain",
        help="DAE + MT pretraining from a recipe",
        description="Any recipe field can follow as --name value (e.g. --max-steps 100 --noise.mask_ratio 0.3).",
    )
    pretrain.add_argument("--config", type=Path, help="recipe YAML (see recipes/)")
    pretrain.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint")
    pretrain.add_argument("--overwrite", action="store_true", help="delete the run already in out and start again")
    adapt = sub.add_parser(
        "adapt",
        help="continued masked-LM pretraining of an encoder (the CINO recipe) from a recipe",
        description="Any recipe field can follow as --name value (e.g. --max-steps 100 --masking.whole_word true).",
    )
    adapt.add_argument("--config", type=Path, required=True, help="recipe YAML (see recipes/adapt-*.yaml)")
    adapt.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint")
    adapt.add_argument("--overwrite", action="store_true", help="delete the run already in out and start again")
    finetune = sub.add_parser(
        "finetune",
        help="fine-tune on translation / summarization / reading-comprehension files from a recipe",
        description="Any scalar recipe field can follow as --name value (e.g. --max-steps 100 --lr 5e-5).",
    )
    finetune.add_argument("--config", type=Path, required=True, help="recipe YAML (see recipes/finetune-*.yaml)")
    finetune.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint")
    finetune.add_argument("--overwrite", action="store_true", help="delete the run already in out and start again")
    serve = sub.add_parser("serve", help="HTTP API (POST /generate, GET /health, GET /info) and a demo page at /")
    add_dataclass_arguments(serve, ServeArgs, INFERENCE_CHOICES)
    quickstart = sub.add_parser("quickstart", help="offline end-to-end run: build, train, evaluate, generate")
    add_dataclass_arguments(
        quickstart, QuickstartArgs, {"precision": ("auto", "bf16", "fp32"), "decoder_init": DECODER_INITS}
    )
    return parser


def report_table(report: dict) -> str:
    """A two-column before / after table for keys named *_before / *_after, then the other entries."""
    rows, other = [], []
    for key, value in report.items():
        if key.endswith("_before"):
            name = key[: -len("_before")]
            rows.append((name, report[key], report[name + "_after"]))
        elif not key.endswith("_after"):
            other.append(f"{key}: {value}")

    def fmt(v):
        return (
            f"{v:.4%}" if isinstance(v, float) and "rate" in name else f"{v:,.4f}" if isinstance(v, float) else f"{v:,}"
        )

    lines = ["| | before | after |", "|---|---:|---:|"]
    for name, before, after in rows:
        lines.append(f"| {name} | {fmt(before)} | {fmt(after)} |")
    return "\n".join(lines + other)


# command-line numbers that must be > 0, and the few that may be negative (every other one must be >= 0)
POSITIVE_ARGS = (
    "num_beams",
    "max_new_tokens",
    "batch_size",
    "max_source_length",
    "limit",
    "max_queue",
    "max_chars",
    "max_beams",
    "max_source_tokens",
    "steps",
    "encoder_layers",
    "max_eval",
    "lr",
    "size",
    "min_count",
)
SIGNED_ARGS = ("length_penalty",)  # < 1 favours shorter outputs, and HF takes negative values


def dataclass_args(cls, ns):
    """The parsed namespace as `cls`, every value checked against its type and range (one line naming the flag)."""
    args = cls(**{f.name: getattr(ns, f.name) for f in fields(cls)})
    try:
        check_fields(args, positive=POSITIVE_ARGS, signed=SIGNED_ARGS)
    except RecipeError as err:
        name, _, rest = str(err).partition(":")
        raise RecipeError(f"--{name.replace('_', '-')}:{rest}") from None
    return args


def run_build(args: BuildArgs) -> str:
    from .diagnostics import decoder_start
    from .modeling_swcm import SWCMForConditionalGeneration
    from .weight_sharing import copy_previous_plan, weight_sharing_plan

    model, tokenizer = SWCMForConditionalGeneration.from_encoder(
        args.encoder,
        normal_every=args.normal_every,
        decoder_init=args.decoder_init,
        normal_init=args.normal_init,
        tie_lm_head=args.tie_lm_head,
        lm_head_init=args.lm_head_init,
        decoder_gate_init=args.decoder_gate_init,
        lang_tags=[c for c in args.lang_tags.split(",") if c.strip()],
        return_tokenizer=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    counts = model.parameter_counts()
    config = model.config
    start = decoder_start(model, tokenizer)
    summary = {
        "encoder": args.encoder,
        "layout": layout_string(config.decoder_layer_types),
        "parameters": counts,
        "copied_from_encoder": len(weight_sharing_plan(model)),
        "copied_from_previous_layer": len(copy_previous_plan(model)),
        "decoder_init": config.decoder_init,
        "lm_head_init": config.lm_head_init,
        "decoder_gate_init": config.decoder_gate_init,
        "decoder_start": start.as_dict(),
    }
    (args.out / "build.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    lines = [
        f"built XLM-SWCM from {args.encoder} -> {args.out}",
        f"decoder layout ({len(config.decoder_layer_types)} layers): {layout_string(config.decoder_layer_types)}",
        f"parameters: encoder {counts['encoder']:,} | decoder {counts['decoder']:,} | "
        f"lm_head {counts['lm_head']:,}{' (tied)' if config.tie_word_embeddings else ''} | total {counts['total']:,}",
        f"copied from the encoder: {len(weight_sharing_plan(model))} tensors (decoder_init={config.decoder_init}); "
        f"copied from the previous layer: {len(copy_previous_plan(model))} tensors (normal_init={config.normal_init})",
        f"language tags: {' '.join(f'<{c}>={i}' for c, i in config.lang_tag_ids.items())}; vocab {config.vocab_size:,}",
        start.describe(),
        f"summary: {args.out / 'build.json'}",
    ]
    return "\n".join(lines)


DECODING_OPTIONS = (
    "batch_size",
    "num_beams",
    "max_new_tokens",
    "length_penalty",
    "no_repeat_ngram_size",
    "constrain_script",
)


def _decoding(args) -> dict:
    """The decoding options that `generate` and `evaluate` share, as generation.generate_texts takes them."""
    return {name: getattr(args, name) for name in DECODING_OPTIONS}


def check_model_dir(model: Path, flag: str = "--model") -> None:
    """A local model folder must hold config.json; anything that is not a local path is left to the hub."""
    looks_local = model.exists() or model.is_absolute() or str(model).startswith((".", "~")) or len(model.parts) > 2
    if looks_local and not (model / "config.json").is_file():
        raise ValueError(f"{flag} {model}: not a model folder (no config.json)")


def check_output_path(path: Path, flag: str) -> None:
    """Fail before any model work when an output cannot be written."""
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: folder {folder} does not exist")
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder, expected a file")


def run_evaluate(args: EvaluateArgs) -> str:
    from transformers import AutoConfig, AutoTokenizer

    from .encoders import load_model_folder
    from .evaluation import evaluate_file, write_report
    from .generation import prepare_for_inference
    from .tasks import TaskSpec

    langs = [lang.strip() for lang in args.tgt_langs.split(",") if lang.strip()]
    check_model_dir(args.model)
    tags = AutoConfig.from_pretrained(args.model).lang_tag_ids
    missing = [lang for lang in langs if lang not in tags]
    if missing:
        raise ValueError(f"model has no language tag for {missing}; its tags: {sorted(tags)}")
    # every language's file and the report folder are checked before anything is generated
    jobs = []
    for lang in langs:
        fill = {k: v.replace("{lang}", lang) for k, v in vars(args).items() if isinstance(v, str)}
        if not Path(fill["data"]).is_file():
            raise ValueError(f"--data {args.data}: {fill['data']} (for {lang}) not found")
        spec = TaskSpec(
            task=args.task,
            tgt_lang=lang,
            src_field=fill["src_field"],
            tgt_field=fill["tgt_field"],
            text_field=fill["text_field"],
            summary_field=fill["summary_field"],
            question_field=fill["question_field"],
            context_field=fill["context_field"],
            answer_field=fill["answer_field"],
        )
        jobs.append((lang, fill["data"], spec))
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: is a file, expected a folder")
    model, how = prepare_for_inference(load_model_folder(args.model), args.precision, args.quantize)
    print(f"swcm evaluate: {how}", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    rows, predictions = [], {}
    for lang, data, spec in jobs:
        row, items = evaluate_file(
            model,
            tokenizer,
            data,
            spec,
            limit=args.limit,
            skip_empty=args.skip_empty,
            max_source_length=args.max_source_length,
            **_decoding(args),
        )
        rows.append(row)
        predictions[f"{args.task}.{lang}"] = items
        report = write_report(rows, predictions, args.out, settings)  # each language kept as soon as it is done
    return report.read_text(encoding="utf-8")


def run_generate(args: GenerateArgs) -> None:
    from transformers import AutoConfig, AutoTokenizer

    from .data import text_lines
    from .encoders import load_model_folder
    from .generation import generate_texts, prepare_for_inference, source_token_limit
    from .tokenization import lang_code

    check_model_dir(args.model)
    if args.output != "-":
        check_output_path(Path(args.output), "--output")
    if args.input != "-" and not Path(args.input).is_file():
        raise ValueError(f"--input {args.input}: no such file")
    tags = AutoConfig.from_pretrained(args.model).lang_tag_ids  # unknown language: fail before reading anything
    if lang_code(args.tgt_lang) not in tags:
        raise ValueError(f"model has no language tag <{lang_code(args.tgt_lang)}>; its tags: {sorted(tags)}")
    name = "<stdin>" if args.input == "-" else args.input
    source = sys.stdin if args.input == "-" else (line for _, line in text_lines(args.input))
    lines = [line.rstrip("\n") for line in source]
    empty = [n for n, line in enumerate(lines, 1) if not line.strip()]
    if empty and not args.skip_empty:
        raise ValueError(f"{name}:{empty[0]}: empty input line ({len(empty)} in all; --skip-empty answers them empty)")
    model, how = prepare_for_inference(load_model_folder(args.model), args.precision, args.quantize)
    print(f"swcm generate: {how}", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    keep = [i for i, line in enumerate(lines) if line.strip()]
    limit = source_token_limit(model, tokenizer)
    lengths = [len(ids) for ids in tokenizer([lines[i] for i in keep], verbose=False)["input_ids"]]
    cut = [keep[k] + 1 for k, n in enumerate(lengths) if n > limit]
    if cut:
        print(
            f"warning: {len(cut)} input line(s) longer than the model's {limit} tokens were cut to it "
            f"(first: {name}:{cut[0]})",
            file=sys.stderr,
        )
    outputs = generate_texts(
        model,
        tokenizer,
        [lines[i] for i in keep],
        args.tgt_lang,
        **_decoding(args),
    )
    result = [""] * len(lines)
    for i, text in zip(keep, outputs, strict=True):
        result[i] = text.replace("\n", " ")
    target = nullcontext(sys.stdout) if args.output == "-" else open(args.output, "w", encoding="utf-8")
    with target as out:
        out.write("".join(line + "\n" for line in result))
    if empty:
        print(f"warning: {len(empty)} empty input line(s) answered with empty output", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from .data import DataError
    from .encoders import EncoderError
    from .release import convert_release
    from .training import TrainingInterrupted
    from .vocab import CorpusError, extend_vocab, prune_vocab

    parser = build_parser()
    ns, extra = parser.parse_known_args(argv)
    if extra and ns.command not in ("pretrain", "finetune", "adapt"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = " ".join(filter(None, [ns.command, getattr(ns, "vocab_command", None)]))
    try:
        if ns.command == "build":
            print(run_build(dataclass_args(BuildArgs, ns)))
        elif command == "vocab prune":
            a = dataclass_args(PruneArgs, ns)
            print(report_table(prune_vocab(a.model, a.corpus, a.out, min_count=a.min_count, fields=a.fields)))
        elif command == "vocab extend":
            a = dataclass_args(ExtendArgs, ns)
            report = extend_vocab(a.model, a.corpus, a.lang, a.size, a.out, a.heldout_fraction, a.fields)
            print(report_table(report))
        elif command == "generate":
            run_generate(dataclass_args(GenerateArgs, ns))
        elif command == "evaluate":
            print(run_evaluate(dataclass_args(EvaluateArgs, ns)))
        elif command == "convert-release":
            a = dataclass_args(ConvertReleaseArgs, ns)
            _, _, report = convert_release(a.checkpoint, a.encoder, a.out)
            print(f"converted {a.checkpoint} -> {a.out} (release_compat=True)")
            print(f"decoder layout: {report['layout']}")
            print(f"checkpoint keys: {report['checkpoint_keys']}; model tensors: {report['model_tensors']}")
            print(f"dropped (checked duplicates, unused pooler, buffers): {len(report['dropped'])}")
            print(f"unmapped keys: {len(report['unmapped'])}")
        elif command == "pretrain":
            from .recipe import load_recipe
            from .training import pretrain

            summary = pretrain(load_recipe(ns.config, extra), resume=ns.resume, overwrite=ns.overwrite)
            print(json.dumps(summary))
        elif command == "adapt":
            from .adapt import AdaptRecipe, adapt
            from .recipe import load_recipe

            summary = adapt(load_recipe(ns.config, extra, AdaptRecipe), resume=ns.resume, overwrite=ns.overwrite)
            print(json.dumps(summary, indent=1))
        elif command == "finetune":
            from .recipe import FinetuneRecipe, load_recipe
            from .training import finetune

            recipe = load_recipe(ns.config, extra, FinetuneRecipe)
            print(json.dumps(finetune(recipe, resume=ns.resume, overwrite=ns.overwrite)))
        elif command == "serve":
            from .serving import ServeLimits, serve

            a = dataclass_args(ServeArgs, ns)
            limits = ServeLimits(a.max_queue, a.max_chars, a.max_new_tokens, a.max_beams, a.max_source_tokens)
            serve(a.model, a.host, a.port, limits, a.precision, a.quantize)
        elif command == "quickstart":
            args = dataclass_args(QuickstartArgs, ns)
            run_quickstart(args)
            print((args.out / "report.md").read_text(encoding="utf-8"))
            print(f"written to {args.out}/ (model/, encoder/, report.json, report.md)")
    except TrainingInterrupted as err:
        print(f"swcm {command}: {err}", file=sys.stderr)
        return err.exit_code
    except (EncoderError, CorpusError, DataError, ValueError, OSError) as err:
        print(f"swcm {command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
