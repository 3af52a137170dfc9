"""mBART-style noise for denoising auto-encoding."""

from __future__ import annotations

import random


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson(lam) sample (Knuth's method; lam is small here)."""
    limit, k, product = pow(2.718281828459045, -lam), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def mask_spans(
    ids: list[int], mask_id: int, rng: random.Random, ratio: float = 0.35, poisson_lambda: float = 3.5
) -> list[int]:
    """Replace spans covering about `ratio` of the tokens by one `mask_id` each; span lengths ~ Poisson(lambda),
    at least 1. `ids` are content tokens only (no special tokens), so specials are never corrupted."""
    n = len(ids)
    budget = round(n * ratio)
    masked = [False] * n
    starts: set[int] = set()
    attempts = 0
    while budget > 0 and attempts < 10 * n:
        attempts += 1
        length = min(max(1, poisson(rng, poisson_lambda)), budget)
        start = rng.randrange(n)
        span = range(start, min(n, start + length))
        if any(masked[i] for i in span):
            continue
        for i in span:
            masked[i] = True
        starts.add(start)
        budget -= len(span)
    out = []
    for i, token in enumerate(ids):
        if i in starts:
            out.append(mask_id)
        elif not masked[i]:
            out.append(token)
    return out
