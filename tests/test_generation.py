import subprocess
import sys
import unicodedata

import pytest
import torch

from swcm import from_encoder
from swcm.cli import main
from swcm.generation import allowed_tokens, generate_texts
from swcm.languages import script_of
from swcm.metrics import off_target_rate
from swcm.tokenization import encode_targets

SOURCES = ["中文新闻", "世界", "你好 中文", "新闻 世界 中文"]


@pytest.fixture
def falls_back_to_chinese(tiny_xlmr, tmp_path):
    """A model whose head prefers Chinese pieces, then Tibetan ones: unconstrained it answers in Chinese."""
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    with torch.no_grad():
        model.lm_head.bias.zero_()
        for i, piece in enumerate(pieces):
            scripts = {script_of(c) for c in piece}
            if "han" in scripts:
                model.lm_head.bias[i] = 50.0
            elif any(script_of(c) == "tibetan" and unicodedata.category(c).startswith("L") for c in piece):
                model.lm_head.bias[i] = 40.0  # letters: a piece of only tsheg (punctuation) is not Tibetan text
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    return model.eval(), tokenizer, tmp_path / "model"


def test_script_constraint_removes_the_fall_back_to_chinese(falls_back_to_chinese):
    model, tokenizer, _ = falls_back_to_chinese
    kwargs = dict(num_beams=2, max_new_tokens=6, progress=False)
    free = generate_texts(model, tokenizer, SOURCES, "bo", **kwargs)
    constrained = generate_texts(model, tokenizer, SOURCES, "bo", constrain_script=True, **kwargs)
    assert off_target_rate(free, "bo") == 100.0
    assert off_target_rate(constrained, "bo") == 0.0
    assert all(script_of(c) != "han" for text in constrained for c in text)


def test_allowed_tokens_keep_digits_latin_and_specials_but_not_other_tags(tiny_xlmr):
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    allowed = allowed_tokens(tokenizer, "ug", model.config.vocab_size, model.config.lang_tag_ids)
    ids = tokenizer.convert_tokens_to_ids
    assert allowed[ids("▁a")] and allowed[ids("7")] and allowed[ids("ئ")] and allowed[tokenizer.eos_token_id]
    assert not allowed[ids("中")] and not allowed[ids("བ")] and not allowed[ids("қ")]
    assert allowed[ids("<ug>")] and not allowed[ids("<bo>")]


def test_outputs_come_back_in_input_order(falls_back_to_chinese):
    model, tokenizer, _ = falls_back_to_chinese
    batched = generate_texts(
        model, tokenizer, SOURCES, "bo", batch_size=3, num_beams=1, max_new_tokens=4, progress=False
    )
    alone = [
        generate_texts(model, tokenizer, [s], "bo", num_beams=1, max_new_tokens=4, progress=False)[0] for s in SOURCES
    ]
    assert batched == alone


def test_generate_cli_files_stdin_and_bad_input(falls_back_to_chinese, tmp_path, capsys):
    _, _, model_dir = falls_back_to_chinese
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    args = [
        "generate",
        "--model",
        str(model_dir),
        "--tgt_lang",
        "bo",
        "--input",
        str(source),
        "--output",
        str(out),
        "--num_beams",
        "1",
        "--max_new_tokens",
        "4",
        "--constrain_script",
    ]
    assert main(args) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and off_target_rate(lines, "bo") == 0.0
    capsys.readouterr()
    source.write_text("中文\n\n世界\n", encoding="utf-8")
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"swcm generate: error: {source}:2: empty input line (1 in all; --skip_empty answers them empty)"
    ), "fails before loading the model"
    assert main([*args, "--skip_empty"]) == 0
    assert out.read_text(encoding="utf-8").splitlines()[1] == ""
    assert "1 empty input line(s)" in capsys.readouterr().err
    assert main([*args[:4], "fr", *args[5:]]) == 2
    assert "model has no language tag <fr>" in capsys.readouterr().err
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "swcm.cli",
            "generate",
            "--model",
            str(model_dir),
            "--tgt_lang",
            "bo",
            "--num_beams",
            "1",
            "--max_new_tokens",
            "3",
        ],
        input="中文\n世界\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize(("mode", "tolerance"), [("int8", 0.05), ("fp16", 1e-3)])
