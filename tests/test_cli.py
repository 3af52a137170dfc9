import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import swcm.modeling_swcm  # noqa: F401  (registers the Auto classes)
from swcm import from_encoder
from swcm.cli import main
from swcm.folders import TOKENIZER_FILES


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
        "--normal_every",
        "1",
        "--decoder_init",
        "random",
        "--normal_init",
        "copy-previous",
        "--tie_lm_head",
        "--lang_tags",
        "[bo,kk]",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "C N C N C N C" in printed
    assert "copied from the encoder: 0 tensors (decoder_init=random)" in printed
    # 3 normal layers x (2 attentions x 8 + FFN 4 + 3 LayerNorms x 2) tensors
    assert "copied from the previous layer: 78 tensors" in printed
    assert "(tied)" in printed and "<kk>=" in printed and "<ug>" not in printed
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


# ---------------------------------------------------------------- bad input: one line, before any model work


def _one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"swcm {command}: error: "), err
    return err[0]


def test_an_encoder_without_its_tokenizer_is_refused(tiny_xlmr, tmp_path, capsys):
    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_xlmr, encoder)
    for path in encoder.glob("*"):
        if path.name.startswith(("tokenizer", "sentencepiece", "special_tokens")):
            path.unlink()
    assert main(["build", "--encoder", str(encoder), "--out", str(tmp_path / "m")]) == 2
    assert "no tokenizer files (one of tokenizer.json, sentencepiece.bpe.model" in _one_line(capsys, "build")
    assert not (tmp_path / "m").exists()


def test_a_tokenizer_of_other_weights_is_refused(tiny_xlmr, tiny_bert, tmp_path, capsys):
    from swcm.encoders import EncoderError, load_tokenizer

    small = load_tokenizer(tiny_xlmr)
    small.add_tokens([f"extra{i}" for i in range(len(small))])  # twice the rows the embeddings have
    with pytest.raises(EncoderError, match="does not belong to these weights"):
        from_encoder(tiny_xlmr, tokenizer=small)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--num_beams", "0", "num_beams: must be > 0, got 0"),
        ("--max_new_tokens", "-1", "max_new_tokens: must be > 0, got -1"),
        ("--batch_size", "0", "batch_size: must be > 0, got 0"),
        ("--num_beams", "two", "num_beams: expected int; got 'two'"),
        ("--quantize", "int4", "quantize: expected one of auto, none, int8, fp16; got 'int4'"),
    ],
)
def test_decoding_options_are_checked_up_front(tiny_model, tmp_path, capsys, flag, value, message):
    args = ["generate", "--model", str(tiny_model), "--tgt_lang", "ug", "--input", str(tmp_path / "none.txt")]
    assert main([*args, flag, value]) == 2
    assert _one_line(capsys, "generate").endswith(message)


def test_generate_checks_its_paths_and_model_before_generating(tiny_model, tmp_path, capsys, monkeypatch):
    import swcm.generation

    def never(*args, **kwargs):
        raise AssertionError("generated before the paths were checked")

    monkeypatch.setattr(swcm.generation, "generate_texts", never)
    source = tmp_path / "in.txt"
    source.write_text("中文\n", encoding="utf-8")
    args = ["generate", "--model", str(tiny_model), "--tgt_lang", "ug", "--input", str(source)]
    assert main([*args, "--output", str(tmp_path / "missing" / "out.txt")]) == 2
    assert f"folder {tmp_path / 'missing'} does not exist" in _one_line(capsys, "generate")
    assert main([*args[:-1], str(tmp_path / "absent.txt")]) == 2
    assert "absent.txt: no such file" in _one_line(capsys, "generate")
    assert main(["generate", "--model", str(tmp_path / "nomodel"), "--tgt_lang", "ug", "--input", str(source)]) == 2
    assert "nomodel: no such model folder" in _one_line(capsys, "generate")
    (tmp_path / "empty-folder").mkdir()
    assert (
        main(["generate", "--model", str(tmp_path / "empty-folder"), "--tgt_lang", "ug", "--input", str(source)]) == 2
    )
    assert "not a model folder (no config.json)" in _one_line(capsys, "generate")
    source.write_bytes("中文\n".encode() + b"\xff\xfe broken\n")
    assert main(args) == 2
    assert f"{source}:2: not UTF-8" in _one_line(capsys, "generate")


