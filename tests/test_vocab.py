import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from swcm import from_encoder
from swcm.cli import main
from swcm.errors import DataError
from swcm.vocab import extend_vocab, prune_vocab, read_corpus

from .conftest import SHARED_DATA

CORPUS = ["hello 中文 世界", "ئۇيغۇرچە تىل", "қазақ тілі", "abc cab"]


@pytest.fixture
def swcm_dir(tiny_xlmr, tmp_path):
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prune_keeps_corpus_pieces_tags_and_the_same_computation(swcm_dir, tmp_path):
    corpus = _write_jsonl(tmp_path / "c.jsonl", [{"text": t, "n": 1} for t in CORPUS])
    report = prune_vocab(swcm_dir, [corpus], tmp_path / "pruned")
    old = AutoModelForSeq2SeqLM.from_pretrained(swcm_dir).eval()
    new = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "pruned").eval()
    old_tok, new_tok = AutoTokenizer.from_pretrained(swcm_dir), AutoTokenizer.from_pretrained(tmp_path / "pruned")
    assert report["texts_segmented_differently"] == 0
    assert report["vocab_after"] == len(new_tok) == new.config.vocab_size < report["vocab_before"]
    assert report["parameters_after"] < report["parameters_before"]
    for text in CORPUS:
        assert old_tok.tokenize(text) == new_tok.tokenize(text)
    assert set(new.config.lang_tag_ids) == {"bo", "ug", "kk", "mn", "zh"}
    for code, i in new.config.lang_tag_ids.items():
        assert new_tok.convert_ids_to_tokens(i) == f"<{code}>"
        assert torch.equal(
            new.get_input_embeddings().weight[i], old.get_input_embeddings().weight[old.config.lang_tag_ids[code]]
        )
    # The pruned model computes the same logits, restricted to the kept ids.
    kept = [old_tok.convert_tokens_to_ids(t) for t in new_tok.convert_ids_to_tokens(list(range(len(new_tok))))]
    old_batch, new_batch = (
        old_tok(CORPUS, return_tensors="pt", padding=True),
        new_tok(CORPUS, return_tensors="pt", padding=True),
    )
    old_dec = torch.tensor([[old.config.decoder_start_token_id, old.config.lang_tag_ids["zh"]]] * len(CORPUS))
    new_dec = torch.tensor([[new.config.decoder_start_token_id, new.config.lang_tag_ids["zh"]]] * len(CORPUS))
    old_logits = old(**old_batch, decoder_input_ids=old_dec).logits[..., kept]
    torch.testing.assert_close(new(**new_batch, decoder_input_ids=new_dec).logits, old_logits)
    assert new_tok.pad_token_id == new.config.pad_token_id and new_tok.eos_token_id == new.config.eos_token_id


