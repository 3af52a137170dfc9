"""Metrics checked against values computed by hand on small bo / ug / mn / zh examples."""

import pytest
from rouge_score import rouge_scorer

from swcm.metrics import (
    ScriptTokenizer,
    bleu,
    chrf_pp,
    exact_match,
    off_target_rate,
    rouge_l,
    target_script_share,
    token_f1,
)

# (hypothesis, reference, hypothesis tokens, reference tokens, LCS)
CASES = {
    "bo": ("བོད་ཡིག་ཡག་པོ།", "བོད་ཡིག་ཡག་པོ་འདུག།", 4, 5, 4),
    "ug": ("ئۇيغۇر تىلى ياخشى", "ئۇيغۇر تىلى ناھايىتى ياخشى", 3, 4, 3),
    "mn": ("ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ", "ᠬᠡᠯᠡ ᠮᠣᠩᠭᠣᠯ", 2, 2, 1),
    "zh": ("北京新闻", "新华社北京电", 4, 6, 2),
}


def test_script_tokenizer():
    tok = ScriptTokenizer()
    assert tok.tokenize("བོད་ཡིག་ཡག་པོ་འདུག།") == ["བོད", "ཡིག", "ཡག", "པོ", "འདུག"]
    assert tok.tokenize("ئۇيغۇر تىلى، ياخشى!") == ["ئۇيغۇر", "تىلى", "ياخشى"]
    assert tok.tokenize("Қазақ тілі (KZ) 2024.") == ["Қазақ", "тілі", "KZ", "2024"]  # no lowercasing
    assert tok.tokenize("ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ᠃") == ["ᠮᠣᠩᠭᠣᠯ", "ᠬᠡᠯᠡ"]
    assert tok.tokenize("新华社GPU电") == ["新", "华", "社", "GPU", "电"]


@pytest.mark.parametrize("lang", list(CASES))
def test_rouge_l_by_hand_and_rouge_scores_default_tokenizer_scores_zero(lang):
    hyp, ref, n_hyp, n_ref, lcs = CASES[lang]
    p, r = lcs / n_hyp, lcs / n_ref
    scores = rouge_l([hyp], [ref])["sentence"]
    assert scores.p == pytest.approx(100 * p) and scores.r == pytest.approx(100 * r)
    assert scores.f == pytest.approx(100 * 2 * p * r / (p + r))
    default = rouge_scorer.RougeScorer(["rougeL"]).score(ref, hyp)["rougeL"]
    assert default.fmeasure == 0.0 and scores.f > 0, "the default tokenizer deletes this script"


def test_corpus_and_sentence_rouge_differ_as_computed_by_hand():
    hyps, refs = [c[0] for c in CASES.values()], [c[1] for c in CASES.values()]
    result = rouge_l(hyps, refs)
    lcs, n_hyp, n_ref = (sum(c[i] for c in CASES.values()) for i in (4, 2, 3))
    p, r = lcs / n_hyp, lcs / n_ref  # 10 / 13, 10 / 17
    assert result["corpus"].p == pytest.approx(100 * 10 / 13) and p == 10 / 13
    assert result["corpus"].f == pytest.approx(100 * 2 * p * r / (p + r))
    per_pair = [2 * (c[4] / c[2]) * (c[4] / c[3]) / (c[4] / c[2] + c[4] / c[3]) for c in CASES.values()]
    assert result["sentence"].f == pytest.approx(100 * sum(per_pair) / 4)


def test_exact_match_and_token_f1_for_reading_comprehension():
    refs = [["ئۇيغۇر تىلى", "تىل"], "2024 يىلى"]
    assert exact_match(["ئۇيغۇر تىلى.", "2023 يىلى"], refs) == 50.0
    # second: 1 of 2 tokens in common -> F1 0.5; first: exact -> 1.0
    assert token_f1(["ئۇيغۇر  تىلى", "2023 يىلى"], refs) == pytest.approx(75.0)


def test_bleu_and_chrf():
    score, signature = bleu(["བོད་ཡིག་ཡག་པོ།"], ["བོད་ཡིག་ཡག་པོ།"], "bo")
    assert score == pytest.approx(100.0) and "tok:none" in signature and "swcm-script-tokens" in signature
    score, signature = bleu(["新华社北京电"], ["新华社北京电"], "zh")
    assert score == pytest.approx(100.0) and "tok:zh" in signature
    assert chrf_pp(["ئۇيغۇر تىلى"], ["ئۇيغۇر تىلى"]) == pytest.approx(100.0)
    assert 0 < chrf_pp(["ئۇيغۇر"], ["ئۇيغۇر تىلى"]) < 100


def test_off_target_rate():
    assert off_target_rate(["中文新闻", "ئۇيغۇر تىلى", "", "2024 GPU"], "ug") == 75.0
    assert off_target_rate(["Қазақ тілі", "قازاق ٴتىلى"], "kk") == 0.0  # Cyrillic and Arabic script both count
    assert off_target_rate(["ᠮᠣᠩᠭᠣᠯ", "монгол 中"], "mn") == 0.0
    assert target_script_share("བོད中", "bo") == pytest.approx(3 / 4)  # the vowel sign ོ (a mark) counts too
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        off_target_rate(["x"], "fr")


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        rouge_l(["a", "b"], ["a"])
