"""Generation metrics that are right for Tibetan, Uyghur, Kazakh, Mongolian and Chinese.

rouge-score's default tokenizer lowercases and keeps only [a-z0-9], which deletes every one of these scripts (all
scores 0). `ScriptTokenizer` splits Chinese by character, Tibetan into syllables on tsheg / shad, and Arabic,
Cyrillic, traditional Mongolian and Latin into words on whitespace and punctuation, without lowercasing.
ROUGE-L F / P / R use rouge-score's scorer with that tokenizer; chrF++ and BLEU use sacrebleu.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from .languages import TIBETAN_DELIMITERS, WORD_JOINERS, script_of, scripts_of_language


def _is_word_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMN" or char in WORD_JOINERS


class ScriptTokenizer:
    """Tokens for ROUGE / BLEU / F1: one per Chinese character, per Tibetan syllable, per word elsewhere."""

    def tokenize(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFC", text)
        return [text[start:end] for start, end in self.spans(text)]

    @staticmethod
    def spans(text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of the tokens of `text` as given (not normalised): whole-word masking
        maps them onto subword pieces."""
        spans, start, current_script = [], None, None
        for i, char in enumerate(text):
            script = script_of(char)
            if script in ("han", "kana"):
                if start is not None:
                    spans.append((start, i))
                spans.append((i, i + 1))
                start, current_script = None, None
            elif char in TIBETAN_DELIMITERS or not _is_word_char(char):
                if start is not None:
                    spans.append((start, i))
                start, current_script = None, None
            else:
                # a change of script (other than marks / joiners, which stay with their word) starts a new token
                if (
                    start is not None
                    and script not in ("other", current_script)
                    and current_script not in (None, "other")
                ):
                    spans.append((start, i))
                    start = None
                if start is None:
                    start = i
                if script != "other":
                    current_script = script
        if start is not None:
            spans.append((start, len(text)))
        return spans


TOKENIZER = ScriptTokenizer()


@dataclass
class RougeL:
    f: float
    p: float
    r: float


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, RougeL]:
    """ROUGE-L in percent, two ways: `sentence` = mean of per-pair scores (rouge-score's scorer, which is how
    summarisation papers usually report it, and how we read the paper's tables), `corpus` = LCS and lengths summed
    over all pairs before dividing."""
    _check(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=TOKENIZER)
    pairs = [scorer.score(r, h)["rougeL"] for h, r in zip(hypotheses, references, strict=True)]
    n = max(len(pairs), 1)
    sentence = RougeL(*(100 * sum(getattr(s, k) for s in pairs) / n for k in ("fmeasure", "precision", "recall")))
    lcs = hyp_len = ref_len = 0
    for h, r in zip(hypotheses, references, strict=True):
        ht, rt = TOKENIZER.tokenize(h), TOKENIZER.tokenize(r)
        lcs, hyp_len, ref_len = lcs + _lcs(ht, rt), hyp_len + len(ht), ref_len + len(rt)
    p = lcs / hyp_len if hyp_len else 0.0
    r = lcs / ref_len if ref_len else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"sentence": sentence, "corpus": RougeL(100 * f, 100 * p, 100 * r)}


def chrf_pp(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF++ (character 6-grams + word 2-grams); character-based, so right for every script here."""
    _check(hypotheses, references)
    return CHRF(word_order=2).corpus_score(list(hypotheses), [list(references)]).score


def bleu(hypotheses: Sequence[str], references: Sequence[str], lang: str) -> tuple[float, str]:
    """Corpus BLEU and its signature: sacrebleu's `zh` tokenizer for Chinese; for the other languages the text is
    split by ScriptTokenizer first (Tibetan syllables, words) and sacrebleu adds no tokenisation (`tok:none`)."""
    _check(hypotheses, references)
    if lang == "zh":
        metric = BLEU(tokenize="zh")
        score = metric.corpus_score(list(hypotheses), [list(references)])
        return score.score, str(metric.get_signature())
    metric = BLEU(tokenize="none")
    split = [" ".join(TOKENIZER.tokenize(t)) for t in hypotheses]
    refs = [" ".join(TOKENIZER.tokenize(t)) for t in references]
    score = metric.corpus_score(split, [refs])
    return score.score, f"{metric.get_signature()}+swcm-script-tokens"


def exact_match(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Percent of outputs equal to (one of) their reference(s), comparing script tokens (spacing, punctuation
    and Unicode normalisation do not count)."""
    _check(hypotheses, references)
    if not references:
        return 0.0
    hits = sum(
        any(TOKENIZER.tokenize(h) == TOKENIZER.tokenize(r) for r in _as_list(refs))
        for h, refs in zip(hypotheses, references, strict=True)
    )
    return 100.0 * hits / len(references)


def token_f1(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """SQuAD-style token F1 (best over references) in percent, on script tokens."""
    _check(hypotheses, references)
    if not references:
        return 0.0
    total = 0.0
    for h, refs in zip(hypotheses, references, strict=True):
        best = 0.0
        for r in _as_list(refs):
            ht, rt = TOKENIZER.tokenize(h), TOKENIZER.tokenize(r)
            common = sum((Counter(ht) & Counter(rt)).values())
            if common:
                p, rec = common / len(ht), common / len(rt)
                best = max(best, 2 * p * rec / (p + rec))
        total += best
    return 100.0 * total / len(references)


def target_script_share(text: str, lang: str) -> float | None:
    """Share of the letters and marks of the five scripts (and kana) that are in `lang`'s script(s); None if there
    are none (only digits, punctuation, Latin). Marks count: Tibetan vowel signs and Arabic harakat are script-bound."""
    scripts = [script_of(c) for c in text if unicodedata.category(c)[0] in "LM"]
    counted = [s for s in scripts if s not in ("latin", "other")]
    if not counted:
        return None
    return sum(s in scripts_of_language(lang) for s in counted) / len(counted)


def off_target_rate(hypotheses: Sequence[str], lang: str) -> float:
    """Percent of outputs not written mainly (>= 50% of their letters and marks) in the target language's script: the
    fall-back-to-Chinese failure. Empty outputs and outputs with no letters of these scripts count as off target."""
    scripts_of_language(lang)  # an unknown language fails here, not only when there are outputs
    if not hypotheses:
        return 0.0
    off = 0
    for h in hypotheses:
        share = target_script_share(h, lang)
        off += share is None or share < 0.5
    return 100.0 * off / len(hypotheses)


def _as_list(refs: str | Sequence[str]) -> list[str]:
    return [refs] if isinstance(refs, str) else list(refs)


def _check(hypotheses: Sequence, references: Sequence) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
