import json

import pytest

from swcm import from_encoder
from swcm.cli import main
from swcm.errors import DataError, RecipeError
from swcm.specs import TaskSpec
from swcm.tasks import mrc_sources, read_task_file

from .conftest import SHARED_DATA
from .test_data import write_jsonl


@pytest.fixture(scope="module")
def model_dir(tiny_xlmr, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-model")
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_mrc_inputs_are_cut_from_the_context_never_the_question(model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            {"question": "ئۇيغۇر تىلى نېمە؟", "context": "ئۇيغۇر تىلى " * 40, "answers": ["ئۇيغۇر", "تىل"]},
            {"question": "中文?", "context": "中文", "answers": ["中文"]},
        ],
    )
    data = read_task_file(path, TaskSpec(task="mrc", tgt_lang="ug", answer_field="answers"))
    assert data.examples[0].references == ["ئۇيغۇر", "تىل"]
    sources, truncated = mrc_sources(tokenizer, data.examples, max_tokens=40)
    assert truncated == [0]
    assert sources[0].startswith("ئۇيغۇر تىلى نېمە؟ </s> ئۇيغۇر")
    assert len(tokenizer(sources[0])["input_ids"]) <= 40 + 2
    assert example_context_is_a_prefix(sources[0], data.examples[0].context)
    assert sources[1] == "中文? </s> 中文"
    with pytest.raises(
        DataError, match=r"qa.jsonl:1: the question alone is \d+ tokens, which leaves no room for the passage in 5"
    ):
        mrc_sources(tokenizer, data.examples, max_tokens=5)


def example_context_is_a_prefix(source: str, context: str) -> bool:
    return context.startswith(source.split(" </s> ", 1)[1])


def test_task_file_errors_name_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "mt.jsonl", [{"zh": "中文", "ug": "ئۇيغۇر"}, {"zh": "世界"}, {"zh": "", "ug": "x"}])
    spec = TaskSpec(task="translation", tgt_lang="ug", src_field="zh", tgt_field="ug")
    with pytest.raises(DataError, match=rf"{path}:2: missing field 'ug'"):
        read_task_file(path, spec)
    path = write_jsonl(tmp_path / "mt2.jsonl", [{"zh": "中文", "ug": "ئۇيغۇر"}, {"zh": "", "ug": "x"}])
    with pytest.raises(DataError, match=rf"{path}:2: empty text"):
        read_task_file(path, spec)
    assert read_task_file(path, spec, skip_empty=True).skipped_empty == 1
    nested = write_jsonl(tmp_path / "h.jsonl", [{"doc_id": 1, "kk": {"headline": "Қазақ", "body": "қазақ тілі"}}])
    data = read_task_file(
        nested, TaskSpec(task="summarization", tgt_lang="kk", text_field="kk.body", summary_field="kk.headline")
    )
    assert (data.examples[0].source, data.examples[0].references) == ("қазақ тілі", ["Қазақ"])
    with pytest.raises(RecipeError, match="translation needs src_field and tgt_field"):
        TaskSpec(task="translation", tgt_lang="ug")


