"""The model card written beside every saved model: metadata header, provenance, training stages, evaluation."""

import json

import yaml

from swcm import SWCMForConditionalGeneration, from_encoder
from swcm.model_card import CARD_DATA, add_evaluation, provenance


def _header(readme: str) -> dict:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_a_packaged_encoder_names_its_hub_original_and_license(tmp_path):
    assert provenance("packaged:multilingual-e5-small") == {
        "base_model": "intfloat/multilingual-e5-small",
        "license": "mit",
        "source": "packaged:multilingual-e5-small",
    }
    assert provenance("hfl/cino-base-v2")["base_model"] == "hfl/cino-base-v2"
    assert provenance(tmp_path)["base_model"] is None, "a folder without a card has no known origin"


def test_build_writes_a_card_and_evaluation_adds_its_scores(tiny_xlmr, tmp_path):
    model, tokenizer = from_encoder(tiny_xlmr, lang_tags=("ug", "zh"), return_tokenizer=True)
    out = tmp_path / "model"
    model.save_pretrained(out)
    readme = (out / "README.md").read_text(encoding="utf-8")
    header = _header(readme)
    assert header["language"] == ["ug", "zh"] and header["library_name"] == "transformers"
    assert header["pipeline_tag"] == "text2text-generation" and header["license"] == "other"
    assert "base_model" not in header, "a local test encoder has no hub original"
    assert f"**Built from:** `{tiny_xlmr}`" in readme and "C C C N C (C: custom, N: normal)" in readme
    assert "decoder_init=shared" in readme and "sublayer gates 0.02" in readme
    assert "Not trained yet" in readme and "Not evaluated yet" in readme
    row = {"task": "translation", "lang": "ug", "n": 3, "chrf++": 12.34, "rougeL_f": 5.0, "off_target": 0.0}
    row["file"], row["split"] = "data/ui.jsonl", "test"
    assert add_evaluation(out, [row], tmp_path / "eval" / "report.json")
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "| translation | ug | ui.jsonl (test side) | 3 | 12.3 |" in readme and "Not evaluated yet" not in readme
    assert json.loads((out / CARD_DATA).read_text())["evaluation"][0]["lang"] == "ug"
    # another file's scores stand beside the first, each naming its report; the same file again replaces its row
    other = {**row, "file": "data/ntrex.jsonl", "split": "all", "chrf++": 3.0}
    assert add_evaluation(out, [other], tmp_path / "eval-ntrex" / "report.json")
    assert add_evaluation(out, [{**row, "chrf++": 20.0}], tmp_path / "eval-again" / "report.json")
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "| translation | ug | ntrex.jsonl | 3 | 3.0 |" in readme
    assert "| translation | ug | ui.jsonl (test side) | 3 | 20.0 |" in readme and "| 12.3 |" not in readme
    assert f"`{tmp_path / 'eval-ntrex' / 'report.json'}`, `{tmp_path / 'eval-again' / 'report.json'}`" in readme
    # a folder swcm did not save keeps its own README
    assert not add_evaluation(tmp_path, [row], "report.json")


def test_a_model_loaded_and_saved_again_keeps_its_training_stages(tiny_xlmr, tmp_path):
    model = from_encoder(tiny_xlmr)
    model.training_record = {"stage": "pretraining", "steps": "3 x 2 sequences"}
    model.save_pretrained(tmp_path / "pretrained")
    again = SWCMForConditionalGeneration.from_pretrained(tmp_path / "pretrained")
    again.training_record = {"stage": "fine-tuning", "steps": "5 x 2 sequences"}
    again.save_pretrained(tmp_path / "finetuned")
    readme = (tmp_path / "finetuned" / "README.md").read_text(encoding="utf-8")
    assert "1. **pretraining**" in readme and "2. **fine-tuning**" in readme and "5 x 2 sequences" in readme


def test_a_pruned_encoder_carries_its_origin_to_the_models_built_from_it(tiny_xlmr, tmp_path):
    from swcm.vocab import prune_vocab

    corpus = tmp_path / "c.txt"
    corpus.write_text("中文 世界\nسالام دۇنيا\n", encoding="utf-8")
    prune_vocab(tiny_xlmr, [corpus], tmp_path / "pruned")
    card = json.loads((tmp_path / "pruned" / CARD_DATA).read_text())
    assert card["kind"] == "encoder" and card["training"][0]["stage"] == "vocabulary pruned"
    assert _header((tmp_path / "pruned" / "README.md").read_text())["pipeline_tag"] == "fill-mask"
    # the origin of a packaged encoder reaches the model through the pruned folder's card
    card["base_model"], card["license"] = "intfloat/multilingual-e5-small", "mit"
    (tmp_path / "pruned" / CARD_DATA).write_text(json.dumps(card))
    model = from_encoder(tmp_path / "pruned")
    model.save_pretrained(tmp_path / "model")
    header = _header((tmp_path / "model" / "README.md").read_text())
    assert header["base_model"] == "intfloat/multilingual-e5-small" and header["license"] == "mit"
