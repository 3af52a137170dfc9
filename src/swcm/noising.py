"""How training inputs are corrupted: mBART-style noise for denoising auto-encoding, and BERT-style masking for
masked-LM (`MaskingConfig`, `mask_tokens`, used by swcm adapt).

mBART-style noise: sentence permutation, then text infilling (spans of Poisson(3.5)
length, each replaced by one `<mask>`, zero-length spans insert one), optional token deletion and random
replacement. Noise works on content token ids only, so special tokens are never corrupted; the labels are the
original ids, so the source is always recoverable from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .checks import check_fields
from .errors import RecipeError
from .languages import SENTENCE_END


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, cut after sentence-final punctuation of any of the five scripts (and at newlines)."""
    pieces = []
    for line in text.splitlines():
        pieces += [s for s in SENTENCE_END.split(line) if s.strip()]
    return pieces


@dataclass
class NoiseConfig:
    """Rates of the denoising noise (mBART: mask 0.35, Poisson 3.5, permute all sentences)."""

    mask_ratio: float = 0.35
    """Share of tokens covered by masked spans."""
    poisson_lambda: float = 3.5
    """Mean span length."""
    permute_sentences: bool = True
    """Shuffle the order of sentences."""
    delete_ratio: float = 0.0
    """Share of (remaining) tokens deleted."""
    replace_ratio: float = 0.0
    """Share of (remaining) tokens replaced by a random vocabulary token."""

    def __post_init__(self):
        # rates in [0, 1), poisson_lambda >= 0
        check_fields(self, shares=("mask_ratio", "delete_ratio", "replace_ratio"))


def mask_spans(
    ids: Sequence[int],
    mask_id: int,
    rng: np.random.Generator,
    ratio: float = 0.35,
    poisson_lambda: float = 3.5,
) -> list[int]:
    """Text infilling: spans covering about `ratio` of the tokens, lengths ~ Poisson(lambda), each becomes one
    `mask_id`; a zero-length span inserts a `mask_id` without removing anything."""
    n = len(ids)
    budget = round(n * ratio)
    masked = [False] * n
    span_starts: set[int] = set()
    insertions: set[int] = set()
    attempts = 0
    while budget > 0 and attempts < 20 * n:
        attempts += 1
        length = min(int(rng.poisson(poisson_lambda)), budget)
        start = int(rng.integers(n))
        if length == 0:
            if not masked[start]:
                insertions.add(start)
            continue
        span = range(start, min(n, start + length))
        if (
            any(masked[i] for i in span)
            or (start - 1 >= 0 and masked[start - 1])
            or (span[-1] + 1 < n and masked[span[-1] + 1])
        ):
            continue  # spans never touch, so each stays one <mask>
        for i in span:
            masked[i] = True
        span_starts.add(start)
        budget -= len(span)
    out = []
    for i, token in enumerate(ids):
        if i in insertions and not masked[i]:
            out.append(mask_id)
        if i in span_starts:
            out.append(mask_id)
        elif not masked[i]:
            out.append(token)
    return out


def noise_document(
    sentences: Sequence[Sequence[int]],
    config: NoiseConfig,
    rng: np.random.Generator,
    mask_id: int,
    vocab_ids: Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """(noised source ids, label ids) for a document given as tokenised sentences (content ids, no specials)."""
    labels = [t for s in sentences for t in s]
    order = list(range(len(sentences)))
    if config.permute_sentences and len(order) > 1:
        order = [int(i) for i in rng.permutation(len(order))]
    source = [t for i in order for t in sentences[i]]
    if config.mask_ratio:
        source = mask_spans(source, mask_id, rng, config.mask_ratio, config.poisson_lambda)
    if config.delete_ratio:
        keep = rng.random(len(source)) >= config.delete_ratio
        source = [t for t, k in zip(source, keep, strict=True) if k or t == mask_id]
    if config.replace_ratio and vocab_ids:
        swap = rng.random(len(source)) < config.replace_ratio
        source = [
            int(vocab_ids[int(rng.integers(len(vocab_ids)))]) if s and t != mask_id else t
            for t, s in zip(source, swap, strict=True)
        ]
    return source, labels


@dataclass(kw_only=True)
class MaskingConfig:
    """What masked-language modelling hides (BERT's 15% with 80 / 10 / 10)."""

    mask_ratio: float = 0.15
    """Share of content tokens (or whole words) chosen for prediction."""
    mask_token: float = 0.8
    """Of the chosen, the share replaced by <mask>."""
    random_token: float = 0.1
    """Of the chosen, the share replaced by a random piece (the rest stay as they are)."""
    whole_word: bool = False
    """Choose whole words (Tibetan syllables, Chinese characters, words elsewhere) instead of single pieces."""

    def __post_init__(self):
        check_fields(self, positive=("mask_ratio",), shares=("mask_ratio",))
        if self.mask_token + self.random_token > 1.0:
            raise RecipeError(
                f"masking: mask_token ({self.mask_token}) and random_token ({self.random_token}) must sum to at most 1"
            )


def mask_tokens(
    ids: list[int],
    units: list[int],
    config: MaskingConfig,
    rng: np.random.Generator,
    mask_id: int,
    vocab_ids: np.ndarray,
) -> tuple[list[int], list[int]]:
    """(input ids, labels: the original id at chosen positions, -100 elsewhere) for content ids `ids`, where
    `units[k]` numbers the word piece k belongs to (all pieces of a chosen word are chosen together)."""
    labels = [-100] * len(ids)
    if not ids:
        return list(ids), labels
    unique = sorted(set(units))
    count = max(1, round(config.mask_ratio * len(unique)))
    chosen = set(int(u) for u in rng.choice(unique, size=min(count, len(unique)), replace=False))
    out = list(ids)
    for k, (token, unit) in enumerate(zip(ids, units, strict=True)):
        if unit not in chosen:
            continue
        labels[k] = token
        draw = rng.random()
        if draw < config.mask_token:
            out[k] = mask_id
        elif draw < config.mask_token + config.random_token:
            out[k] = int(vocab_ids[int(rng.integers(len(vocab_ids)))])
    return out, labels
