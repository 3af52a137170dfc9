"""`swcm adapt`: continued masked-language-model pretraining of an encoder, the way CINO was made from XLM-R.

It gives new vocabulary rows (pruned or extended with `swcm vocab`) trained embeddings and moves a pretrained
encoder towards the target languages before XLM-SWCM is built from it. It runs on the shared training loop
(`training.run_training`: accelerate, atomic checkpoints, exact resume, logs); the output folder's `final/` is an
encoder with its MLM head that `swcm build` and the recipes take.

Masking (BERT): `mask_ratio` of the content tokens are chosen, of which 80% become `<mask>`, 10% a random piece and
10% stay; special tokens are never chosen. With `whole_word`, the unit is a word of swcm's script tokenizer (a
Tibetan syllable, a Chinese character, a word elsewhere): all pieces of a chosen unit are masked together. Logits
are computed at the chosen positions only: a full-vocabulary projection of every position would dominate the step.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import ExampleSettings, PretrainExamples, build_mixture, open_source, split_sentences
from .errors import DataError
from .metrics import ScriptTokenizer
from .model_card import encoder_card_data, write_card
from .noising import MaskingConfig, mask_tokens
from .recipe import AdaptRecipe
from .specs import SourceSpec


def word_units(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """For each piece (character offsets into `text`), the number of the script-tokenizer word it starts in; pieces
    outside any word (spaces, punctuation) are units of their own."""
    spans = ScriptTokenizer.spans(text)
    units, word, next_free = [], 0, len(spans)
    for start, end in offsets:
        while word < len(spans) and spans[word][1] <= start:
            word += 1
        inside = word < len(spans) and spans[word][0] < max(end, start + 1)
        if inside:
            units.append(word)
        else:
            units.append(next_free)
            next_free += 1
    return units


class MLMExamples(PretrainExamples):
    """example(index) -> {"input_ids", "labels", "task"}: a window of monolingual text, masked; a pure function of
    the index (exact resume and data-parallel splits, as in pretraining)."""

    task_names = ("mlm",)

    def __init__(self, sources, mixture, tokenizer, max_length: int, masking: MaskingConfig, seed: int):
        super().__init__(sources, mixture, tokenizer, None, ExampleSettings(max_length=max_length, seed=seed))
        self.masking = masking

    def example(self, index: int) -> dict:
        rng = np.random.default_rng([self.settings.seed, index])
        _, source, (f, line, fraction) = self._choose(index, rng)
        values, where = source.read(f, line)
        text = " ".join(values)
        sentences = split_sentences(text) or [text]
        encoded = self.tokenizer(sentences, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        pieces, unit_lists, unit_base = [], [], 0
        for sentence, ids, offsets in zip(sentences, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            if not ids:
                continue
            units = word_units(sentence, offsets) if self.masking.whole_word else list(range(len(ids)))
            pieces.append(ids)
            unit_lists.append([unit_base + u for u in units])
            unit_base += max(units) + 1
        chunks = self._chunks(pieces)
        chunk_index = min(int(fraction * len(chunks)), len(chunks) - 1)
        # the units of the same window: chunks cut sentences in order, so walk them alongside
        flat_ids = [t for chunk in chunks[chunk_index] for t in chunk]
        all_units = [u for units in unit_lists for u in units]
        start = sum(len(piece) for chunk in chunks[:chunk_index] for piece in chunk)
        units = all_units[start : start + len(flat_ids)]
        masked, labels = mask_tokens(flat_ids, units, self.masking, rng, self.mask_id, self.vocab_ids)
        return {
            "input_ids": [self.bos, *masked, self.eos],
            "labels": [-100, *labels, -100],
            "task": 0,
            "where": where,
        }


def mlm_head(model: nn.Module) -> nn.Module:
    """The prediction head of a transformers masked-LM model (XLM-R / RoBERTa: lm_head, BERT: cls)."""
    for name in ("lm_head", "cls"):
        if hasattr(model, name):
            return getattr(model, name)
    raise DataError(f"{type(model).__name__} has no masked-LM head (lm_head or cls)")


class SparseMaskedLM(nn.Module):
    """A transformers masked-LM model whose forward returns the per-position loss [batch, length], computing logits
    at the labelled positions only. Saving saves the wrapped model (encoder + its MLM head)."""

    returns_token_losses = True

    def __init__(self, mlm: nn.Module, source: str = "", languages: tuple[str, ...] = ()):
        super().__init__()
        self.mlm = mlm
        self.source, self.languages = source, languages  # for the model card

    def forward(self, input_ids, attention_mask, labels):
        hidden = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        chosen = labels != -100
        logits = mlm_head(self.mlm)(hidden[chosen])
        losses = torch.zeros(labels.shape, dtype=torch.float32, device=hidden.device)
        losses[chosen] = F.cross_entropy(logits.float(), labels[chosen], reduction="none")
        return losses

    @property
    def config(self):
        return self.mlm.config

    def save_pretrained(self, path, **kwargs):
        """The encoder with its MLM head, and its model card (the training loop sets `training_record`)."""
        self.mlm.save_pretrained(path, **kwargs)
        stage = getattr(self, "training_record", None)
        write_card(path, encoder_card_data(self.source, self.mlm.config, self.languages, stage))


@torch.no_grad()
def heldout_mlm(
    model: SparseMaskedLM, tokenizer, texts: dict[str, list[str]], masking: MaskingConfig, seed: int, max_length: int
):
    """Masked-LM loss and accuracy per language on held-out lines (the same masks every time)."""
    from .data import collate

    was_training = model.training
    model.eval()
    mask_id = tokenizer.mask_token_id
    vocab_ids = np.array(sorted(set(range(len(tokenizer))) - set(tokenizer.all_special_ids)))
    results = {}
    for lang, lines in texts.items():
        rng = np.random.default_rng([seed, 12345])
        examples = []
        for text in lines:
            encoded = tokenizer(
                text,
                add_special_tokens=False,
                return_offsets_mapping=True,
                truncation=True,
                max_length=max_length - 2,
                verbose=False,
            )
            ids = encoded["input_ids"]
            units = word_units(text, encoded["offset_mapping"]) if masking.whole_word else list(range(len(ids)))
            masked, labels = mask_tokens(ids, units, masking, rng, mask_id, vocab_ids)
            examples.append(
                {
                    "input_ids": [tokenizer.cls_token_id, *masked, tokenizer.sep_token_id],
                    "labels": [-100, *labels, -100],
                    "task": 0,
                }
            )
        loss_sum, correct, count = 0.0, 0, 0
        for start in range(0, len(examples), 16):
            batch = collate(examples[start : start + 16], tokenizer.pad_token_id)
            labels = batch["labels"]
            hidden = model.mlm.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            chosen = labels != -100
            logits = mlm_head(model.mlm)(hidden.last_hidden_state[chosen]).float()
            loss_sum += float(F.cross_entropy(logits, labels[chosen], reduction="sum"))
            correct += int((logits.argmax(-1) == labels[chosen]).sum())
            count += int(chosen.sum())
        results[lang] = {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "tokens": count}
    model.train(was_training)
    return results


def adapt(recipe: AdaptRecipe, resume: bool = False, stop_after: int | None = None, overwrite: bool = False) -> dict:
    """Run (or resume) continued MLM pretraining; returns a summary with the before / after report."""
    from .encoders import load_masked_lm, load_tokenizer
    from .training import run_training

    out = Path(recipe.out)
    state: dict = {}

    def prepare(accelerator, out_dir: Path):
        sources = [open_source(spec, recipe.skip_bad_lines, out_dir / "index") for spec in recipe.sources]
        heldout: dict[str, list[str]] = {}
        for source in sources:
            if recipe.heldout_lines > source.rows // 2:
                raise DataError(
                    f"heldout_lines: {recipe.heldout_lines} is more than half of source {source.spec.path} "
                    f"({source.rows} usable lines); hold out at most {source.rows // 2}, or 0"
                )
            lines = source.hold_out(recipe.heldout_lines) if recipe.heldout_lines else []
            heldout.setdefault(source.spec.lang, []).extend(" ".join(v) for v in lines)
        encoder = _prepare_vocabulary(recipe, [s.spec for s in sources], out_dir, accelerator)
        torch.manual_seed(recipe.seed)  # the new head, the same in every process
        mlm, has_head = load_masked_lm(encoder)
        tokenizer = load_tokenizer(encoder)
        origin = "the checkpoint's own" if has_head else "new, decoder tied to the word embeddings"
        mixture = build_mixture(sources, recipe.alpha, 0.5, ["dae"])
        examples = MLMExamples(sources, mixture, tokenizer, recipe.max_length, recipe.masking, recipe.seed)
        model = SparseMaskedLM(mlm, encoder, tuple(sorted({s.spec.lang for s in sources})))
        state.update(model=model, tokenizer=tokenizer, heldout=heldout, origin=origin, encoder=encoder)
        state["before"] = (
            heldout_mlm(model, tokenizer, heldout, recipe.masking, recipe.seed, recipe.max_length) if heldout else {}
        )
        total = recipe.total_steps(sum(s.rows for s in sources))
        return model, tokenizer, examples, total, f"MLM head: {origin}; mixture: {mixture.describe()}"

    summary = run_training(recipe, prepare, resume, stop_after, overwrite=overwrite)
    if state.get("heldout") and summary["steps"] >= summary["total_steps"]:
        after = heldout_mlm(
            state["model"], state["tokenizer"], state["heldout"], recipe.masking, recipe.seed, recipe.max_length
        )
        summary["heldout"] = {
            lang: {
                "loss_before": state["before"][lang]["loss"],
                "loss_after": after[lang]["loss"],
                "accuracy_before": state["before"][lang]["accuracy"],
                "accuracy_after": after[lang]["accuracy"],
                "tokens": after[lang]["tokens"],
            }
            for lang in after
        }
    summary["mlm_head"] = state.get("origin")
    summary["vocabulary"] = state.get("vocabulary", {})
    if (out / "final").is_dir():
        (out / "report.json").write_text(
            json.dumps({"recipe": asdict(recipe), **summary}, indent=1, default=str), encoding="utf-8"
        )
    return summary


def _prepare_vocabulary(recipe: AdaptRecipe, specs: list[SourceSpec], out: Path, accelerator) -> str:
    """Prune and / or extend the encoder's vocabulary to the sources first (main process; cached in `out`)."""
    from .encoders import resolve_encoder
    from .training import pruned_encoder
    from .vocab import extend_vocab

    files = [s.path for s in specs if not s.path.startswith("hf:")]
    encoder = pruned_encoder(recipe.model, files, out, accelerator) if recipe.prune_vocab else recipe.model
    for lang, size in recipe.extend.items():
        corpus = [s.path for s in specs if s.lang == lang and not s.path.startswith("hf:")]
        if not corpus:
            raise DataError(f"extend: no local source in language {lang!r} to train its pieces on")
        extended = out / f"encoder-extended-{lang}"
        if accelerator.is_main_process and not (extended / "config.json").is_file():
            report = extend_vocab(resolve_encoder(encoder), corpus, lang, size, extended)
            (extended / "extend-report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        accelerator.wait_for_everyone()
        encoder = str(extended)
    return encoder
