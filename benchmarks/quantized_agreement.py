"""What each fast decoding mode costs in quality.

- `real_text_scores` (run as a program): the score users judge by, chrF++ and ROUGE-L F against the references, of
  fp32, `--quantize int8` / `fp16` and bf16 weights on held-out real text (a real-text benchmark model: its
  translation model on the UI strings' and OpenPecha's test sides), beside each mode's share of outputs identical to
  fp32's;
- `quantized_agreement` (speed.py --agreement_model): greedy outputs against fp32's on the quickstart's names, and
  the fp32 logit gap where they first differ (near-ties).

    python benchmarks/quantized_agreement.py --model runs/real-tasks/shared-s0/translation/final
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/quantized_agreement.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import (
    DECODING_MODES,
    SHARED_DATA,
    machine,
    machine_line,
    markdown_table,
    run_as_program,
    write_report,
)
from benchmarks.file_throughput import QUANTIZED

MODES = ["fp32", *QUANTIZED, "int8-7bit", "bf16"]
"""Decoding modes compared: fp32, each `--quantize` mode, int8 with the 7-bit weights a CPU without VNNI gets (AVX2
machines; the same numbers, computed here), bf16 weights (`--precision bf16`)."""
HELD_OUT = [
    ("ui", "mt/software-ui.en-zh-{lang}.jsonl", ["ug", "kk", "mn"]),
    ("openpecha", "mt/openpecha.bo-zh.jsonl", ["bo"]),
]
"""The real-text benchmark's held-out translation sides (split test, as benchmarks/real_tasks.py evaluates)."""

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


@dataclass
class FastModeArgs:
    """Arguments of benchmarks/quantized_agreement.py."""

    model: Path
    """A trained XLM-SWCM translation model (real_tasks.py --keep_models: WORK/VARIANT-sN/translation/final)."""
    limit: int = 200
    """Held-out examples per language."""
    modes: list[str] = field(default_factory=lambda: list(MODES))
    """Modes: fp32, int8, fp16 (--quantize), int8-7bit (int8 as without VNNI) and bf16 (bf16 weights)."""
    num_beams: int = 1
    """Beam size (the real-text benchmark decodes greedily; swcm generate's default is 5)."""
    out: Path = Path("benchmarks/results/fast_modes")
    """Results folder (fast_modes.json, fast_modes.md)."""


@contextmanager
def _without_vnni(active: bool):
    """While active, swcm quantizes as on a CPU without VNNI (7-bit weights)."""
    from swcm import precision

    has_vnni = precision.cpu_has_vnni
    if active:
        precision.cpu_has_vnni = lambda: False
    try:
        yield
    finally:
        precision.cpu_has_vnni = has_vnni


def real_text_scores(args: FastModeArgs) -> dict:
    """Per mode and held-out language: chrF++, ROUGE-L F, identical-to-fp32 %, decoding seconds (`num_beams`, no
    repeated 3-grams, as the real-text benchmark)."""
    import copy
    import time

    from transformers import AutoTokenizer

    from swcm import load_model_folder
    from swcm.evaluation import evaluate_file
    from swcm.generation import prepare_for_inference
    from swcm.specs import TaskSpec

    base = load_model_folder(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    result = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()}}
    outputs: dict[str, dict[str, list[str]]] = {}
    rows = []
    for mode in args.modes:
        precision, quantize = DECODING_MODES[mode.removesuffix("-7bit")]
        with _without_vnni(mode == "int8-7bit"):
            model, how = prepare_for_inference(copy.deepcopy(base), precision, quantize)
        for name, pattern, langs in HELD_OUT:
            for lang in langs:
                path = SHARED_DATA / pattern.replace("{lang}", lang)
                spec = TaskSpec(task="translation", tgt_lang=lang, src_field="zh", tgt_field=lang, split="test")
                started = time.perf_counter()
                row, predictions = evaluate_file(
                    model, tokenizer, path, spec, limit=args.limit, skip_empty=True, num_beams=args.num_beams,
                    max_new_tokens=64, no_repeat_ngram_size=3, batch_size=32, progress=False,
                )  # fmt: skip
                texts = [p["output"] for p in predictions]
                outputs.setdefault(f"{name}:{lang}", {})[mode] = texts
                reference = outputs[f"{name}:{lang}"].get("fp32", texts)
                same = 100 * sum(a == b for a, b in zip(texts, reference, strict=True)) / max(1, len(texts))
                rows.append(
                    {
                        "mode": mode, "how": how, "cell": f"{name}:{lang}", "n": row["n"], "chrf++": row["chrf++"],
                        "rougeL_f": row["rougeL_f"], "identical_to_fp32": same,
                        "seconds": time.perf_counter() - started,
                    }
                )  # fmt: skip
                print(f"{mode:5s} {name}:{lang}: chrF++ {row['chrf++']:.2f}, identical {same:.0f}%", flush=True)
    result["rows"] = rows
    write_report(Path(args.out), "fast_modes", result, render_scores(result))
    return result


def render_scores(result: dict) -> str:
    info = result["machine"]
    fp32 = {r["cell"]: r for r in result["rows"] if r["mode"] == "fp32"}
    table = []
    for r in result["rows"]:
        base = fp32.get(r["cell"])
        delta = r["chrf++"] - base["chrf++"] if base else None
        table.append(
            [r["mode"], r["cell"], r["n"], r["chrf++"], delta, r["rougeL_f"], r["identical_to_fp32"], r["seconds"]]
        )
    header = ["mode", "held-out", "n", "chrF++", "chrF++ - fp32", "ROUGE-L F", "identical to fp32 %", "seconds"]
    return (
        f"# Fast decoding modes against fp32 on held-out real text\n\n{machine_line(info)} · model "
        f"`{result['args']['model']}` · beam {result['args'].get('num_beams', 1)}, no repeated "
        "3-grams\n\n" + markdown_table(header, table)
    )


def main(argv: list[str] | None = None) -> int:
    return run_as_program(FastModeArgs, real_text_scores, "fast_modes.md", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