def test_what_is_not_a_usable_model_folder_is_one_line_at_once(tiny_model, tiny_xlmr, tmp_path, capsys, monkeypatch):
    """A bare name that is no folder is not looked up on the hub (no retries); an encoder folder, a folder without
    tokenizer files: each one line naming the folder, before anything loads."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.txt"
    source.write_text("中文\n", encoding="utf-8")
    started = time.time()
    assert main(["generate", "--model", "nonexist", "--tgt_lang", "ug", "--input", str(source)]) == 2
    assert _one_line(capsys, "generate").endswith("--model nonexist: no such model folder")
    assert time.time() - started < 5
    assert main(["generate", "--model", str(tiny_xlmr), "--tgt_lang", "ug", "--input", str(source)]) == 2
    assert "not an XLM-SWCM model (model_type 'xlm-roberta'); `swcm build` makes one" in _one_line(capsys, "generate")
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    for name in TOKENIZER_FILES:
        (bare / name).unlink(missing_ok=True)
    assert main(["generate", "--model", str(bare), "--tgt_lang", "ug", "--input", str(source)]) == 2
    assert "bare: no tokenizer files (tokenizer.json / sentencepiece.bpe.model / spiece.model" in _one_line(
        capsys, "generate"
    )
    assert main(["serve", "--model", str(tiny_model), "--port", "70000"]) == 2
    assert _one_line(capsys, "serve").endswith("port: must be at most 65535, got 70000")


def test_stdin_and_empty_inputs_are_one_line(tiny_model, tmp_path, capsys, monkeypatch):
    import io

    args = ["generate", "--model", str(tiny_model), "--tgt_lang", "ug"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("你好\n".encode() + b"\xff\n")))
    assert main(args) == 2
    assert _one_line(capsys, "generate").endswith("<stdin>:2: not UTF-8 (invalid start byte at byte 0)")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert main(args) == 2
    assert _one_line(capsys, "generate").endswith("<stdin>: no input lines")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main([*args, "--input", str(empty)]) == 2
    assert _one_line(capsys, "generate").endswith(f"{empty}: no input lines")
    assert main([*args, "--input", str(tmp_path)]) == 2
    assert _one_line(capsys, "generate").endswith(f"--input {tmp_path}: is a folder, expected a file")
    read, write = os.pipe()  # what /dev/stdin or <(...) hand over: a pipe, not a regular file
    os.write(write, b"\xff\n")
    os.close(write)
    assert main([*args, "--input", f"/dev/fd/{read}"]) == 2
    assert _one_line(capsys, "generate").endswith(f"/dev/fd/{read}:1: not UTF-8 (invalid start byte at byte 0)")
    os.close(read)


def test_a_damaged_weights_file_is_one_line(tiny_model, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    source = tmp_path / "in.txt"
    source.write_text("中文\n", encoding="utf-8")
    assert main(["generate", "--model", str(damaged), "--tgt_lang", "ug", "--input", str(source)]) == 2
    assert "model.safetensors) is damaged or incomplete" in _one_line(capsys, "generate")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fill the disk")
def test_an_output_that_cannot_be_written_is_one_line_and_a_link_stays_a_link(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("中文\n", encoding="utf-8")
    args = ["generate", "--model", str(tiny_model), "--tgt_lang", "ug", "--input", str(source), "--num_beams", "1"]
    assert main([*args, "--max_new_tokens", "2", "--output", "/dev/full"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the loading and generating bars
    assert (
        last
        == "swcm generate: error: --output /dev/full: could not write it (No space left on device); nothing was saved"
    )
    kept = tmp_path / "kept.txt"
    kept.write_text("earlier outputs\n")
    link = tmp_path / "link.txt"
    link.symlink_to(kept)
    assert main([*args, "--max_new_tokens", "2", "--output", str(link)]) == 0
    assert link.is_symlink() and kept.read_text() != "earlier outputs\n"  # written through the link, not over it
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no staging file left behind"


def test_generate_evaluate_and_serve_count_the_same_inputs_as_cut(tiny_model, tmp_path, capsys):
    """One cut (generation.source_batches): the three commands count the inputs it cuts, on the same inputs."""
    import json

    from swcm.arguments import ServeLimits
    from swcm.generation import source_token_limit
    from swcm.serving import GenerateRequest, Generator

    generator = Generator.load(tiny_model, ServeLimits())
    limit = source_token_limit(generator.model, generator.tokenizer)
    assert generator.limits.max_source_tokens == limit  # the server's limit follows the model, as the others do

    def text_of(tokens: int) -> str:  # a text of exactly this many tokens (specials included)
        words = 1
        while len(generator.tokenizer("世界 " * words)["input_ids"]) < tokens:
            words += 1
        return "世界 " * words

    texts = [text_of(limit - 1), text_of(limit) + "中", text_of(limit + 1), "中文", text_of(3 * limit)]
    lengths = [len(generator.tokenizer(t)["input_ids"]) for t in texts]
    expected = sum(n > limit for n in lengths)
    assert expected >= 2 and lengths[0] <= limit
    served = [generator.generate(GenerateRequest(text=t, tgt_lang="ug", num_beams=1, max_new_tokens=2)) for t in texts]
    assert sum(r.truncated for r in served) == expected
    assert [r.input_tokens for r in served] == [min(n, limit) for n in lengths]

    source = tmp_path / "in.txt"
    source.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "out.txt"
    args = ["generate", "--model", str(tiny_model), "--tgt_lang", "ug", "--input", str(source), "--output", str(out)]
    assert main([*args, "--num_beams", "1", "--max_new_tokens", "2"]) == 0
    first = next(n for n, length in enumerate(lengths, 1) if length > limit)
    err = capsys.readouterr().err
    assert f"{expected} input line(s) longer than the model's {limit} tokens were cut to it" in err
    assert f"(first: {source}:{first})" in err
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(texts)

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"zh": t, "ug": "x"}, ensure_ascii=False) + "\n" for t in texts))
    report = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model), "--data", str(data), "--task", "translation", "--out", str(report)]
    assert main([*args, "--tgt_langs", "[ug]", "--num_beams", "1", "--max_new_tokens", "2"]) == 0
    row = json.loads((report / "report.json").read_text())["results"][0]
    assert row["truncated_inputs"] == expected


def test_evaluate_checks_every_language_first_and_keeps_each_as_it_finishes(tiny_model, tmp_path, capsys):
    import json

    data = tmp_path / "pairs.ug.jsonl"
    data.write_text("".join(json.dumps({"zh": z, "ug": "سالام"}, ensure_ascii=False) + "\n" for z in "中文世"))
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "pairs.{lang}.jsonl")]
    args += ["--task", "translation", "--out", str(out), "--num_beams", "1", "--max_new_tokens", "2"]
    assert main([*args, "--tgt_langs", "ug"]) == 2
    assert _one_line(capsys, "evaluate").endswith("tgt_langs: expected a list (on the command line: [a,b]); got 'ug'")
    assert main([*args, "--tgt_langs", "[ug,kk]"]) == 2
    assert _one_line(capsys, "evaluate").endswith(f"--data (for kk) {tmp_path / 'pairs.kk.jsonl'}: no such file")
    assert not out.exists(), "nothing generated before every file was found"
    assert main([*args, "--tgt_langs", "[ug]", "--limit", "0"]) == 2
    assert _one_line(capsys, "evaluate").endswith("limit: must be > 0, got 0")
    assert main([*args, "--tgt_langs", "[ug]", "--limit", "2"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [row["n"] for row in report["results"]] == [2]


def test_the_command_line_starts_without_torch_and_answers_help(tmp_path):
    code = "import sys, swcm.cli; sys.exit(1 if 'torch' in sys.modules or 'transformers' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0, "swcm.cli imported torch"
    done = subprocess.run([sys.executable, "-m", "swcm.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "quickstart" in done.stdout and "pretrain" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "swcm.cli", "pretrain", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "--noise.mask_ratio" in done.stdout and "Share of tokens covered by masked spans" in done.stdout


def test_a_config_file_and_later_flags_make_the_command(tmp_path):
    from swcm.cli import parse

    config = tmp_path / "generate.yaml"
    config.write_text("model: m\ntgt_lang: bo\nnum_beams: 3\nconstrain_script: true\n", encoding="utf-8")
    name, args, _ = parse(["generate", "--config", str(config), "--num_beams", "1"])
    assert name == "generate" and (args.tgt_lang, args.num_beams, args.constrain_script) == ("bo", 1, True)
    name, args, _ = parse(
        ["vocab", "extend", "--model", "m", "--corpus", "[a.txt,b.txt]", "--lang", "bo"] + ["--size", "8", "--out", "o"]
    )
    assert name == "vocab extend" and args.corpus == ["a.txt", "b.txt"]


def test_benchmarks_parse_their_arguments_like_the_commands(capsys):
    from benchmarks.ablations import AblationArgs

    from swcm.cli import parse_dataclass

    args = parse_dataclass(AblationArgs, ["--variants", "[x1,x6]", "--steps", "20", "--precision", "fp32"])
    assert args.variants == ["x1", "x6"] and args.steps == 20
    with pytest.raises(SystemExit, match="precision: expected one of auto, bf16, fp16, fp32; got 'fp64'"):
        parse_dataclass(AblationArgs, ["--precision", "fp64"])


def test_every_command_names_a_runner_that_takes_its_arguments():
    import importlib
    import inspect

    from swcm.cli import COMMANDS, VOCAB_COMMANDS
    from swcm.recipe import RECIPES

    for name, (_, args_class, target) in {**COMMANDS, **VOCAB_COMMANDS}.items():
        module, function = target.split(":")
        runner = getattr(importlib.import_module(f"swcm.{module}"), function)
        parameters = inspect.signature(runner).parameters
        first = next(iter(parameters.values()))
        assert first.annotation in (args_class, args_class.__name__), f"{name}: {target} takes {args_class.__name__}"
        if name in RECIPES:
            assert {"resume", "overwrite"} <= set(parameters), f"{name}: {target} takes --resume / --overwrite"
        # one naming: a recipe's runner is the recipe's name (a library function too), any other `<name>_command`
        expected = name if name in RECIPES else f"{name.replace('-', '_')}_command"
        assert function == expected, f"{name}: its runner is {function}, expected {expected}"


def test_a_model_folder_is_written_only_where_nothing_else_would_be_lost(tiny_xlmr, tmp_path, capsys):
    """build (as vocab prune / extend and convert-release): a used folder is refused; --overwrite replaces a model
    swcm wrote there, but never a user's file, and a failed command puts the earlier model back."""
    out = tmp_path / "m"
    args = ["build", "--encoder", str(tiny_xlmr), "--out", str(out)]
    assert main(args) == 0
    first = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "the folder is not empty (README.md, build.json, config.json" in _one_line(capsys, "build")
    assert main([*args, "--overwrite", "true", "--decoder_init", "random"]) == 0
    assert (out / "model.safetensors").read_bytes() != first
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    assert main([*args, "--overwrite", "true"]) == 2
    assert _one_line(capsys, "build").endswith("replaces only a model's own files, and these are not: notes.txt")
    (out / "notes.txt").unlink()
    before = (out / "model.safetensors").read_bytes()
    assert main([*args[:2], str(tmp_path / "missing-encoder"), *args[3:], "--overwrite", "true"]) == 2
    assert (out / "model.safetensors").read_bytes() == before and not (out / ".swcm-overwritten").exists()
    capsys.readouterr()
    file = tmp_path / "a-file"
    file.write_text("x")
    assert main(["build", "--encoder", str(tiny_xlmr), "--out", str(file)]) == 2
    assert _one_line(capsys, "build").endswith(f"--out {file}: is a file, expected a folder")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": -32}, "sizes must be whole numbers > 0, got hidden_size -32"),
        ({"num_attention_heads": 5}, "hidden_size 32 is not a multiple of num_attention_heads 5"),
        ({"vocab_size": 999}, "its weights do not fit its config.json"),
    ],
)
def test_an_encoder_config_that_does_not_fit_is_one_line(tiny_xlmr, tmp_path, capsys, change, message):
    import json

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_xlmr, encoder)
    config = json.loads((encoder / "config.json").read_text())
    (encoder / "config.json").write_text(json.dumps({**config, **change}))
    assert main(["build", "--encoder", str(encoder), "--out", str(tmp_path / "m")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (after transformers' own loading bar)
    assert last.startswith("swcm build: error: ") and message in last


def test_a_language_code_swcm_does_not_know_is_refused_before_any_work(tiny_xlmr, tmp_path, capsys):
    assert main(["build", "--encoder", str(tiny_xlmr), "--out", str(tmp_path / "m"), "--lang_tags", "[ug,xx]"]) == 2
    assert _one_line(capsys, "build").endswith(
        "lang_tags: unknown language 'xx'; known: ['bo', 'kk', 'mn', 'ug', 'zh']"
    )
    corpus = tmp_path / "c.txt"
    corpus.write_text("a\n")
    args = ["vocab", "extend", "--model", str(tiny_xlmr), "--corpus", f"[{corpus}]", "--lang", "xx", "--size", "8"]
    assert main([*args, "--out", str(tmp_path / "e")]) == 2
    assert _one_line(capsys, "vocab extend").endswith(
        "lang: unknown language 'xx'; known: ['bo', 'kk', 'mn', 'ug', 'zh']"
    )
    assert not (tmp_path / "m").exists() and not (tmp_path / "e").exists()
