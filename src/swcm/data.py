"""Pretraining data: sources, temperature mixing, denoising and translation examples.

Every example is a pure function of its index: a generator seeded with (seed, index) picks the task (DAE or MT
by `mt_share`), the language (p ~ n^alpha over the bytes of each language's sources), a source, and a byte of it;
the line holding that byte is read by seeking (each file is indexed once: the offset of every valid line). A long
document is cut into windows of at most max_length tokens at sentence boundaries and the window holding the
chosen byte is used, so every part of a long document is trained on and long documents weigh by their length.
Because nothing depends on what came before, data-parallel ranks and dataloader workers split the micro-batch
sequence without coordination, and a resumed run continues at the exact micro-batch where it stopped.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .choices import PRETRAIN_TASKS
from .errors import DataError
from .noising import NoiseConfig, noise_document, split_sentences
from .paths import check_input_file
from .specs import SourceSpec, in_test_split

# ------------------------------------------------------------------------------------------------ local files


def json_object(path: Path, line_no: int, text: str, fields: Sequence[str] = ()) -> dict:
    """One JSON Lines row as a dict holding `fields`; raises DataError naming path:line."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{path}:{line_no}: missing field(s) {missing}")
    return row


def decode_line(path: Path, line_no: int, raw: bytes) -> str:
    """One line's bytes as text; bytes that are not UTF-8 are a DataError at path:line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}:{line_no}: not UTF-8 ({err.reason} at byte {err.start})") from None


def text_lines(path: str | Path):
    """(line number, text) of a UTF-8 file, newline kept (see decode_line)."""
    path = Path(path)
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, 1):
            yield line_no, decode_line(path, line_no, raw)


def parse_row(path: Path, line_no: int, raw: bytes, fields: Sequence[str]) -> list[str]:
    """The fields of one line; raises DataError naming path:line."""
    text = decode_line(path, line_no, raw)
    if path.suffix == ".txt":
        values = [text.rstrip("\r\n")]
    elif path.suffix == ".tsv":
        values = text.rstrip("\r\n").split("\t")
        if len(values) < len(fields):
            raise DataError(f"{path}:{line_no}: {len(values)} tab-separated columns, need {len(fields)}")
        return values[: len(fields)]
    else:
        row = json_object(path, line_no, text, fields)
        values = [row[f] for f in fields]
        bad = [f for f, v in zip(fields, values, strict=True) if not isinstance(v, str)]
        if bad:
            raise DataError(f"{path}:{line_no}: field(s) {bad} are not strings")
    return values


@dataclass
class LineIndex:
    """Byte offsets (and line numbers) of the usable lines of one file."""

    path: Path
    offsets: np.ndarray
    lengths: np.ndarray
    line_numbers: np.ndarray
    skipped: int

    @property
    def bytes(self) -> int:
        return int(self.lengths.sum())


Side = tuple[str, float, "str | None"]
"""Which lines of a source to read: (split, test_share, split_field) of SourceSpec."""
ALL_LINES: Side = ("all", 0.0, None)


def _index_cache_path(path: Path, fields: Sequence[str], side: Side, cache_dir: Path) -> Path:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{','.join(fields)}|{side!r}|v1"
    return cache_dir / f"{path.name}.{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def on_side(key: str, side: Side) -> bool:
    """Whether a row whose split field holds `key` belongs to `side` (SourceSpec.split)."""
    split, share, _ = side
    return split == "all" or in_test_split(key, share) == (split == "test")


def build_line_index(
    path: Path,
    fields: Sequence[str],
    skip_bad: bool,
    cache_dir: Path | None = None,
    side: Side = ALL_LINES,
) -> LineIndex:
    """Read the file once: every line is parsed (bad ones raise with file:line, or are counted and skipped); only the
    lines on `side` (split, test_share) are indexed."""
    cached = _index_cache_path(path, fields, side, cache_dir) if cache_dir else None
    if cached and cached.is_file():
        data = np.load(cached)
        index = LineIndex(path, data["offsets"], data["lengths"], data["line_numbers"], int(data["skipped"]))
        if index.skipped and not skip_bad:
            raise DataError(f"{path}: {index.skipped} malformed or empty lines (set skip_bad_lines to skip them)")
        return index
    offsets, lengths, numbers, skipped, first_error = [], [], [], 0, None
    with path.open("rb") as handle:
        offset, line_no = 0, 0
        for raw in handle:
            line_no += 1
            try:
                if raw.strip():
                    values = parse_row(path, line_no, raw, [*fields, side[2]] if side[2] else fields)
                    key = values.pop() if side[2] else values[0]  # the split field, read in the same parse
                    if not all(v.strip() for v in values):
                        raise DataError(f"{path}:{line_no}: empty text in field(s) {list(fields)}")
                    if on_side(key, side):
                        offsets.append(offset)
                        lengths.append(len(raw))
                        numbers.append(line_no)
            except DataError as err:
                if not skip_bad:
                    raise
                skipped += 1
                first_error = first_error or str(err)
            offset += len(raw)
    if not offsets:
        where = f" on the {side[0]} side of its split (test_share {side[1]})" if side[0] != "all" else ""
        raise DataError(f"{path}: no usable lines{where}" + (f" (first problem: {first_error})" if first_error else ""))
    index = LineIndex(
        path, np.array(offsets, np.int64), np.array(lengths, np.int64), np.array(numbers, np.int64), skipped
    )
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")  # ranks may build the same index at once
        np.savez(tmp, offsets=index.offsets, lengths=index.lengths, line_numbers=index.line_numbers, skipped=skipped)
        os.replace(tmp, cached)
    return index


class LocalSource:
    """Random access to the usable lines of one or more local files."""

    def __init__(self, spec: SourceSpec, skip_bad: bool, cache_dir: Path | None):
        self.spec = spec
        paths = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec.path)))
        if not paths:
            raise DataError(f"source {spec.path}: no such file")
        for path in paths:
            if path.is_dir():
                raise DataError(
                    f"source {path}: is a folder, expected a file (a pattern like {path}/*.txt reads its files)"
                )
            check_input_file(path, "source")
        side = (spec.split, spec.test_share, spec.split_field)
        self.indexes = [build_line_index(p, spec.fields, skip_bad, cache_dir, side) for p in paths]
        self.skipped = sum(i.skipped for i in self.indexes)
        self._reindex()
        self._handles: dict[int, object] = {}

    def _reindex(self) -> None:
        self._ends = np.cumsum([i.bytes for i in self.indexes])
        self._cumlen = [np.cumsum(i.lengths) for i in self.indexes]

    def hold_out(self, count: int) -> list[list[str]]:
        """Remove the last `count` usable lines (of the last files) from sampling and return their fields; at least
        one line stays in every file."""
        held: list[list[str]] = []
        for f in range(len(self.indexes) - 1, -1, -1):
            index = self.indexes[f]
            take = min(count - len(held), len(index.offsets) - 1)
            if take <= 0:
                continue
            keep = len(index.offsets) - take
            held = [self.read(f, line)[0] for line in range(keep, len(index.offsets))] + held
            self.indexes[f] = LineIndex(
                index.path, index.offsets[:keep], index.lengths[:keep], index.line_numbers[:keep], index.skipped
            )
            if len(held) >= count:
                break
        self._reindex()
        return held

    @property
    def size(self) -> int:
        return int(self._ends[-1])

    @property
    def rows(self) -> int:
        return sum(len(i.offsets) for i in self.indexes)

    def locate(self, position: int) -> tuple[int, int, float]:
        """(file, line, fraction of the line before `position`) for a byte position in [0, size)."""
        f = int(np.searchsorted(self._ends, position, side="right"))
        within = position - (int(self._ends[f - 1]) if f else 0)
        line = int(np.searchsorted(self._cumlen[f], within, side="right"))
        start = int(self._cumlen[f][line - 1]) if line else 0
        return f, line, (within - start) / int(self.indexes[f].lengths[line])

    def read(self, f: int, line: int) -> tuple[list[str], str]:
        """The line's fields and its `file:line` (for messages)."""
        index = self.indexes[f]
        handle = self._handles.get(f)
        if handle is None:
            handle = self._handles[f] = index.path.open("rb")
        handle.seek(int(index.offsets[line]))
        raw = handle.read(int(index.lengths[line]))
        line_no = int(index.line_numbers[line])
        return parse_row(index.path, line_no, raw, self.spec.fields), f"{index.path}:{line_no}"

    def __getstate__(self):  # file handles stay out of worker copies
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


