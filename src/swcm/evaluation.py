"""`swcm evaluate`: generate for a task file and score it; a JSON report and a markdown table, one row per
language x task, plus every prediction next to its source and reference."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import AutoTokenizer

from .checks import own_fields
from .folders import write_atomically
from .generation import generate_texts, prepare_for_inference
from .metrics import bleu, chrf_pp, exact_match, off_target_rate, rouge_l, token_f1
from .model_card import add_evaluation
from .modeling_swcm import load_model_folder
from .paths import check_input_file, check_model_dir, check_output_folder
from .specs import HeldoutFile, TaskSpec
from .tasks import TaskData, mrc_sources, read_task_file

if TYPE_CHECKING:
    from .arguments import EvaluateArgs


def _read(path: str | Path, spec: TaskSpec, limit: int | None, skip_empty: bool, data: TaskData | None) -> TaskData:
    """A task file's examples: `data` when the caller read them already (at most `limit`), else read now."""
    if data is None:
        return read_task_file(path, spec, limit=limit, skip_empty=skip_empty)
    return dataclasses.replace(data, examples=data.examples[:limit]) if limit is not None else data


def evaluate_file(
    model,
    tokenizer,
    path: str | Path,
    spec: TaskSpec,
    limit: int | None = None,
    skip_empty: bool = False,
    max_source_length: int = 256,
    data: TaskData | None = None,
    **generation,
) -> tuple[dict, list[dict]]:
    """(report row, predictions) for one task file (`data`: its examples, already read; `limit` still applies)."""
    data = _read(path, spec, limit, skip_empty, data)
    if spec.task == "mrc":  # the passage is cut to fit, never the question
        sources, cut = mrc_sources(tokenizer, data.examples, max_source_length)
    else:
        sources, cut = [e.source for e in data.examples], []
    outputs = generate_texts(
        model, tokenizer, sources, spec.tgt_lang, max_source_length=max_source_length, **generation
    )
    truncated = len(set(cut) | set(outputs.cut))
    references = [e.references[0] for e in data.examples]
    rouge = rouge_l(outputs, references)
    row = {
        "file": str(path),
        "split": spec.split,
        "task": spec.task,
        "lang": spec.tgt_lang,
        "n": len(outputs),
        "rougeL_f": rouge["sentence"].f,
        "rougeL_p": rouge["sentence"].p,
        "rougeL_r": rouge["sentence"].r,
        "rougeL_corpus_f": rouge["corpus"].f,
        "chrf++": chrf_pp(outputs, references),
        "off_target": off_target_rate(outputs, spec.tgt_lang),
        "empty": 100.0 * sum(not o.strip() for o in outputs) / len(outputs),
        # one output for every input is a failure that a mean score hides
        "distinct": 100.0 * len(set(outputs)) / len(set(sources)),
        "truncated_inputs": truncated,
        "skipped_empty": data.skipped_empty,
    }
    if spec.task == "summarization":
        row["inputs_with_reference"] = data.gives_away
    if spec.task == "translation":
        row["bleu"], row["bleu_signature"] = bleu(outputs, references, spec.tgt_lang)
    if spec.task == "mrc":
        answers = [e.references for e in data.examples]
        row["exact_match"] = exact_match(outputs, answers)
        row["f1"] = token_f1(outputs, answers)
    predictions = [
        {"where": e.where, "source": s, "references": e.references, "output": o}
        for e, s, o in zip(data.examples, sources, outputs, strict=True)
    ]
    return row, predictions


def report_markdown(rows: list[dict]) -> str:
    columns = [
        ("task", "task", "{}"),
        ("lang", "lang", "{}"),
        ("n", "n", "{}"),
        ("rougeL_f", "ROUGE-L F", "{:.2f}"),
        ("rougeL_p", "P", "{:.2f}"),
        ("rougeL_r", "R", "{:.2f}"),
        ("chrf++", "chrF++", "{:.2f}"),
        ("bleu", "BLEU", "{:.2f}"),
        ("exact_match", "EM", "{:.1f}"),
        ("f1", "F1", "{:.1f}"),
        ("off_target", "off-target %", "{:.1f}"),
        ("empty", "empty %", "{:.1f}"),
        ("distinct", "distinct %", "{:.0f}"),
        ("truncated_inputs", "truncated", "{}"),
    ]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "" for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    signatures = sorted({row["bleu_signature"] for row in rows if row.get("bleu_signature")})
    notes = [
        "",
        "ROUGE-L: mean of per-example scores with swcm's script tokenizer (corpus-level F in report.json).",
    ]
    notes += [f"BLEU signature: {s}" for s in signatures]
    return "\n".join(lines + notes) + "\n"


