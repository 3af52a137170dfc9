"""`swcm quickstart`: the whole method in minutes, offline, on CPU, on the real pipeline.

packaged multilingual encoder -> vocabulary pruned to the data (cached, keyed by its inputs) -> XLM-SWCM built from
it -> training through a pretraining recipe and `run_training` (denoising + zh <-> X translation of CLDR names,
babel's locale data) -> `evaluate_file` on held-out zh -> X pairs, before and after. Everything is written to one
output folder; nothing here is a second sampler or a second training loop.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from .arguments import QuickstartArgs
from .choices import PRETRAIN_TASKS
from .errors import DataError
from .languages import LANGUAGE_NAMES
from .paths import check_output_folder


def write_cldr_files(folder: Path, langs: list[str]) -> dict[str, dict[str, Path]]:
    """`cldr.zh-X.{train,test}.jsonl` ({"key", "zh", X}) for each language; the split is stable by key."""
    from .cldr import cldr_pairs, split_pairs

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Path]] = {}
    for lang in langs:
        train, test = split_pairs(cldr_pairs("zh", lang))
        files[lang] = {}
        for split, pairs in (("train", train), ("test", test)):
            path = folder / f"cldr.zh-{lang}.{split}.jsonl"
            rows = [json.dumps({"key": p.key, "zh": p.src, lang: p.tgt}, ensure_ascii=False) for p in pairs]
            path.write_text("\n".join(rows) + "\n", encoding="utf-8")
            files[lang][split] = path
    return files


EXTEND_UNK_RATE = 0.01
"""A language whose training text is more than this share `<unk>` under the pruned vocabulary gets new pieces."""
EXTEND_PIECES = 400
"""Pieces trained for such a language (sentencepiece unigram on its training names)."""


def prepare_encoder(
    encoder: str,
    files: dict[str, dict[str, Path]],
    extra: list[Path],
    out: Path,
    layers: int,
    pieces: int = EXTEND_PIECES,
) -> Path:
    """The encoder cut to its first `layers` layers, pruned to the pairs, and extended with up to `pieces` pieces
    for any target language it cannot spell (Tibetan: XLM-R's vocabulary has no Tibetan pieces, so every syllable is
    `<unk>`). Reused while its inputs (encoder name, layers, pieces, the files' text) are unchanged."""
    from transformers import AutoConfig, AutoTokenizer

    from .encoders import keep_encoder_layers, load_encoder_config, resolve_encoder
    from .vocab import extend_vocab, prune_vocab, read_corpus, vocab_stats

    corpus = [path for split in files.values() for path in split.values()] + extra
    digest = hashlib.sha256(f"{encoder}|{layers}|{EXTEND_UNK_RATE}|{pieces}|card".encode())
    for path in corpus:
        digest.update(path.read_bytes())
    key = digest.hexdigest()[:16]
    stamp = out / "swcm-inputs.txt"
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == key and (out / "config.json").is_file():
        print(f"      reusing {out} (same encoder and corpus)", flush=True)
        return out
    if out.is_dir() and any(out.iterdir()):
        if not stamp.is_file():  # never delete a folder swcm did not make
            raise DataError(f"{out}: holds files swcm did not write (no {stamp.name}); move them or choose another out")
        shutil.rmtree(out)  # an encoder prepared here from other inputs
    source = resolve_encoder(encoder)
    extensions = {}
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".encoder-") as work:
        if layers < load_encoder_config(source).num_hidden_layers:
            source = keep_encoder_layers(source, layers, Path(work, "layers"))
        current = Path(work, "pruned")
        prune_vocab(source, corpus, current)
        tokenizer = AutoTokenizer.from_pretrained(current)
        for lang, split in files.items():
            texts = list(read_corpus([split["train"]], [lang]))
            if vocab_stats(tokenizer, texts).unk_rate > EXTEND_UNK_RATE:
                extended = Path(work, f"extend-{lang}")
                report = extend_vocab(current, [split["train"]], lang, pieces, extended, fields=[lang])
                print(
                    f"      {lang}: <unk> {report['unk_rate_before']:.1%} -> {report['unk_rate_after']:.1%} of "
                    f"held-out tokens after adding {report['pieces_added']} pieces",
                    flush=True,
                )
                current, extensions[lang] = extended, report
                tokenizer = AutoTokenizer.from_pretrained(current)
        shutil.copytree(current, out)
    # the card of the last step names a temporary folder: the origin is the encoder named here
    from .model_card import card_data, provenance, write_card

    stages = [{"stage": f"first {layers} layers kept"}, *((card_data(out) or {}).get("training") or [])]
    config = AutoConfig.from_pretrained(out)
    model = {"encoder": f"{config.model_type}, {layers} layers", "vocabulary": f"{config.vocab_size:,} pieces"}
    write_card(
        out, {"kind": "encoder", **provenance(encoder), "languages": list(files), "model": model, "training": stages}
    )
    (out / "swcm-extensions.json").write_text(json.dumps(extensions, indent=1), encoding="utf-8")
    stamp.write_text(key + "\n", encoding="utf-8")
    return out