# No byte offsets in a dataset: each row counts as ROW_UNITS positions, so a position picks a row and a point inside it
# (which window of a long document), as a byte does in a local file.
ROW_UNITS = 1000


class HubSource:
    """A Hugging Face dataset (memory-mapped Arrow: random access, never loaded whole into memory)."""

    def __init__(self, spec: SourceSpec):
        try:
            import datasets
        except ImportError:
            raise DataError(f"source {spec.path}: hub datasets need `pip install datasets`") from None
        self.spec = spec
        if spec.path.endswith(".parquet"):  # local parquet files, memory-mapped through datasets too
            files = sorted(glob.glob(os.path.expanduser(spec.path)))
            if not files:
                raise DataError(f"source {spec.path}: no such file")
            self.dataset = datasets.load_dataset("parquet", data_files=files, split="train")
        else:
            name, _, config = spec.path[len("hf:") :].partition(":")
            self.dataset = datasets.load_dataset(name, config or None, split=spec.hub_split)
        missing = [f for f in spec.fields if f not in self.dataset.column_names]
        if missing:
            raise DataError(f"source {spec.path}: fields {missing} not in columns {self.dataset.column_names}")
        if spec.split != "all":
            side, key = (spec.split, spec.test_share, spec.split_field), spec.split_field or spec.fields[0]
            self.dataset = self.dataset.filter(lambda row: on_side(str(row[key]), side))
            if not len(self.dataset):
                raise DataError(f"source {spec.path}: no rows on the {spec.split} side of its split")
        self.skipped = 0

    def hold_out(self, count: int) -> list[list[str]]:
        """Remove the last `count` rows from sampling and return their fields."""
        keep = max(1, len(self.dataset) - count)
        held = [self.read(0, row)[0] for row in range(keep, len(self.dataset))]
        self.dataset = self.dataset.select(range(keep))
        return held

    @property
    def size(self) -> int:
        return len(self.dataset) * ROW_UNITS

    @property
    def rows(self) -> int:
        return len(self.dataset)

    def locate(self, position: int) -> tuple[int, int, float]:
        row, within = divmod(int(position), ROW_UNITS)
        return 0, row, within / ROW_UNITS

    def read(self, f: int, line: int) -> tuple[list[str], str]:
        row = self.dataset[line]
        return [str(row[name]) for name in self.spec.fields], f"{self.spec.path}[{line}]"