def test_quantize_covers_what_runs_every_token_and_keeps_the_logits_close(tiny_xlmr, mode, tolerance):
    import copy

    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    from swcm.generation import ExactTopHead, prepare_for_inference

    torch.manual_seed(0)
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.eval()
    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    batch.pop("token_type_ids", None)
    labels = encode_targets(tokenizer, ["世界 你好", "新闻", "中文 世界", "你好"], "bo")
    with torch.no_grad():
        reference = model(**batch, labels=labels).logits
    quantized, how = prepare_for_inference(copy.deepcopy(model), "fp32", mode)
    assert how.startswith(f"{mode}: ")
    decoder_linears = {n: m for n, m in quantized.named_modules() if n.startswith("model.decoder.")}
    once = {n for n in decoder_linears if n.endswith((".cross_attn.k_proj", ".cross_attn.v_proj"))}
    assert once and all(type(decoder_linears[n]) is torch.nn.Linear for n in once), "cross k / v (once per input) fp32"
    rest = [
        m
        for n, m in decoder_linears.items()
        if n not in once and isinstance(m, (torch.nn.Linear, DynamicQuantizedLinear))
    ]
    assert rest and all(isinstance(m, DynamicQuantizedLinear) for m in rest), f"every other decoder Linear is {mode}"
    weight_dtype = torch.qint8 if mode == "int8" else torch.float16
    assert {m._packed_params.dtype for m in rest} == {weight_dtype}
    assert isinstance(quantized.lm_head, ExactTopHead)
    assert isinstance(quantized.lm_head.low_precision, DynamicQuantizedLinear)
    assert not any(isinstance(m, DynamicQuantizedLinear) for m in quantized.get_encoder().modules()), "encoder fp32"
    with torch.no_grad():
        logits = quantized(**batch, labels=labels).logits
    error = (logits - reference).norm() / reference.norm()
    assert error < tolerance, f"{mode} logits drift {error:.4f} from fp32"
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9


@pytest.mark.parametrize(("vnni", "low", "high"), [(False, -64, 63), (True, -127, 127)])
def test_int8_weights_leave_the_kernel_no_room_to_saturate(tiny_xlmr, monkeypatch, vnni, low, high):
    """fbgemm's AVX2 kernel adds pairs of u8 activation x s8 weight products in int16: with 8-bit activations the
    weights must stay within [-64, 63] (255 x 64 x 2 = 32,640). With VNNI the products add up in int32: 8 bits."""
    from swcm import precision
    from swcm.generation import prepare_for_inference

    runs_here = precision.cpu_has_vnni() or not vnni  # 7-bit weights are safe on either kernel
    monkeypatch.setattr(precision, "cpu_has_vnni", lambda: vnni)
    model = from_encoder(tiny_xlmr)
    quantized, how = prepare_for_inference(model, "fp32", "int8")
    assert f"{8 if vnni else 7}-bit weights" in how, "the choice is said"
    layer = quantized.model.decoder.layers[0].ffn1.fc1
    weight = layer.weight().int_repr()
    assert weight.min() >= low and weight.max() <= high and weight.abs().max() >= high - 3, "the range, all used"
    if runs_here:
        x = torch.randn(3, weight.shape[1]) * 4
        exact = torch.nn.functional.linear(x, layer.weight().dequantize(), layer.bias())
        assert (layer(x) - exact).abs().max() < 0.02 * exact.abs().max(), "8-bit activations, no saturation"


