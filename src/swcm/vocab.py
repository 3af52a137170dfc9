"""Vocabulary work, as CINO did for XLM-R: prune to the pieces a corpus uses, extend for scripts the vocabulary
does not cover (Tibetan: ~43% `<unk>` in XLM-R).

Both are one operation, a new id layout: kept old ids in their old order, new pieces after the model's own pieces,
then the added tokens (language tags ...). The tokenizer (tokenizer.json: model vocabulary, added tokens, post
processor ids) and every vocabulary-sized tensor (word embeddings, LM head) follow the same layout.
"""

from __future__ import annotations

import glob
import json
import math
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .data import json_object, text_lines
from .encoders import load_encoder, load_encoder_config, load_tokenizer
from .errors import DataError, RecipeError
from .languages import LANGS
from .model_card import encoder_card_data, write_card
from .modeling_swcm import load_model_folder
from .paths import check_model_dir, local_model_type

if TYPE_CHECKING:
    from .arguments import ExtendArgs, PruneArgs


def corpus_files(files: Iterable[str | Path]) -> list[Path]:
    """The files named, glob patterns expanded (sorted); a missing file or an empty pattern is a DataError."""
    found = []
    for name in files:
        if glob.has_magic(str(name)):
            matches = sorted(Path(m) for m in glob.glob(str(name)))
            if not matches:
                raise DataError(f"{name}: corpus pattern matches no file")
            found += matches
        elif not Path(name).is_file():
            raise DataError(f"{name}: corpus file does not exist")
        else:
            found.append(Path(name))
    return found


def read_corpus(files: Iterable[str | Path], fields: Sequence[str] | None = None) -> Iterator[str]:
    """Text of each file (or of the files a glob pattern names): `.jsonl` rows give their string fields (`fields`, or
    every string value), other files their non-empty lines."""
    for path in corpus_files(files):
        for line_no, line in text_lines(path):
            if not line.strip():
                continue
            if path.suffix != ".jsonl":
                yield line.rstrip("\n")
                continue
            row = json_object(path, line_no, line, fields or ())
            values = [row[f] for f in fields] if fields else list(row.values())
            for value in values:
                if isinstance(value, str) and value.strip():
                    yield value
                elif isinstance(value, dict):  # e.g. headline files: {"zh": {"headline", "body"}}
                    yield from (v for v in value.values() if isinstance(v, str) and v.strip())


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def count_token_ids(tokenizer: PreTrainedTokenizerBase, texts: Iterable[str], desc: str = "counting pieces"):
    """Occurrences of every token id (without special tokens) and the number of characters read."""
    counts = np.zeros(len(tokenizer), dtype=np.int64)
    chars = 0
    for batch in tqdm(_batches(texts, 512), desc=desc, unit=" batches", leave=False):
        chars += sum(len(t) for t in batch)
        for ids in tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]:
            np.add.at(counts, ids, 1)
    return counts, chars


@dataclass
class VocabStats:
    tokens: int
    chars: int
    unk: int

    @property
    def unk_rate(self) -> float:
        return self.unk / max(self.tokens, 1)

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / max(self.chars, 1)


