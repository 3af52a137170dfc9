"""Speed of XLM-SWCM against its HF peers, side by side in one run, from the same encoder and the same batches.

    python benchmarks/speed.py                      # full grid (about 17 min on 2 CPU cores)
    python benchmarks/speed.py --quick              # a few minutes

Peers:
- bert2bert: HF `EncoderDecoderModel` warm-started from the same encoder (decoder = the encoder's layers with
  cross-attention added; KV cache on);
- mBART: HF `MBartForConditionalGeneration` with the same hidden size, FFN size, heads, vocabulary and number of
  encoder / decoder layers as XLM-SWCM (random weights: speed does not depend on them).

Measured: generation (greedy and beam, batch sizes, forced output lengths) in seconds per generated token;
training step (forward + backward + AdamW) in tokens/s and achieved FLOP/s (FLOPs counted by torch's
FlopCounterMode), fp32 and bf16 autocast, with peak memory; the data pipeline's examples/s against what the
training step consumes. Writes speed.json, speed.md and PNG plots to --out.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from swcm.benchmarking import REPOSITORY, SHARED_DATA, benchmark_encoder, machine, markdown_table, write_json
from swcm.choices import DEFAULT_ENCODER, PRETRAIN_TASKS, QUANTIZE_MODES

QUANTIZED = [mode for mode in QUANTIZE_MODES if mode != "none"]
"""The `--quantize` modes timed and checked against fp32."""


@dataclass
class SpeedArgs:
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
    train_batch: int = 16
    """Training step: sequences per batch."""
    train_length: int = 64
    """Training step: source and target tokens per sequence."""
    train_steps: int = 5
    """Training step: timed steps per model and precision (after one warm-up step; the median is reported)."""
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


# ---------------------------------------------------------------------------------------------------- models


def build_models(encoder_dir: str, names: list[str]) -> tuple[dict, object]:
    """name -> (model, decoder prompt ids or None). All share the encoder's vocabulary and sizes."""
    from transformers import EncoderDecoderModel, MBartConfig, MBartForConditionalGeneration

    from swcm import SWCMForConditionalGeneration

    torch.manual_seed(0)
    swcm, tokenizer = SWCMForConditionalGeneration.from_encoder(encoder_dir, return_tokenizer=True)
    enc = swcm.config.encoder
    models = {}
    if "swcm" in names:
        models["swcm"] = swcm
    if "bert2bert" in names:
        b2b = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder_dir, encoder_dir)
        if b2b.config.decoder.vocab_size != swcm.config.vocab_size:
            b2b.encoder.resize_token_embeddings(swcm.config.vocab_size)
            b2b.decoder.resize_token_embeddings(swcm.config.vocab_size)
        for cfg in (b2b.config, b2b.generation_config):
            cfg.decoder_start_token_id = swcm.config.decoder_start_token_id
            cfg.pad_token_id = swcm.config.pad_token_id
            cfg.eos_token_id = swcm.config.eos_token_id
        b2b.config.vocab_size = swcm.config.vocab_size
        models["bert2bert"] = b2b
    if "mbart" in names:
        config = MBartConfig(
            vocab_size=swcm.config.vocab_size,
            d_model=enc.hidden_size,
            encoder_layers=enc.num_hidden_layers,
            decoder_layers=len(swcm.config.decoder_layer_types),
            encoder_attention_heads=enc.num_attention_heads,
            decoder_attention_heads=enc.num_attention_heads,
            encoder_ffn_dim=enc.intermediate_size,
            decoder_ffn_dim=enc.intermediate_size,
            max_position_embeddings=enc.max_position_embeddings,
            activation_function=enc.hidden_act,
            pad_token_id=swcm.config.pad_token_id,
            bos_token_id=swcm.config.bos_token_id,
            eos_token_id=swcm.config.eos_token_id,
            decoder_start_token_id=swcm.config.decoder_start_token_id,
            forced_eos_token_id=None,
            scale_embedding=True,
        )
        models["mbart"] = MBartForConditionalGeneration(config)
    for model in models.values():
        model.eval()
    return models, tokenizer


def source_batch(tokenizer, size: int, max_length: int = 48) -> dict[str, torch.Tensor]:
    """Real Chinese news sentences (NTREX) when the shared data is there, else a fixed multilingual line."""
    path = SHARED_DATA / "mt" / "ntrex128.dev.jsonl"
    if path.is_file():
        lines = [json.loads(line)["zh"] for line in path.read_text(encoding="utf-8").splitlines()[:size]]
    else:
        lines = ["新闻 世界 你好 中文"] * size
    return tokenizer(lines, return_tensors="pt", padding=True, truncation=True, max_length=max_length)


# ------------------------------------------------------------------------------------------------ measurement


