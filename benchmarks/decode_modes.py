"""Which CPU decoding mode is fastest for how many rows a step decodes (batch x beams), on this CPU, and whether
`--quantize auto` picks it. Every mode `swcm generate` offers (fp32, int8, fp16 weights, and bf16 weights where the
CPU has native bf16) decodes the same NTREX zh batches, taking turns, 48 tokens forced per output:

    python benchmarks/decode_modes.py --out benchmarks/results/decode_modes      # about 4 min on 2 CPU cores
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/decode_modes.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import (
    DECODING_MODES,
    benchmark_encoder,
    machine,
    machine_line,
    markdown_table,
    ntrex_sentences,
    run_as_program,
    write_report,
)
from benchmarks.peers import generation_kwargs
from swcm.choices import DEFAULT_ENCODER


@dataclass
class DecodeModesArgs:
    """Arguments of benchmarks/decode_modes.py."""

    encoder: str = DEFAULT_ENCODER
    """Encoder the model is built from (packaged:NAME, a local directory or a hub id), pruned to the benchmark
    corpus."""
    model: Path | None = None
    """A trained XLM-SWCM folder to time instead (the timings do not depend on the weights: lengths are forced)."""
    shapes: list[str] = field(default_factory=lambda: ["1x1", "1x5", "4x1", "16x1", "4x5", "8x5", "16x5"])
    """Settings timed, BATCHxBEAMS."""
    batches: int = 2
    """Batches of different sentences per setting (each mode decodes all of them)."""
    new_tokens: int = 48
    """Tokens generated per output (forced)."""
    out: Path = Path("benchmarks/results/decode_modes")
    """Results folder (decode_modes.json, decode_modes.md)."""


def _modes(model) -> dict:
    """mode -> the model prepared as `swcm generate --precision P --quantize Q` prepares it."""
    from swcm.generation import prepare_for_inference
    from swcm.precision import cpu_has_fast_bf16

    modes = [mode for mode in DECODING_MODES if mode != "bf16" or cpu_has_fast_bf16()[0]]
    return {mode: prepare_for_inference(copy.deepcopy(model), *DECODING_MODES[mode])[0] for mode in modes}


def run(args: DecodeModesArgs) -> dict:
    from swcm import from_encoder
    from swcm.generation import fast_cpu_mode
    from swcm.modeling_swcm import load_model_folder

    if args.model is not None:
        from transformers import AutoTokenizer

        model, tokenizer = load_model_folder(args.model), AutoTokenizer.from_pretrained(args.model)
    else:
        torch.manual_seed(0)
        model, tokenizer = from_encoder(benchmark_encoder(args.encoder, prune=True), return_tokenizer=True)
    modes = _modes(model)
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes]
    sentences = ntrex_sentences(sum(batch for batch, _ in shapes) * args.batches)
    rows, start = [], 0
    for batch_size, beams in shapes:
        seconds = {mode: [] for mode in modes}
        for _ in range(args.batches):
            texts, start = sentences[start : start + batch_size], start + batch_size
            batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=48)
            for mode, prepared in modes.items():  # taking turns on each batch: a drift of the machine hits all alike
                started = time.perf_counter()
                with torch.inference_mode():
                    prepared.generate(**generation_kwargs("swcm", batch, beams, args.new_tokens))
                seconds[mode].append(time.perf_counter() - started)
        rates = {mode: batch_size * args.new_tokens * len(s) / sum(s) for mode, s in seconds.items()}
        fastest = max(rates, key=rates.get)
        auto, why = fast_cpu_mode(batch_size * beams)
        row = {"batch": batch_size, "beams": beams, "rows_per_step": batch_size * beams, "tokens_per_s": rates}
        row |= {"fastest": fastest, "auto": auto, "auto_share_of_fastest": rates[auto] / rates[fastest], "why": why}
        rows.append(row)
        print(f"{batch_size}x{beams}: " + ", ".join(f"{m} {r:.0f}" for m, r in rates.items()) + f"; auto {auto}")
    result = {"machine": machine(), "args": {k: str(v) for k, v in asdict(args).items()}, "rows": rows}
    info, names = result["machine"], list(modes)
    markdown = [
        "# CPU decoding modes by rows per step, and what `--quantize auto` picks",
        "",
        f"{machine_line(info)} · {args.batches} batches of NTREX zh per setting, "
        f"{args.new_tokens} tokens forced, modes taking turns",
        "",
        markdown_table(
            ["batch x beams", "rows / step", *[f"{m} tokens/s" for m in names], "fastest", "auto", "auto / fastest"],
            [
                [
                    f"{r['batch']}x{r['beams']}",
                    r["rows_per_step"],
                    *[r["tokens_per_s"][m] for m in names],
                    r["fastest"],
                    r["auto"],
                    r["auto_share_of_fastest"],
                ]
                for r in rows
            ],
        ),
        "",
        f"auto's share of the fastest mode: lowest {min(r['auto_share_of_fastest'] for r in rows):.3f}, "
        f"median {statistics.median(r['auto_share_of_fastest'] for r in rows):.3f}.",
        "",
    ]
    write_report(args.out, "decode_modes", result, "\n".join(markdown))
    return result


def main(argv: list[str] | None = None) -> int:
    return run_as_program(DecodeModesArgs, run, "decode_modes.md", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