def test_prune_a_bert_encoder_with_a_frequency_floor(tiny_bert, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc abc abc\nxyz\n", encoding="utf-8")
    report = prune_vocab(tiny_bert, [corpus], tmp_path / "pruned", min_count=2)
    tok = AutoTokenizer.from_pretrained(tmp_path / "pruned")
    assert tok.tokenize("abc xyz") == ["a", "##b", "##c", "x", "##y", "##z"]  # single characters survive the floor
    assert report["vocab_after"] < report["vocab_before"]
    model = from_encoder(tmp_path / "pruned")
    assert model.config.vocab_size == len(tok) + 5  # + language tags


def test_extend_adds_pieces_initialised_from_the_old_segmentation(swcm_dir, tmp_path):
    tibetan = ["བོད་ཡིག་ཀཁགང་ཡིག", "ཀཁག་བོད་ཡིག", "གང་བོད་ཡིག་ཀཁ"] * 30
    corpus = tmp_path / "bo.txt"
    corpus.write_text("\n".join(tibetan) + "\n", encoding="utf-8")
    report = extend_vocab(swcm_dir, [corpus], "bo", 40, tmp_path / "ext")
    old = AutoModelForSeq2SeqLM.from_pretrained(swcm_dir)
    new = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ext")
    old_tok, new_tok = AutoTokenizer.from_pretrained(swcm_dir), AutoTokenizer.from_pretrained(tmp_path / "ext")
    assert report["pieces_added"] > 0 and report["vocab_after"] == report["vocab_before"] + report["pieces_added"]
    assert report["tokens_per_char_after"] < report["tokens_per_char_before"]
    n_old_pieces = len(json.loads(old_tok.backend_tokenizer.to_str())["model"]["vocab"])
    old_emb, new_emb = old.get_input_embeddings().weight, new.get_input_embeddings().weight
    assert torch.equal(new_emb[:n_old_pieces], old_emb[:n_old_pieces])
    unknown_only = []
    for i in range(n_old_pieces, n_old_pieces + report["pieces_added"]):
        piece = new_tok.convert_ids_to_tokens(i)
        parts = [t.id for t in old_tok.backend_tokenizer.model.tokenize(piece)]
        if old_tok.unk_token_id in parts:
            unknown_only.append(i)
            continue
        torch.testing.assert_close(new_emb[i], old_emb[parts].mean(0))
        torch.testing.assert_close(new.lm_head.weight[i], old.lm_head.weight[parts].mean(0))
    assert not unknown_only, "the tiny vocabulary spells these Tibetan pieces"
    for code, i in new.config.lang_tag_ids.items():
        assert new_tok.convert_ids_to_tokens(i) == f"<{code}>"
        assert torch.equal(new_emb[i], old_emb[old.config.lang_tag_ids[code]])
    assert len(new_tok.tokenize(tibetan[0])) < len(old_tok.tokenize(tibetan[0]))
    out = new.generate(**new_tok([tibetan[0]], return_tensors="pt"), tgt_lang="bo", max_new_tokens=3)
    assert out[0, 1] == new.config.lang_tag_ids["bo"]


def test_pieces_the_old_vocabulary_spells_only_as_unk_start_distinct(swcm_dir, tmp_path):
    """Traditional Mongolian script is all <unk> to the tiny vocabulary (as Tibetan is to XLM-R's): a mean of <unk>
    rows would make every new piece the same vector."""
    corpus = tmp_path / "mn.txt"
    corpus.write_text("\n".join(["ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ", "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ", "ᠪᠢᠴᠢᠭ ᠬᠡᠯᠡ ᠮᠣᠩᠭᠣᠯ"] * 30) + "\n", encoding="utf-8")
    old_tok = AutoTokenizer.from_pretrained(swcm_dir)
    assert old_tok.tokenize("ᠮᠣᠩᠭᠣᠯ") and old_tok("ᠮᠣᠩᠭᠣᠯ")["input_ids"][1:-1].count(old_tok.unk_token_id) >= 1
    report = extend_vocab(swcm_dir, [corpus], "mn", 30, tmp_path / "ext")
    assert report["unk_rate_before"] > 0.3 and report["unk_rate_after"] == 0
    old_emb = AutoModelForSeq2SeqLM.from_pretrained(swcm_dir).get_input_embeddings().weight
    new = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ext")
    first = len(json.loads(old_tok.backend_tokenizer.to_str())["model"]["vocab"])
    rows = new.get_input_embeddings().weight[first : first + report["pieces_added"]]
    assert len(rows) >= 2
    assert torch.cdist(rows, rows).add(torch.eye(len(rows)) * 1e9).min() > 1e-3, "no two new rows are equal"
    assert 0.5 < rows.std().item() / old_emb.std().item() < 2.0, "on the matrix's scale"
    head = new.lm_head.weight[first : first + report["pieces_added"]]
    assert torch.cdist(head, head).add(torch.eye(len(head)) * 1e9).min() > 1e-3


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not found at {SHARED_DATA}")
def test_tibetan_extension_on_real_text_brings_unk_below_one_percent(tmp_path, e5_dir):
    """On the packaged encoder, pruned to a Tibetan sample, then extended with pieces trained on that sample."""
    rows = [json.loads(line) for line in (SHARED_DATA / "mono" / "bo.esukhia-nanhai.jsonl").open(encoding="utf-8")]
    sample = _write_jsonl(tmp_path / "bo.jsonl", rows[:300])  # a sample, in a temp dir, for speed
    prune_vocab(e5_dir, [sample], tmp_path / "pruned")
    report = extend_vocab(tmp_path / "pruned", [sample], "bo", 4000, tmp_path / "ext")
    assert report["unk_rate_before"] > 0.3
    assert report["unk_rate_after"] < 0.01


def test_corpus_errors_name_file_and_line(tmp_path, swcm_dir, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"{bad}:2: invalid JSON"):
        list(read_corpus([bad]))
    with pytest.raises(DataError, match=rf"{bad}:1: missing field\(s\) \['title'\]"):
        list(read_corpus([bad], fields=["title"]))
    assert main(["vocab", "prune", "--model", str(swcm_dir), "--corpus", f"[{bad}]", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"swcm vocab prune: error: {bad}:2: invalid JSON (Expecting value)"


def test_cli_prune_prints_before_and_after(swcm_dir, tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    assert (
        main(["vocab", "prune", "--model", str(swcm_dir), "--corpus", f"[{corpus}]", "--out", str(tmp_path / "o")]) == 0
    )
    out = capsys.readouterr().out
    assert "| vocab |" in out and "| parameters |" in out and "texts_segmented_differently: 0" in out


def test_corpus_patterns_expand_and_an_empty_one_is_an_error(tmp_path):
    from swcm.vocab import corpus_files

    for name in ("b.txt", "a.txt"):
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    assert corpus_files([tmp_path / "*.txt"]) == [tmp_path / "a.txt", tmp_path / "b.txt"]
    with pytest.raises(DataError, match=r"nothing\*\.jsonl: corpus pattern matches no file"):
        corpus_files([tmp_path / "nothing*.jsonl"])


def test_too_few_pieces_for_the_corpus_is_one_line(swcm_dir, tmp_path, capsys):
    corpus = tmp_path / "bo.txt"
    corpus.write_text("བོད་ཡིག་ཀཁགང་ཡིག\n" * 20, encoding="utf-8")  # 10 distinct characters
    args = ["vocab", "extend", "--model", str(swcm_dir), "--corpus", f"[{corpus}]", "--lang", "bo"]
    assert main([*args, "--size", "4", "--out", str(tmp_path / "ext")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("size: 4 pieces cannot hold the corpus's 10 distinct characters plus sentencepiece's 4 special "
                        "pieces; use at least 14")  # fmt: skip
    assert not (tmp_path / "ext").exists()
