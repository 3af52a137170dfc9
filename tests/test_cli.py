import subprocess
import sys

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import swcm  # noqa: F401  (registers the Auto classes)
from swcm.cli import main


def test_build_writes_a_loadable_model_and_prints_a_summary(tiny_xlmr_12, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["build", "--encoder", str(tiny_xlmr_12), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "decoder layout (15 layers): C C C N C C C N C C C N C C C" in printed
    assert "copied from the encoder: 384 tensors" in printed  # 12 layers x 16 modules x (weight, bias)
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    counts = model.parameter_counts()
    assert f"encoder {counts['encoder']:,} | decoder {counts['decoder']:,} | lm_head {counts['lm_head']:,}" in printed
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert {c: tokenizer.convert_tokens_to_ids(f"<{c}>") for c in "bo ug kk mn zh".split()} == model.config.lang_tag_ids
    ids = model.generate(**tokenizer(["中文"], return_tensors="pt"), tgt_lang="bo", max_new_tokens=3)
    assert ids[0, 1].item() == model.config.lang_tag_ids["bo"]


def test_build_ablation_switches(tiny_xlmr, tmp_path, capsys):
    args = [
        "build",
        "--encoder",
        str(tiny_xlmr),
        "--out",
        str(tmp_path / "m"),
        "--normal-every",
        "1",
        "--decoder-init",
        "random",
        "--normal-init",
        "copy-previous",
        "--tie-lm-head",
        "--lang-tags",
        "bo,fr",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "C N C N C N C" in printed
    assert "copied from the encoder: 0 tensors (decoder_init=random)" in printed
    # 3 normal layers x (2 attentions x 8 + FFN 4 + 3 LayerNorms x 2) tensors
    assert "copied from the previous layer: 78 tensors" in printed
    assert "(tied)" in printed and "<fr>=" in printed
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "m")
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert torch.equal(
        model.get_parameter("model.decoder.layers.1.ffn.fc1.weight"),
        model.get_parameter("model.decoder.layers.0.ffn2.fc1.weight"),
    )


def test_unsupported_encoder_is_a_one_line_error(tiny_gpt2, tmp_path, capsys):
    assert main(["build", "--encoder", str(tiny_gpt2), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "model_type 'gpt2' is not supported; supported: bert, camembert, roberta, xlm-roberta" in err
    assert not (tmp_path / "m").exists()


def test_missing_path_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / "no-such-encoder"
    assert main(["build", "--encoder", str(missing), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"swcm build: error: encoder path '{missing}' does not exist"


def test_console_script_runs(tiny_xlmr, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "swcm.cli", "build", "--encoder", str(tiny_xlmr), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "decoder layout (5 layers): C C C N C" in result.stdout