def generation_kwargs(name: str, batch: dict, beams: int, new_tokens: int) -> dict:
    kwargs = dict(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        num_beams=beams,
        do_sample=False,
        min_new_tokens=new_tokens,
        max_new_tokens=new_tokens,
        use_cache=True,
        early_stopping=False,
    )
    if name == "swcm":
        kwargs["tgt_lang"] = "ug"
        kwargs["max_new_tokens"] = kwargs["min_new_tokens"] = new_tokens - 1  # the language tag is the first
    return kwargs


def measure_generation(models: dict, tokenizer, args: SpeedArgs) -> list[dict]:
    """Per setting, the models take turns (model A, B, C, A, B, C, ...), so a drift of the machine's speed hits
    every model alike; the median of `repeats` runs is reported."""
    rows = []
    for batch_size in args.batch_sizes:
        batch = source_batch(tokenizer, batch_size)
        for beams in args.beams:
            for new_tokens in args.new_tokens:
                kwargs = {name: generation_kwargs(name, batch, beams, new_tokens) for name, m in models.items()}
                times: dict[str, list[float]] = {name: [] for name in models}
                with torch.inference_mode():
                    for name, model in models.items():  # warm-up
                        model.generate(**{**kwargs[name], "min_new_tokens": 4, "max_new_tokens": 4})
                    for _ in range(args.repeats):
                        for name, model in models.items():
                            started = time.perf_counter()
                            out = model.generate(**kwargs[name])
                            times[name].append(time.perf_counter() - started)
                            generated = out.shape[1] - 1  # every model's output starts with its start token
                            if generated != new_tokens:
                                raise RuntimeError(f"{name} generated {generated} positions, expected {new_tokens}")
                for name in models:
                    seconds = statistics.median(times[name])
                    rows.append(
                        {
                            "model": name,
                            "batch": batch_size,
                            "beams": beams,
                            "new_tokens": new_tokens,
                            "seconds": seconds,
                            "seconds_all": times[name],
                            "s_per_token": seconds / (batch_size * new_tokens),
                            "s_per_step": seconds / new_tokens,
                        }
                    )
                    print(
                        f"generate {name:9s} batch {batch_size} beams {beams} tokens {new_tokens}: "
                        f"{seconds:.2f} s, {1e3 * seconds / new_tokens:.1f} ms/step",
                        flush=True,
                    )
    return rows


