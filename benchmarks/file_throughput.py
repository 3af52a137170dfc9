"""File throughput: NTREX sentences translated in batches by every way of decoding (XLM-SWCM fp32 / quantized /
bf16, the HF peers, CTranslate2 on the matched mBART in a process of its own), taking turns on each batch; and
batch-1 latency.
`args` (decoding_runners and measure_file_throughput): speed.SpeedArgs, for the fields they read."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import ntrex_sentences
from benchmarks.peers import generation_kwargs
from swcm.choices import QUANTIZE_MODES

QUANTIZED = [mode for mode in QUANTIZE_MODES if mode not in ("auto", "none")]
"""The `--quantize` modes timed and checked against fp32."""


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


def decoding_runners(models: dict, tokenizer, args) -> dict:
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
        # the same int8 model with transformers' own reorder of the whole cache each beam step (what swcm did before
        # its _reorder_cache left the cross-attention cache in place): what that change is worth, in the same run
        full = prepare_for_inference(copy.deepcopy(models["swcm"]), "fp32", "int8")[0]
        full._reorder_cache = lambda cache, beam_idx: (cache.reorder_cache(beam_idx), cache)[1]
        runners["swcm int8, whole cache reordered"] = hf(full, "swcm")
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


def measure_file_throughput(runners: dict, tokenizer, args) -> dict:
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