def vocab_stats(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> VocabStats:
    counts, chars = count_token_ids(tokenizer, texts, desc="measuring")
    return VocabStats(tokens=int(counts.sum()), chars=chars, unk=int(counts[tokenizer.unk_token_id]))


# ----------------------------------------------------------------------------------------------- the relayout


@dataclass
class Layout:
    """The new vocabulary: `old_ids` kept (model pieces first, then added tokens) and `new_pieces` inserted between."""

    old_model_ids: list[int]
    new_pieces: list[tuple[str, float]]
    old_added_ids: list[int]

    @property
    def size(self) -> int:
        return len(self.old_model_ids) + len(self.new_pieces) + len(self.old_added_ids)

    def old_to_new(self) -> dict[int, int]:
        mapping = {old: new for new, old in enumerate(self.old_model_ids)}
        offset = len(self.old_model_ids) + len(self.new_pieces)
        mapping.update({old: offset + k for k, old in enumerate(self.old_added_ids)})
        return mapping


def _tokenizer_json(tokenizer: PreTrainedTokenizerBase) -> dict:
    return json.loads(tokenizer.backend_tokenizer.to_str())


def model_vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """Pieces of the tokenizer's model (Unigram / WordPiece), excluding added tokens appended after them."""
    return len(_tokenizer_json(tokenizer)["model"]["vocab"])


def _remap_post_processor(node, mapping: dict[int, int]):
    if isinstance(node, dict):
        if node.get("type") == "TemplateProcessing":
            for special in node["special_tokens"].values():
                special["ids"] = [mapping[i] for i in special["ids"]]
        elif node.get("type") in ("BertProcessing", "RobertaProcessing"):
            for key in ("sep", "cls"):
                node[key] = [node[key][0], mapping[node[key][1]]]
        elif node.get("type") == "Sequence":
            for child in node["processors"]:
                _remap_post_processor(child, mapping)
    return node


def relayout_tokenizer(tokenizer: PreTrainedTokenizerBase, layout: Layout, out_dir: Path) -> PreTrainedTokenizerBase:
    """Save `tokenizer` re-laid out to `out_dir` and load it back."""
    mapping = layout.old_to_new()
    spec = _tokenizer_json(tokenizer)
    model = spec["model"]
    if model["type"] == "Unigram":
        model["vocab"] = [model["vocab"][i] for i in layout.old_model_ids] + [list(p) for p in layout.new_pieces]
        model["unk_id"] = mapping[model["unk_id"]]
    elif model["type"] == "WordPiece":
        if layout.new_pieces:
            raise RecipeError("adding pieces is supported for sentencepiece-unigram (XLM-R family) vocabularies only")
        by_id = {i: t for t, i in model["vocab"].items()}
        model["vocab"] = {by_id[i]: mapping[i] for i in layout.old_model_ids}
    else:
        raise RecipeError(f"tokenizer model {model['type']} is not supported (Unigram or WordPiece)")
    for added in spec["added_tokens"]:
        if added["id"] not in mapping:
            raise ValueError(f"added token {added['content']!r} (id {added['id']}) would be dropped")
        added["id"] = mapping[added["id"]]
    _remap_post_processor(spec.get("post_processor"), mapping)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return AutoTokenizer.from_pretrained(out_dir)


def _relayout_rows(
    weight: torch.Tensor, layout: Layout, new_row: Callable[[torch.Tensor, tuple[str, float]], torch.Tensor]
) -> torch.Tensor:
    rows = [weight[layout.old_model_ids]]
    if layout.new_pieces:
        rows.append(torch.stack([new_row(weight, piece) for piece in layout.new_pieces]))
    rows.append(weight[layout.old_added_ids])
    return torch.cat(rows).contiguous()


def _load(model_dir: Path):
    """(model, tokenizer, is_swcm): an XLM-SWCM model or a bare encoder directory."""
    if local_model_type(model_dir) == "swcm":
        check_model_dir(Path(model_dir))
        return load_model_folder(model_dir), AutoTokenizer.from_pretrained(model_dir), True
    load_encoder_config(model_dir)  # a missing folder, no config.json, sizes that do not fit: one line, at once
    return load_encoder(model_dir), load_tokenizer(model_dir), False


@torch.no_grad()
def apply_layout(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    is_swcm: bool,
    layout: Layout,
    out_dir: Path,
    new_row: Callable[[torch.Tensor, tuple[str, float]], torch.Tensor] | None = None,
    source: Path | None = None,
    stage: dict | None = None,
):
    """Write the model and tokenizer re-laid out to `out_dir`; returns (model, tokenizer). An encoder's model card
    names `source` and `stage` (what was done to the vocabulary)."""
    mapping = layout.old_to_new()
    out_dir.mkdir(parents=True, exist_ok=True)
    new_tokenizer = relayout_tokenizer(tokenizer, layout, out_dir)
    embeddings = model.get_input_embeddings()
    weight = _relayout_rows(embeddings.weight, layout, new_row)
    pad = mapping.get(embeddings.padding_idx) if embeddings.padding_idx is not None else None
    new_embeddings = nn.Embedding(layout.size, weight.shape[1], padding_idx=pad)
    new_embeddings.weight.copy_(weight)
    encoder = model.model.encoder if is_swcm else model
    encoder.set_input_embeddings(new_embeddings)
    configs = [encoder.config] + ([model.config] if is_swcm else [])
    for config in configs:
        config.vocab_size = layout.size
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            if getattr(config, name, None) is not None:
                setattr(config, name, mapping[getattr(config, name)])
    if is_swcm:
        model.config.encoder = encoder.config
        model.config.lang_tag_ids = {code: mapping[i] for code, i in model.config.lang_tag_ids.items()}
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            setattr(model.generation_config, name, getattr(model.config, name))
        head = nn.Linear(weight.shape[1], layout.size, bias=True)
        if model.config.tie_word_embeddings:
            head.weight = new_embeddings.weight
        else:
            head.weight.copy_(_relayout_rows(model.lm_head.weight, layout, new_row))
        head.bias.copy_(_relayout_rows(model.lm_head.bias[:, None], layout, new_row)[:, 0])
        model.lm_head = head
    model.save_pretrained(out_dir)  # an XLM-SWCM model writes its own card, carrying its history
    if not is_swcm:
        write_card(out_dir, encoder_card_data(source, model.config, LANGS, stage))
    return model, new_tokenizer


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------- pruning


def prune_vocab(
    model_dir: str | Path,
    corpus: Sequence[str | Path],
    out_dir: str | Path,
    min_count: int = 1,
    fields: Sequence[str] | None = None,
) -> dict:
    """Keep special and added tokens, language tags and every piece the corpus uses at least `min_count` times.

    With `min_count` > 1, every single-character piece of the corpus is kept as well, so rarer words still
    segment into known pieces. Returns a report (sizes, parameters, corpus segmentation check)."""
    if min_count < 1:
        raise RecipeError(f"min_count must be >= 1, got {min_count}")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    texts = list(read_corpus(corpus, fields))  # before the model: bad input fails fast
    if not texts:
        raise DataError(f"corpus {list(map(str, corpus))} has no text")
    model, tokenizer, is_swcm = _load(model_dir)
    counts, _ = count_token_ids(tokenizer, texts)
    n_model = model_vocab_size(tokenizer)
    keep = set(np.flatnonzero(counts >= min_count).tolist())
    if min_count > 1:
        pieces = tokenizer.convert_ids_to_tokens(np.flatnonzero(counts).tolist())
        keep |= {tokenizer.convert_tokens_to_ids(p) for p in pieces if len(p.lstrip("▁").lstrip("#")) <= 1}
    keep |= set(tokenizer.all_special_ids) | {tokenizer.convert_tokens_to_ids(t) for t in tokenizer.get_added_vocab()}
    layout = Layout(
        old_model_ids=sorted(i for i in keep if i < n_model),
        new_pieces=[],
        old_added_ids=sorted(i for i in keep if i >= n_model),
    )
    before_rows, before_params = model.get_input_embeddings().num_embeddings, parameter_count(model)
    stage = {"stage": "vocabulary pruned", "corpus": ", ".join(f"`{c}`" for c in corpus), "pieces kept": layout.size}
    model, new_tokenizer = apply_layout(model, tokenizer, is_swcm, layout, out_dir, None, model_dir, stage)
    # The same corpus must segment into the same pieces (compared as strings, since ids moved).
    changed = 0
    for batch in _batches(texts, 512):
        old = tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
        new = new_tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
        for a, b in zip(old, new, strict=True):
            changed += tokenizer.convert_ids_to_tokens(a) != new_tokenizer.convert_ids_to_tokens(b)
    return {
        "vocab_before": before_rows,
        "vocab_after": layout.size,
        "parameters_before": before_params,
        "parameters_after": parameter_count(model),
        "corpus_texts": len(texts),
        "texts_segmented_differently": changed,
        "min_count": min_count,
    }


# -------------------------------------------------------------------------------------------------- extension


def train_pieces(texts: Sequence[str], size: int, normalize: Callable[[str], str]) -> list[tuple[str, float]]:
    """A sentencepiece unigram model of `size` pieces on the texts (normalised as the tokenizer will see them)."""
    import sentencepiece as spm

    text = "\n".join(normalize(t).replace("\n", " ") for t in texts)
    # at character_coverage 1.0 every character is a piece, and so are the word mark and <unk> <s> </s>
    needed = len(set(text) - set(" \n")) + 4
    if size < needed:
        raise DataError(
            f"size: {size} pieces cannot hold the corpus's {needed - 4} distinct characters plus sentencepiece's 4 "
            f"special pieces; use at least {needed}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp, "corpus.txt")
        corpus.write_text(text, encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp, "new")),
            model_type="unigram",
            vocab_size=size,
            hard_vocab_limit=False,  # a small corpus yields fewer pieces instead of an error
            character_coverage=1.0,
            normalization_rule_name="identity",
            input_sentence_size=200_000,
            shuffle_input_sentence=True,
            max_sentence_length=1 << 16,
            minloglevel=2,
        )
        processor = spm.SentencePieceProcessor(model_file=str(Path(tmp, "new.model")))
        return [
            (processor.id_to_piece(i), processor.get_score(i))
            for i in range(processor.get_piece_size())
            if not (processor.is_control(i) or processor.is_unknown(i))
        ]


