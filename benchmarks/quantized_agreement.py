"""How far each fast mode's greedy outputs are from fp32's on a trained model's held-out inputs: identical share,
chrF++ against fp32's outputs, and the fp32 logit gap where they first differ (near-ties)."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.file_throughput import QUANTIZED

TIE_MARGINS = (0.01, 0.05)
"""fp32 logit gaps (top token against the runner-up) counted as near-ties in the agreement."""


@torch.no_grad()
def greedy_outputs(model, tokenizer, texts: list[str], lang: str, batch_size: int = 16) -> list[tuple[str, list, list]]:
    """For each text, greedy with 32 new tokens at most, in `generate_texts`' batches (`source_batches`):
    (the output text as `generate_texts` returns it, the generated token ids through the end token, the top-1 minus
    top-2 logit gap at each of those steps)."""
    from swcm.generation import source_batches, source_token_limit

    outputs, limit = {}, source_token_limit(model, tokenizer)
    for chunk, batch, _ in source_batches(tokenizer, texts, batch_size, limit, model.device):
        out = model.generate(
            **batch,
            tgt_lang=lang,
            num_beams=1,
            max_new_tokens=32,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        top2 = torch.stack([score.float().topk(2, dim=-1).values for score in out.scores], 1)
        gaps, tokens = top2[..., 0] - top2[..., 1], out.sequences[:, -len(out.scores) :]
        decoded = tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
        for i, text, row, gap in zip(chunk, decoded, tokens.tolist(), gaps.tolist(), strict=True):
            end = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
            outputs[i] = (text.strip(), row[:end], gap[:end])
    return [outputs[i] for i in range(len(texts))]


def _divergence_gap(reference: tuple[list, list], other: list) -> float | None:
    """fp32's logit gap at the first step where `other`'s tokens leave the fp32 output's (None: identical)."""
    tokens, gaps = reference
    for k, token in enumerate(tokens):
        if k >= len(other) or other[k] != token:
            return gaps[k]
    return None if len(other) == len(tokens) else gaps[-1]


def quantized_agreement(model_dir: Path, limit: int = 0) -> dict | None:
    """Greedy outputs of a trained model (the quickstart's) with `--quantize int8` and `fp16`, and with bf16 weights
    (a reference: the rounding of a 16-bit format), against fp32, on a fixed set: the held-out CLDR names of every
    language the model has a tag for (the quickstart's test split). Per language and pooled: identical share and
    chrF++ of the outputs against fp32's. Pooled: the near-ties of the fp32 outputs (sentences with a step whose
    top-two logit gap is under each of TIE_MARGINS), and for each mode the fp32 gap where its outputs first differ."""
    import copy

    from transformers import AutoTokenizer

    from swcm import SWCMForConditionalGeneration
    from swcm.cldr import cldr_pairs, split_pairs
    from swcm.generation import prepare_for_inference
    from swcm.metrics import chrf_pp

    if not (model_dir / "config.json").is_file():
        return None
    fp32 = SWCMForConditionalGeneration.from_pretrained(model_dir).eval()
    variants = {mode: prepare_for_inference(copy.deepcopy(fp32), "fp32", mode)[0] for mode in QUANTIZED}
    variants["bf16 weights"] = copy.deepcopy(fp32).to(torch.bfloat16)
    variants["fp32, decoder attention eager"] = prepare_for_inference(copy.deepcopy(fp32), "fp32")[0]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    result = {"model": str(model_dir)}
    pooled = {mode: [0, 0] for mode in variants}
    smallest_gaps, divergence_gaps = [], {mode: [] for mode in variants}
    for lang in sorted(set(fp32.config.lang_tag_ids) - {"zh"}):
        texts = [pair.src for pair in split_pairs(cldr_pairs("zh", lang))[1]][: limit or None]
        if not texts:
            continue
        reference = greedy_outputs(fp32, tokenizer, texts, lang)
        reference_texts = [text for text, _, _ in reference]
        smallest_gaps += [min(gaps) for _, _, gaps in reference if gaps]
        result[lang] = {"sentences": len(texts)}
        for mode, model in variants.items():
            outputs = greedy_outputs(model, tokenizer, texts, lang)
            output_texts = [text for text, _, _ in outputs]
            same = sum(x == y for x, y in zip(reference_texts, output_texts, strict=True))
            pooled[mode][0] += same
            pooled[mode][1] += len(texts)
            result[lang][mode] = {
                "identical": 100 * same / len(texts),
                "chrf++_vs_fp32": chrf_pp(output_texts, reference_texts),
            }
            for (_, tokens, gaps), (_, other, _) in zip(reference, outputs, strict=True):
                gap = _divergence_gap((tokens, gaps), other)
                if gap is not None:
                    divergence_gaps[mode].append(gap)
    result["pooled"] = {m: {"identical": 100 * hits / max(1, n), "sentences": n} for m, (hits, n) in pooled.items()}
    result["near_ties"] = {
        "sentences": len(smallest_gaps),
        "share_with_gap_under": {
            str(t): 100 * sum(g < t for g in smallest_gaps) / max(1, len(smallest_gaps)) for t in TIE_MARGINS
        },
        "divergence_gaps": {mode: sorted(gaps) for mode, gaps in divergence_gaps.items()},
    }
    return result
