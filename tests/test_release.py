"""Converting the authors' release: a checkpoint in exactly their key layout, checked against a direct
re-implementation of their layer equations (model.py of the release) on the same weights."""

import argparse

import pytest
import torch
from torch import nn

from swcm.cli import main
from swcm.release import ReleaseError, convert_release, load_release_state_dict
from swcm.weight_sharing import DECODER_LAYER

LAYOUT = ["custom", "custom", "custom", "normal", "custom"]  # 4-layer encoder, a normal layer after every 3


class ReleaseCustomLayer(nn.Module):
    """The release's CustomDecoderLayer equations: pre-LN, no residual around self-attention."""

    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.ffn1 = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.ffn2 = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm1, self.norm2, self.norm3, self.norm4 = (nn.LayerNorm(hidden) for _ in range(4))

    def forward(self, h, causal, memory):
        x = self.norm1(h)
        h, _ = self.self_attention(x, x, x, attn_mask=causal, need_weights=False)
        h = h + self.ffn1(self.norm2(h))
        x = self.norm3(h)
        h = h + self.cross_attention(x, memory, memory, need_weights=False)[0]
        return h + self.ffn2(self.norm4(h))


class ReleaseNormalLayer(nn.Module):
    """The release's NormalDecoderLayer equations: norm1 before both attentions, residual after the norm."""

    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn), nn.GELU(), nn.Linear(ffn, hidden))
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)

    def forward(self, h, causal, memory):
        h = self.norm1(h)
        h = h + self.self_attention(h, h, h, attn_mask=causal, need_weights=False)[0]
        h = self.norm1(h)
        h = h + self.cross_attention(h, memory, memory, need_weights=False)[0]
        h = self.norm2(h)
        return h + self.ffn(h)


class ReleaseModel(nn.Module):
    """Seq2SeqModel's parameter layout: encoder, embed_layer (shared), decoder.{embed_layer, layers, last_linear}."""

    def __init__(self, encoder_dir):
        super().__init__()
        from transformers import XLMRobertaModel

        self.encoder = XLMRobertaModel.from_pretrained(encoder_dir)  # with its pooler, as the release
        config = self.encoder.config
        self.embed_layer = self.encoder.embeddings
        size = (config.hidden_size, config.num_attention_heads, config.intermediate_size)
        self.decoder = nn.Module()
        self.decoder.embed_layer = self.embed_layer
        self.decoder.layers = nn.ModuleList(
            ReleaseCustomLayer(*size) if kind == "custom" else ReleaseNormalLayer(*size) for kind in LAYOUT
        )
        self.decoder.last_linear = nn.Linear(config.hidden_size, config.vocab_size)
        torch.manual_seed(1)
        with torch.no_grad():  # random, distinct values everywhere (LayerNorms included)
            for param in self.decoder.parameters():
                param.add_(0.1 * torch.randn_like(param))

    def forward(self, input_ids, decoder_input_ids):
        memory = self.encoder(input_ids).last_hidden_state  # no attention mask, as in the release (no padding here)
        h = self.embed_layer(decoder_input_ids)  # embedded once (the release re-embeds per layer and crashes)
        n = decoder_input_ids.shape[1]
        causal = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        for layer in self.decoder.layers:
            h = layer(h, causal, memory)
        return self.decoder.last_linear(h)


@pytest.fixture
def release(tiny_xlmr, tmp_path):
    model = ReleaseModel(tiny_xlmr).eval()
    path = tmp_path / "xlm-swcm.bin"
    torch.save(model.state_dict(), path)
    return model, path


def test_every_release_tensor_lands_where_it_should(release, tiny_xlmr):
    reference, path = release
    model, _, report = convert_release(path, str(tiny_xlmr))
    state = reference.state_dict()
    assert report["unmapped"] == []
    assert report["layout"] == "C C C N C"
    assert sorted(report["dropped"]) == sorted(
        [k for k in state if k.startswith(("embed_layer.", "decoder.embed_layer.", "encoder.pooler."))]
    )
    ours = model.state_dict()
    hidden = reference.encoder.config.hidden_size
    for j, kind in enumerate(LAYOUT):
        src, dst = f"decoder.layers.{j}.", "model." + DECODER_LAYER.format(j=j)
        for attn, our_attn in (("self_attention", "self_attn"), ("cross_attention", "cross_attn")):
            w, b = state[f"{src}{attn}.in_proj_weight"], state[f"{src}{attn}.in_proj_bias"]
            for k, name in enumerate(("q_proj", "k_proj", "v_proj")):
                assert torch.equal(ours[f"{dst}{our_attn}.{name}.weight"], w[k * hidden : (k + 1) * hidden])
                assert torch.equal(ours[f"{dst}{our_attn}.{name}.bias"], b[k * hidden : (k + 1) * hidden])
            assert torch.equal(ours[f"{dst}{our_attn}.out_proj.weight"], state[f"{src}{attn}.out_proj.weight"])
        norms = ["norm1", "norm2", "norm3", "norm4"] if kind == "custom" else ["norm1", "norm2"]
        targets = ["self_attn", "ffn1", "cross_attn", "ffn2"] if kind == "custom" else ["self_attn", "ffn"]
        for norm, target in zip(norms, targets, strict=True):
            assert torch.equal(ours[f"{dst}{target}_layer_norm.weight"], state[f"{src}{norm}.weight"])
        ffns = ["ffn1", "ffn2"] if kind == "custom" else ["ffn"]
        for ffn in ffns:
            assert torch.equal(ours[f"{dst}{ffn}.fc1.weight"], state[f"{src}{ffn}.0.weight"])
            assert torch.equal(ours[f"{dst}{ffn}.fc2.bias"], state[f"{src}{ffn}.2.bias"])
    assert torch.equal(ours["lm_head.weight"], state["decoder.last_linear.weight"])
    assert torch.equal(
        ours["model.encoder.encoder.layer.2.output.dense.weight"], state["encoder.encoder.layer.2.output.dense.weight"]
    )