def quickstart_recipe(
    args: QuickstartArgs, encoder: Path, files: dict[str, dict[str, Path]], precision: str, changes: dict | None = None
):
    """The quickstart's pretraining recipe; `changes` replaces recipe fields (the ablation benchmark's variants)."""
    from .recipe import PretrainRecipe

    sources = []
    for lang, split in files.items():
        sources.append({"path": str(split["train"]), "task": "mt", "langs": ["zh", lang], "fields": ["zh", lang]})
        sources.append({"path": str(split["train"]), "task": "dae", "lang": lang, "fields": [lang]})
    recipe = PretrainRecipe(
        model=str(encoder),
        sources=sources,
        out=str(args.out / "train"),
        decoder_init=args.decoder_init,
        tasks=list(PRETRAIN_TASKS) if args.dae_share > 0 else ["mt"],
        mt_share=1.0 - args.dae_share if args.dae_share > 0 else 0.5,
        alpha=0.5,
        max_length=32,
        max_steps=args.steps,
        global_batch=args.batch_size,
        micro_batch=args.batch_size,
        lr=args.lr,
        encoder_lr=args.encoder_lr,
        warmup_ratio=args.warmup_ratio,
        mixed_precision=precision,
        seed=args.seed,
        num_workers=0,
        save_every=args.steps,
        keep_checkpoints=1,
        log_every=10,
    )
    return replace(recipe, **changes) if changes else recipe


