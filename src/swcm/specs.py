"""Where data is and which fields hold what: the specs that recipes list and that the readers take.

- `SourceSpec`: a pretraining (or adapt) source, monolingual (dae) or parallel (mt); read by data.open_source.
- `TaskSpec`: which task a file holds and its fields; read by tasks.read_task_file (fine-tuning, evaluate).
- `TrainFile`: a fine-tuning file, a TaskSpec with its path and how much of it to use.
- `HeldoutFile`: a task file whose teacher-forced loss a training run logs as it goes (its learning curve).
- `in_test_split`: the stable hash split that task files and pretraining sources share.

Light (no torch), so that the CLI's help stays fast; each spec checks its own fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from .checks import check_fields, own_fields
from .choices import PretrainTask, Split, Task
from .errors import RecipeError


def in_test_split(text: str, test_share: float) -> bool:
    """Whether an input falls on the test side of a file's split: a hash of its text (spaces at the ends ignored),
    the same on every machine and Python, so that a file splits the same way in pretraining, fine-tuning and
    evaluation, and equal inputs (UI strings repeat, KazQAD asks several questions of one context) fall on one side."""
    digest = hashlib.sha256(text.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < test_share * 2**64


@dataclass(kw_only=True)
class SourceSpec:
    """One pretraining (or adapt) data source."""

    path: str
    """Local file or glob (.jsonl, .tsv, .txt, .parquet), or `hf:DATASET[:CONFIG]` (needs `datasets`, online)."""
    task: PretrainTask = "dae"
    """dae (monolingual, denoising) or mt (parallel, translation in both directions)."""
    lang: str | None = None
    """Language of a monolingual source."""
    langs: list[str] | None = None
    """The two languages of a parallel source, e.g. [zh, ug]."""
    fields: list[str] | None = None
    """Text field(s): dae default [text]; mt default the two language codes. .txt files have one field, text."""
    hub_split: str = "train"
    """Split of a hub dataset."""
    stream: bool = False
    """Read parquet files (a local glob, or an fsspec URL: hf://datasets/NAME/...parquet) one row group at a time,
    for corpora too large to copy (MC2): row groups in a seeded order per epoch, rows drawn within the current one
    (data.ParquetStream). Needs pyarrow."""
    split: Split = "all"
    """all: every line; train / test: one side of the stable hash split of split_field, the split a task file with
    the same split field and test_share makes, so that pretraining never reads what fine-tuning and evaluation hold
    out."""
    test_share: float = 0.1
    """With split: the share of lines that fall on the test side."""
    split_field: str | None = None
    """The field the split hashes (.jsonl); default the first field (dae: the text; mt: list the source first, e.g.
    langs [zh, ug], as a translation file keys its source)."""

    def __post_init__(self):
        check_fields(self, where=f"source {self.path}: ", shares=("test_share",))
        if self.split != "all" and not self.test_share > 0:
            raise RecipeError(f"source {self.path}: test_share must be > 0 with split {self.split}")
        if self.stream and not self.path.endswith(".parquet"):
            raise RecipeError(f"source {self.path}: stream reads parquet files (a path or pattern ending in .parquet)")
        if self.stream and self.split != "all":
            raise RecipeError(
                f"source {self.path}: a streamed source cannot be split (its rows are never all read); split the "
                "files beforehand"
            )
        if self.split_field and self.path.endswith((".txt", ".tsv")):
            raise RecipeError(f"source {self.path}: split_field needs named fields (.jsonl or a hub dataset)")
        if self.task == "dae":
            if not self.lang:
                raise RecipeError(f"source {self.path}: a dae source needs `lang`")
            self.fields = list(self.fields or ["text"])
        else:
            if not self.langs or len(self.langs) != 2:
                raise RecipeError(f"source {self.path}: an mt source needs `langs: [src, tgt]`")
            self.fields = list(self.fields or self.langs)
            if len(self.fields) != 2:
                raise RecipeError(f"source {self.path}: an mt source needs two fields, got {self.fields}")

    @property
    def group(self) -> tuple[str, str]:
        """(task, language) the mixture weighs: monolingual by language, parallel by its non-Chinese side."""
        if self.task == "dae":
            return ("dae", self.lang)
        other = [lang for lang in self.langs if lang != "zh"]
        return ("mt", other[0] if other else self.langs[1])


@dataclass(kw_only=True)
class TaskSpec:
    """Which task a file holds, where its fields are, and which side of its split to read."""

    task: Task
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
    text_skip_lines: int = 0
    """summarization: leading non-empty lines of the document left out, e.g. 1 where a heading repeats the title
    (mono/ug.essays); the split still keys on the whole field."""
    question_field: str = "question"
    """mrc: question field."""
    context_field: str = "context"
    """mrc: context field."""
    answer_field: str = "answer"
    """mrc: reference answer (string) or answers (list) field."""
    split: Split = "all"
    """all: every example; train / test: one side of a stable split by a hash of the input (the source; MRC: the
    context), so that equal inputs fall on one side and nothing of a test input is seen in training."""
    test_share: float = 0.1
    """With split: the share of inputs that fall on the test side."""
    split_field: str | None = None
    """The field the split hashes (default: the input; MRC: the context). A field that groups examples keeps each
    group on one side: e.g. title where one essay appears twice under its title, or doc_id."""

    def __post_init__(self):
        check_fields(self, only=own_fields(TaskSpec), shares=("test_share",))
        if self.split != "all" and not self.test_share > 0:
            raise RecipeError(f"test_share: must be > 0 with split {self.split}, got {self.test_share!r}")
        if self.task == "translation" and not (self.src_field and self.tgt_field):
            raise RecipeError("translation needs src_field and tgt_field (e.g. zh and ug)")

    def fields(self) -> list[str]:
        return {
            "translation": [self.src_field, self.tgt_field],
            "summarization": [self.text_field, self.summary_field],
            "mrc": [self.question_field, self.context_field, self.answer_field],
        }[self.task]

    def spec(self) -> TaskSpec:
        """Only the TaskSpec fields (of a TrainFile or HeldoutFile)."""
        return TaskSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TaskSpec)})


@dataclass(kw_only=True)
class TrainFile(TaskSpec):
    """A fine-tuning file: a TaskSpec plus where it is and how much of it to use."""

    path: str
    """JSON Lines file."""
    limit: int | None = None
    """Use the first k examples (cross-lingual transfer: a few target-language examples; 0 leaves the file out)."""
    both_directions: bool = True
    """translation: train source -> target and target -> source."""
    src_lang: str | None = None
    """translation: language of src_field, for the reverse direction (default: the field's name)."""
    skip_empty: bool = False
    """Count and skip examples with an empty field instead of failing at file:line."""

    def __post_init__(self):
        super().__post_init__()
        check_fields(self, where=f"train file {self.path}: ", only=own_fields(TrainFile))


@dataclass(kw_only=True)
class HeldoutFile(TaskSpec):
    """A task file whose teacher-forced loss per target token a training run logs every `heldout_every` steps, as
    `heldout_<name>` (usually its test side: split test)."""

    path: str
    """JSON Lines file."""
    name: str
    """The curve's name in log.jsonl (heldout_<name>), e.g. mt_ug, headline_ug, mrc_kk."""
    limit: int | None = 64
    """Examples used (the first of its side); each one costs a forward pass at every measurement."""

    def __post_init__(self):
        super().__post_init__()
        check_fields(self, where=f"heldout file {self.path}: ", only=own_fields(HeldoutFile), positive=("limit",))
        if not self.name.replace("_", "").replace("-", "").isalnum():
            raise RecipeError(f"heldout file {self.path}: name {self.name!r} must be letters, digits, _ or -")
