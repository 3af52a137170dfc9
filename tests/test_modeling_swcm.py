import json
import logging
import warnings

import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import logging as hf_logging

import swcm
from swcm import SWCMForConditionalGeneration, encode_targets, from_encoder
from swcm.modeling_swcm import CACHE_NAME
from swcm.training import recompute_layers

TEXTS = ["hello 中文 世界", "བོད་ཡིག", "ئۇيغۇرچە تىل", "қазақ"]


def _varied(model: SWCMForConditionalGeneration, seed: int = 0) -> SWCMForConditionalGeneration:
    """Sharpen the decoder and spread the LM head, so that outputs depend on the input and are not one token
    repeated: the checks below then compare non-trivial sequences."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in model.model.decoder.parameters():
            param.add_(0.3 * torch.randn_like(param))
        model.lm_head.weight.normal_(0, 1.0)
        model.lm_head.bias.normal_(0, 0.5)
    return model.eval()


@pytest.fixture
def built(tiny_encoder):
    model, tokenizer = from_encoder(tiny_encoder, return_tokenizer=True)
    return _varied(model), tokenizer


def test_step_by_step_decoding_with_cache_matches_full_forward(built):
    model, tokenizer = built
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    decoder_ids = encode_targets(tokenizer, ["中文 བོད", "ab", "ئۇ", "қа"], "bo").clamp(min=0)
    decoder_ids = model.prepare_decoder_input_ids_from_labels(decoder_ids)
    full = model(**batch, decoder_input_ids=decoder_ids, use_cache=False).logits
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    encoder_outputs = model.get_encoder()(**batch)
    steps = []
    for t in range(decoder_ids.shape[1]):
        out = model(
            attention_mask=batch["attention_mask"],
            encoder_outputs=encoder_outputs,
            decoder_input_ids=decoder_ids[:, t : t + 1],
            past_key_values=cache,
            use_cache=True,
        )
        steps.append(out.logits)
    assert cache.get_seq_length() == decoder_ids.shape[1]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-4, rtol=1e-4)
    # a multi-token chunk after a cached prefix (causal mask with an offset) agrees too
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    first = model(**batch, decoder_input_ids=decoder_ids[:, :2], past_key_values=cache, use_cache=True).logits
    rest = model(**batch, decoder_input_ids=decoder_ids[:, 2:], past_key_values=cache, use_cache=True).logits
    torch.testing.assert_close(torch.cat([first, rest], 1), full, atol=1e-4, rtol=1e-4)


def test_eager_and_sdpa_attention_give_the_same_logits_with_and_without_cache(built, tmp_path):
    model, tokenizer = built
    model.save_pretrained(tmp_path / "m")
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    ids = model.prepare_decoder_input_ids_from_labels(encode_targets(tokenizer, ["中文 བོད", "ab", "ئۇ", "қа"], "bo"))
    eager = SWCMForConditionalGeneration.from_pretrained(tmp_path / "m", attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager" and model.config._attn_implementation == "sdpa"
    # no padding mask: causality comes from sdpa's flag in one, from the mask in the other
    unmasked = {"input_ids": batch["input_ids"], "decoder_input_ids": ids.clamp(min=0)}
    torch.testing.assert_close(eager(**unmasked).logits, model(**unmasked).logits, atol=1e-4, rtol=1e-4)
    masked = {**batch, "decoder_input_ids": ids.clamp(min=0), "decoder_attention_mask": (ids >= 0).long()}
    torch.testing.assert_close(eager(**masked).logits, model(**masked).logits, atol=1e-4, rtol=1e-4)
    for num_beams in (1, 3):
        settings = {"tgt_lang": "bo", "num_beams": num_beams, "max_new_tokens": 6, "do_sample": False}
        assert torch.equal(eager.generate(**batch, **settings), model.generate(**batch, **settings))


@pytest.mark.parametrize("num_beams", [1, 4])
def test_generation_identical_with_and_without_cache(built, num_beams):
    model, tokenizer = built
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    kwargs = dict(
        num_beams=num_beams, max_new_tokens=12, min_new_tokens=12, return_dict_in_generate=True, output_scores=True
    )
    cached = model.generate(**batch, tgt_lang="ug", **kwargs)
    uncached = model.generate(**batch, tgt_lang="ug", use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert len(cached.scores) == len(uncached.scores)
    for a, b in zip(cached.scores, uncached.scores, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("num_beams", [1, 4])
def test_trained_model_generates_the_same_varied_output_with_and_without_cache(copy_task, num_beams):
    model, source, _ = copy_task
    cached = model.generate(input_ids=source, tgt_lang="zh", num_beams=num_beams, max_new_tokens=10)
    uncached = model.generate(input_ids=source, tgt_lang="zh", num_beams=num_beams, max_new_tokens=10, use_cache=False)
    assert torch.equal(cached, uncached)
    assert len({tuple(row.tolist()) for row in cached}) == len(source), "each input gets its own output"


def test_generate_threads_the_cache_through_the_forward_under_the_installed_name(built):
    """The cache goes in and out under the name the installed transformers uses (`cache` from 5.24): a forward that
    took it only as `past_key_values` failed there, and one that swallowed `cache` would decode every step blind."""
    model, tokenizer = built
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    out = model.generate(**batch, tgt_lang="ug", max_new_tokens=6, min_new_tokens=6, return_dict_in_generate=True)
    cache = getattr(out, CACHE_NAME)
    assert isinstance(cache, EncoderDecoderCache)
    # every token but the last was fed through the forward once, and its keys / values kept
    assert cache.get_seq_length() == out.sequences.shape[1] - 1


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_one_decoding_step_on_the_last_token_reads_the_cache(built, name):
    """generate's own input preparation, one step: only the last token is fed, and its logits are the full
    forward's at that position only if the forward read the prefix's keys / values from the cache."""
    model, tokenizer = built
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    ids = model.prepare_decoder_input_ids_from_labels(encode_targets(tokenizer, ["中文", "ab", "ئۇ", "қа"], "kk"))
    ids = ids[:, :3]
    full = model(**batch, decoder_input_ids=ids, use_cache=False).logits[:, -1]
    encoder_outputs = model.get_encoder()(**batch)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    model(
        attention_mask=batch["attention_mask"],
        encoder_outputs=encoder_outputs,
        decoder_input_ids=ids[:, :-1],
        use_cache=True,
        **{name: cache},
    )
    inputs = model.prepare_inputs_for_generation(
        ids,
        next_sequence_length=1,
        attention_mask=batch["attention_mask"],
        encoder_outputs=encoder_outputs,
        use_cache=True,
        **{CACHE_NAME: cache},
    )
    assert inputs["decoder_input_ids"].shape[1] == 1 and inputs[CACHE_NAME] is cache
    step = model(**inputs)
    assert cache.get_seq_length() == ids.shape[1]
    assert getattr(step, CACHE_NAME) is cache
    torch.testing.assert_close(step.logits[:, -1], full, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="not both"):
        model(**batch, decoder_input_ids=ids, cache=cache, past_key_values=cache)


def test_decoding_prints_no_deprecation_of_our_making(built, recwarn):
    """transformers warns when a model hands its helpers or outputs the old cache name (a FutureWarning from
    create_causal_mask on 5.24+, a logged warning from the output classes)."""
    model, tokenizer = built
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    hf_logging.get_logger("transformers").addHandler(handler)
    warnings.simplefilter("always")
    try:
        hf_logging.warning_once.cache_clear()  # a warning already given in this process would not show again
        batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
        for num_beams in (1, 3):
            out = model.generate(**batch, tgt_lang="mn", num_beams=num_beams, max_new_tokens=4)
            assert out.shape[1] > 2
        model(**batch, decoder_input_ids=out[:, :3])
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
    said = messages + [str(w.message) for w in recwarn]
    assert not [m for m in said if "deprecated" in m.lower()], said


def test_sampling_runs_and_is_seeded(built):
    model, tokenizer = built
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    torch.manual_seed(3)
    a = model.generate(**batch, do_sample=True, top_k=20, max_new_tokens=6, tgt_lang="kk")
    torch.manual_seed(3)
    b = model.generate(**batch, do_sample=True, top_k=20, max_new_tokens=6, tgt_lang="kk")
    assert torch.equal(a, b)
    assert (a[:, 1] == model.config.lang_tag_ids["kk"]).all()


def test_tgt_lang_forces_the_tag_after_the_start_token(built):
    model, tokenizer = built
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    for code in ("bo", "<mn>"):
        out = model.generate(**batch, tgt_lang=code, max_new_tokens=4, num_beams=2)
        assert (out[:, 0] == model.config.decoder_start_token_id).all()
        assert (out[:, 1] == model.config.lang_tag_ids[code.strip("<>")]).all()
    with pytest.raises(ValueError, match=r"no language tag <fr>; its tags: \['bo', 'kk', 'mn', 'ug', 'zh'\]"):
        model.generate(**batch, tgt_lang="fr")


def test_padding_in_source_does_not_change_the_output(built):
    model, tokenizer = built
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    decoder_ids = torch.tensor(
        [[model.config.decoder_start_token_id, model.config.lang_tag_ids["zh"], 7, 8]] * len(TEXTS)
    )
    batched = model(**batch, decoder_input_ids=decoder_ids).logits
    for i, text in enumerate(TEXTS):
        alone = model(**tokenizer([text], return_tensors="pt"), decoder_input_ids=decoder_ids[i : i + 1]).logits
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-4, rtol=1e-4)


def test_labels_get_exactly_one_start_token(built):
    model, tokenizer = built
    labels = encode_targets(tokenizer, ["ab", "abc d"], "zh")
    tag, eos, start = model.config.lang_tag_ids["zh"], tokenizer.sep_token_id, model.config.decoder_start_token_id
    assert labels[0, 0] == tag and labels[0, -1] == -100 and eos in labels[0].tolist()
    decoder_ids = model.prepare_decoder_input_ids_from_labels(labels)
    assert decoder_ids[:, 0].tolist() == [start, start]
    assert (decoder_ids[:, 1] == tag).all()
    assert (decoder_ids[:, 1:] == start).sum() == 0, "no second start token"
    assert torch.equal(decoder_ids[1, 1:], labels[1, :-1])
    assert decoder_ids[0, -1] == model.config.pad_token_id  # shifted -100 -> pad
    out = model(**tokenizer(["x", "y"], return_tensors="pt"), labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits.view(-1, out.logits.shape[-1]), labels.view(-1))
    torch.testing.assert_close(out.loss, expected)
    doubled = torch.cat([torch.full((2, 1), start), labels], 1)
    with pytest.raises(ValueError, match="labels start with the decoder start token"):
        model(**tokenizer(["x", "y"], return_tensors="pt"), labels=doubled)


def test_too_long_decoder_input_is_a_clear_error(tiny_xlmr):
    model = from_encoder(tiny_xlmr).eval()
    limit = model.config.encoder.max_position_embeddings - (model.config.pad_token_id + 1)
    ids = torch.ones(1, 3, dtype=torch.long)
    model(input_ids=ids, decoder_input_ids=torch.ones(1, limit, dtype=torch.long))
    with pytest.raises(ValueError, match=f"at most {limit} decoder tokens"):
        model(input_ids=ids, decoder_input_ids=torch.ones(1, limit + 1, dtype=torch.long))


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_round_trip_through_auto_classes(tiny_encoder, tmp_path, tie):
    model, tokenizer = from_encoder(tiny_encoder, tie_lm_head=tie, return_tokenizer=True)
    model.eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")), "no pickled weights"
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "swcm"

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, swcm.SWCMConfig)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SWCMForConditionalGeneration)
    assert (loaded.lm_head.weight is loaded.get_input_embeddings().weight) == tie
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    batch = loaded_tokenizer(TEXTS, return_tensors="pt", padding=True)
    decoder_ids = torch.tensor([[model.config.decoder_start_token_id, model.config.lang_tag_ids["bo"], 9]] * len(TEXTS))
    assert torch.equal(
        model(**batch, decoder_input_ids=decoder_ids).logits, loaded(**batch, decoder_input_ids=decoder_ids).logits
    )
    assert loaded_tokenizer.convert_tokens_to_ids("<bo>") == model.config.lang_tag_ids["bo"]
    out = loaded.generate(**batch, tgt_lang="bo", max_new_tokens=3)
    assert "<bo>" not in loaded_tokenizer.decode(out[0], skip_special_tokens=True)


@pytest.fixture(scope="module")
def copy_task(tmp_path_factory):
    """A tiny XLM-SWCM trained for 500 steps to copy random token sequences: (model, last source batch, losses)."""
    from .conftest import save_tiny_xlmr

    path = save_tiny_xlmr(tmp_path_factory.mktemp("copy-encoder"), layers=2, hidden=48)
    torch.manual_seed(0)
    model = from_encoder(path)
    config, vocab = model.config, model.config.encoder.vocab_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 50))
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(500):
        x = torch.randint(5, vocab - 1, (16, 6), generator=generator)
        source = torch.cat([torch.full((16, 1), config.bos_token_id), x, torch.full((16, 1), config.eos_token_id)], 1)
        labels = torch.cat(
            [torch.full((16, 1), config.lang_tag_ids["zh"]), x, torch.full((16, 1), config.eos_token_id)], 1
        )
        loss = model(input_ids=source, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        warmup.step()
        losses.append(loss.item())
    return model.eval(), source, losses


def test_toy_copy_task_drives_the_loss_near_zero(copy_task):
    model, source, losses = copy_task
    assert losses[0] > 4.0
    assert sum(losses[-20:]) / 20 < 0.1
    out = model.generate(input_ids=source, tgt_lang="zh", max_new_tokens=8)
    assert torch.equal(out[:, 2:8], source[:, 1:7]), "greedy decoding copies the source"
    assert (out[:, 8] == model.config.eos_token_id).all()


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path):
    from .conftest import save_tiny_xlmr

    path = save_tiny_xlmr(tmp_path / "enc", dropout=0.0)  # train mode (checkpointing is on only then), no noise
    model, tokenizer = from_encoder(path, return_tokenizer=True)
    model.train()
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    labels = encode_targets(tokenizer, TEXTS, "mn")
    calls = []
    model.model.decoder.layers[0].ffn1.register_forward_hook(lambda *args: calls.append(1))
    model(**batch, labels=labels).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert len(calls) == 1
    model.zero_grad()
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model(**batch, labels=labels).loss.backward()
    assert len(calls) == 3, "the checkpointed layer ran again in the backward pass"
    for name, grad in plain.items():
        torch.testing.assert_close(model.get_parameter(name).grad, grad, atol=1e-6, rtol=1e-5)


def test_gradient_checkpointing_recomputes_every_layer_with_the_same_loss_and_gradients(tiny_xlmr):
    """recipe `gradient_checkpointing: true`: encoder and decoder layers recomputed in backward (dropout on, its
    masks replayed), the loss and every gradient as without it."""
    model = from_encoder(tiny_xlmr)
    ids = torch.tensor([[0, 10, 11, 12, 13, 2], [0, 14, 15, 2, 1, 1]])
    labels = torch.tensor([[20, 21, 22, 2], [23, 2, -100, -100]])
    mask = (ids != 1).long()

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(3)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    plain_loss, plain = loss_and_grads()
    recompute_layers(model)
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing]
    assert {type(m).__name__ for m in layers} == {"SWCMDecoderLayer", "XLMRobertaLayer"}
    calls = []
    for layer in layers:  # count the layer's own forward: once in the forward pass, once more in backward

        def counting(function, *args, checkpoint=layer._gradient_checkpointing_func, layer=layer, **kwargs):
            def counted(*inner, **named):
                calls.append(layer)
                return function(*inner, **named)

            return checkpoint(counted, *args, **kwargs)

        layer._gradient_checkpointing_func = counting
    checkpointed_loss, checkpointed = loss_and_grads()
    assert len(calls) == 2 * len(layers), "every encoder and decoder layer ran again in the backward pass"
    assert torch.equal(plain_loss, checkpointed_loss)
    assert plain.keys() == checkpointed.keys() and len(plain) > 100
    for name, grad in plain.items():
        assert torch.allclose(grad, checkpointed[name], atol=1e-6, rtol=1e-5), name
