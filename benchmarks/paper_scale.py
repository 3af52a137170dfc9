"""The paper's configuration rehearsed on CPU, without downloading anything: XLM-SWCM at CINO-base-v2's shape (random
weights; vocabulary 135,135 + 5 tags; 768 hidden, 12 layers; a 15-layer decoder) trained a few real steps at the
paper's length 256 with bf16 autocast, as `recipes/xlm-swcm-pretrain.yaml` asks. Measured: parameters, FLOPs per
token (torch's FlopCounterMode, forward + backward), the memory of weights + gradients + AdamW state, activation
memory per sequence with and without gradient checkpointing (peak RSS of a step in a fresh process per setting),
and the data pipeline's examples/s at that length. Projected from them: memory per GPU for the paper's global
batch 600 at each micro-batch on 24 / 40 / 80 GB cards (DDP; FSDP over 8 GPUs), and GPU-hours for the paper's
token count at a stated MFU.

    python benchmarks/paper_scale.py                      # ~15 min on 2 CPU cores
    python benchmarks/paper_scale.py --size tiny          # seconds (the test suite's)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

if __package__ in (None, ""):  # `python benchmarks/paper_scale.py`: the repository root, for `benchmarks.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    REPOSITORY,
    SHARED_DATA,
    in_fresh_process,
    machine,
    machine_line,
    markdown_table,
    run_as_program,
    write_report,
)

SHAPES = {  # CINO-base-v2 (XLM-R base with 135,135 pieces) and a tiny stand-in for the tests
    "paper": dict(vocab=135_135, hidden=768, layers=12, heads=12, intermediate=3072, positions=514),
    "tiny": dict(vocab=2_000, hidden=64, layers=2, heads=4, intermediate=128, positions=130),
}
MC2_BYTES = {"bo": 2.2e9, "ug": 736e6, "kk": 937e6, "mn": 970e6}
"""MC^2 (full) sizes per language, from its dataset card (huggingface.co/datasets/pkupie/mc2_corpus): UTF-8 text."""
GPUS = {"A100 (312 TFLOP/s bf16)": 312e12, "H100 SXM (989 TFLOP/s bf16)": 989e12}
"""Dense bf16 peak of the cards the GPU-hours are given for."""


@dataclass
class ShapeArgs:
    """The model and sequence shape a paper-scale measurement runs at (gpu_check.py takes these too)."""

    size: Literal["paper", "tiny"] = "paper"
    """paper: CINO-base-v2's shape; tiny: a small stand-in (runs anywhere in seconds; the tests')."""
    length: int = 256
    """Source and target tokens per training sequence (the paper's 256)."""


@dataclass
class PaperScaleArgs(ShapeArgs):
    """Arguments of benchmarks/paper_scale.py."""

    micro_batches: list[int] = field(default_factory=lambda: [1, 2, 4])
    """Micro-batches whose step memory is measured (each in a fresh process, with and without checkpointing)."""
    epochs: float = 8
    """Passes over the corpus (the paper's 8)."""
    extra_tokens: float = 0
    """Tokens of the Chinese news the paper adds to MC^2 (not published; 0: MC^2 alone)."""
    mfu: float = 0.4
    """Model FLOP utilisation assumed for the GPU-hours."""
    tokenizer: str = "runs/real-tasks/encoder"
    """Vocabulary that counts MC^2's tokens (default: the real-text benchmark's encoder, e5 with Tibetan pieces;
    packaged:multilingual-e5-small where it is missing). CINO's own is not available offline."""
    out: Path = Path("benchmarks/results/paper_scale")
    """Results folder (paper_scale.json, paper_scale.md)."""


def build(shape: dict):
    """XLM-SWCM at `shape` with random weights (speed and memory do not depend on them)."""
    import torch
    from transformers import XLMRobertaConfig

    from swcm import SWCMConfig, SWCMForConditionalGeneration

    encoder = XLMRobertaConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        intermediate_size=shape["intermediate"],
        max_position_embeddings=shape["positions"],
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    return SWCMForConditionalGeneration(SWCMConfig(encoder=encoder.to_dict(), vocab_size=shape["vocab"] + 5))


def batch(model, size: int, length: int) -> dict:
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (size, length), generator=generator)
    labels = torch.randint(5, model.config.vocab_size, (size, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def step(model, optimizer, inputs: dict) -> float:
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _rss(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def step_memory(size_name: str, micro_batch: int, length: int, checkpointing: bool) -> dict:
    """In this process (run it fresh): bytes held by weights + gradients + AdamW state after a warm-up step, and the
    peak above that of one more step (activations and temporaries); the step's seconds."""
    import torch

    from swcm.training import recompute_layers

    model = build(SHAPES[size_name]).train()
    if checkpointing:
        recompute_layers(model)
    before_model = _rss("VmRSS")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = batch(model, micro_batch, length)
    step(model, optimizer, inputs)  # allocates gradients' buffers and the optimizer state
    for param in model.parameters():  # gradients held between steps, as under accumulation
        param.grad = torch.zeros_like(param)
    held = _rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    started = time.perf_counter()
    step(model, optimizer, inputs)
    seconds = time.perf_counter() - started
    return {
        "static_bytes": held,
        "model_bytes": before_model,
        "step_peak_bytes": _rss("VmHWM") - held,
        "seconds": seconds,
    }


def flops_per_sequence(size_name: str, length: int) -> float:
    """FLOPs of forward + backward of one sequence (source and target of `length` tokens)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build(SHAPES[size_name]).train()
    counter = FlopCounterMode(display=False)
    with counter:
        model(**batch(model, 1, length)).loss.backward()
    return float(counter.get_total_flops())


def data_rate(length: int) -> dict | None:
    """Examples/s one worker tokenises and noises at `length` (the packaged encoder's XLM-R tokenizer)."""
    if not (SHARED_DATA / "mono").is_dir():
        return None
    import tempfile

    from swcm.data import ExampleSettings, PretrainExamples, build_mixture, open_source
    from swcm.encoders import load_tokenizer
    from swcm.noising import NoiseConfig
    from swcm.specs import SourceSpec
    from swcm.tokenization import add_lang_tags

    tokenizer = load_tokenizer("packaged:multilingual-e5-small")
    tags, _ = add_lang_tags(tokenizer, ["bo", "ug", "kk", "mn", "zh"])
    specs = [
        SourceSpec(path=str(SHARED_DATA / "mono/ug.essays.jsonl"), task="dae", lang="ug", fields=["text"]),
        SourceSpec(path=str(SHARED_DATA / "mono/kk.kazqad-contexts.jsonl"), task="dae", lang="kk"),
        SourceSpec(path=str(SHARED_DATA / "mt/software-ui.en-zh-ug.jsonl"), task="mt", langs=["zh", "ug"]),
    ]
    with tempfile.TemporaryDirectory() as index_dir:
        sources = [open_source(s, False, Path(index_dir)) for s in specs]
        mixture = build_mixture(sources, 0.3, 0.5, ["dae", "mt"])
        examples = PretrainExamples(sources, mixture, tokenizer, tags, ExampleSettings(length, NoiseConfig(), 0))
        examples.example(0)
        started = time.perf_counter()
        for i in range(200):
            examples.example(i + 1)
        return {"examples_per_s_per_worker": 200 / (time.perf_counter() - started), "max_length": length}


def activation_model(measured: dict) -> dict:
    """A step's peak above the static state as fixed + micro-batch x per-sequence bytes, from the smallest and the
    largest micro-batch measured (one: all of it per sequence)."""
    micro = sorted(measured, key=int)
    low, high = measured[micro[0]]["step_peak_bytes"], measured[micro[-1]]["step_peak_bytes"]
    if len(micro) == 1:
        return {"per_sequence_bytes": low / int(micro[0]), "fixed_bytes": 0}
    slope = (high - low) / (int(micro[-1]) - int(micro[0]))
    return {"per_sequence_bytes": slope, "fixed_bytes": max(0.0, low - int(micro[0]) * slope)}


def projections(result: dict, args: PaperScaleArgs) -> dict:
    """Memory per GPU for the global batch of 600 at each micro-batch, and GPU-hours for the corpus."""
    params = result["parameters"]["total"]
    static = 16 * params  # fp32 weights 4 + gradients 4 + AdamW moments 8 bytes per parameter
    rows = []
    for micro in [1, 2, 4, 8, 16, 32, 64]:
        for mode, activations in result["activations"].items():
            for setup, shards in (("DDP", 1), ("FSDP x8", 8)):
                # FSDP: static state sharded; one layer's full weights gathered at a time (+ its gradient)
                gathered = 0 if shards == 1 else 2 * 4 * result["parameters"]["largest_layer"]
                need = (
                    static / shards + gathered + activations["fixed_bytes"] + micro * activations["per_sequence_bytes"]
                )
                accumulation = 600 / (8 * micro)
                rows.append(
                    {
                        "micro_batch": micro,
                        "activations": mode,
                        "setup": setup,
                        "gib": need / 2**30,
                        "accumulation_on_8_gpus": accumulation,
                        "fits": {str(card): need < card * 0.9 * 2**30 for card in (24, 40, 80)},
                    }
                )
    corpus_tokens = sum(MC2_BYTES[lang] / result["bytes_per_token"][lang] for lang in MC2_BYTES)
    tokens = args.epochs * (corpus_tokens + args.extra_tokens)
    flops = tokens * result["flops_per_token"]
    hours = {name: flops / (peak * args.mfu) / 3600 for name, peak in GPUS.items()}
    return {"memory": rows, "corpus_tokens": corpus_tokens, "trained_tokens": tokens, "gpu_hours": hours}


def bytes_per_token(name: str) -> dict[str, float]:
    """UTF-8 bytes per token of each MC^2 language with the tokenizer `name` on the shared data's mono files."""
    from swcm.encoders import load_tokenizer

    folder = REPOSITORY / name
    tokenizer = load_tokenizer(folder if (folder / "config.json").is_file() else "packaged:multilingual-e5-small")
    files = {"bo": "mono/bo.*.jsonl", "ug": "mono/ug.essays.jsonl", "kk": "mono/kk.*.jsonl", "mn": "mono/mn.*.jsonl"}
    rates = {}
    for lang, pattern in files.items():
        texts = []
        for path in sorted(SHARED_DATA.glob(pattern))[:1]:
            for line in path.read_text(encoding="utf-8").splitlines()[:300]:
                row = json.loads(line)
                texts.append(str(row.get("text") or next(iter(row.values()))))
        if texts:
            size = sum(len(t.encode()) for t in texts)
            tokens = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
            rates[lang] = size / tokens
        else:
            rates[lang] = 4.0  # no data: a rough UTF-8 bytes per sentencepiece token
    return rates


def run(args: PaperScaleArgs) -> dict:
    model = build(SHAPES[args.size])
    counts = model.parameter_counts()
    counts["largest_layer"] = max(sum(p.numel() for p in layer.parameters()) for layer in model.model.decoder.layers)
    del model
    result = {"machine": machine(), "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()}}
    result["parameters"] = counts
    sequence_flops = flops_per_sequence(args.size, args.length)
    result["flops_per_sequence"] = sequence_flops
    result["flops_per_token"] = sequence_flops / args.length  # per target token (the source comes with it)
    result["steps"] = {}
    result["activations"] = {}
    for checkpointing in (False, True):
        mode = "checkpointed" if checkpointing else "kept"
        call = f"step_memory({args.size!r}, {{}}, {args.length}, {checkpointing})"
        measured = {m: in_fresh_process("paper_scale", call.format(m)) for m in args.micro_batches}
        result["steps"][mode] = measured
        result["activations"][mode] = activation_model(measured)
        print(f"{mode}: {json.dumps(measured)}", flush=True)
    result["data_pipeline"] = data_rate(args.length)
    result["bytes_per_token"] = bytes_per_token(args.tokenizer)
    result["projections"] = projections(result, args)
    write_report(Path(args.out), "paper_scale", result, render(result))
    return result


def render(result: dict) -> str:
    info, args, proj = result["machine"], result["args"], result["projections"]
    counts = result["parameters"]
    lines = [
        f"# The paper's configuration rehearsed on CPU ({args['size']} shape, length {args['length']})",
        "",
        machine_line(info),
        "",
        f"Parameters: {counts['total']:,} (encoder {counts['encoder']:,}, decoder {counts['decoder']:,}, LM head "
        f"{counts['lm_head']:,}). FLOPs per target token (forward + backward, source included): "
        f"{result['flops_per_token'] / 1e9:.2f} GFLOP.",
        "",
        "Measured steps (bf16 autocast, fresh process each; static = weights + gradients + AdamW state)"
        + (f"; {result['note']}" if result.get("note") else "")
        + ":",
        "",
    ]
    rows = []
    for mode, measured in result["steps"].items():
        for micro, m in sorted(measured.items(), key=lambda kv: int(kv[0])):
            rows.append([mode, micro, m["static_bytes"] / 2**30, m["step_peak_bytes"] / 2**30, m["seconds"]])
    lines += [markdown_table(["activations", "micro-batch", "static GiB", "step peak GiB", "seconds"], rows), ""]
    per = {k: (v["per_sequence_bytes"] / 2**20, v["fixed_bytes"] / 2**20) for k, v in result["activations"].items()}
    lines += [
        "A step's peak above the static state = fixed + micro-batch x per sequence: "
        + "; ".join(f"{k}: {fixed:.0f} MiB + {seq:.0f} MiB per sequence" for k, (seq, fixed) in per.items())
        + " (the logits of 135k pieces are most of what checkpointing keeps).",
        "",
    ]
    if result.get("data_pipeline"):
        rate = result["data_pipeline"]["examples_per_s_per_worker"]
        lines += [f"Data pipeline at length {args['length']}: {rate:.0f} examples/s per worker.", ""]
    by = {(r["micro_batch"], r["setup"], r["activations"]): r for r in proj["memory"]}
    table = []
    for micro in sorted({r["micro_batch"] for r in proj["memory"]}):
        cells = [micro, 600 / (8 * micro)]
        for setup in ("DDP", "FSDP x8"):
            for mode in ("kept", "checkpointed"):
                row = by[(micro, setup, mode)]
                fits = [card for card in (24, 40, 80) if row["fits"][str(card)]]
                cells.append(f"{row['gib']:.1f} ({'>=' + str(fits[0]) + ' GB' if fits else 'no card'})")
        table.append(cells)
    header = ["micro-batch", "accumulation (8 GPUs)", "DDP", "DDP, checkpointed", "FSDP x8", "FSDP x8, checkpointed"]
    lines += [
        "Memory per GPU in GiB for the global batch 600 (fp32 master weights + gradients + AdamW, bf16 autocast "
        "activations as measured per sequence; in brackets the smallest card of 24 / 40 / 80 GB it fits at 90%):",
        "",
        markdown_table(header, table),
        "",
        f"Tokens: MC^2 (full, {sum(MC2_BYTES.values()) / 1e9:.2f} GB) at the measured bytes per token "
        f"({', '.join(f'{k} {v:.2f}' for k, v in result['bytes_per_token'].items())}) = "
        f"{proj['corpus_tokens'] / 1e9:.2f}B tokens (the shared data's Cyrillic kk / mn stand in for MC^2's "
        f"Arabic-script Kazakh and traditional Mongolian: a rough count); x {args['epochs']:g} epochs"
        + (
            f" + {args['extra_tokens'] / 1e9:.2f}B of Chinese news"
            if args["extra_tokens"]
            else " (the paper's Chinese news not counted: its size is not published)"
        )
        + f" = {proj['trained_tokens'] / 1e9:.1f}B trained tokens.",
        "",
        f"GPU-hours at {args['mfu']:.0%} MFU: "
        + ", ".join(f"{name}: {h:,.0f}" for name, h in proj["gpu_hours"].items())
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return run_as_program(PaperScaleArgs, run, "paper_scale.md", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