def test_cpu_decoding_writes_the_decoder_attention_out_with_the_same_outputs(tiny_xlmr):
    import copy

    from swcm.generation import prepare_for_inference

    torch.manual_seed(0)
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.eval()
    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    batch.pop("token_type_ids", None)
    with torch.no_grad():
        reference = model.generate(**batch, tgt_lang="bo", num_beams=2, max_new_tokens=8, do_sample=False)
    prepared, _ = prepare_for_inference(copy.deepcopy(model), "fp32")
    assert model.config._attn_implementation == "sdpa", "the reference decodes with SDPA"
    assert prepared.config._attn_implementation == "eager"
    assert prepared.config.encoder._attn_implementation == model.config.encoder._attn_implementation
    with torch.no_grad():
        outputs = prepared.generate(**batch, tgt_lang="bo", num_beams=2, max_new_tokens=8, do_sample=False)
    assert torch.equal(outputs, reference)


def test_exact_top_head_ranks_the_top_tokens_on_fp32_scores():
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from swcm.generation import ExactTopHead

    torch.manual_seed(0)
    head = torch.nn.Linear(32, 500)
    quantized = quantize_dynamic(torch.nn.Sequential(head), qconfig_spec={"0": per_channel_dynamic_qconfig})[0]
    exact_top = ExactTopHead(head, quantized, top_k=16)
    hidden = torch.randn(2, 3, 32)
    with torch.no_grad():
        reference, rough, logits = head(hidden), quantized(hidden), exact_top(hidden)
    top = rough.topk(16, dim=-1).indices
    assert torch.allclose(logits.gather(-1, top), reference.gather(-1, top), atol=1e-5), "the top scores are exact"
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))
    assert not torch.allclose(rough, reference, atol=1e-5), "the quantized head alone is not exact"
    rest = torch.ones_like(logits, dtype=torch.bool).scatter(-1, top, False)
    assert torch.equal(logits[rest], rough[rest]), "the other scores are the quantized ones"


def test_inference_precision_follows_the_hardware_and_refuses_mixing_int8_with_bf16(tiny_xlmr, monkeypatch):
    from swcm import precision
    from swcm.generation import prepare_for_inference

    model = from_encoder(tiny_xlmr)
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: (False, "AVX2 (mocked)"))
    fp32, how = prepare_for_inference(model, "auto", "none")
    assert fp32.dtype == torch.float32 and how.startswith("fp32 weights (auto: AVX2 (mocked)")
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: (True, "AVX512-BF16 (mocked)"))
    bf16, how = prepare_for_inference(model, "auto", "none")
    assert bf16.dtype == torch.bfloat16 and how.startswith("bf16 weights")
    model = from_encoder(tiny_xlmr)
    with pytest.raises(ValueError, match="use --precision auto or fp32, not bf16"):
        prepare_for_inference(model, "bf16", "int8")
    with pytest.raises(ValueError, match="quantize must be one of"):
        prepare_for_inference(model, "fp32", "int4")