def test_evaluate_cli_writes_one_row_per_language_and_task(model_dir, tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "mt.jsonl", [{"zh": "中文 世界", "ug": "ئۇيغۇر تىلى", "bo": "བོད་ཡིག"} for _ in range(3)]
    )
    out = tmp_path / "report"
    args = [
        "evaluate",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--task",
        "translation",
        "--tgt_langs",
        "[ug,bo]",
        "--out",
        str(out),
        "--num_beams",
        "2",
        "--max_new_tokens",
        "4",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| translation | ug | 3 |" in printed and "| translation | bo | 3 |" in printed
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [r["lang"] for r in report["results"]] == ["ug", "bo"]
    assert "--quantize auto" in report["settings"]["inference"], "the report keeps the mode auto chose"
    assert all(
        {"rougeL_f", "rougeL_p", "rougeL_r", "chrf++", "bleu", "off_target"} <= set(r) for r in report["results"]
    )
    predictions = (out / "predictions" / "translation.bo.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == 3 and json.loads(predictions[0])["references"] == ["བོད་ཡིག"]
    assert main([*args[:8], "[ug,fr]", *args[9:]]) == 2
    assert "model has no language tag <fr>; its tags: ['bo', 'kk', 'mn', 'ug', 'zh']" in capsys.readouterr().err


def test_a_split_file_gives_disjoint_stable_sides_by_input(tmp_path):
    """Train and test sides share no input (repeated inputs fall on one side), cover the file between them, and
    split it the same way on every read; MRC splits by context, so no test passage is trained on."""
    rows = [{"zh": f"字符串 {i % 150}", "ug": f"ئۇيغۇر {i}"} for i in range(400)]  # each source repeats
    path = write_jsonl(tmp_path / "mt.jsonl", rows)
    spec = dict(task="translation", tgt_lang="ug", src_field="zh", tgt_field="ug", test_share=0.2)
    train = read_task_file(path, TaskSpec(**spec, split="train")).examples
    test = read_task_file(path, TaskSpec(**spec, split="test")).examples
    assert {e.source for e in train}.isdisjoint({e.source for e in test})
    assert len(train) + len(test) == len(rows)
    assert 0.1 < len({e.source for e in test}) / 150 < 0.3
    again = read_task_file(path, TaskSpec(**spec, split="test")).examples
    assert [e.where for e in again] == [e.where for e in test]
    assert [e.source for e in read_task_file(path, TaskSpec(**spec, split="test"), limit=3).examples] == [
        e.source for e in test[:3]
    ]
    qa = [{"question": f"q{i}", "context": f"context {i % 40}", "answer": "a"} for i in range(200)]
    path = write_jsonl(tmp_path / "qa.jsonl", qa)
    mrc = dict(task="mrc", tgt_lang="kk", test_share=0.25)
    trained = {e.context for e in read_task_file(path, TaskSpec(**mrc, split="train")).examples}
    held_out = {e.context for e in read_task_file(path, TaskSpec(**mrc, split="test")).examples}
    assert trained and held_out and trained.isdisjoint(held_out)
    with pytest.raises(RecipeError, match="test_share: must be in"):
        TaskSpec(**{**spec, "test_share": 1.0}, split="test")
    with pytest.raises(RecipeError, match="test_share: must be > 0 with split test"):
        TaskSpec(**{**spec, "test_share": 0.0}, split="test")


def test_a_pretraining_source_splits_as_the_task_file_does(tmp_path):
    """A source with split train indexes exactly the lines whose first field the task file's train side holds (dae:
    the text, as a summarization or MRC file keys its document or passage): pretraining never reads a test input."""
    from swcm.data import LocalSource
    from swcm.specs import SourceSpec

    rows = [{"zh": f"字符串 {i % 150}", "ug": f"ئۇيغۇر {i}", "text": f"ئۇيغۇر {i % 90}"} for i in range(400)]
    path = write_jsonl(tmp_path / "mt.jsonl", rows)
    spec = dict(task="translation", tgt_lang="ug", src_field="zh", tgt_field="ug", test_share=0.2)
    test_inputs = {e.source for e in read_task_file(path, TaskSpec(**spec, split="test")).examples}
    for side, expected in (("train", 400 - sum(r["zh"] in test_inputs for r in rows)), ("all", 400)):
        source = LocalSource(
            SourceSpec(path=str(path), task="mt", langs=["zh", "ug"], split=side, test_share=0.2), False, tmp_path
        )
        seen = [source.read(0, line)[0][0] for line in range(source.rows)]
        assert len(seen) == expected and (side == "all" or test_inputs.isdisjoint(seen))
    summaries = dict(task="summarization", tgt_lang="ug", text_field="text", summary_field="ug", test_share=0.3)
    held = {e.source for e in read_task_file(path, TaskSpec(**summaries, split="test")).examples}
    dae = LocalSource(SourceSpec(path=str(path), task="dae", lang="ug", split="train", test_share=0.3), False, None)
    assert held.isdisjoint(dae.read(0, line)[0][0] for line in range(dae.rows)) and dae.rows < 400
    with pytest.raises(DataError, match="no usable lines on the test side"):
        LocalSource(SourceSpec(path=str(path), task="dae", lang="ug", split="test", test_share=1e-12), False, None)


def test_text_skip_lines_drops_a_heading_that_gives_the_title_away(tmp_path):
    rows = [{"title": f"ماۋزۇ {i}", "text": f"# ماۋزۇ {i}\n\nتېكىست {i} بۇ يەردە."} for i in range(5)]
    path = write_jsonl(tmp_path / "essays.jsonl", rows)
    spec = dict(task="summarization", tgt_lang="ug", text_field="text", summary_field="title")
    plain = read_task_file(path, TaskSpec(**spec))
    assert plain.gives_away == 5 and plain.examples[0].source.startswith("# ماۋزۇ 0")
    skipped = read_task_file(path, TaskSpec(**spec, text_skip_lines=1))
    assert skipped.gives_away == 0 and [e.source for e in skipped.examples][:1] == ["تېكىست 0 بۇ يەردە."]
    with pytest.raises(DataError, match="nothing left of 'text' after text_skip_lines"):
        read_task_file(path, TaskSpec(**spec, text_skip_lines=2))


def test_the_split_of_a_real_file_keeps_every_test_input_out_of_training():
    """The real UI strings and KazQAD as the real-text benchmark splits them: no test input (MRC: context) on the
    training side, and the test side about test_share of the distinct inputs."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder {SHARED_DATA} is absent")
    cases = [
        (
            SHARED_DATA / "mt" / "software-ui.en-zh-ug.jsonl",
            dict(task="translation", tgt_lang="ug", src_field="zh", tgt_field="ug"),
        ),
        (SHARED_DATA / "qa" / "kazqad.validation.jsonl", dict(task="mrc", tgt_lang="kk", answer_field="answers")),
    ]
    for path, spec in cases:
        key = (lambda e: e.context) if spec["task"] == "mrc" else (lambda e: e.source)
        train = {key(e) for e in read_task_file(path, TaskSpec(**spec, split="train"), skip_empty=True).examples}
        test = {key(e) for e in read_task_file(path, TaskSpec(**spec, split="test"), skip_empty=True).examples}
        assert train.isdisjoint(test), path
        assert 0.05 < len(test) / (len(train) + len(test)) < 0.15, path
