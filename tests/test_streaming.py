"""Streamed parquet sources (data.ParquetStream): read a row group at a time, in a seeded order per epoch, each
example still a pure function of its index, so that a resumed run follows the uninterrupted one exactly."""

import sys

import pytest

from swcm import from_encoder
from swcm.data import ExampleSettings, ParquetStream, PretrainExamples, build_mixture, open_source
from swcm.errors import DataError, RecipeError
from swcm.specs import SourceSpec

from .test_data import write_jsonl
from .test_training import losses, write_recipe

# an ImportError too: a pyarrow built for NumPy 2 refuses the oldest NumPy that swcm supports
pq = pytest.importorskip("pyarrow.parquet", reason="streamed sources need an importable pyarrow", exc_type=ImportError)
pa = pytest.importorskip("pyarrow", exc_type=ImportError)

GROUPS, ROWS = 6, 25


def write_parquet(path, groups=GROUPS, rows=ROWS, empty_every=0):
    """`groups` row groups of `rows` rows; row r of group g reads "ئۇيغۇرچە g-r تىل." (None every `empty_every`)."""
    texts = [
        None if empty_every and (g * rows + r) % empty_every == 0 else f"ئۇيغۇرچە {g}-{r} تىل."
        for g in range(groups)
        for r in range(rows)
    ]
    pq.write_table(pa.table({"text": texts, "id": list(range(len(texts)))}), path, row_group_size=rows)
    return path


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_xlmr):
    return from_encoder(tiny_xlmr, return_tokenizer=True)


def stream_examples(parquet, kk_jsonl, tokenizer, tag_ids, seed=0):
    specs = [
        SourceSpec(path=str(parquet), task="dae", lang="ug", stream=True),
        SourceSpec(path=str(kk_jsonl), task="dae", lang="kk"),
    ]
    sources = [open_source(s, skip_bad=False, cache_dir=None) for s in specs]
    mixture = build_mixture(sources, 1.0, 0.0, ["dae"])
    return PretrainExamples(sources, mixture, tokenizer, tag_ids, ExampleSettings(max_length=32, seed=seed)), sources


@pytest.fixture
def corpus(tmp_path):
    kk = write_jsonl(tmp_path / "kk.jsonl", [{"text": f"қазақ {i} тілі."} for i in range(100)])
    return write_parquet(tmp_path / "ug.parquet"), kk


def test_a_streamed_source_reads_its_row_groups_in_turn_in_a_seeded_order(
    corpus, model_and_tokenizer, monkeypatch, tmp_path
):
    model, tokenizer = model_and_tokenizer
    examples, (stream, _) = stream_examples(*corpus, tokenizer, model.config.lang_tag_ids)
    assert isinstance(stream, ParquetStream) and stream.rows == GROUPS * ROWS
    reads = []
    table = ParquetStream._table
    monkeypatch.setattr(ParquetStream, "_table", lambda self, block: (reads.append(block), table(self, block))[1])
    share = examples.mixture.group_probs["dae"][("dae", "ug")]  # one task, one source in its group
    count = int(2 * stream.rows / share)  # two epochs of the stream
    for i in range(count):
        examples.example(i)
    loaded = [b for n, b in enumerate(reads) if n == 0 or reads[n - 1] != b]
    first, second = stream._order(0, 0)[0].tolist(), stream._order(0, 1)[0].tolist()
    assert sorted(first) == list(range(GROUPS)) and first != second, "each epoch: every row group, another order"
    assert loaded == first + second, "row groups are read one after another, each loaded once an epoch"
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "ug.parquet").write_bytes(corpus[0].read_bytes())
    again = open_source(SourceSpec(path=str(moved / "ug.parquet"), task="dae", lang="ug", stream=True), False, None)
    assert again._order(0, 0)[0].tolist() == first, "the order follows the files' names, not their folder"
    texts = [tokenizer.decode(examples.example(i)["labels"], skip_special_tokens=True) for i in range(count)]
    seen = {t.split()[1] for t in texts if t.startswith("ئۇيغۇرچە")}
    assert len(seen) > 0.5 * stream.rows, "rows are drawn across each row group, not one row again and again"


