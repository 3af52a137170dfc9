import json

import pytest

from swcm import SWCMForConditionalGeneration
from swcm.cli import main
from swcm.errors import DataError, RecipeError
from swcm.specs import TaskSpec
from swcm.tasks import mrc_sources, read_task_file

from .test_data import write_jsonl


@pytest.fixture(scope="module")
def model_dir(tiny_xlmr, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-model")
    model, tokenizer = SWCMForConditionalGeneration.from_encoder(tiny_xlmr, return_tokenizer=True)
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
    assert truncated == 1
    assert sources[0].startswith("ئۇيغۇر تىلى نېمە؟ </s> ئۇيغۇر")
    assert len(tokenizer(sources[0])["input_ids"]) <= 40 + 2
    assert example_context_is_a_prefix(sources[0], data.examples[0].context)
    assert sources[1] == "中文? </s> 中文"
    with pytest.raises(DataError, match=r"qa.jsonl:1: the question alone is \d+ tokens, over 5"):
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
    assert all(
        {"rougeL_f", "rougeL_p", "rougeL_r", "chrf++", "bleu", "off_target"} <= set(r) for r in report["results"]
    )
    predictions = (out / "predictions" / "translation.bo.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == 3 and json.loads(predictions[0])["references"] == ["བོད་ཡིག"]
    assert main([*args[:8], "[ug,fr]", *args[9:]]) == 2
    assert "model has no language tag <fr>; its tags: ['bo', 'kk', 'mn', 'ug', 'zh']" in capsys.readouterr().err
