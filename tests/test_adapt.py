import json

import numpy as np
import pytest
from transformers import AutoModelForMaskedLM, AutoTokenizer

from swcm import from_encoder
from swcm.adapt import adapt, word_units
from swcm.cli import main
from swcm.recipe import AdaptRecipe


def test_word_units_follow_the_script_tokenizer():
    # Tibetan: one unit per syllable (tsheg-delimited); Chinese: per character; Cyrillic: per word
    text = "བོད་ཡིག 中文 қазақ тілі"
    # pieces: བོ | ད | ་ | ཡིག | 中 | 文 | қаз | ақ | тілі
    pieces = [(0, 2), (2, 3), (3, 4), (4, 7), (8, 9), (9, 10), (11, 14), (14, 16), (17, 21)]
    units = word_units(text, pieces)
    assert units[0] == units[1], "pieces of one Tibetan syllable share a unit"
    assert units[5 + 1] == units[7], "pieces of one Kazakh word share a unit"
    distinct = [units[0], units[2], units[3], units[4], units[5], units[6], units[8]]
    assert len(set(distinct)) == len(distinct), "syllables, characters, words and the tsheg are separate units"


def _corpus(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "mono.jsonl"
    texts = ["中文新闻。你好世界！", "қазақ тілі. монгол хэл.", "ئۇيغۇرچە تىل.", "བོད་ཡིག་ཀ་ཁ།"]
    path.write_text("".join(json.dumps({"text": texts[i % 4] * 2}, ensure_ascii=False) + "\n" for i in range(80)))
    return path


def _recipe(tiny_xlmr, tmp_path, **overrides):
    fields = dict(
        model=str(tiny_xlmr),
        sources=[{"path": str(_corpus(tmp_path)), "task": "dae", "lang": "zh"}],
        out=str(tmp_path / "adapt"),
        max_steps=6,
        global_batch=4,
        micro_batch=2,
        max_length=24,
        lr=1e-3,
        num_workers=0,
        save_every=3,
        log_every=1,
        heldout_lines=8,
        mixed_precision="fp32",
    )
    fields.update(overrides)
    return AdaptRecipe(**fields)


def test_adapt_trains_the_encoder_and_saves_it_with_its_head(tiny_xlmr, tmp_path):
    summary = adapt(_recipe(tiny_xlmr, tmp_path))
    final = tmp_path / "adapt" / "final"
    mlm = AutoModelForMaskedLM.from_pretrained(final)
    assert AutoTokenizer.from_pretrained(final).mask_token_id is not None
    assert summary["mlm_head"].startswith("new"), "the tiny encoder has no MLM head of its own"
    report = json.loads((tmp_path / "adapt" / "report.json").read_text())
    held = report["heldout"]["zh"]
    assert held["tokens"] > 0 and held["loss_after"] < held["loss_before"]
    # the adapted encoder builds an XLM-SWCM model (its MLM head is left behind by the encoder loader)

    model = from_encoder(final)
    assert model.config.vocab_size >= mlm.config.vocab_size


def test_adapt_resumes_to_the_uninterrupted_loss_curve(tiny_xlmr, tmp_path):
    adapt(_recipe(tiny_xlmr, tmp_path / "a"))
    full = [json.loads(line)["loss"] for line in (tmp_path / "a" / "adapt" / "log.jsonl").read_text().splitlines()]
    recipe = _recipe(tiny_xlmr, tmp_path / "b")
    adapt(recipe, stop_after=4)  # checkpoint at step 3, log to 4
    adapt(recipe, resume=True)
    resumed = [json.loads(line)["loss"] for line in (tmp_path / "b" / "adapt" / "log.jsonl").read_text().splitlines()]
    assert len(resumed) == len(full) == 6
    assert np.allclose(resumed, full, atol=1e-5)


def test_adapt_cli_with_overrides_and_bad_sources(tiny_xlmr, tmp_path, capsys):
    import yaml

    recipe = _recipe(tiny_xlmr, tmp_path)
    config = tmp_path / "adapt.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": recipe.model,
                "sources": [{"path": recipe.sources[0].path, "task": "dae", "lang": "zh"}],
                "out": recipe.out,
                "max_steps": 2,
                "global_batch": 2,
                "micro_batch": 2,
                "max_length": 24,
                "num_workers": 0,
                "heldout_lines": 4,
            }
        )
    )
    assert main(["adapt", "--config", str(config), "--masking.whole_word", "true", "--mixed_precision", "fp32"]) == 0
    saved = json.loads((tmp_path / "adapt" / "recipe.json").read_text())
    assert saved["masking"]["whole_word"] is True
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "model": recipe.model,
                "max_steps": 1,
                "sources": [{"path": recipe.sources[0].path, "task": "mt", "langs": ["zh", "ug"]}],
            }
        )
    )
    assert main(["adapt", "--config", str(bad)]) == 2
    assert "adapt takes monolingual sources" in capsys.readouterr().err


def test_heldout_lines_over_half_a_source_is_refused_before_training(tiny_xlmr, tmp_path):
    from swcm.adapt import adapt
    from swcm.errors import DataError

    recipe = _recipe(tiny_xlmr, tmp_path, heldout_lines=41)  # the corpus has 80 lines
    with pytest.raises(DataError, match=r"heldout_lines: 41 is more than half of source .*mono.jsonl \(80 usable"):
        adapt(recipe)
    assert not (tmp_path / "adapt").exists(), "a refused run leaves no folder behind"