def extend_vocab(
    model_dir: str | Path,
    corpus: Sequence[str | Path],
    lang: str,
    size: int,
    out_dir: str | Path,
    heldout_fraction: float = 0.1,
    fields: Sequence[str] | None = None,
) -> dict:
    """Add sentencepiece pieces trained on `lang` text that the vocabulary lacks; each new embedding (and LM head
    row) starts as the mean of the rows of the old tokenizer's pieces for it. Reports `<unk>` rate and tokens per
    character on held-out text (the last `heldout_fraction` of the corpus) before and after."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    texts = list(read_corpus(corpus, fields))
    if len(texts) < 2:
        raise DataError(f"corpus {list(map(str, corpus))} has {len(texts)} texts; need at least 2 (train + held out)")
    model, tokenizer, is_swcm = _load(model_dir)
    split = len(texts) - max(1, math.ceil(len(texts) * heldout_fraction))
    train, heldout = texts[:split], texts[split:]
    before = vocab_stats(tokenizer, heldout)

    backend = tokenizer.backend_tokenizer
    normalize = backend.normalizer.normalize_str if backend.normalizer else (lambda s: s)
    vocab = tokenizer.get_vocab()
    candidates = train_pieces(train, size, normalize)
    new_pieces = [(p, s) for p, s in candidates if p not in vocab and p != "▁"]
    n_model = model_vocab_size(tokenizer)
    rows = model.get_input_embeddings().num_embeddings
    layout = Layout(
        old_model_ids=list(range(n_model)),
        new_pieces=new_pieces,
        old_added_ids=list(range(n_model, rows)),
    )
    old_model = backend.model

    matrix_stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # per matrix, computed once: (row mean, std)

    def new_row(weight: torch.Tensor, piece: tuple[str, float]) -> torch.Tensor:
        ids = [t.id for t in old_model.tokenize(piece[0])]
        known = [i for i in ids if i != tokenizer.unk_token_id]
        if len(known) == len(ids):
            return weight[ids].mean(0)
        # A piece of a script the old vocabulary lacks (Tibetan in XLM-R) is spelled with <unk>: the mean of its rows
        # would make such pieces identical (all <unk>, or "▁" + <unk>), so it gets a random part of the matrix's
        # scale, seeded by the piece, on top of the mean of its known parts.
        if id(weight) not in matrix_stats:
            matrix_stats[id(weight)] = (weight.float().mean(0), weight.float().std())
        mean, std = matrix_stats[id(weight)]
        generator = torch.Generator().manual_seed(zlib.crc32(piece[0].encode()))
        noise = torch.randn(weight.shape[1:], generator=generator, dtype=torch.float32) * std
        base = weight[known].float().mean(0) if known else mean
        return (base + noise).to(weight.dtype)

    before_params = parameter_count(model)
    stage = {
        "stage": f"vocabulary extended for {lang}",
        "pieces added": len(new_pieces),
        "corpus": ", ".join(map(str, corpus)),
    }
    model, new_tokenizer = apply_layout(model, tokenizer, is_swcm, layout, out_dir, new_row, model_dir, stage)
    after = vocab_stats(new_tokenizer, heldout)
    return {
        "lang": lang,
        "pieces_trained": len(candidates),
        "pieces_added": len(new_pieces),
        "vocab_before": rows,
        "vocab_after": layout.size,
        "parameters_before": before_params,
        "parameters_after": parameter_count(model),
        "heldout_texts": len(heldout),
        "unk_rate_before": before.unk_rate,
        "unk_rate_after": after.unk_rate,
        "tokens_per_char_before": before.tokens_per_char,
        "tokens_per_char_after": after.tokens_per_char,
    }


def report_table(report: dict) -> str:
    """A two-column before / after table for keys named *_before / *_after, then the other entries."""
    rows, other = [], []
    for key, value in report.items():
        if key.endswith("_before"):
            name = key[: -len("_before")]
            rows.append((name, report[key], report[name + "_after"]))
        elif not key.endswith("_after"):
            other.append(f"{key}: {value}")

    def fmt(v, name: str) -> str:
        return (
            f"{v:.4%}" if isinstance(v, float) and "rate" in name else f"{v:,.4f}" if isinstance(v, float) else f"{v:,}"
        )

    lines = ["| | before | after |", "|---|---:|---:|"]
    for name, before, after in rows:
        lines.append(f"| {name} | {fmt(before, name)} | {fmt(after, name)} |")
    return "\n".join(lines + other)


def prune_command(args: PruneArgs) -> str:
    """`swcm vocab prune`: the pruned model and tokenizer in args.out; the before / after table."""
    return report_table(prune_vocab(args.model, args.corpus, args.out, args.min_count, args.fields))


def extend_command(args: ExtendArgs) -> str:
    """`swcm vocab extend`: the extended model and tokenizer in args.out; the before / after table."""
    report = extend_vocab(args.model, args.corpus, args.lang, args.size, args.out, args.heldout_fraction, args.fields)
    return report_table(report)
