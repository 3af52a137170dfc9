"""Downstream tasks as (source, reference) pairs read from JSON Lines files with configurable fields.

- translation: `src_field` -> `tgt_field` (one parallel file serves both directions by swapping the fields);
- summarization / headline generation: `text_field` -> `summary_field`;
- reading comprehension (mrc): `question_field` + `context_field` -> `answer_field` (a string or a list of
  acceptable answers); a long input is cut from the context's end, never the question, and counted.
Fields may be dotted to reach into objects (`zh.body` in the headline files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .choices import TASK_NAMES
from .data import json_object, text_lines
from .errors import DataError
from .specs import TaskSpec, TrainFile, in_test_split


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
    gives_away: int = 0
    """summarization: inputs that contain their reference verbatim (a heading that repeats the title)."""
    skipped_bad: int = 0
    """Malformed lines skipped (skip_bad)."""
    first_problem: str | None = None
    notes: list[str] = field(default_factory=list)


def _get(row: dict, dotted: str, path: Path, line_no: int):
    value = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{path}:{line_no}: missing field {dotted!r}")
        value = value[part]
    return value


def read_task_file(
    path: str | Path, spec: TaskSpec, limit: int | None = None, skip_empty: bool = False, skip_bad: bool = False
) -> TaskData:
    """Examples of one file (of `spec.split`'s side of it; `limit` counts that side); a malformed line, a missing
    field or a non-string value is an error at file:line unless `skip_bad` (then counted), an empty source or
    reference an error too unless `skip_empty` (then counted)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if limit is not None and limit < 0:
        raise DataError(f"{path}: limit must be >= 0, got {limit}")
    data = TaskData(examples=[])
    if limit == 0:  # as in a fine-tuning recipe: the file is left out
        return data
    for line_no, line in text_lines(path):
        if not line.strip():
            continue
        try:
            row = json_object(path, line_no, line)
            values = [_get(row, f, path, line_no) for f in spec.fields()]
            *inputs, reference = values
            references = reference if isinstance(reference, list) else [reference]
            if not all(isinstance(v, str) for v in [*inputs, *references]) or not references:
                raise DataError(
                    f"{path}:{line_no}: fields {spec.fields()} must be strings (answers: a list of strings)"
                )
        except DataError as err:
            if not skip_bad:
                raise
            data.skipped_bad += 1
            data.first_problem = data.first_problem or str(err)
            continue
        if not all(v.strip() for v in [*inputs, *references]):
            if not skip_empty:
                raise DataError(f"{path}:{line_no}: empty text in {spec.fields()}")
            data.skipped_empty += 1
            continue
        where = f"{path}:{line_no}"
        if spec.split != "all":
            if spec.split_field:
                key = str(_get(row, spec.split_field, path, line_no))
            else:  # the input; MRC: the context, so no test passage is trained on
                key = inputs[1] if spec.task == "mrc" else inputs[0]
            if in_test_split(key, spec.test_share) != (spec.split == "test"):
                continue
        if spec.task == "mrc":
            question, context = inputs
            data.examples.append(TaskExample(question, references, where, question=question, context=context))
        else:
            source = inputs[0]
            if spec.text_skip_lines:
                source = "\n".join([line for line in source.splitlines() if line.strip()][spec.text_skip_lines :])
                if not source.strip():
                    raise DataError(f"{where}: nothing left of {spec.text_field!r} after text_skip_lines")
            if spec.task == "summarization" and any(r.strip() in source for r in references):
                data.gives_away += 1
            data.examples.append(TaskExample(source, references, where))
        if limit is not None and len(data.examples) >= limit:
            break
    if not data.examples:
        side = f" on the {spec.split} side of its split (test_share {spec.test_share})" if spec.split != "all" else ""
        first = f" (first problem: {data.first_problem})" if data.first_problem else ""
        raise DataError(f"{path}: no examples{side}{first}")
    return data


def mrc_sources(tokenizer, examples: list[TaskExample], max_tokens: int) -> tuple[list[str], list[int]]:
    """`question </s> context` strings that fit in `max_tokens`, cutting only the context; and which were cut."""
    sep = tokenizer.sep_token or "</s>"
    sources, truncated = [], []
    for index, example in enumerate(examples):
        question_ids = tokenizer(example.question, add_special_tokens=False, verbose=False)["input_ids"]
        room = max_tokens - len(question_ids) - 4  # <s> q </s> c </s>, with a margin for the separator's pieces
        if room < 1:
            raise DataError(
                f"{example.where}: the question alone is {len(question_ids)} tokens, which leaves no room for the "
                f"passage in {max_tokens} (the question, the passage and 4 special tokens must fit)"
            )
        context = tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        if len(context["input_ids"]) > room:
            truncated.append(index)
            # cut the original text where token `room` ends: no lossy decode of token ids
            context = example.context[: context["offset_mapping"][room - 1][1]]
        else:
            context = example.context
        sources.append(f"{example.question} {sep} {context}")
    return sources, truncated


def finetune_items(
    files: list[TrainFile], tokenizer, max_length: int, skip_bad: bool = False
) -> tuple[list[tuple], list[str]]:
    """(source, target language, target, task index) items of every file, and a note per file (with the malformed
    lines skipped when `skip_bad`)."""
    items, notes = [], []
    for train_file in files:
        if train_file.limit == 0:
            notes.append(f"{train_file.path}: left out (limit 0)")
            continue
        data = read_task_file(train_file.path, train_file.spec(), train_file.limit, train_file.skip_empty, skip_bad)
        if data.skipped_bad:
            notes.append(f"{train_file.path}: {data.skipped_bad} malformed lines skipped (first: {data.first_problem})")
        task = TASK_NAMES.index(train_file.task)
        if train_file.task == "mrc":
            sources, truncated = mrc_sources(tokenizer, data.examples, max_length)
            items += [
                (s, train_file.tgt_lang, e.references[0], task) for s, e in zip(sources, data.examples, strict=True)
            ]
            notes.append(f"{train_file.path}: {len(sources)} mrc ({len(truncated)} contexts cut)")
            continue
        items += [(e.source, train_file.tgt_lang, e.references[0], task) for e in data.examples]
        if train_file.task == "translation" and train_file.both_directions:
            back = train_file.src_lang or train_file.src_field
            items += [(e.references[0], back, e.source, task) for e in data.examples]
        notes.append(f"{train_file.path}: {len(data.examples)} {train_file.task}")
    if not items:
        raise DataError("no training examples")
    return items, notes


class FinetuneExamples:
    """example(index): epoch index // n visits the items in a shuffled order seeded by (seed, epoch), so example i
    is a pure function of i (exact resume and data-parallel splits, as in pretraining)."""

    task_names = TASK_NAMES

    def __init__(self, items: list[tuple], tokenizer, tag_ids: dict[str, int], max_length: int, seed: int):
        missing = sorted({lang for _, lang, _, _ in items} - set(tag_ids))
        if missing:
            raise DataError(f"languages {missing} have no tag in the model; its tags: {sorted(tag_ids)}")
        self.items, self.tokenizer, self.tag_ids, self.max_length, self.seed = (
            items,
            tokenizer,
            tag_ids,
            max_length,
            seed,
        )
        self._order: tuple[int, np.ndarray] | None = None

    def example(self, index: int) -> dict:
        epoch, k = divmod(index, len(self.items))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self.items)))
        source, lang, target, task = self.items[int(self._order[1][k])]
        src_ids, tgt_ids = self.tokenizer([source, target], add_special_tokens=False, verbose=False)["input_ids"]
        window = self.max_length - 2
        bos, eos = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        return {
            "input_ids": [bos, *src_ids[:window], eos],
            "labels": [self.tag_ids[lang], *tgt_ids[:window], eos],
            "task": task,
        }
