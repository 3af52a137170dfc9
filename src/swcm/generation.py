"""`swcm generate`: batched generation, script-constrained decoding, and models cast or quantized for decoding.

With `constrain_script`, every vocabulary entry holding a letter of another script than the target language's
is masked at every step (digits, punctuation and Latin stay allowed: numbers and names), so the model cannot fall
back to Chinese, the failure the paper reports for mBART and LLaMA baselines. Other languages' tags are masked too.
"""

from __future__ import annotations

import copy
import sys
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from torch.ao.quantization import (
    PerChannelMinMaxObserver,
    PlaceholderObserver,
    QConfig,
    float16_dynamic_qconfig,
    quantize_dynamic,
)
from tqdm.auto import tqdm
from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList

from .choices import QUANTIZE_MODES, Quantize
from .data import decode_line, text_lines
from .encoders import first_decoder_position_id
from .errors import DataError, RecipeError
from .folders import write_output
from .languages import script_of, scripts_of_language
from .modeling_swcm import load_model_folder
from .paths import check_input_file, check_model_dir, check_output_path

if TYPE_CHECKING:
    from .arguments import GenerateArgs

# Projections that run once per input, not once per token: the cross-attention keys and values of the encoder output
# (cached for the whole generation). Quantizing them would save nothing, and it moved greedy outputs most: on the
# quickstart model, keeping them fp32 raised identical int8 outputs from 81 / 88 / 90 / 69% to 85 / 90 / 91 / 72%
# (ug / kk / mn / bo, docs/results.md).
ONCE_PER_INPUT = (".cross_attn.k_proj", ".cross_attn.v_proj")


def _int8_qconfig() -> QConfig:
    """Per-channel int8 weights, activations on the full 8 bits (per batch, asymmetric).

    torch's default drops the activations to 7 bits (`reduce_range`): fbgemm's AVX2 kernel sums pairs of u8 x s8
    products in int16, and 255 x 127 x 2 would saturate. The activations, one scale for the whole batch, carry the
    larger error, so they keep all 8 bits. The weights keep 8 where the CPU has VNNI (products summed in int32),
    and give up one elsewhere: 255 x 64 x 2 = 32,640 still fits in int16. On the quickstart model, 8-bit activations
    raised identical greedy outputs from 90.1 to 93.3%; 8-bit weights cut the mean logit error by 12%, which moves
    the identical share only by a few near-tied names (docs/results.md)."""
    from .precision import cpu_has_vnni

    weight_min, weight_max = (-127, 127) if cpu_has_vnni() else (-64, 63)
    return QConfig(
        activation=PlaceholderObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255, is_dynamic=True),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=weight_min, quant_max=weight_max
        ),
    )


class FullRangeInt8Linear(DynamicQuantizedLinear):
    """torch's dynamic int8 Linear, run with 8-bit activations (see `_int8_qconfig`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_params._packed_params
        return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)


class ExactTopHead(nn.Module):
    """A low-precision LM head (int8 or fp16 weights, or bf16) whose `top_k` largest logits per position are
    recomputed in fp32 from the fp32 weights; the logits come out in fp32.

    Greedy and beam search pick among the top few tokens, so ranking them on exact scores removes the head's share of
    the error at the cost of `top_k` dot products per position; the head stays low-precision for the bytes read per
    token (a third of them in the quickstart's model). bf16 logits alone are coarse: 8 bits of mantissa put logits
    near 16 on a grid of 0.125, where beams and greedy choices tie."""

    def __init__(self, head: nn.Linear, low_precision: nn.Module, top_k: int = 16):
        super().__init__()
        self.low_precision, self.weight, self.bias, self.top_k = low_precision, head.weight, head.bias, top_k

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        logits = self.low_precision(hidden_states).float()  # a fresh tensor (a no-op cast of one): written in place
        top = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1).indices
        exact = torch.einsum("...d,...kd->...k", hidden_states.to(self.weight.dtype), self.weight[top])
        if self.bias is not None:
            exact = exact + self.bias[top]
        return logits.scatter_(-1, top, exact)


def quantize_weights(model, mode: Quantize) -> list[str]:
    """The Linear layers that decoding runs at every token, in place: the decoder's (but ONCE_PER_INPUT) and the LM
    head (wrapped in `ExactTopHead`); the names of the quantized modules. The encoder runs once per input and stays
    fp32. Batch-1 decoding reads those weights once per token: int8 reads a quarter of the bytes, fp16 half.

    int8: torch's dynamic int8 (fbgemm), weights per channel, activations per batch (`_int8_qconfig`).
    fp16: fbgemm's fp16 weights with fp32 arithmetic, near-exact: 100% identical greedy outputs on the quickstart
    model, against 93% for int8, at about 0.8x int8's speed (docs/results.md)."""
    qconfig = _int8_qconfig() if mode == "int8" else float16_dynamic_qconfig
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.startswith(("model.decoder.", "lm_head")) and not n.endswith(ONCE_PER_INPUT)
    ]
    head = model.lm_head
    with warnings.catch_warnings():  # torch.ao's eager quantization warns that it moves to torchao; it still works
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")
        quantize_dynamic(model, qconfig_spec=dict.fromkeys(names, qconfig), inplace=True)
    if mode == "int8":
        for module in model.modules():
            if type(module) is DynamicQuantizedLinear:
                module.__class__ = FullRangeInt8Linear
    model.lm_head = ExactTopHead(head, model.lm_head)
    return names