def test_streamed_examples_are_a_pure_function_of_their_index(corpus, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a, _ = stream_examples(*corpus, tokenizer, model.config.lang_tag_ids)
    b, _ = stream_examples(*corpus, tokenizer, model.config.lang_tag_ids)
    indices = [0, 517, 3, 1200, 517, 40]
    assert [a.example(i) for i in indices] == [b.example(i) for i in reversed(indices)][::-1]
    c, _ = stream_examples(*corpus, tokenizer, model.config.lang_tag_ids, seed=1)
    assert [a.example(i) for i in range(40)] != [c.example(i) for i in range(40)], "the seed changes the stream"


def test_streamed_source_errors_are_one_line(tmp_path, model_and_tokenizer, monkeypatch):
    gappy = write_parquet(tmp_path / "gappy.parquet", groups=2, rows=10, empty_every=3)
    stream = open_source(SourceSpec(path=str(gappy), task="dae", lang="ug", stream=True), False, None)
    with pytest.raises(DataError, match=r"gappy.parquet \(row group 0, row 0\): empty or null field in \['text'\]"):
        stream.read(0, 0)
    lenient = open_source(SourceSpec(path=str(gappy), task="dae", lang="ug", stream=True), True, None)
    assert lenient.read(0, 0)[0] == ["ئۇيغۇرچە 0-1 تىل."] and lenient.skipped == 1
    with pytest.raises(DataError, match=r"fields \['body'\] not in columns \['id', 'text'\]"):
        open_source(SourceSpec(path=str(gappy), task="dae", lang="ug", fields=["body"], stream=True), False, None)
    with pytest.raises(DataError, match="no such file"):
        open_source(SourceSpec(path=str(tmp_path / "none*.parquet"), task="dae", lang="ug", stream=True), False, None)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="bad.parquet: not a readable parquet file"):
        open_source(SourceSpec(path=str(tmp_path / "bad.parquet"), task="dae", lang="ug", stream=True), False, None)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as it does without pyarrow
        with pytest.raises(DataError, match=r"gappy.parquet: streamed parquet needs pyarrow and fsspec \("):
            open_source(SourceSpec(path=str(gappy), task="dae", lang="ug", stream=True), False, None)
    with pytest.raises(RecipeError, match="stream reads parquet files"):
        SourceSpec(path="x.jsonl", task="dae", lang="ug", stream=True)
    with pytest.raises(RecipeError, match="a streamed source cannot be split"):
        SourceSpec(path="x.parquet", task="dae", lang="ug", stream=True, split="train")


@pytest.fixture(scope="module")
def stream_recipe(tiny_xlmr, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream-data")
    parquet = write_parquet(folder / "ug.parquet", groups=4, rows=8)
    mt = write_jsonl(folder / "mt.jsonl", [{"zh": f"中文 {i}", "kk": f"қазақ {i}"} for i in range(40)])
    sources = [
        {"path": str(parquet), "task": "dae", "lang": "ug", "stream": True},
        {"path": str(mt), "task": "mt", "langs": ["zh", "kk"]},
    ]
    return write_recipe(folder, tiny_xlmr, sources, max_steps=8)


def test_a_run_on_a_streamed_source_resumes_exactly(stream_recipe, tmp_path):
    """Stopped after step 4 and resumed from its checkpoint, a run on a streamed parquet source logs the losses of
    the uninterrupted run, step for step (8 steps of 8 sequences cross the stream's 4 row groups of 8 rows)."""
    from swcm.cli import parse
    from swcm.training import pretrain

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    flags = ["--num_workers", "0"]
    pretrain(parse(["pretrain", "--config", str(stream_recipe), "--out", str(whole), *flags])[1])
    recipe = parse(["pretrain", "--config", str(stream_recipe), "--out", str(parts), *flags])[1]
    pretrain(recipe, stop_after=4)
    assert len(losses(parts)) == 4 and not (parts / "final").exists()
    pretrain(recipe, resume=True)
    expected, got = losses(whole), losses(parts)
    assert len(got) == 8
    for a, b in zip(expected, got, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), (a, b)
    assert all(r["loss_dae"] is not None for r in expected), "the streamed source was trained on"