def test_converted_model_computes_the_release_equations(release, tiny_xlmr):
    reference, path = release
    model, tokenizer, _ = convert_release(path, str(tiny_xlmr))
    source = tokenizer(["hello 中文 世界"], return_tensors="pt")["input_ids"]
    decoder_ids = torch.tensor([[0, 17, 23, 41, 9, 30]])
    with torch.no_grad():
        expected = reference(source, decoder_ids)
        got = model(input_ids=source, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # and the cache keeps it: step by step equals the full pass
    out = model.generate(input_ids=source, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    full = model(input_ids=source, decoder_input_ids=out[:, :-1]).logits
    assert torch.equal(full.argmax(-1)[0], out[0, 1:])


@pytest.mark.parametrize("wrap", ["module", "model_state_dict", "state_dict"])
def test_dataparallel_prefix_and_wrappers(release, tiny_xlmr, tmp_path, wrap):
    reference, _ = release
    state = reference.state_dict()
    if wrap == "module":
        payload = {"module." + k: v for k, v in state.items()}
    else:
        payload = {wrap: state, "epoch": 8, "optimizer_name": "AdamW"}
    path = tmp_path / "wrapped.bin"
    torch.save(payload, path)
    assert load_release_state_dict(path).keys() == state.keys()
    _, _, report = convert_release(path, str(tiny_xlmr))
    assert report["unmapped"] == []


def test_a_pickle_with_a_non_tensor_object_is_refused(release, tmp_path):
    reference, _ = release
    path = tmp_path / "evil.bin"
    torch.save({"state_dict": reference.state_dict(), "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(ReleaseError, match="refused, not a plain tensor checkpoint") as refused:
        load_release_state_dict(path)
    message = str(refused.value)
    assert "Unsupported global" in message and "Namespace" in message  # what was refused
    assert "weights_only" not in message and "trust" not in message, "never advise unpickling an untrusted file"
    assert "\n" not in message


def test_unknown_keys_and_inconsistent_duplicates_fail(release, tiny_xlmr, tmp_path):
    reference, _ = release
    state = dict(reference.state_dict())
    state["decoder.adapter.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "extra.bin")
    with pytest.raises(
        ReleaseError, match=r"1 checkpoint keys have no place in the model: \['decoder.adapter.weight'\]"
    ):
        convert_release(tmp_path / "extra.bin", str(tiny_xlmr))
    state = dict(reference.state_dict())
    state["embed_layer.word_embeddings.weight"] = state["embed_layer.word_embeddings.weight"] + 1
    torch.save(state, tmp_path / "dup.bin")
    with pytest.raises(ReleaseError, match="should duplicate encoder.embeddings.word_embeddings.weight"):
        convert_release(tmp_path / "dup.bin", str(tiny_xlmr))


def test_cli_convert_release(release, tiny_xlmr, tmp_path, capsys):
    _, path = release
    out = tmp_path / "converted"
    assert main(["convert-release", "--checkpoint", str(path), "--encoder", str(tiny_xlmr), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unmapped keys: 0" in printed and "C C C N C" in printed
    from transformers import AutoModelForSeq2SeqLM

    loaded = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert loaded.config.release_compat and loaded.config.decoder_layer_norm == "pre"
    assert (
        main(
            [
                "convert-release",
                "--checkpoint",
                str(tmp_path / "nope.bin"),
                "--encoder",
                str(tiny_xlmr),
                "--out",
                str(tmp_path / "other"),
            ]
        )
        == 2
    )
    assert "--checkpoint " + str(tmp_path / "nope.bin") + ": no such file" in capsys.readouterr().err


def test_a_damaged_or_foreign_checkpoint_is_one_line(release, tiny_xlmr, tmp_path):
    reference, _ = release
    state = dict(reference.state_dict())
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ReleaseError, match="empty.bin: empty or cut short, not a checkpoint"):
        convert_release(tmp_path / "empty.bin", str(tiny_xlmr))
    torch.save({k: v for k, v in state.items() if k != "decoder.last_linear.weight"}, tmp_path / "headless.bin")
    with pytest.raises(ReleaseError, match="not the XLM-SWCM release; it lacks decoder.last_linear.weight"):
        convert_release(tmp_path / "headless.bin", str(tiny_xlmr))
    torch.save({**state, "decoder.layers.x.ffn.0.weight": torch.zeros(1)}, tmp_path / "odd.bin")
    with pytest.raises(ReleaseError, match=r"layer index that is not a number: \['x'\]"):
        convert_release(tmp_path / "odd.bin", str(tiny_xlmr))


def test_a_compressed_checkpoint_is_refused_before_it_unpacks(release, tiny_xlmr, tmp_path):
    """torch.save never compresses: a deflated entry (a small file that unpacks to gigabytes) is refused from the
    zip's directory, before any tensor is read."""
    import zipfile

    _, path = release
    packed = tmp_path / "packed.bin"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename))
    with pytest.raises(ReleaseError, match=r"compressed entries \(first: .*\); torch.save never compresses"):
        convert_release(packed, str(tiny_xlmr))
    (tmp_path / "text.bin").write_text("not a checkpoint\n")
    with pytest.raises(ReleaseError, match="text.bin: not a torch checkpoint"):
        convert_release(tmp_path / "text.bin", str(tiny_xlmr))