def evaluate_model(model_dir: Path, files: dict[str, dict[str, Path]], max_eval: int, precision) -> dict:
    import torch
    from transformers import AutoTokenizer

    from .evaluation import evaluate_file, heldout_loss
    from .metrics import exact_match
    from .modeling_swcm import load_model_folder
    from .specs import TaskSpec
    from .tasks import read_task_file

    model = load_model_folder(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    results = {"parameters": model.parameter_counts()["total"]}
    with torch.autocast("cpu", dtype=precision.dtype, enabled=precision.precision != "fp32"):
        for lang, split in files.items():
            spec = TaskSpec(task="translation", tgt_lang=lang, src_field="zh", tgt_field=lang)
            data = read_task_file(split["test"], spec)  # read once: scored (the first max_eval) and teacher-forced
            row, predictions = evaluate_file(
                model,
                tokenizer,
                split["test"],
                spec,
                data=data,
                limit=max_eval,
                batch_size=32,
                num_beams=1,
                max_new_tokens=32,
                progress=False,
            )
            outputs = [p["output"] for p in predictions]
            row["exact"] = exact_match(outputs, [p["references"] for p in predictions])
            row["empty"] = sum(not o for o in outputs)
            row["distinct_outputs"] = len(set(outputs))
            # teacher-forced, on every held-out pair: separates builds whose greedy outputs score alike
            row["heldout_loss"], _ = heldout_loss(model, tokenizer, split["test"], spec, max_length=64, data=data)
            results[lang] = {"row": row, "predictions": predictions}
    return results


def report_markdown(report: dict) -> str:
    lines = [
        f"# swcm quickstart: {report['encoder']}, decoder_init={report['args']['decoder_init']}",
        "",
        f"{report['steps']} steps x {report['batch_size']} sequences in {report['train_seconds']:.0f} s "
        f"({report['precision']}); loss {report['loss_first']:.3f} -> {report['loss_last']:.3f}; "
        f"{report['parameters']:,} parameters, vocabulary {report['vocab_size']:,}; "
        f"{report['total_seconds'] / 60:.1f} min in all.",
        "",
        "| zh -> | test pairs | chrF++ before | chrF++ after | exact after | empty after | in target script after "
        "| distinct after | held-out loss before (all test pairs) | after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, r in report["languages"].items():
        lines.append(
            f"| {lang} | {r['n']} | {r['chrf++_before']:.1f} | {r['chrf++_after']:.1f} | {r['exact_after']:.1f}% | "
            f"{r['empty_after']} | {100 - r['off_target_after']:.0f}% | {r['distinct_after']} | "
            f"{r['heldout_loss_before']:.3f} | {r['heldout_loss_after']:.3f} |"
        )
    lines += ["", "| lang | source | reference | before | after |", "|---|---|---|---|---|"]
    for sample in report["samples"]:
        lines.append("| " + " | ".join(sample[k] for k in ("lang", "source", "reference", "before", "after")) + " |")
    return "\n".join(lines) + "\n"


def run_quickstart(args: QuickstartArgs, recipe_changes: dict | None = None) -> dict:
    """Runs the quickstart into args.out and returns its report; `recipe_changes` replaces fields of the training
    recipe (PretrainRecipe), e.g. {"normal_every": 0} for BASE-A."""
    from .errors import TrainingInterrupted
    from .precision import resolve_precision
    from .training import pretrain

    precision = resolve_precision(args.precision)
    from .encoders import load_encoder_config

    out = Path(args.out)
    check_output_folder(out)
    load_encoder_config(args.encoder)  # a missing or unusable encoder: one line before anything is written
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    print(f"[1/5] writing CLDR name pairs zh <-> {', '.join(args.langs)} to {out / 'data'}", flush=True)
    files = write_cldr_files(out / "data", args.langs)
    names = out / "data" / "language-names.txt"  # the pieces that seed the language tags' embeddings
    names.write_text("\n".join(LANGUAGE_NAMES.values()) + "\n", encoding="utf-8")
    print(f"[2/5] pruning {args.encoder}'s vocabulary to the pairs", flush=True)
    encoder = prepare_encoder(args.encoder, files, [names], out / "encoder", args.encoder_layers)

    print(f"[3/5] building XLM-SWCM (decoder_init={args.decoder_init}) and training", flush=True)
    recipe = quickstart_recipe(args, encoder, files, args.precision, recipe_changes)
    from .evaluation import heldout_evaluator
    from .specs import HeldoutFile

    # held-out loss curves (teacher-forced, every held-out pair) while training: how fast each build learns
    every = max(1, args.steps // 6)
    held = [
        HeldoutFile(
            task="translation", tgt_lang=k, src_field="zh", tgt_field=k, path=str(v["test"]), name=k, limit=None
        )
        for k, v in files.items()
    ]
    try:
        # a fresh run, never resumed or mixed with an older one; overwrite replaces only a run's own files
        summary = pretrain(recipe, evaluate=heldout_evaluator(held, 64, every), overwrite=True)
    except TrainingInterrupted as stop:  # the quickstart has no --resume: it starts every run afresh
        raise TrainingInterrupted(
            stop.signum, stop.step, stop.checkpoint, "swcm quickstart starts again from the beginning when run again"
        ) from None
    train_dir = Path(recipe.out)

    print("[4/5] evaluating zh -> X before training (initial/) and after (final/)", flush=True)
    before = evaluate_model(train_dir / "initial", files, args.max_eval, precision)
    after = evaluate_model(train_dir / "final", files, args.max_eval, precision)

    print("[5/5] writing the report", flush=True)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(train_dir / "final")
    log = [json.loads(line) for line in (train_dir / "log.jsonl").read_text(encoding="utf-8").splitlines() if line]
    report = {
        "encoder": args.encoder,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(args).items()},
        "recipe_changes": recipe_changes or {},
        "model": str(train_dir / "final"),
        "vocab_size": config.vocab_size,
        "vocab_extensions": json.loads((encoder / "swcm-extensions.json").read_text(encoding="utf-8")),
        "parameters": after["parameters"],
        "steps": summary["steps"],
        "batch_size": args.batch_size,
        "precision": f"{precision.precision} ({precision.reason})",
        "train_seconds": summary["seconds"],
        "total_seconds": time.time() - started,
        "loss_first": log[0]["loss"],
        "loss_last": log[-1]["loss"],
        "log": log,
        "heldout_curve": [
            {k: v for k, v in r.items() if k == "step" or k.startswith("heldout")} for r in log if "heldout" in r
        ],
        "languages": {},
        "samples": [],
    }
    for lang in args.langs:
        b, a = before[lang]["row"], after[lang]["row"]
        report["languages"][lang] = {
            "n": a["n"],
            "chrf++_before": b["chrf++"],
            "chrf++_after": a["chrf++"],
            "exact_before": b["exact"],
            "exact_after": a["exact"],
            "empty_before": b["empty"],
            "empty_after": a["empty"],
            "off_target_before": b["off_target"],
            "off_target_after": a["off_target"],
            "distinct_after": a["distinct_outputs"],
            "heldout_loss_before": b["heldout_loss"],
            "heldout_loss_after": a["heldout_loss"],
            "distinct_sources": len({p["source"] for p in after[lang]["predictions"]}),
            "outputs_after": [p["output"] for p in after[lang]["predictions"]],
        }
        for p_before, p_after in list(zip(before[lang]["predictions"], after[lang]["predictions"], strict=True))[:3]:
            report["samples"].append(
                {
                    "lang": lang,
                    "source": p_after["source"],
                    "reference": p_after["references"][0],
                    "before": p_before["output"],
                    "after": p_after["output"],
                }
            )
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "report.md").write_text(report_markdown(report), encoding="utf-8")
    return report


def quickstart_command(args: QuickstartArgs) -> str:
    """`swcm quickstart`: the run in args.out; its markdown report and where everything went."""
    run_quickstart(args)
    report = (Path(args.out) / "report.md").read_text(encoding="utf-8")
    return f"{report}\nwritten to {args.out}/ (train/, encoder/, report.json, report.md)"
