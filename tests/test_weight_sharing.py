import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from swcm import SWCMForConditionalGeneration, copy_previous_plan, from_encoder, weight_sharing_plan
from swcm.configuration_swcm import layout_string
from swcm.weight_sharing import CUSTOM_LAYER_SOURCES, WeightMapError


def _saved_encoder_weights(path):
    return {k: v for k, v in load_file(path / "model.safetensors").items()}


def test_every_planned_pair_is_equal_after_init(tiny_encoder):
    model = from_encoder(tiny_encoder)
    plan = weight_sharing_plan(model)
    n_custom = model.config.num_custom_layers
    # weight + bias of each mapped module, for every custom layer
    assert len(plan) == 2 * len(CUSTOM_LAYER_SOURCES) * n_custom
    for dst, src in plan:
        assert torch.equal(model.get_parameter(dst), model.get_parameter(src)), (dst, src)
    # self- and cross-attention of custom layer 0 both come from encoder layer 0's attention
    pairs = dict(plan)
    assert (
        pairs["model.decoder.layers.0.self_attn.q_proj.weight"]
        == "model.encoder.encoder.layer.0.attention.self.query.weight"
    )
    assert (
        pairs["model.decoder.layers.0.cross_attn.q_proj.weight"]
        == "model.encoder.encoder.layer.0.attention.self.query.weight"
    )
    assert pairs["model.decoder.layers.4.ffn2.fc1.weight"] == "model.encoder.encoder.layer.3.intermediate.dense.weight"


def test_encoder_weights_are_the_pretrained_ones(tiny_encoder):
    model = from_encoder(tiny_encoder)
    saved = _saved_encoder_weights(tiny_encoder)
    encoder = model.model.encoder.state_dict()
    compared = 0
    for key, value in saved.items():
        if key.startswith("pooler."):
            assert key not in encoder
            continue
        if key == "embeddings.word_embeddings.weight":  # grew by the language-tag rows
            assert torch.equal(encoder[key][: value.shape[0]], value)
        else:
            assert torch.equal(encoder[key], value), key
        compared += 1
    assert compared == len([k for k in encoder if k in saved])


def test_copies_do_not_share_storage(tiny_xlmr):
    model = from_encoder(tiny_xlmr)
    dst, src = weight_sharing_plan(model)[0]
    with torch.no_grad():
        model.get_parameter(dst).add_(1.0)
    assert not torch.equal(model.get_parameter(dst), model.get_parameter(src))
    self_q = model.get_parameter("model.decoder.layers.0.self_attn.q_proj.weight")
    cross_q = model.get_parameter("model.decoder.layers.0.cross_attn.q_proj.weight")
    assert self_q.data_ptr() != cross_q.data_ptr()


def test_decoder_embeddings_are_the_encoders_module(tiny_xlmr):
    model = from_encoder(tiny_xlmr)
    names = [n for n, _ in model.named_parameters()]
    assert not any("embed" in n for n in names if n.startswith("model.decoder."))


def test_random_decoder_shares_nothing(tiny_xlmr):
    shared = from_encoder(tiny_xlmr)
    model = from_encoder(tiny_xlmr, decoder_init="random")
    assert weight_sharing_plan(model) == []
    for dst, src in weight_sharing_plan(shared):
        assert not torch.equal(model.get_parameter(dst), model.get_parameter(src)), dst


def test_base_a_has_no_normal_layers(tiny_xlmr_12):
    model = from_encoder(tiny_xlmr_12, normal_every=0)
    assert model.config.decoder_layer_types == ["custom"] * 12
    assert len(model.model.decoder.layers) == 12
    paper = from_encoder(tiny_xlmr_12)
    assert layout_string(paper.config.decoder_layer_types) == "C C C N C C C N C C C N C C C"
    assert len(weight_sharing_plan(paper)) == 12 * 2 * len(CUSTOM_LAYER_SOURCES)


@pytest.mark.parametrize("decoder_init", ["shared", "random"])
def test_base_b_normal_layer_equals_its_predecessor(tiny_xlmr_12, decoder_init):
    model = from_encoder(tiny_xlmr_12, normal_init="copy-previous", decoder_init=decoder_init)
    plan = copy_previous_plan(model)
    normal_layers = [j for j, t in enumerate(model.config.decoder_layer_types) if t == "normal"]
    assert normal_layers == [3, 7, 11]
    assert {dst.split(".")[3] for dst, _ in plan} == {"3", "7", "11"}
    for dst, src in plan:
        assert int(src.split(".")[3]) == int(dst.split(".")[3]) - 1
        assert torch.equal(model.get_parameter(dst), model.get_parameter(src)), (dst, src)
    # every parameter of a normal layer is covered, except its gates (new parameters, never copied)
    normal_params = [
        n for n, _ in model.named_parameters() if n.startswith("model.decoder.layers.3.") and not n.endswith("_gate")
    ]
    assert sorted(normal_params) == sorted(dst for dst, _ in plan if dst.startswith("model.decoder.layers.3."))
    default = from_encoder(tiny_xlmr_12)
    assert copy_previous_plan(default) == []
    w = default.get_parameter("model.decoder.layers.3.self_attn.q_proj.weight")
    assert not torch.equal(w, default.get_parameter("model.decoder.layers.2.self_attn.q_proj.weight"))