class ParquetStream:
    """Parquet files read one row group at a time, never whole and never copied: local files or any fsspec URL
    (`hf://datasets/NAME/...parquet` with huggingface_hub). For corpora too large to copy or cache (MC2).

    A stream has no random access, so it is not sampled at a uniform random position as a file is. Each epoch
    visits its row groups in an order drawn from (seed, epoch, the files' names, not their folders), and the example
    of index i that takes this source draws its row at random from the row group at cursor i x share (share: the
    probability that an example takes this source), so the row groups are read in turn, each about as many times as
    it has rows, and a row group plays the part of a shuffle buffer. It is still a pure function of the index:
    ranks, workers and a resumed run need no state (datasets' IterableDataset loses its shuffle buffer on resume,
    datasets#7444, and skips rows by reading them). Each process keeps its last row group."""

    streamed = True

    def __init__(self, spec: SourceSpec, skip_bad: bool):
        try:
            import fsspec
            import pyarrow.parquet as pq
        except ImportError as err:
            raise DataError(f"source {spec.path}: streamed parquet needs pyarrow and fsspec ({err})") from None
        self.spec, self.skip_bad, self.skipped = spec, skip_bad, 0
        filesystem, pattern = fsspec.core.url_to_fs(os.path.expanduser(spec.path))
        self._filesystem = filesystem
        self.files = sorted(filesystem.glob(pattern))
        if not self.files:
            raise DataError(f"source {spec.path}: no such file")
        self.groups: list[tuple[int, int, int]] = []  # (file, row group, rows)
        size = 0
        for f, name in enumerate(self.files):
            try:
                with filesystem.open(name, "rb") as handle:
                    metadata = pq.ParquetFile(handle).metadata
            except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(f"source {name}: not a readable parquet file ({err})") from None
            columns = {metadata.schema.column(c).name: c for c in range(metadata.num_columns)}
            missing = [name for name in spec.fields if name not in columns]
            if missing:
                raise DataError(f"source {name}: fields {missing} not in columns {sorted(columns)}")
            for g in range(metadata.num_row_groups):
                group = metadata.row_group(g)
                if group.num_rows:
                    self.groups.append((f, g, group.num_rows))
                    size += sum(group.column(columns[name]).total_uncompressed_size for name in spec.fields)
        if not self.groups:
            raise DataError(f"source {spec.path}: no rows")
        self._bytes = size  # the text's bytes, as a file's size: the mixture weighs streams and files alike
        self.rows = sum(rows for _, _, rows in self.groups)  # kept, not summed: every example reads it
        self._orders: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._cached: tuple[int, object] | None = None

    @property
    def size(self) -> int:
        return self._bytes

    def hold_out(self, count: int) -> list[list[str]]:
        """Remove the last `count` rows of the last row group from sampling and return their fields; at least one row
        stays."""
        f, g, rows = self.groups[-1]
        take = min(count, rows - 1)
        if take <= 0:
            return []
        held = [self._row(len(self.groups) - 1, r) for r in range(rows - take, rows)]
        self.groups[-1] = (f, g, rows - take)
        self.rows -= take
        held = [values for values in held if values is not None]
        self._orders.clear()
        return held

    def _order(self, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(row groups in this epoch's order, the rows before each of them in it)."""
        key = (seed, epoch)
        if key not in self._orders:
            names = "\n".join(name.rsplit("/", 1)[-1] for name in self.files)  # the same order wherever they are
            tag = int.from_bytes(hashlib.sha256(names.encode()).digest()[:4], "little")
            order = np.random.default_rng([seed, epoch, tag]).permutation(len(self.groups))
            rows = np.array([self.groups[b][2] for b in order])
            self._orders = {key: (order, np.cumsum(rows) - rows)}
        return self._orders[key]

    def locate_streamed(self, cursor: float, seed: int, rng: np.random.Generator) -> tuple[int, int, float]:
        """(row group, row, fraction of the row before the chosen point) for the example at `cursor` rows into the
        stream."""
        epoch, offset = divmod(cursor, self.rows)
        order, before = self._order(seed, int(epoch))
        block = int(order[int(np.searchsorted(before, offset, side="right")) - 1])
        return block, int(rng.integers(self.groups[block][2])), float(rng.random())

    def _table(self, block: int):
        if self._cached is None or self._cached[0] != block:
            import pyarrow.parquet as pq

            f, g, _ = self.groups[block]
            with self._filesystem.open(self.files[f], "rb") as handle:
                table = pq.ParquetFile(handle).read_row_group(g, columns=list(self.spec.fields))
            self._cached = (block, {name: table.column(name).to_pylist() for name in self.spec.fields})
        return self._cached[1]

    def _row(self, block: int, row: int) -> list[str] | None:
        columns = self._table(block)
        values = [columns[name][row] for name in self.spec.fields]
        if any(v is None or not str(v).strip() for v in values):
            return None
        return [str(v) for v in values]

    def read(self, block: int, row: int) -> tuple[list[str], str]:
        """The row's fields and where it is (for messages). An empty or null field fails, or with skip_bad the next
        usable row of the row group is read instead (counted in `skipped`)."""
        f, g, rows = self.groups[block]
        for step in range(rows):
            values = self._row(block, (row + step) % rows)
            where = f"{self.files[f]} (row group {g}, row {(row + step) % rows})"
            if values is not None:
                return values, where
            if not self.skip_bad:
                raise DataError(f"{where}: empty or null field in {self.spec.fields} (skip_bad skips such rows)")
            self.skipped += 1
        raise DataError(f"{self.files[f]} (row group {g}): no row with every field of {self.spec.fields}")

    def __getstate__(self):  # the cached row group stays out of worker copies
        state = dict(self.__dict__)
        state["_cached"] = None
        return state


def open_source(spec: SourceSpec, skip_bad: bool, cache_dir: Path | None):
    if spec.stream:
        return ParquetStream(spec, skip_bad)
    if spec.path.startswith("hf:") or spec.path.endswith(".parquet"):
        return HubSource(spec)
    return LocalSource(spec, skip_bad, cache_dir)


# ---------------------------------------------------------------------------------------------------- mixture


def temperature_probabilities(sizes: dict[object, float], alpha: float) -> dict[object, float]:
    """p_i ~ n_i^alpha (alpha = 1: proportional to size, alpha = 0: uniform)."""
    weights = {k: float(v) ** alpha for k, v in sizes.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


@dataclass
class Mixture:
    """Task shares and per-task language probabilities."""

    task_probs: dict[str, float]
    group_probs: dict[str, dict[tuple[str, str], float]]
    group_sources: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        for task, p in self.task_probs.items():
            langs = ", ".join(f"{g[1]} {q:.1%}" for g, q in self.group_probs[task].items())
            parts.append(f"{task} {p:.0%} ({langs})")
        return "; ".join(parts)


def build_mixture(sources: Sequence, alpha: float, mt_share: float, tasks: Sequence[str]) -> Mixture:
    present = {s.spec.task for s in sources} & set(tasks)
    if not present:
        raise DataError(f"no sources for the enabled tasks {list(tasks)}")
    task_probs = {"dae": 1 - mt_share, "mt": mt_share} if present == set(PRETRAIN_TASKS) else {next(iter(present)): 1.0}
    group_sizes: dict[tuple[str, str], int] = {}
    group_sources: dict[tuple[str, str], list[int]] = {}
    for i, source in enumerate(sources):
        if source.spec.task in present:
            group_sizes[source.spec.group] = group_sizes.get(source.spec.group, 0) + source.size
            group_sources.setdefault(source.spec.group, []).append(i)
    group_probs = {
        task: temperature_probabilities({g: n for g, n in group_sizes.items() if g[0] == task}, alpha)
        for task in task_probs
    }
    return Mixture(task_probs, group_probs, group_sources)


# --------------------------------------------------------------------------------------------------- examples


@dataclass
class ExampleSettings:
    max_length: int = 256
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    seed: int = 0


class PretrainExamples:
    """example(index) -> {"input_ids", "labels", "task"}: the same index always gives the same example."""

    task_names = PRETRAIN_TASKS

    def __init__(
        self, sources: Sequence, mixture: Mixture, tokenizer, tag_ids: dict[str, int] | None, settings: ExampleSettings
    ):
        self.sources, self.mixture, self.tokenizer, self.settings = list(sources), mixture, tokenizer, settings
        self.tag_ids = tag_ids if tag_ids is not None else {}  # None: an encoder's examples, with no language tags
        missing = sorted(
            {lang for s in sources for lang in ([s.spec.lang] if s.spec.task == "dae" else s.spec.langs)}
            - set(self.tag_ids)
        )
        if missing and tag_ids is not None:
            raise DataError(f"languages {missing} have no tag in the model; its tags: {sorted(tag_ids)}")
        self.bos, self.eos = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.mask_id = tokenizer.mask_token_id
        specials = set(tokenizer.all_special_ids) | set(self.tag_ids.values())
        self.vocab_ids = np.array([i for i in range(len(tokenizer)) if i not in specials])
        # Choice tables, fixed for the run: (items, probabilities) per level of the mixture.
        self._tasks = (list(mixture.task_probs), np.array(list(mixture.task_probs.values())))
        self._groups = {t: (list(g), np.array(list(g.values()))) for t, g in mixture.group_probs.items()}
        self._members = {}
        for group, members in mixture.group_sources.items():
            sizes = np.array([self.sources[i].size for i in members], dtype=np.float64)
            self._members[group] = ([self.sources[i] for i in members], sizes / sizes.sum())

    def _choose(self, index: int, rng: np.random.Generator):
        tasks, task_p = self._tasks
        t = rng.choice(len(tasks), p=task_p)
        groups, group_p = self._groups[tasks[t]]
        g = rng.choice(len(groups), p=group_p)
        members, member_p = self._members[groups[g]]
        m = rng.choice(len(members), p=member_p)
        source = members[m]
        if getattr(source, "streamed", False):  # its cursor moves at its share of the examples
            cursor = index * task_p[t] * group_p[g] * member_p[m]
            return tasks[t], source, source.locate_streamed(cursor, self.settings.seed, rng)
        return tasks[t], source, source.locate(int(rng.integers(source.size)))

    def example(self, index: int) -> dict:
        rng = np.random.default_rng([self.settings.seed, index])
        task, source, (f, line, fraction) = self._choose(index, rng)
        values, where = source.read(f, line)
        if task == "dae":
            ids, labels = self._dae(values, fraction, source.spec.lang, rng)
        else:
            ids, labels = self._mt(values, source.spec.langs, rng)
        return {"input_ids": ids, "labels": labels, "task": PRETRAIN_TASKS.index(task), "where": where}

    def _window(self) -> int:
        return self.settings.max_length - 2  # room for <s> ... </s> and <tag> ... </s>

    def _dae(self, values: list[str], fraction: float, lang: str, rng: np.random.Generator):
        sentences = [s for text in values for s in split_sentences(text)] or [" ".join(values)]
        pieces = [p for p in self.tokenizer(sentences, add_special_tokens=False, verbose=False)["input_ids"] if p]
        chunks = self._chunks(pieces)
        chunk = chunks[min(int(fraction * len(chunks)), len(chunks) - 1)]
        source, labels = noise_document(chunk, self.settings.noise, rng, self.mask_id, self.vocab_ids)
        window = self._window()
        return [self.bos, *source[:window], self.eos], [self.tag_ids[lang], *labels[:window], self.eos]

    def _chunks(self, sentences: list[list[int]]) -> list[list[list[int]]]:
        """Greedy windows of whole sentences up to max_length - 2 tokens; an over-long sentence is split."""
        window, chunks, current, size = self._window(), [], [], 0
        for sentence in sentences:
            for start in range(0, len(sentence), window):
                piece = sentence[start : start + window]
                if size + len(piece) > window and current:
                    chunks.append(current)
                    current, size = [], 0
                current.append(piece)
                size += len(piece)
        if current:
            chunks.append(current)
        return chunks or [[[]]]

    def _mt(self, values: list[str], langs: list[str], rng: np.random.Generator):
        forward = bool(rng.integers(2))  # each pair trains both directions, half the time each
        src, tgt = (0, 1) if forward else (1, 0)
        src_ids, tgt_ids = self.tokenizer([values[src], values[tgt]], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        window = self._window()
        return [self.bos, *src_ids[:window], self.eos], [self.tag_ids[langs[tgt]], *tgt_ids[:window], self.eos]


class MicroBatchStream(IterableDataset):
    """Micro-batches `start, start + 1, ...` of the global sequence that belong to this rank (index % world == rank),
    split between dataloader workers the same way, so a DataLoader's round robin over workers yields them in order."""

    def __init__(self, examples: PretrainExamples, micro_batch: int, rank: int, world: int, start: int, pad_id: int):
        self.examples, self.micro_batch, self.rank, self.world = examples, micro_batch, rank, world
        self.start, self.pad_id = start, pad_id

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        local = 0
        batch = self.start
        while True:
            if batch % self.world == self.rank:
                if local % workers == worker:
                    first = batch * self.micro_batch
                    yield collate(
                        [self.examples.example(first + k) for k in range(self.micro_batch)], self.pad_id, batch
                    )
                local += 1
            batch += 1


def collate(examples: list[dict], pad_id: int, batch_index: int = -1) -> dict[str, torch.Tensor]:
    width = max(len(e["input_ids"]) for e in examples)
    label_width = max(len(e["labels"]) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), label_width), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        input_ids[i, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        attention_mask[i, : len(e["input_ids"])] = 1
        labels[i, : len(e["labels"])] = torch.tensor(e["labels"])
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "task": torch.tensor([e["task"] for e in examples]),
        "batch_index": torch.tensor(batch_index),
    }
