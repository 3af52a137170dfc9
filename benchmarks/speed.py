"""Speed of XLM-SWCM against its HF peers, side by side in one run, from the same encoder and the same batches.

    python benchmarks/speed.py                      # full grid (about 17 min on 2 CPU cores)
    python benchmarks/speed.py --quick              # a few minutes
    python benchmarks/speed.py --skip_grid true     # file throughput (and agreement) only

The parts, one file each: peers.py (the models), file_throughput.py, quantized_agreement.py, decode_grid.py
(forced lengths, FLOPs, profile), training_speed.py, speed_report.py (speed.md and the plots). Writes speed.json,
speed.md and PNG plots to --out.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

if __package__ in (None, ""):  # `python benchmarks/speed.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.common import benchmark_encoder, machine, run_as_program, write_json
from benchmarks.decode_grid import generation_flops_per_token, linear_microbenchmark, measure_generation, profile_decode
from benchmarks.file_throughput import decoding_runners, measure_file_throughput
from benchmarks.peers import build_models
from benchmarks.quantized_agreement import quantized_agreement
from benchmarks.speed_report import plot, render_markdown, summarise
from benchmarks.training_speed import TrainStepArgs, measure_data_pipeline, measure_training
from swcm.choices import DEFAULT_ENCODER


@dataclass
class SpeedArgs(TrainStepArgs):
    """Arguments of benchmarks/speed.py."""

    encoder: str = DEFAULT_ENCODER
    """Encoder every model is built from (packaged:NAME, a local directory or a hub id)."""
    no_prune: bool = False
    """Use the encoder as given, without pruning its vocabulary to the benchmark corpus (pruned by default)."""
    out: Path = Path("benchmarks/results/speed")
    """Results folder (speed.json, speed.md, *.png)."""
    models: list[Literal["swcm", "bert2bert", "mbart"]] = field(default_factory=lambda: ["swcm", "bert2bert", "mbart"])
    """Models to measure."""
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    """Generation batch sizes."""
    new_tokens: list[int] = field(default_factory=lambda: [32, 128, 256])
    """Forced output lengths (min = max new tokens)."""
    beams: list[int] = field(default_factory=lambda: [1, 5])
    """Beam sizes (1 = greedy)."""
    repeats: int = 3
    """Timed repetitions per setting (the median is reported)."""
    threads: int = 0
    """torch threads (0: torch's default)."""
    quick: bool = False
    """Smaller grid: batch 1 and 8, 32 and 128 tokens, one repeat."""
    file_sentences: int = 500
    """File throughput: NTREX zh sentences translated in batches of 16, sorted by length (0: skip)."""
    file_tokens: int = 48
    """File throughput: tokens generated per sentence (forced: the models are untrained or random)."""
    file_beams: list[int] = field(default_factory=lambda: [1, 5])
    """File throughput: beam sizes."""
    file_sentences_beam: int = 100
    """File throughput with beams above 1: this many of the sentences, evenly spread (beam search costs more)."""
    latency_sentences: int = 20
    """Batch-1 latency: sentences, greedy, file_tokens each."""
    no_ctranslate2: bool = False
    """Do not time CTranslate2 (fp32 and int8 on the matched mBART; pip install ctranslate2)."""
    work: Path = Path("runs/speed")
    """Scratch folder (the mBART converted for CTranslate2)."""
    agreement_model: Path | None = None
    """A trained XLM-SWCM folder (e.g. the quickstart's train/final): quantized against fp32 outputs (None: skip)."""
    agreement_names: int = 0
    """Held-out names per language for the agreement (0: all)."""
    skip_grid: bool = False
    """Skip the forced-length grid, the profile and the training step (file throughput and agreement only)."""


def run(args: SpeedArgs) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.new_tokens, args.repeats = [n for n in args.new_tokens if n <= 128] or args.new_tokens[:1], 1
    encoder_dir = benchmark_encoder(args.encoder, prune=not args.no_prune)
    models, tokenizer = build_models(encoder_dir, args.models)
    swcm = models.get("swcm")
    result = {
        "machine": machine(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "encoder_dir": encoder_dir,
        "models": list(models),
        "vocab_size": next(iter(models.values())).get_input_embeddings().num_embeddings,
        "parameters": {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()},
    }
    if args.file_sentences:
        result["file_throughput"] = measure_file_throughput(decoding_runners(models, tokenizer, args), tokenizer, args)
    if args.agreement_model:
        result["quantized_agreement"] = quantized_agreement(Path(args.agreement_model), args.agreement_names)
    if not args.skip_grid:
        result["generation_flops_per_token"] = generation_flops_per_token(models, tokenizer)
        result["decode_profile"] = profile_decode(models, tokenizer)
        from transformers import AutoConfig

        enc = AutoConfig.from_pretrained(encoder_dir)
        result["linear_microbenchmark"] = linear_microbenchmark(
            enc.hidden_size, enc.intermediate_size, result["vocab_size"]
        )
        result["generation"] = measure_generation(models, tokenizer, args)
        result["training"] = measure_training(models, args, encoder_dir)
        result["data_pipeline"] = measure_data_pipeline(tokenizer, swcm.config.lang_tag_ids) if swcm else None
        result["summary"] = summarise(result)
    out = Path(args.out)
    write_json(out / "speed.json", result)
    (out / "speed.md").write_text(render_markdown(result), encoding="utf-8")
    if "generation" in result:
        plot(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    return run_as_program(SpeedArgs, run, "speed.md", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