def test_plan_fails_on_more_custom_layers_than_encoder_layers(tiny_xlmr):
    with pytest.raises(WeightMapError, match="5 custom decoder layers but only 4 encoder layers"):
        from_encoder(tiny_xlmr, decoder_layer_types=["custom"] * 5)


def test_plan_fails_on_shape_mismatch_and_unmapped_parameter(tiny_xlmr):
    model = from_encoder(tiny_xlmr)
    layer = model.model.decoder.layers[0]
    layer.ffn1.fc1 = torch.nn.Linear(32, 7)
    with pytest.raises(
        WeightMapError,
        match=r"shape of model.decoder.layers.0.ffn1.fc1.bias \(7,\) != shape of .*intermediate.dense.bias \(64,\)",
    ):
        weight_sharing_plan(model)
    model = from_encoder(tiny_xlmr)
    model.model.decoder.layers[1].adapter = torch.nn.Linear(2, 2)
    with pytest.raises(WeightMapError, match="layers.1.adapter.bias has no source"):
        weight_sharing_plan(model)


def test_language_tags_start_from_their_language_names(tiny_xlmr):
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    embeddings = model.get_input_embeddings().weight
    rows = {code: embeddings[i] for code, i in model.config.lang_tag_ids.items()}
    assert set(rows) == {"bo", "ug", "kk", "mn", "zh"}
    for code, row in rows.items():
        assert row.abs().sum() > 0, code
        assert tokenizer.convert_ids_to_tokens(model.config.lang_tag_ids[code]) == f"<{code}>"
    pieces = tokenizer("中文", add_special_tokens=False)["input_ids"]
    assert torch.allclose(rows["zh"], embeddings[pieces].mean(0))
    assert len({tuple(r.tolist()) for r in rows.values()}) == 5
    # tags are single tokens, kept whole inside text
    ids = tokenizer("<bo> བོད", add_special_tokens=False)["input_ids"]
    assert ids[0] == model.config.lang_tag_ids["bo"]


def test_a_custom_layers_first_half_computes_its_encoder_layer(tiny_encoder):
    """Self-attention + FFN1 of custom layer i, with the causal mask off, reproduce encoder layer i exactly: the
    copy carries the computation, not just tensors with matching names (the authors' release copied nothing)."""
    model = from_encoder(tiny_encoder).eval()
    custom = [j for j, t in enumerate(model.config.decoder_layer_types) if t == "custom"]
    x = torch.randn(2, 7, model.config.hidden_size)
    for i, j in enumerate(custom):
        encoder_layer, decoder_layer = model.model.encoder.encoder.layer[i], model.model.decoder.layers[j]
        with torch.no_grad():
            expected = encoder_layer(x)
            expected = expected[0] if isinstance(expected, tuple) else expected
            nothing_masked = torch.zeros(1, 1, 7, 7)  # a mask (rather than none): attention is not causal
            h = decoder_layer.self_attn_layer_norm(x + decoder_layer.self_attn(x, attention_mask=nothing_masked))
            h = decoder_layer.ffn1_layer_norm(h + decoder_layer.ffn1(h))
        torch.testing.assert_close(h, expected, atol=1e-6, rtol=1e-6)


def test_decoder_source_layers_choose_the_copied_encoder_layer(tiny_xlmr):
    model = from_encoder(tiny_xlmr, decoder_source_layers=[0, 1, 1, 1])
    pairs = dict(weight_sharing_plan(model))
    # the layout is C C C N C: custom layers 0, 1, 2, 4 copy encoder layers 0, 1, 1, 1
    assert pairs["model.decoder.layers.4.ffn2.fc1.weight"] == "model.encoder.encoder.layer.1.intermediate.dense.weight"
    assert torch.equal(
        model.get_parameter("model.decoder.layers.4.cross_attn.q_proj.weight"),
        model.get_parameter("model.encoder.encoder.layer.1.attention.self.query.weight"),
    )
    with pytest.raises(ValueError, match="decoder_source_layers must name one encoder layer"):
        from_encoder(tiny_xlmr, decoder_source_layers=[0, 1, 2, 9])