# `--quantize auto` on a CPU. int8 weights are a quarter of fp32's bytes, and a step that decodes few rows (batch x
# beams) is bound by reading the weights; once a step's multiplies dominate, bf16 weights win where the CPU has
# native bf16 (AVX512-BF16, AMX). Measured same-run, 48 tokens forced (docs/results.md, benchmarks/decode_modes.py):
# on a Xeon with AMX the fastest mode changes between 30 rows (6 x beam 5: int8) and 32 (32 x greedy: bf16); an
# EPYC with AVX512-BF16 agrees (16 rows: int8; 80: bf16).
BF16_FROM_ROWS = 32


def fast_cpu_mode(rows_per_step: int) -> tuple[str, str]:
    """(the fastest decoding mode on this CPU for `rows_per_step` rows, int8 or bf16 (weights); why, in words)."""
    from .precision import cpu_has_fast_bf16

    fast_bf16, detected = cpu_has_fast_bf16()
    if fast_bf16 and rows_per_step >= BF16_FROM_ROWS:
        return "bf16", f"{rows_per_step} rows per step, at least {BF16_FROM_ROWS}, and {detected}"
    if torch.backends.quantized.engine not in ("x86", "fbgemm"):  # the int8 kernels measured are fbgemm's
        return ("bf16" if fast_bf16 else "fp32"), f"no fbgemm int8 kernels here ({detected})"
    if fast_bf16:
        return "int8", f"{rows_per_step} rows per step, under {BF16_FROM_ROWS}: int8 reads the fewest bytes"
    return "int8", f"no native bf16 ({detected}): int8 is fastest at every batch"