@pytest.mark.parametrize(
    ("native_bf16", "rows", "expected"),
    [
        (True, 1, "int8"),
        (True, 31, "int8"),
        (True, 32, "bf16"),
        (True, 80, "bf16"),
        (False, 1, "int8"),
        (False, 80, "int8"),
    ],
)
def test_quantize_auto_takes_the_fastest_mode_for_the_cpu_and_the_rows_a_step_decodes(
    tiny_xlmr, monkeypatch, native_bf16, rows, expected
):
    """bf16 weights where the CPU has native bf16 and a step decodes BF16_FROM_ROWS rows or more, int8 otherwise
    (docs/results.md: the same-run measurements behind it); an explicit precision is not overridden."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    from swcm import precision
    from swcm.generation import BF16_FROM_ROWS, prepare_for_inference

    assert BF16_FROM_ROWS == 32
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: (native_bf16, "the CPU (mocked)"))
    model, how = prepare_for_inference(from_encoder(tiny_xlmr), "auto", "auto", rows)
    assert "--quantize auto: " in how, "the choice and its reason are said"
    quantized = any(isinstance(m, DynamicQuantizedLinear) for m in model.modules())
    assert quantized == (expected == "int8")
    if expected == "bf16":
        assert model.model.decoder.layers[0].ffn1.fc2.weight.dtype == torch.bfloat16
    exact, how = prepare_for_inference(from_encoder(tiny_xlmr), "fp32", "auto", rows)
    assert how.startswith("fp32 weights") and not any(isinstance(m, DynamicQuantizedLinear) for m in exact.modules())


def test_bf16_weights_rank_the_top_tokens_on_fp32_logits(tiny_xlmr):
    """bf16 logits sit on a grid of 0.125 near 16: the prepared bf16 model's head gives fp32 logits whose top scores
    are the fp32 head's on the same (bf16) hidden states."""
    import copy

    from swcm.generation import ExactTopHead, prepare_for_inference

    torch.manual_seed(0)
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    head = copy.deepcopy(model.lm_head)
    prepared, how = prepare_for_inference(model, "bf16", "none")
    assert "bf16 weights, the head's top logits exact" in how
    assert isinstance(prepared.lm_head, ExactTopHead) and prepared.lm_head.weight.dtype == torch.float32
    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    batch.pop("token_type_ids", None)
    labels = encode_targets(tokenizer, ["世界 你好", "新闻", "中文 世界", "你好"], "bo")
    with torch.no_grad():
        outputs = prepared(**batch, labels=labels, output_hidden_states=True)
        hidden = outputs.decoder_hidden_states[-1]
        if prepared.head_transform is not None:
            hidden = prepared.head_transform(hidden)
        reference = head(hidden.float())
    assert outputs.logits.dtype == torch.float32
    top = outputs.logits.topk(4, dim=-1).indices
    torch.testing.assert_close(outputs.logits.gather(-1, top), reference.gather(-1, top), atol=1e-4, rtol=1e-4)


def test_generate_cli_int8_says_what_it_chose(falls_back_to_chinese, tmp_path, capsys):
    _, _, model_dir = falls_back_to_chinese
    source = tmp_path / "in.txt"
    source.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    args = ["generate", "--model", str(model_dir), "--tgt_lang", "bo", "--input", str(source), "--output", str(out)]
    assert main([*args, "--num_beams", "1", "--max_new_tokens", "4", "--quantize", "int8"]) == 0
    assert "swcm generate: int8: " in capsys.readouterr().err
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4
    assert main([*args, "--quantize", "int8", "--precision", "bf16"]) == 2
    assert "use --precision auto or fp32, not bf16" in capsys.readouterr().err
    # the default: 4 inputs at beam 3 make batches of 4 x 3 = 12 rows (not the 16 x 3 of --batch_size), so int8
    assert main([*args, "--num_beams", "3", "--max_new_tokens", "4"]) == 0
    said = capsys.readouterr().err
    assert "swcm generate: int8: " in said and "(--quantize auto: " in said
    from swcm.precision import cpu_has_fast_bf16

    assert "12 rows per step" in said or not cpu_has_fast_bf16()[0]


def test_outputs_longer_than_the_position_table_are_stopped_there_with_a_warning(falls_back_to_chinese):
    from swcm.generation import new_token_limit

    model, tokenizer, _ = falls_back_to_chinese
    with torch.no_grad():
        model.lm_head.bias[model.config.eos_token_id] = -1e4  # never ends early
    with pytest.warns(UserWarning, match="max_new_tokens 200 is over the 63 the model's position table allows"):
        (text,) = generate_texts(model, tokenizer, ["中文"], "bo", num_beams=1, max_new_tokens=200, progress=False)
    assert new_token_limit(model) == 63 and text


def test_constraining_to_a_script_the_vocabulary_lacks_is_refused():
    from swcm.errors import DataError
    from swcm.generation import allowed_tokens

    class Pieces:  # a vocabulary of Latin and Chinese pieces only
        pieces = ["<s>", "</s>", "▁a", "中", "文", "7"]
        all_special_ids = [0, 1]

        def __len__(self):
            return len(self.pieces)

        def convert_ids_to_tokens(self, ids):
            return [self.pieces[i] for i in ids]

    assert allowed_tokens(Pieces(), "zh", 6, {}).tolist() == [True] * 6
    with pytest.raises(DataError, match=r"constrain_script: the vocabulary has no piece in bo's script \(tibetan\)"):
        allowed_tokens(Pieces(), "bo", 6, {})