def test_gates_leave_the_copies_intact_and_interpolate_identity_and_the_layer(tiny_xlmr):
    torch.manual_seed(0)
    plain = from_encoder(tiny_xlmr, decoder_gate_init=None).eval()
    torch.manual_seed(0)
    gated = from_encoder(tiny_xlmr, decoder_gate_init=1.0).eval()
    assert len(weight_sharing_plan(gated)) == len(weight_sharing_plan(plain)), "gates are new, not copied"
    ids = torch.tensor([[0, 10, 11, 12, 2]])
    decoder_ids = torch.tensor([[0, 5, 20, 21]])
    with torch.no_grad():
        expected = plain(input_ids=ids, decoder_input_ids=decoder_ids).logits
        assert torch.allclose(gated(input_ids=ids, decoder_input_ids=decoder_ids).logits, expected, atol=1e-5)
        for name, param in gated.named_parameters():
            if name.endswith("_gate"):
                param.zero_()
        closed = gated(input_ids=ids, decoder_input_ids=decoder_ids).logits
        # gates at 0: the gated sublayers (self-attention, FFNs) pass their input through, so their weights do not
        # matter; cross-attention is never gated, so the output still depends on the source
        for layer in gated.model.decoder.layers:
            for name in ("self_attn", "ffn1", "ffn2", "ffn"):
                if hasattr(layer, name):
                    for param in getattr(layer, name).parameters():
                        param.add_(torch.randn_like(param))
        assert torch.allclose(gated(input_ids=ids, decoder_input_ids=decoder_ids).logits, closed, atol=1e-5)
        other_source = gated(input_ids=torch.tensor([[0, 30, 31, 2]]), decoder_input_ids=decoder_ids).logits
        assert not torch.allclose(other_source, closed, atol=1e-3)


def test_lm_head_from_the_encoders_mlm_head(tiny_xlmr, tmp_path):
    from transformers import AutoModelForMaskedLM

    from swcm.encoders import EncoderError

    with pytest.raises(EncoderError, match="has no masked-LM head"):
        from_encoder(tiny_xlmr, lm_head_init="mlm-head")
    torch.manual_seed(1)
    mlm = AutoModelForMaskedLM.from_pretrained(tiny_xlmr)
    with torch.no_grad():
        for param in mlm.lm_head.parameters():
            param.add_(torch.randn_like(param))
    mlm.save_pretrained(tmp_path / "with-head")
    AutoTokenizer.from_pretrained(tiny_xlmr).save_pretrained(tmp_path / "with-head")
    from transformers import PreTrainedModel

    reads = []
    original = PreTrainedModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        reads.append(cls.__name__)
        return original(cls, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PreTrainedModel, "from_pretrained", classmethod(counting))
        model = from_encoder(tmp_path / "with-head", lm_head_init="mlm-head")
        assert reads == ["XLMRobertaForMaskedLM"], "the encoder and its head come from one read of the weights"
        reads.clear()
        from_encoder(tmp_path / "with-head")
        assert reads == ["XLMRobertaModel"]
    encoder = mlm.roberta.state_dict()
    assert all(torch.equal(t, encoder[k]) for k, t in model.model.encoder.state_dict().items() if "word_emb" not in k)
    rows = mlm.config.vocab_size
    assert torch.equal(model.head_transform.dense.weight, mlm.lm_head.dense.weight)
    assert torch.equal(model.head_transform.layer_norm.bias, mlm.lm_head.layer_norm.bias)
    assert torch.equal(model.lm_head.weight[:rows], mlm.lm_head.decoder.weight)
    assert torch.equal(model.lm_head.bias[:rows], mlm.lm_head.bias)
    ids = torch.tensor([[0, 10, 11, 2]])
    with torch.no_grad():  # the head computes what the MLM head computes on the same states
        states = torch.randn(1, 3, 32)
        assert torch.allclose(model.lm_head(model.head_transform(states))[..., :rows], mlm.lm_head(states), atol=1e-5)
    model.save_pretrained(tmp_path / "swcm")
    reloaded = SWCMForConditionalGeneration.from_pretrained(tmp_path / "swcm")
    with torch.no_grad():
        assert torch.allclose(
            reloaded(input_ids=ids, decoder_input_ids=ids).logits,
            model.eval()(input_ids=ids, decoder_input_ids=ids).logits,
            atol=1e-5,
        )


def test_default_shared_build_is_gated_and_the_random_baseline_is_not(tiny_xlmr):
    from swcm.choices import DEFAULT_GATE_INIT

    shared = from_encoder(tiny_xlmr)
    assert shared.config.decoder_gate_init == DEFAULT_GATE_INIT == 0.02
    gates = [p for n, p in shared.named_parameters() if n.endswith("_gate")]
    assert len(gates) == sum(len(layer.sublayers) - 1 for layer in shared.model.decoder.layers), "all but cross-attn"
    assert not [n for n, _ in shared.named_parameters() if n.endswith("cross_attn_gate")]
    assert all(torch.all(g == DEFAULT_GATE_INIT) for g in gates)
    random = from_encoder(tiny_xlmr, decoder_init="random")
    assert random.config.decoder_gate_init is None
    assert not [n for n, _ in random.named_parameters() if n.endswith("_gate")]
    paper = from_encoder(tiny_xlmr, decoder_gate_init=None)
    assert not [n for n, _ in paper.named_parameters() if n.endswith("_gate")]