def write_report(rows: list[dict], predictions: dict[str, list[dict]], out_dir: str | Path, settings: dict) -> Path:
    out = Path(out_dir)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    for name, items in predictions.items():
        lines = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        write_atomically(out / "predictions" / f"{name}.jsonl", lines)
    write_atomically(
        out / "report.json", json.dumps({"settings": settings, "results": rows}, ensure_ascii=False, indent=1)
    )
    write_atomically(out / "report.md", report_markdown(rows))
    return out / "report.md"


def heldout_evaluator(files: list[HeldoutFile], max_length: int = 256, every: int = 1):
    """A `run_training` hook: every `every` steps and at the last, the teacher-forced loss per target token of each
    held-out file, `heldout_<name>`, and over all their tokens, `heldout`."""

    def evaluate(model, tokenizer, step: int, total_steps: int) -> dict:
        if step % every and step != total_steps:
            return {}
        row, total, count = {}, 0.0, 0
        for held in files:
            loss, tokens = heldout_loss(model, tokenizer, held.path, held.spec(), held.limit, max_length)
            row[f"heldout_{held.name}"] = loss
            total += loss * tokens
            count += tokens
        row["heldout"] = total / count
        return row

    return evaluate


def recipe_heldout_evaluator(recipe):
    """The hook a recipe's `heldout` files ask for (None without them)."""
    if not recipe.heldout:
        return None
    return heldout_evaluator(recipe.heldout, recipe.max_length, recipe.heldout_every)


def heldout_loss(
    model,
    tokenizer,
    path: str | Path,
    spec: TaskSpec,
    limit: int | None = None,
    max_length: int = 256,
    batch_size: int = 16,
    data: TaskData | None = None,
) -> tuple[float, int]:
    """(teacher-forced cross-entropy per target token, target tokens) of the references given the sources of a task
    file (`data`: its examples, already read). It separates models whose greedy outputs all still score ~0."""
    import torch

    from .tokenization import encode_targets

    data = _read(path, spec, limit, True, data)
    if spec.task == "mrc":
        sources, _ = mrc_sources(tokenizer, data.examples, max_length)
    else:
        sources = [e.source for e in data.examples]
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(sources), batch_size):
            chunk = slice(start, start + batch_size)
            batch = tokenizer(
                sources[chunk], return_tensors="pt", padding=True, truncation=True, max_length=max_length
            ).to(model.device)
            batch.pop("token_type_ids", None)
            references = [e.references[0] for e in data.examples[chunk]]
            labels = encode_targets(tokenizer, references, spec.tgt_lang, max_length=max_length).to(model.device)
            with torch.no_grad():
                mean = model(**batch, labels=labels).loss  # per target token of this batch
            tokens = int((labels != -100).sum())
            total += float(mean) * tokens
            count += tokens
    finally:
        model.train(was_training)
    return total / count, count


def evaluate_command(args: EvaluateArgs) -> str:
    """`swcm evaluate`: every language's file and the report folder checked first, then each language generated,
    scored and written as soon as it is done; the report's markdown."""
    config = check_model_dir(args.model)
    for lang in args.tgt_langs:
        config.lang_tag_id(lang)
    # every language's file and the report folder are checked before anything is generated
    jobs = []
    for lang in args.tgt_langs:
        fill = {k: v.replace("{lang}", lang) for k, v in vars(args).items() if isinstance(v, str)}
        check_input_file(Path(fill["data"]), "--data" if fill["data"] == args.data else f"--data (for {lang})")
        fields = {name: fill[name] for name in own_fields(TaskSpec) if name.endswith("_field") and name in fill}
        spec = TaskSpec(
            task=args.task,
            tgt_lang=lang,
            **fields,
            text_skip_lines=args.text_skip_lines,
            split=args.split,
            test_share=args.test_share,
        )
        jobs.append((lang, fill["data"], spec))
    check_output_folder(args.out)
    rows_per_step = args.batch_size * args.num_beams
    model, how = prepare_for_inference(load_model_folder(args.model), args.precision, args.quantize, rows_per_step)
    print(f"swcm evaluate: {how}", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    settings["inference"] = how  # what auto chose on this machine: scores from int8 and bf16 differ a little
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
            **args.decoding(),
        )
        rows.append(row)
        predictions[f"{args.task}.{lang}"] = items
        report = write_report(rows, predictions, args.out, settings)  # each language kept as soon as it is done
    if args.model.is_dir() and add_evaluation(args.model, rows, args.out / "report.json"):
        print(f"swcm evaluate: scores added to the model card {args.model / 'README.md'}", file=sys.stderr)
    return report.read_text(encoding="utf-8")
