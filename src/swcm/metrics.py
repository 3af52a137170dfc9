"""Generation metrics: chrF++ (sacrebleu) and exact match."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import CHRF


def chrf_pp(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF++ (character 6-grams + word 2-grams); character-based, so right for every script here."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    return CHRF(word_order=2).corpus_score(list(hypotheses), [list(references)]).score


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Share of outputs equal to their reference after stripping outer whitespace, in percent."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        return 0.0
    return 100.0 * sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True)) / len(references)