def prepare_for_inference(model, precision: str = "auto", quantize: Quantize = "auto", rows_per_step: int = 1):
    """(the model in eval mode, cast or quantized for decoding; one line saying what was chosen and why).

    `precision` follows `resolve_precision` (auto: bf16 weights where the device has native bf16, else fp32);
    `quantize` (int8, fp16) is CPU decoding with `quantize_weights`, the rest of the model in fp32. `quantize` auto,
    with precision auto on a CPU, takes `fast_cpu_mode(rows_per_step)` (rows: batch x beams); elsewhere, or with a
    precision asked for, it is none. Low-precision weights rank the top logits in fp32 (`ExactTopHead`)."""
    from .precision import cpu_has_vnni, resolve_precision

    if quantize not in QUANTIZE_MODES:
        raise RecipeError(f"quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    chosen = ""
    if quantize == "auto":
        quantize = "none"
        if model.device.type == "cpu" and precision == "auto":
            mode, why = fast_cpu_mode(rows_per_step)
            chosen = f" (--quantize auto: {why})"
            quantize, precision = ("none", mode) if mode in ("bf16", "fp32") else (mode, "fp32")
    model.eval()
    if model.device.type == "cpu":
        # decoding attends from one query per step: on CPU, attention written out beats SDPA's kernel there (int8:
        # +6% tokens/s greedy, +12% at beam 5, identical outputs; docs/results.md); the encoder keeps its own (SDPA
        # never materialises the source x source weights of a long input)
        model.set_attn_implementation({"": "eager", "encoder": model.config.encoder._attn_implementation})
    if quantize != "none":
        if model.device.type != "cpu":
            raise RecipeError(f"--quantize {quantize} is for CPU decoding; on a GPU use --precision auto (bf16 / fp16)")
        if precision not in ("auto", "fp32"):
            raise RecipeError(
                f"--quantize {quantize} keeps the unquantized layers in fp32; use --precision auto or fp32, not "
                f"{precision}"
            )
        count = len(quantize_weights(model, quantize))
        kind = "fp16 weights (fbgemm)"
        if quantize == "int8":
            kind = f"torch dynamic int8 ({'8-bit weights: VNNI' if cpu_has_vnni() else '7-bit weights: no VNNI'})"
        return model, (
            f"{quantize}: {count} decoder / LM-head Linear layers in {kind}, the head's top logits exact, the rest "
            f"fp32{chosen}"
        )
    choice = resolve_precision(precision, model.device)
    if choice.precision != "fp32":
        head = copy.deepcopy(model.lm_head)  # fp32, for the exact top logits
        model.to(choice.dtype)
        model.lm_head = ExactTopHead(head, model.lm_head)
    top = ", the head's top logits exact" if choice.precision != "fp32" else ""
    return model, f"{choice.precision} weights{top} ({choice.reason}){chosen}"


def allowed_tokens(tokenizer, lang: str, vocab_size: int, tag_ids: dict[str, int]) -> torch.Tensor:
    """True for tokens whose letters are all in `lang`'s scripts, Latin or script-less (digits, punctuation). A
    vocabulary with no piece of the language's own scripts is a DataError: every output would be empty."""
    own = scripts_of_language(lang)
    scripts = own | {"latin", "other"}
    allowed = torch.zeros(vocab_size, dtype=torch.bool)
    in_script = 0
    for token_id, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), vocab_size))))):
        letters = [c for c in (piece or "") if unicodedata.category(c)[0] == "L"]
        allowed[token_id] = all(script_of(c) in scripts for c in letters)
        in_script += any(script_of(c) in own for c in letters)
    if not in_script:
        raise DataError(
            f"constrain_script: the vocabulary has no piece in {lang}'s script ({', '.join(sorted(own))}), so every "
            "output would be empty; extend it (swcm vocab extend) or generate without constrain_script"
        )
    for code, token_id in tag_ids.items():
        allowed[token_id] = code == lang
    for token_id in tokenizer.all_special_ids:
        if token_id not in tag_ids.values():
            allowed[token_id] = True
    return allowed


class ScriptConstraint(LogitsProcessor):
    """Masks the tokens `allowed` marks False."""

    def __init__(self, allowed: torch.Tensor):
        self.allowed = allowed

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        allowed = self.allowed.to(scores.device)
        return scores.masked_fill(~allowed[: scores.shape[-1]], torch.finfo(scores.dtype).min)


def _positions(model) -> int:
    """Token positions the encoder's table numbers (from its first usable position id)."""
    return model.config.encoder.max_position_embeddings - first_decoder_position_id(model.config.encoder)


def source_token_limit(model, tokenizer, max_source_length: int | None = None) -> int:
    """Longest input in tokens: the encoder's position table, the tokenizer's limit and `max_source_length`."""
    return min(max_source_length or _positions(model), _positions(model), tokenizer.model_max_length)


def new_token_limit(model) -> int:
    """Most tokens one output may have: the decoder reads the start token, the language tag (not counted in
    max_new_tokens) and every new token but the last, max_new_tokens + 1 positions of the encoder's table."""
    return _positions(model) - 1


@torch.no_grad()
def source_batches(tokenizer, texts: Sequence[str], batch_size: int, max_length: int, device):
    """(indices into `texts`, their batch on `device`, the indices among them cut to `max_length` tokens), longest
    texts first so padding stays small. The one place inputs are cut: each text is tokenized once (one that is too
    long again, with the tokenizer's own truncation, which keeps the end token)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids = tokenizer([texts[i] for i in chunk], verbose=False)["input_ids"]
        long = [k for k, row in enumerate(ids) if len(row) > max_length]
        if long:
            cut = tokenizer([texts[chunk[k]] for k in long], truncation=True, max_length=max_length)["input_ids"]
            for k, row in zip(long, cut, strict=True):
                ids[k] = row
        batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(device)
        yield chunk, batch, [chunk[k] for k in long]


class Outputs(list):
    """generate_texts' outputs in input order; `cut` lists the inputs (indices) that were cut to the source limit."""

    def __init__(self, texts: Sequence[str], cut: Sequence[int]):
        super().__init__(texts)
        self.cut = sorted(cut)


