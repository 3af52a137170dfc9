"""Downstream tasks as (source, reference) pairs read from JSON Lines files with configurable fields.

- translation: `src_field` -> `tgt_field` (one parallel file serves both directions by swapping the fields);
- summarization / headline generation: `text_field` -> `summary_field`;
- reading comprehension (mrc): `question_field` + `context_field` -> `answer_field` (a string or a list of
  acceptable answers); a long input is cut from the context's end, never the question, and counted.
Fields may be dotted to reach into objects (`zh.body` in the headline files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .data import DataError, json_object

TASK_NAMES = ("translation", "summarization", "mrc")


@dataclass
class TaskSpec:
    """Which task a file holds and where its fields are."""

    task: str
    """translation, summarization or mrc."""
    tgt_lang: str
    """Language of the references (and of the outputs to generate)."""
    src_field: str | None = None
    """translation: source text field."""
    tgt_field: str | None = None
    """translation: reference field."""
    text_field: str = "text"
    """summarization: document field."""
    summary_field: str = "summary"
    """summarization: reference field."""
    question_field: str = "question"
    """mrc: question field."""
    context_field: str = "context"
    """mrc: context field."""
    answer_field: str = "answer"
    """mrc: reference answer (string) or answers (list) field."""

    def __post_init__(self):
        if self.task not in TASK_NAMES:
            raise DataError(f"task must be one of {TASK_NAMES}, got {self.task!r}")
        if self.task == "translation" and not (self.src_field and self.tgt_field):
            raise DataError("translation needs src_field and tgt_field (e.g. zh and ug)")

    def fields(self) -> list[str]:
        return {
            "translation": [self.src_field, self.tgt_field],
            "summarization": [self.text_field, self.summary_field],
            "mrc": [self.question_field, self.context_field, self.answer_field],
        }[self.task]


@dataclass
class TaskExample:
    source: str
    references: list[str]
    where: str
    question: str | None = None
    context: str | None = None


@dataclass
class TaskData:
    examples: list[TaskExample]
    skipped_empty: int = 0
    notes: list[str] = field(default_factory=list)


def _get(row: dict, dotted: str, path: Path, line_no: int):
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{path}:{line_no}: missing field {dotted!r}")
        value = value[part]
    return value


def read_task_file(path: str | Path, spec: TaskSpec, limit: int | None = None, skip_empty: bool = False) -> TaskData:
    """Examples of one file; a missing field or a non-string value is an error at file:line, an empty source or
    reference an error too unless `skip_empty` (then counted)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = TaskData(examples=[])
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json_object(path, line_no, line)
            values = [_get(row, f, path, line_no) for f in spec.fields()]
            *inputs, reference = values
            references = reference if isinstance(reference, list) else [reference]
            if not all(isinstance(v, str) for v in [*inputs, *references]) or not references:
                raise DataError(
                    f"{path}:{line_no}: fields {spec.fields()} must be strings (answers: a list of strings)"
                )
            if not all(v.strip() for v in [*inputs, *references]):
                if not skip_empty:
                    raise DataError(f"{path}:{line_no}: empty text in {spec.fields()}")
                data.skipped_empty += 1
                continue
            where = f"{path}:{line_no}"
            if spec.task == "mrc":
                question, context = inputs
                data.examples.append(TaskExample(question, references, where, question=question, context=context))
            else:
                data.examples.append(TaskExample(inputs[0], references, where))
            if limit and len(data.examples) >= limit:
                break
    if not data.examples:
        raise DataError(f"{path}: no examples")
    return data


def mrc_sources(tokenizer, examples: list[TaskExample], max_tokens: int) -> tuple[list[str], int]:
    """`question </s> context` strings that fit in `max_tokens`, cutting only the context; and how many were cut."""
    sep = tokenizer.sep_token or "</s>"
    sources, truncated = [], 0
    for example in examples:
        question_ids = tokenizer(example.question, add_special_tokens=False, verbose=False)["input_ids"]
        room = max_tokens - len(question_ids) - 4  # <s> q </s> c </s>, with a margin for the separator's pieces
        if room < 1:
            raise DataError(f"{example.where}: the question alone is {len(question_ids)} tokens, over {max_tokens}")
        context = tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        if len(context["input_ids"]) > room:
            truncated += 1
            # cut the original text where token `room` ends: no lossy decode of token ids
            context = example.context[: context["offset_mapping"][room - 1][1]]
        else:
            context = example.context
        sources.append(f"{example.question} {sep} {context}")
    return sources, truncated


def load_spec(text: str) -> TaskSpec:
    """A TaskSpec from JSON (for command lines): '{"task": "translation", "src_field": "zh", ...}'."""
    try:
        return TaskSpec(**json.loads(text))
    except (json.JSONDecodeError, TypeError) as err:
        raise DataError(f"bad task description {text!r}: {err}") from None