def ntrex_sentences(count: int) -> list[str]:
    path = SHARED_DATA / "mt" / "ntrex128.dev.jsonl"
    if not path.is_file():
        return ["新闻 世界 你好 中文，今天的天气很好。"] * count
    lines = [json.loads(line)["zh"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (lines * (count // len(lines) + 1))[:count]


def _ctranslate2_worker(hf: str, converted: str, compute_type: str, threads: int, connection) -> None:
    """In its own process: converts the saved mBART once (CTranslate2's transformers converter), loads it at
    compute_type, then answers (sources, translate_batch options) with the output lengths until the benchmark ends."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    if not (Path(converted) / "model.bin").is_file():
        TransformersConverter(hf).convert(converted, force=True)
    translator = ctranslate2.Translator(
        converted, device="cpu", compute_type=compute_type, inter_threads=1, intra_threads=threads
    )
    connection.send("ready")
    while True:
        try:
            sources, options = connection.recv()
        except EOFError:  # the benchmark's process ended (the worker is a daemon of it)
            return
        results = translator.translate_batch(sources, **options)
        connection.send([len(r.hypotheses[0]) for r in results])


class CTranslate2Process:
    """CTranslate2 on the matched mBART, in a process of its own. In the benchmark's process, one CTranslate2 call
    slowed every torch model timed after it for the rest of the run (measured: swcm int8 15.9 -> 26.0 s, bert2bert
    22.6 -> 26.0 s on the same batches), which skewed the comparison against the torch models."""

    def __init__(self, mbart, tokenizer, work: Path, compute_type: str):
        import multiprocessing

        hf, converted = work / "mbart-hf", work / "mbart-ct2"
        if not (converted / "model.bin").is_file():
            # the converter reads these from fairseq-era mBART configs; MBartConfig no longer defines them
            mbart.config.normalize_before = True  # pre-LN layers
            mbart.config.normalize_embedding = True  # layernorm_embedding
            mbart.save_pretrained(hf)
            tokenizer.save_pretrained(hf)
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        args = (str(hf), str(converted), compute_type, torch.get_num_threads(), child)
        self.process = context.Process(target=_ctranslate2_worker, args=args, daemon=True)
        self.process.start()
        if self._answer() != "ready":
            raise RuntimeError("the CTranslate2 process did not start")

    def _answer(self):
        while not self.connection.poll(1.0):
            if not self.process.is_alive():
                raise RuntimeError(f"the CTranslate2 process ended (exit code {self.process.exitcode})")
        return self.connection.recv()

    def translate_lengths(self, sources: list[list[str]], **options) -> list[int]:
        """Output lengths (tokens, the target prefix included) of `translate_batch(sources, **options)`."""
        self.connection.send((sources, options))
        return self._answer()


def decoding_runners(models: dict, tokenizer, args: SpeedArgs) -> dict:
    """name -> run(batch, beams, new_tokens) -> generated positions per sequence, for every way of decoding that is
    timed on files: XLM-SWCM fp32 / int8 (and bf16 weights where the CPU has native bf16), the HF peers in fp32,
    CTranslate2 fp32 / int8 on the matched mBART."""
    import copy

    from swcm.generation import prepare_for_inference
    from swcm.precision import cpu_has_fast_bf16

    def hf(model, kind: str):
        def run(batch, beams, new_tokens):
            with torch.inference_mode():
                out = model.generate(**generation_kwargs(kind, batch, beams, new_tokens))
            return out.shape[1] - 1

        return run

    runners = {}
    if "swcm" in models:
        # as `swcm generate` decodes: through prepare_for_inference (on CPU, the decoder's attention written out)
        runners["swcm fp32"] = hf(prepare_for_inference(copy.deepcopy(models["swcm"]), "fp32")[0], "swcm")
        for mode in QUANTIZED:
            runners[f"swcm {mode}"] = hf(prepare_for_inference(copy.deepcopy(models["swcm"]), "fp32", mode)[0], "swcm")
        if cpu_has_fast_bf16()[0]:
            runners["swcm bf16"] = hf(prepare_for_inference(copy.deepcopy(models["swcm"]), "bf16")[0], "swcm")
    for name in ("bert2bert", "mbart"):
        if name in models:
            runners[f"{name} fp32"] = hf(models[name], name)
    if "bert2bert" in models:  # the peer with swcm's attention setting too: what that setting alone is worth
        eager = copy.deepcopy(models["bert2bert"])
        eager.set_attn_implementation({"": "sdpa", "decoder": "eager"})
        runners["bert2bert fp32, decoder attention eager"] = hf(eager, "bert2bert")
    if not args.no_ctranslate2 and "mbart" in models:
        # HF's generate starts every output with the config's decoder start token; CTranslate2 is given it as prefix
        start = tokenizer.convert_ids_to_tokens(models["mbart"].config.decoder_start_token_id)
        for compute_type in ("float32", "int8"):
            process = CTranslate2Process(models["mbart"], tokenizer, Path(args.work), compute_type)

            def run(batch, beams, new_tokens, process=process):
                sources = [
                    tokenizer.convert_ids_to_tokens(ids[mask.bool()].tolist())
                    for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
                ]
                lengths = process.translate_lengths(
                    sources,
                    target_prefix=[[start]] * len(sources),
                    beam_size=beams,
                    min_decoding_length=new_tokens + 1,  # both lengths count the prefix
                    max_decoding_length=new_tokens + 1,
                    return_end_token=True,
                )
                lengths = {n - 1 for n in lengths}  # the output holds the prefix
                return lengths.pop() if len(lengths) == 1 else -1

            runners[f"ctranslate2-mbart {'fp32' if compute_type == 'float32' else compute_type}"] = run
    return runners


def measure_file_throughput(runners: dict, tokenizer, args: SpeedArgs) -> dict:
    """Generated tokens/s translating `file_sentences` NTREX sentences (batches of 16, longest first), every way of
    decoding taking its turn on each batch so that a drift of the machine hits all alike; and batch-1 latency."""
    sentences = sorted(ntrex_sentences(args.file_sentences), key=len, reverse=True)
    rows = []
    for beams in args.file_beams:
        chosen = sentences
        if beams > 1 and args.file_sentences_beam < len(sentences):
            chosen = sentences[:: -(-len(sentences) // args.file_sentences_beam)]
        batches = [
            tokenizer(chosen[i : i + 16], return_tensors="pt", padding=True, truncation=True, max_length=128)
            for i in range(0, len(chosen), 16)
        ]
        seconds = dict.fromkeys(runners, 0.0)
        tokens = dict.fromkeys(runners, 0)
        for run in runners.values():  # warm-up
            run(batches[-1], beams, 4)
        for number, batch in enumerate(batches, 1):
            size = batch["input_ids"].shape[0]
            for name, run in runners.items():
                started = time.perf_counter()
                generated = run(batch, beams, args.file_tokens)
                seconds[name] += time.perf_counter() - started
                if generated != args.file_tokens:
                    raise RuntimeError(f"{name} generated {generated} positions, expected {args.file_tokens}")
                tokens[name] += size * generated
            print(f"file throughput, beams {beams}: batch {number}/{len(batches)}", flush=True)
        for name in runners:
            rows.append(
                {
                    "decoding": name,
                    "beams": beams,
                    "sentences": len(chosen),
                    "tokens": tokens[name],
                    "seconds": seconds[name],
                    "tokens_per_s": tokens[name] / seconds[name],
                }
            )
    latency = {}
    single = [
        tokenizer([s], return_tensors="pt", truncation=True, max_length=128)
        for s in sentences[:: max(1, len(sentences) // args.latency_sentences)][: args.latency_sentences]
    ]
    times = {name: [] for name in runners}
    for batch in single:
        for name, run in runners.items():
            started = time.perf_counter()
            run(batch, 1, args.file_tokens)
            times[name].append(time.perf_counter() - started)
    for name, values in times.items():
        latency[name] = {"median_ms": 1e3 * statistics.median(values), "sentences": len(values)}
    return {"rows": rows, "latency": latency, "tokens_per_sentence": args.file_tokens, "batch": 16}


TIE_MARGINS = (0.01, 0.05)
"""fp32 logit gaps (top token against the runner-up) counted as near-ties in the agreement."""


@torch.no_grad()
def greedy_outputs(model, tokenizer, texts: list[str], lang: str, batch_size: int = 16) -> list[tuple[str, list, list]]:
    """For each text, greedy with 32 new tokens at most, in `generate_texts`' batches (`source_batches`):
    (the output text as `generate_texts` returns it, the generated token ids through the end token, the top-1 minus
    top-2 logit gap at each of those steps)."""
    from swcm.generation import source_batches, source_token_limit

    outputs, limit = {}, source_token_limit(model, tokenizer)
    for chunk, batch in source_batches(tokenizer, texts, batch_size, limit, model.device):
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


def generation_flops_per_token(models: dict, tokenizer, new_tokens: int = 32) -> dict[str, float]:
    """FLOPs per generated token (greedy, batch 1, cached), counted by torch: the decoders' real work."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = source_batch(tokenizer, 1)
    flops = {}
    for name, model in models.items():
        kwargs = generation_kwargs(name, batch, 1, new_tokens)
        with torch.inference_mode():
            encoder = model.get_encoder()
            counter = FlopCounterMode(display=False)
            with counter:
                encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            encoder_flops = counter.get_total_flops()
            counter = FlopCounterMode(display=False)
            with counter:
                model.generate(**kwargs)
        flops[name] = (counter.get_total_flops() - encoder_flops) / new_tokens
    return flops


def profile_decode(models: dict, tokenizer, new_tokens: int = 32) -> dict[str, dict]:
    """Where a greedy batch-1 decoding step spends its time (torch profiler): matrix multiplies vs the rest, and the
    weight bytes the decoder + LM head stream per step (a decode step at batch 1 is bound by reading weights)."""
    from torch.profiler import ProfilerActivity, profile

    batch = source_batch(tokenizer, 1)
    report = {}
    for name, model in models.items():
        kwargs = generation_kwargs(name, batch, 1, new_tokens)
        with torch.inference_mode():
            model.generate(**kwargs)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                model.generate(**kwargs)
        events = {e.key: e for e in prof.key_averages()}
        total = sum(e.self_cpu_time_total for e in events.values())
        matmul = sum(events[k].self_cpu_time_total for k in ("aten::addmm", "aten::mm", "aten::bmm") if k in events)
        calls = sum(events[k].count for k in ("aten::addmm", "aten::mm") if k in events)
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.decoder
        head = model.get_output_embeddings()
        # Every decoder / head Linear is read once per step, except cross-attention keys / values (computed once).
        cross_kv = ("cross_attn.k_proj", "cross_attn.v_proj", "crossattention.self.key", "crossattention.self.value")
        cross_kv += ("encoder_attn.k_proj", "encoder_attn.v_proj")
        linears = {
            id(m): m
            for n, m in [*decoder.named_modules(), ("lm_head", head)]
            if isinstance(m, torch.nn.Linear) and not any(t in n for t in cross_kv)
        }
        linear_bytes = sum(m.weight.numel() * m.weight.element_size() for m in linears.values())
        report[name] = {
            "ms_per_step": total / 1e3 / new_tokens,
            "matmul_share": matmul / total,
            "matmul_calls_per_step": calls / new_tokens,
            "weight_mb_per_step": linear_bytes / 1e6,
            "matmul_gb_per_s": linear_bytes / (matmul / 1e6 / new_tokens) / 1e9,
        }
    return report


def linear_microbenchmark(hidden: int, intermediate: int, vocab: int, repeats: int = 300) -> list[dict]:
    """One decoding token through a Linear of each shape the decoder uses: microseconds and weight GB/s. Shows
    the bound (bytes, not FLOPs) and what fusing Q, K and V into one matrix would save."""
    import torch.nn.functional as F

    x_cache = {}
    rows = []
    shapes = [
        ("q / k / v / out (each)", hidden, hidden),
        ("fused q+k+v", 3 * hidden, hidden),
        ("FFN in", intermediate, hidden),
        ("FFN out", hidden, intermediate),
        ("LM head", vocab, hidden),
    ]
    for label, rows_out, cols in shapes:
        weight, bias = torch.randn(rows_out, cols), torch.randn(rows_out)
        x = x_cache.setdefault(cols, torch.randn(1, 1, cols))
        with torch.inference_mode():
            for _ in range(20):
                F.linear(x, weight, bias)
            count = repeats if rows_out * cols < 5e6 else repeats // 10
            started = time.perf_counter()
            for _ in range(count):
                F.linear(x, weight, bias)
            seconds = (time.perf_counter() - started) / count
        rows.append(
            {
                "linear": label,
                "shape": [rows_out, cols],
                "microseconds": 1e6 * seconds,
                "weight_gb_per_s": weight.numel() * 4 / seconds / 1e9,
                "gflop_per_s": 2 * weight.numel() / seconds / 1e9,
            }
        )
    return rows


def _rss_peak_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def _rss_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def train_batch(vocab: int, size: int, length: int, device) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (size, length), generator=generator)
    labels = torch.randint(5, vocab, (size, length), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(device) for k, v in batch.items()}


def _train_step(model, optimizer, batch: dict, precision: str, device) -> None:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()


def _vocab(name: str, model) -> int:
    return model.config.decoder.vocab_size if name == "bert2bert" else model.config.vocab_size


def peak_training_memory(encoder_dir: str, name: str, size: int, length: int) -> dict[str, int | None]:
    """Per precision, the peak memory of a training step above the memory held before it (weights, optimizer state
    after a warm-up step): activations + gradients + temporaries. On CPU: peak RSS of a process holding only this
    model (run it in a fresh process: see _in_fresh_process)."""
    import warnings

    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_models(encoder_dir, [name])[0][name].to(device).train()
    batch = train_batch(_vocab(name, model), size, length, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    peaks = {}
    for precision in ("fp32", "bf16"):
        _train_step(model, optimizer, batch, precision, device)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            _train_step(model, optimizer, batch, precision, device)
            peaks[precision] = torch.cuda.max_memory_allocated() - before
        elif _rss_peak_reset():
            before = _rss_kib("VmRSS") * 1024
            _train_step(model, optimizer, batch, precision, device)
            peaks[precision] = _rss_kib("VmHWM") * 1024 - before
        else:
            peaks[precision] = None
    return peaks


def _in_fresh_process(encoder_dir: str, name: str, size: int, length: int) -> dict[str, int | None]:
    """peak_training_memory in a new Python process, so that peaks of different models do not mix."""
    import subprocess

    code = (
        "import json; from benchmarks import speed; "
        f"print('PEAK', json.dumps(speed.peak_training_memory({encoder_dir!r}, {name!r}, {size}, {length})))"
    )
    # glibc would keep freed activation buffers (its mmap threshold adapts upwards) and hide the second precision's
    # peak: a fixed threshold maps every large buffer and unmaps it on free, so RSS follows live memory.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPOSITORY)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PEAK ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"peak memory of {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(line.split(" ", 1)[1])


def measure_training(models: dict, args: SpeedArgs, encoder_dir: str) -> list[dict]:
    """Forward + backward + AdamW on the same fixed batch; models take turns step by step (as in generation)."""
    import warnings

    from torch.utils.flop_counter import FlopCounterMode

    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)  # bert2bert
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches, flops = {}, {}
    for name, model in models.items():
        model.to(device).train()
        batches[name] = train_batch(_vocab(name, model), args.train_batch, args.train_length, device)
        counter = FlopCounterMode(display=False)
        with counter:
            model(**batches[name]).loss.backward()
        flops[name] = counter.get_total_flops()
        model.zero_grad(set_to_none=True)
    peaks = {name: _in_fresh_process(encoder_dir, name, args.train_batch, args.train_length) for name in models}
    rows = []
    for precision in ("fp32", "bf16"):
        optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}
        for name, model in models.items():  # warm-up, allocates the optimizer state
            _train_step(model, optimizers[name], batches[name], precision, device)
        times: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.train_steps):
            for name, model in models.items():
                started = time.perf_counter()
                _train_step(model, optimizers[name], batches[name], precision, device)
                times[name].append(time.perf_counter() - started)
        del optimizers
        for name in models:
            peak = peaks[name][precision]
            seconds = statistics.median(times[name])
            tokens = 2 * args.train_batch * args.train_length
            rows.append(
                {
                    "model": name,
                    "precision": precision,
                    "seconds_per_step": seconds,
                    "seconds_all": times[name],
                    "tokens_per_s": tokens / seconds,
                    "examples_per_s": args.train_batch / seconds,
                    "flops_per_step": flops[name],
                    "achieved_flops": flops[name] / seconds,
                    "peak_memory_bytes": peak,
                }
            )
            print(
                f"train {name:9s} {precision}: {seconds:.2f} s/step, {tokens / seconds:.0f} tokens/s, "
                f"{flops[name] / seconds / 1e9:.1f} GFLOP/s, peak +{(peak or 0) / 2**20:.0f} MiB",
                flush=True,
            )
    for model in models.values():
        model.zero_grad(set_to_none=True)
        model.to("cpu").eval()
    return rows


def measure_data_pipeline(tokenizer, tag_ids: dict, count: int = 200) -> dict | None:
    """Examples/s one worker makes (tokenise + noise) on the pretraining mixture of the shared data."""
    if not (SHARED_DATA / "mono").is_dir():
        return None
    from swcm.data import ExampleSettings, PretrainExamples, build_mixture, open_source
    from swcm.noising import NoiseConfig
    from swcm.specs import SourceSpec

    specs = [
        SourceSpec(path=str(SHARED_DATA / "mono/ug.essays.jsonl"), task="dae", lang="ug", fields=["text"]),
        SourceSpec(path=str(SHARED_DATA / "mono/kk.kazqad-contexts.jsonl"), task="dae", lang="kk"),
        SourceSpec(path=str(SHARED_DATA / "mono/mn.montsame-news.jsonl"), task="dae", lang="mn"),
        SourceSpec(path=str(SHARED_DATA / "mt/software-ui.en-zh-ug.jsonl"), task="mt", langs=["zh", "ug"]),
        SourceSpec(path=str(SHARED_DATA / "mt/software-ui.en-zh-kk.jsonl"), task="mt", langs=["zh", "kk"]),
    ]
    import tempfile

    with tempfile.TemporaryDirectory() as index_dir:
        sources = [open_source(s, False, Path(index_dir)) for s in specs]
        mixture = build_mixture(sources, 0.3, 0.5, list(PRETRAIN_TASKS))
        examples = PretrainExamples(sources, mixture, tokenizer, tag_ids, ExampleSettings(64, NoiseConfig(), 0))
        examples.example(0)
        started = time.perf_counter()
        for i in range(count):
            examples.example(i + 1)
        rate = count / (time.perf_counter() - started)
    return {"examples_per_s_per_worker": rate, "examples": count, "max_length": 64}


# ---------------------------------------------------------------------------------------------------- report


def summarise(result: dict) -> dict:
    """Ratios to each peer and the decode-length scaling, from the raw rows."""
    gen = {(r["model"], r["batch"], r["beams"], r["new_tokens"]): r for r in result["generation"]}
    models = result["models"]
    ratios = []
    for (name, batch, beams, tokens), row in gen.items():
        if name != "swcm":
            continue
        entry = {"batch": batch, "beams": beams, "new_tokens": tokens, "swcm_s_per_token": row["s_per_token"]}
        for peer in models:
            if peer != "swcm" and (peer, batch, beams, tokens) in gen:
                entry[f"speedup_vs_{peer}"] = gen[(peer, batch, beams, tokens)]["seconds"] / row["seconds"]
        ratios.append(entry)
    scaling = []
    lengths = sorted(result["args"]["new_tokens"])
    if len(lengths) > 1:
        short, long = lengths[0], lengths[-1]
        for name in models:
            for batch in result["args"]["batch_sizes"]:
                for beams in result["args"]["beams"]:
                    a, b = gen.get((name, batch, beams, short)), gen.get((name, batch, beams, long))
                    if a and b:
                        scaling.append(
                            {
                                "model": name,
                                "batch": batch,
                                "beams": beams,
                                "lengths": [short, long],
                                "time_ratio": b["seconds"] / a["seconds"],
                                "linear_would_be": long / short,
                            }
                        )
    train = {(r["model"], r["precision"]): r for r in result["training"]}
    training = []
    for name in models:
        fp32, bf16 = train.get((name, "fp32")), train.get((name, "bf16"))
        if fp32 and bf16:
            entry = {"model": name, "bf16_speedup": fp32["seconds_per_step"] / bf16["seconds_per_step"]}
            for peer in models:
                if peer != name and (peer, "fp32") in train:
                    entry[f"flops_ratio_vs_{peer}_fp32"] = (
                        fp32["achieved_flops"] / train[(peer, "fp32")]["achieved_flops"]
                    )
                    entry[f"flops_ratio_vs_{peer}_bf16"] = (
                        bf16["achieved_flops"] / train[(peer, "bf16")]["achieved_flops"]
                    )
            training.append(entry)
    return {"generation_ratios": ratios, "decode_scaling": scaling, "training": training}


def file_throughput_markdown(result: dict) -> list[str]:
    out = []
    file = result.get("file_throughput")
    if file:
        rows = file["rows"]
        beams = sorted({r["beams"] for r in rows})
        names = list(dict.fromkeys(r["decoding"] for r in rows))
        by = {(r["decoding"], r["beams"]): r for r in rows}
        reference = "bert2bert fp32" if "bert2bert fp32" in names else names[0]
        header = ["decoding"]
        for b in beams:
            header += [f"tokens/s, beam {b}", f"x {reference}, beam {b}"]
        header += ["batch-1 latency ms (greedy)"]
        table = []
        for name in names:
            cells = [name]
            for b in beams:
                row = by[(name, b)]
                cells += [row["tokens_per_s"], row["tokens_per_s"] / by[(reference, b)]["tokens_per_s"]]
            cells.append(file["latency"][name]["median_ms"])
            table.append(cells)
        counts = ", ".join(f"{by[(names[0], b)]['sentences']} at beam {b}" for b in beams)
        out += [
            "## File throughput (NTREX zh, the way `swcm generate` runs a file)",
            "",
            f"NTREX zh sentences ({counts}) in batches of {file['batch']}, longest first, "
            f"{file['tokens_per_sentence']} tokens generated per sentence (forced: the models are untrained or "
            "random); every way of decoding takes its turn on each batch. Latency: median over "
            f"{next(iter(file['latency'].values()))['sentences']} single sentences.",
            "",
            markdown_table(header, table),
            "",
        ]
    agreement = result.get("quantized_agreement")
    if agreement:
        langs = [k for k in agreement if k not in ("model", "pooled", "near_ties")]
        modes = list(agreement["pooled"])
        header = ["zh ->", "names"]
        for mode in modes:
            header += [f"{mode}: identical outputs %", f"{mode}: chrF++ against fp32"]
        table = []
        for lang in langs:
            table.append([lang, agreement[lang]["sentences"]])
            for mode in modes:
                table[-1] += [agreement[lang][mode]["identical"], agreement[lang][mode]["chrf++_vs_fp32"]]
        table.append(["all", agreement["pooled"][modes[0]]["sentences"]])
        for mode in modes:
            table[-1] += [agreement["pooled"][mode]["identical"], ""]
        out += [
            f"`--quantize` and bf16 weights against fp32, greedy, the held-out CLDR names (zh), model "
            f"`{agreement['model']}`:",
            "",
            markdown_table(header, table),
            "",
        ]
        ties = agreement.get("near_ties")
        if ties:
            shares = ", ".join(f"{share:.1f}% under {gap}" for gap, share in ties["share_with_gap_under"].items())
            rows = [
                [
                    mode,
                    len(gaps),
                    sum(g < TIE_MARGINS[0] for g in gaps),
                    sum(g < TIE_MARGINS[1] for g in gaps),
                    max(gaps, default=0.0),
                ]
                for mode, gaps in ties["divergence_gaps"].items()
            ]
            header = [
                "mode",
                "outputs that differ (tokens)",
                f"fp32 gap < {TIE_MARGINS[0]} there",
                f"< {TIE_MARGINS[1]}",
                "largest gap",
            ]
            out += [
                f"Near-ties in the fp32 outputs: of {ties['sentences']} names, the share with a step whose top-two "
                f"logit gap is small: {shares}. Where each mode's output first differs from fp32's, fp32's gap:",
                "",
                markdown_table(header, rows),
                "",
            ]
    return out


def render_markdown(result: dict) -> str:
    m = result["machine"]
    out = [
        "# Speed: XLM-SWCM vs bert2bert vs mBART",
        "",
        f"{m['date']} · {m['cpu']} · {m['threads']} threads · torch {m['torch']} · "
        f"transformers {m.get('transformers')} · CUDA {m['cuda']}",
        "",
        f"CPU flags: {', '.join(m.get('cpu_flags', [])) or 'none of avx2 / avx512 / amx'}; torch: {m.get('cpu_bf16')}.",
        "",
        f"Encoder: `{result['args']['encoder']}` -> {result['encoder_dir']} (vocabulary {result['vocab_size']:,}). "
        "Parameters: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in result["parameters"].items()) + ".",
        "",
    ]
    out += file_throughput_markdown(result)
    if "generation" not in result:
        return "\n".join(out) + "\n"
    out += [
        "## Generation (fp32, KV cache, forced length)",
        "",
        "Seconds per generated token = wall time / (batch x new tokens); speed-up = peer time / XLM-SWCM time.",
        "",
    ]
    gen = {(r["model"], r["batch"], r["beams"], r["new_tokens"]): r for r in result["generation"]}
    models = result["models"]
    peers = [p for p in models if p != "swcm"]
    header = ["batch", "beams", "new tokens"] + [f"{n} ms/token" for n in models] + [f"x vs {p}" for p in peers]
    rows = []
    for ratio in result["summary"]["generation_ratios"]:
        key = (ratio["batch"], ratio["beams"], ratio["new_tokens"])
        cells = [*key] + [1e3 * gen[(n, *key)]["s_per_token"] if (n, *key) in gen else None for n in models]
        cells += [ratio.get(f"speedup_vs_{p}") for p in peers]
        rows.append(cells)
    out.append(markdown_table(header, rows))
    flops = result["generation_flops_per_token"]
    out.append(
        "Decoder FLOPs per generated token (greedy, batch 1, counted by torch): "
        + ", ".join(f"{n} {v / 1e6:.1f} MFLOP" for n, v in flops.items())
        + (
            f" (XLM-SWCM / bert2bert = {flops['swcm'] / flops['bert2bert']:.2f})"
            if {"swcm", "bert2bert"} <= set(flops)
            else ""
        )
        + ".\n"
    )
    out += [
        "",
        "Anatomy of a greedy batch-1 decoding step (torch profiler, 32 tokens): a step reads every decoder and "
        "LM-head weight once, so at batch 1 its matrix multiplies are bound by memory bandwidth, and time follows "
        "weight bytes:",
        "",
        markdown_table(
            ["model", "ms/step (profiled)", "matmul share", "matmul calls/step", "weights read MB/step", "matmul GB/s"],
            [
                [
                    n,
                    p["ms_per_step"],
                    p["matmul_share"],
                    p["matmul_calls_per_step"],
                    p["weight_mb_per_step"],
                    p["matmul_gb_per_s"],
                ]
                for n, p in result["decode_profile"].items()
            ],
        ),
    ]
    micro = result.get("linear_microbenchmark")
    if micro:
        out += [
            "",
            "One decoding token (batch 1) through each Linear shape of the decoder, fp32:",
            "",
            markdown_table(
                ["linear", "shape", "µs", "weight GB/s", "GFLOP/s"],
                [
                    [
                        r["linear"],
                        "x".join(map(str, r["shape"])),
                        r["microseconds"],
                        r["weight_gb_per_s"],
                        r["gflop_per_s"],
                    ]
                    for r in micro
                ],
            ),
        ]
    if result["summary"]["decode_scaling"]:
        out += ["", "Decode-length scaling, t(long) / t(short) (linear = the length ratio):", ""]
        out.append(
            markdown_table(
                ["model", "batch", "beams", "lengths", "t ratio", "linear"],
                [
                    [
                        s["model"],
                        s["batch"],
                        s["beams"],
                        "/".join(map(str, s["lengths"][::-1])),
                        s["time_ratio"],
                        s["linear_would_be"],
                    ]
                    for s in result["summary"]["decode_scaling"]
                ],
            )
        )
    out += [
        "",
        f"## Training step (forward + backward + AdamW, batch {result['args']['train_batch']} x "
        f"{result['args']['train_length']} source + {result['args']['train_length']} target tokens)",
        "",
    ]
    out.append(
        markdown_table(
            [
                "model",
                "precision",
                "s/step",
                "tokens/s",
                "GFLOP/step",
                "achieved GFLOP/s",
                "peak memory MiB (above weights + optimizer)",
            ],
            [
                [
                    r["model"],
                    r["precision"],
                    r["seconds_per_step"],
                    r["tokens_per_s"],
                    r["flops_per_step"] / 1e9,
                    r["achieved_flops"] / 1e9,
                    r["peak_memory_bytes"] / 2**20 if r["peak_memory_bytes"] is not None else None,
                ]
                for r in result["training"]
            ],
        )
    )
    out += ["", "Ratios:", ""]
    for entry in result["summary"]["training"]:
        extras = ", ".join(f"{k} {v:.2f}" for k, v in entry.items() if k not in ("model",))
        out.append(f"- {entry['model']}: {extras}")
    pipeline = result.get("data_pipeline")
    if pipeline:
        consume = next(
            (r["examples_per_s"] for r in result["training"] if r["model"] == "swcm" and r["precision"] == "bf16"), None
        )
        out += [
            "",
            "## Data pipeline",
            "",
            f"One worker tokenises and noises {pipeline['examples_per_s_per_worker']:.0f} examples/s "
            f"(DAE + MT mixture of the shared data, max length {pipeline['max_length']}); the XLM-SWCM bf16 training "
            f"step consumes {consume:.1f} examples/s, so one worker keeps "
            f"{pipeline['examples_per_s_per_worker'] / consume:.0f} such steps fed.",
        ]
    out += ["", "Plots: `generation.png`, `training.png`.", ""]
    return "\n".join(out)


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = result["generation"]
    combos = sorted({(r["batch"], r["beams"]) for r in gen})
    fig, axes = plt.subplots(1, len(combos), figsize=(4 * len(combos), 3.5), squeeze=False)
    for ax, (batch, beams) in zip(axes[0], combos, strict=True):
        for name in result["models"]:
            pts = sorted(
                (r["new_tokens"], 1e3 * r["s_per_token"])
                for r in gen
                if (r["model"], r["batch"], r["beams"]) == (name, batch, beams)
            )
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_title(f"batch {batch}, beams {beams}")
        ax.set_xlabel("new tokens")
        ax.set_ylabel("ms per generated token")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out / "generation.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = result["models"]
    width = 0.38
    for i, precision in enumerate(("fp32", "bf16")):
        values = [
            next(
                (
                    r["achieved_flops"] / 1e9
                    for r in result["training"]
                    if r["model"] == n and r["precision"] == precision
                ),
                0,
            )
            for n in names
        ]
        ax.bar([j + (i - 0.5) * width for j in range(len(names))], values, width, label=precision)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("achieved GFLOP/s (training step)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    plt.close(fig)


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
    from swcm.cli import parse_dataclass

    args = parse_dataclass(SpeedArgs, argv, __doc__)
    run(args)
    print((Path(args.out) / "speed.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
