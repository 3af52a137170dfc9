import json

import numpy as np
import pytest

from swcm.arguments import QuickstartArgs
from swcm.cldr import cldr_pairs, split_pairs
from swcm.cli import main
from swcm.noising import mask_spans


def test_cldr_pairs_are_real_translations():
    pairs = cldr_pairs("zh", "ug")
    assert len(pairs) > 1000
    by_key = {p.key: p for p in pairs}
    assert by_key["territory:CN"].src == "中国"
    assert all(p.src != p.tgt for p in pairs)
    train, test = split_pairs(pairs)
    assert not {p.key for p in train} & {p.key for p in test}
    assert 0.05 < len(test) / len(pairs) < 0.15
    # the same key falls in the same split for every language
    bo_train, bo_test = split_pairs(cldr_pairs("zh", "bo"))
    ug_test = {p.key for p in test}
    shared = {p.key for p in bo_train + bo_test} & set(by_key)
    assert len(shared) > 200
    assert {k for k in shared if k in ug_test} == {p.key for p in bo_test} & shared


def test_mask_spans_masks_about_the_ratio_in_spans():
    rng = np.random.default_rng(0)
    ids = list(range(100, 300))
    noised = mask_spans(ids, mask_id=4, rng=rng)
    kept = [t for t in noised if t != 4]
    assert kept == [t for t in ids if t in set(kept)], "order preserved, nothing invented"
    assert abs((len(ids) - len(kept)) / len(ids) - 0.35) < 0.02
    assert noised.count(4) < len(ids) - len(kept), "spans longer than one token become one mask"


def _quickstart(tiny_xlmr, out, steps):
    return main(
        [
            "quickstart",
            "--encoder",
            str(tiny_xlmr),
            "--out",
            str(out),
            "--steps",
            str(steps),
            "--batch_size",
            "8",
            "--max_eval",
            "4",
            "--langs",
            "[ug,bo]",
            "--precision",
            "fp32",
        ]
    )


def test_quickstart_runs_the_real_pipeline_on_a_tiny_encoder(tiny_xlmr, tmp_path, capsys, monkeypatch):
    import swcm.quickstart

    # The tiny vocabulary spells Tibetan, so no language would need pieces: lower the bar to take the extend path.
    monkeypatch.setattr(swcm.quickstart, "EXTEND_UNK_RATE", -1.0)
    out = tmp_path / "qs"
    assert _quickstart(tiny_xlmr, out, 12) == 0
    printed = capsys.readouterr().out
    assert "| zh -> | test pairs | chrF++ before | chrF++ after |" in printed
    assert "precision fp32" in printed, "the training loop says which precision it chose"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert set(report["languages"]) == {"ug", "bo"}
    assert set(report["vocab_extensions"]) == {"ug", "bo"}
    assert report["vocab_extensions"]["bo"]["vocab_after"] >= report["vocab_extensions"]["bo"]["vocab_before"]
    assert report["languages"]["ug"]["n"] == 4
    assert report["steps"] == 12 and report["log"][-1]["step"] == 12
    # held-out loss while training (every steps // 6 = 2 steps, at the log steps 10 and 12) and before / after
    assert [row["step"] for row in report["heldout_curve"]] == [10, 12]
    assert set(report["heldout_curve"][-1]) == {"step", "heldout", "heldout_ug", "heldout_bo"}
    ug = report["languages"]["ug"]
    assert ug["heldout_loss_after"] < ug["heldout_loss_before"], "12 steps on the held-out names' language lower it"
    assert len(report["samples"]) == 6
    # trained by run_training (checkpoints, log, initial / final), evaluated from the saved models
    assert (out / "train" / "final" / "model.safetensors").is_file()
    assert (out / "train" / "initial" / "model.safetensors").is_file()
    assert (out / "train" / "log.jsonl").is_file() and (out / "encoder" / "tokenizer.json").is_file()
    assert (out / "data" / "cldr.zh-ug.test.jsonl").is_file()
    # model cards: the encoder names the encoder the run started from, the model its training
    encoder_card = json.loads((out / "encoder" / "swcm_card.json").read_text(encoding="utf-8"))
    assert encoder_card["source"] == str(tiny_xlmr) and encoder_card["training"][0]["stage"] == "first 6 layers kept"
    assert "1. **pretraining**" in (out / "train" / "final" / "README.md").read_text(encoding="utf-8")
    recipe = json.loads((out / "train" / "recipe.json").read_text())
    assert recipe["decoder_init"] == "shared" and recipe["mixed_precision"] == "fp32"
    # a second run reuses the pruned encoder (same inputs) and trains afresh
    assert _quickstart(tiny_xlmr, out, 2) == 0
    assert "reusing" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["steps"] == 2


def test_quickstart_rejects_unknown_languages(tmp_path):
    with pytest.raises(ValueError, match=r"langs: \['fr'\] unknown; choose from ug, kk, mn, bo"):
        QuickstartArgs(out=tmp_path, langs=["fr"])


def test_a_stopped_quickstart_does_not_suggest_resume(tmp_path, monkeypatch):
    import signal

    from swcm import quickstart, training
    from swcm.errors import TrainingInterrupted

    def stopped(*args, **kwargs):
        raise TrainingInterrupted(signal.SIGINT, 7, tmp_path / "step-7")

    monkeypatch.setattr(quickstart, "prepare_encoder", lambda *args, **kwargs: tmp_path)
    monkeypatch.setattr(quickstart, "quickstart_recipe", lambda *args, **kwargs: type("R", (), {"out": tmp_path / "t"}))
    monkeypatch.setattr(training, "pretrain", stopped)
    with pytest.raises(TrainingInterrupted) as stop:
        quickstart.run_quickstart(QuickstartArgs(out=tmp_path / "qs", langs=["ug"]))
    assert stop.value.exit_code == 130 and "--resume" not in str(stop.value)
    assert str(stop.value).endswith("swcm quickstart starts again from the beginning when run again")


def test_the_encoder_folder_is_never_cleared_of_files_swcm_did_not_write(tmp_path):
    from swcm.errors import DataError
    from swcm.quickstart import prepare_encoder

    out = tmp_path / "encoder"
    out.mkdir()
    (out / "thesis.txt").write_text("mine")
    with pytest.raises(DataError, match="holds files swcm did not write \\(no swcm-inputs.txt\\)"):
        prepare_encoder("packaged:multilingual-e5-small", {}, [], out, layers=2)
    assert (out / "thesis.txt").read_text() == "mine"
