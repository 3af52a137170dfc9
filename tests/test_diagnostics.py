import json
import math

import pytest
import torch
import torch.nn.functional as F

from swcm import SWCMForConditionalGeneration, from_encoder
from swcm.cli import main
from swcm.diagnostics import decoder_start, probe_pairs
from swcm.tokenization import encode_targets


def test_probe_is_fixed_held_out_cldr_pairs():
    pairs = probe_pairs(["ug", "bo"], per_lang=5)
    assert len(pairs) == 10 and pairs == probe_pairs(["ug", "bo"], per_lang=5)
    assert {lang for _, lang, _ in pairs} == {"ug", "bo"}


def test_decoder_start_measures_a_uniform_head_as_log_v(tiny_xlmr):
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.bias.zero_()
    model.train()
    start = decoder_start(model, tokenizer, per_lang=4)
    log_v = math.log(model.config.vocab_size)
    assert start.log_vocab == pytest.approx(log_v)
    assert start.entropy == pytest.approx(log_v, abs=1e-4)
    assert start.probe_loss == pytest.approx(log_v, abs=1e-4)
    assert start.probe_pairs == 4 * 4 and start.probe_tokens > start.probe_pairs
    assert model.training, "the model's mode is restored"


def test_decoder_start_cosine_is_that_of_the_top_decoder_states(tiny_xlmr):
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.eval()
    pairs = probe_pairs(["kk"], per_lang=6)
    start = decoder_start(model, tokenizer, pairs)
    batch = tokenizer([s for s, _, _ in pairs], return_tensors="pt", padding=True)
    batch.pop("token_type_ids", None)
    labels = encode_targets(tokenizer, [t for _, _, t in pairs], "kk", max_length=64)
    with torch.no_grad():
        states = model(**batch, labels=labels, output_hidden_states=True).decoder_hidden_states[-1][labels != -100]
    states = F.normalize(states, dim=-1)
    n = states.shape[0]
    expected = float(((states @ states.T).sum() - n) / (n * (n - 1)))
    assert start.top_state_cosine == pytest.approx(expected, abs=1e-5)
    assert start.probe_tokens == n


def test_the_default_gated_start_is_less_collapsed_than_the_papers(tiny_xlmr):
    torch.manual_seed(0)  # the normal layers are random: the same ones for both builds, whatever ran before
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    torch.manual_seed(0)
    paper = from_encoder(tiny_xlmr, decoder_gate_init=None)
    gated, ungated = decoder_start(model, tokenizer), decoder_start(paper, tokenizer)
    assert gated.top_state_cosine < ungated.top_state_cosine


def test_build_prints_the_decoder_start_and_writes_a_summary(tiny_xlmr, tmp_path, capsys):
    assert main(["build", "--encoder", str(tiny_xlmr), "--out", str(tmp_path / "m"), "--decoder_gate_init", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert "decoder start: top-state cosine" in printed
    summary = json.loads((tmp_path / "m" / "build.json").read_text())
    assert summary["decoder_gate_init"] == 0.5
    assert set(summary["decoder_start"]) >= {"top_state_cosine", "entropy", "log_vocab", "probe_loss"}
    reloaded = SWCMForConditionalGeneration.from_pretrained(tmp_path / "m")
    assert torch.allclose(reloaded.model.decoder.layers[0].ffn2_gate, torch.full((32,), 0.5))