def generate_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    tgt_lang: str,
    batch_size: int = 16,
    num_beams: int = 5,
    max_new_tokens: int = 128,
    length_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    constrain_script: bool = False,
    max_source_length: int | None = None,
    progress: bool = True,
) -> Outputs:
    """Outputs in input order (with `.cut`: the inputs cut to the source limit); inputs are batched by length so
    padding stays small."""
    model.eval()
    processors = LogitsProcessorList()
    if constrain_script:
        mask = allowed_tokens(tokenizer, tgt_lang, model.config.vocab_size, model.config.lang_tag_ids)
        processors.append(ScriptConstraint(mask))
    limit = source_token_limit(model, tokenizer, max_source_length)
    longest = new_token_limit(model)
    if max_new_tokens > longest:
        warnings.warn(
            f"max_new_tokens {max_new_tokens} is over the {longest} the model's position table allows; outputs stop "
            "there",
            stacklevel=2,
        )
        max_new_tokens = longest
    outputs: dict[int, str] = {}
    cut: list[int] = []
    bar = tqdm(total=len(texts), desc=f"generating -> {tgt_lang}", unit=" text", disable=not progress)
    for chunk, batch, chunk_cut in source_batches(tokenizer, texts, batch_size, limit, model.device):
        cut += chunk_cut
        ids = model.generate(
            **batch,
            tgt_lang=tgt_lang,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            length_penalty=length_penalty,
            no_repeat_ngram_size=no_repeat_ngram_size,
            logits_processor=processors,
            do_sample=False,
        )
        for i, text in zip(chunk, tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True):
            outputs[i] = text.strip()
        bar.update(len(chunk))
    bar.close()
    return Outputs([outputs[i] for i in range(len(texts))], cut)


def generate_command(args: GenerateArgs) -> None:
    """`swcm generate`: text lines (a file or stdin) into the target language, one output line per input line;
    paths, language and empty lines checked before the model loads."""
    config = check_model_dir(args.model)
    if args.output != "-":
        check_output_path(Path(args.output), "--output")
    if args.input != "-":  # a pipe (/dev/stdin, <(...)) is a file to read too
        check_input_file(Path(args.input), "--input")
    config.lang_tag_id(args.tgt_lang)  # an unknown language fails before anything is read
    name = "<stdin>" if args.input == "-" else args.input
    if args.input == "-":  # bytes, so that a line that is not UTF-8 is named as a file's is
        source = (decode_line(Path(name), n, raw) for n, raw in enumerate(sys.stdin.buffer, 1))
    else:
        source = (line for _, line in text_lines(args.input))
    lines = [line.rstrip("\r\n") for line in source]
    if not lines:
        raise DataError(f"{name}: no input lines")
    empty = [n for n, line in enumerate(lines, 1) if not line.strip()]
    if empty and not args.skip_empty:
        raise DataError(f"{name}:{empty[0]}: empty input line ({len(empty)} in all; --skip_empty answers them empty)")
    rows_per_step = min(args.batch_size, max(1, len(lines) - len(empty))) * args.num_beams  # short input: small batches
    model, how = prepare_for_inference(load_model_folder(args.model), args.precision, args.quantize, rows_per_step)
    print(f"swcm generate: {how}", file=sys.stderr)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    keep = [i for i, line in enumerate(lines) if line.strip()]
    outputs = generate_texts(model, tokenizer, [lines[i] for i in keep], args.tgt_lang, **args.decoding())
    if outputs.cut:
        print(
            f"warning: {len(outputs.cut)} input line(s) longer than the model's {source_token_limit(model, tokenizer)} "
            f"tokens were cut to it (first: {name}:{keep[outputs.cut[0]] + 1})",
            file=sys.stderr,
        )
    result = [""] * len(lines)
    for i, text in zip(keep, outputs, strict=True):
        result[i] = text.replace("\n", " ")
    text = "".join(line + "\n" for line in result)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_output(Path(args.output), text, "--output")
    if empty:
        print(f"warning: {len(empty)} empty input line(s) answered with empty output", file=sys.stderr)
