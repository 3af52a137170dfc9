"""How a freshly built decoder starts: whether an encoder suits weight sharing, before any training is paid for.

On a small probe of zh -> X pairs (CLDR names, shipped with babel, so it works offline), teacher-forced:
- top decoder-state cosine: mean pairwise cosine of the decoder's last hidden states over all target positions.
  Near 1, every position looks the same (the decoder ignores its input); a random decoder starts near 0.15.
- next-token entropy against log V: near log V the head spreads its mass uniformly (nothing to learn from);
- probe loss: cross-entropy per target token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .cldr import cldr_pairs, split_pairs
from .languages import MINORITY_LANGS
from .tokenization import encode_targets


@dataclass
class DecoderStart:
    top_state_cosine: float
    """Mean pairwise cosine of the top decoder states (1: every position the same)."""
    entropy: float
    """Mean next-token entropy in nats."""
    log_vocab: float
    """log V: the entropy of a uniform next-token distribution."""
    probe_loss: float
    """Teacher-forced cross-entropy per target token."""
    probe_pairs: int
    """Pairs in the probe."""
    probe_tokens: int
    """Target tokens scored."""

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"decoder start: top-state cosine {self.top_state_cosine:.3f}, next-token entropy {self.entropy:.2f} "
            f"of log V {self.log_vocab:.2f}, probe loss {self.probe_loss:.2f} "
            f"({self.probe_pairs} zh -> X CLDR pairs, {self.probe_tokens} tokens)"
        )


def probe_pairs(langs, per_lang: int = 16) -> list[tuple[str, str, str]]:
    """(source, target language, target): held-out CLDR name pairs zh -> X, the same every time."""
    pairs = []
    for lang in langs:
        _, test = split_pairs(cldr_pairs("zh", lang))
        pairs += [(p.src, lang, p.tgt) for p in test[:per_lang]]
    return pairs


@torch.no_grad()
def decoder_start(model, tokenizer, pairs=None, per_lang: int = 16, max_length: int = 64) -> DecoderStart:
    """Measure the decoder on `pairs` ((source, lang, target) triples; default: the CLDR probe for the model's
    target-language tags)."""
    if pairs is None:
        pairs = probe_pairs([lang for lang in MINORITY_LANGS if lang in model.config.lang_tag_ids], per_lang)
    if not pairs:
        raise ValueError(f"no probe pairs: the model has none of the tags {MINORITY_LANGS}")
    was_training = model.training
    model.eval()
    cosines, weights, entropy_sum, loss_sum, tokens = [], [], 0.0, 0.0, 0
    try:
        for lang in sorted({lang for _, lang, _ in pairs}):
            chosen = [p for p in pairs if p[1] == lang]
            batch = tokenizer(
                [p[0] for p in chosen], return_tensors="pt", padding=True, truncation=True, max_length=max_length
            ).to(model.device)
            batch.pop("token_type_ids", None)
            labels = encode_targets(tokenizer, [p[2] for p in chosen], lang, max_length=max_length).to(model.device)
            out = model(**batch, labels=labels, output_hidden_states=True)
            mask = labels != -100
            states = F.normalize(out.decoder_hidden_states[-1][mask].float(), dim=-1)
            n = states.shape[0]
            if n > 1:
                similarity = states @ states.T
                cosines.append(float((similarity.sum() - n) / (n * (n - 1))))
                weights.append(n)
            log_probs = out.logits[mask].float().log_softmax(-1)
            entropy_sum += float(-(log_probs.exp() * log_probs).sum())
            loss_sum += float(F.nll_loss(log_probs, labels[mask], reduction="sum"))
            tokens += n
    finally:
        model.train(was_training)
    cosine = sum(c * w for c, w in zip(cosines, weights, strict=True)) / sum(weights)
    return DecoderStart(
        top_state_cosine=cosine,
        entropy=entropy_sum / tokens,
        log_vocab=math.log(model.config.vocab_size),
        probe_loss=loss_sum / tokens,
        probe_pairs=len(pairs),
        probe_tokens=tokens,
    )
