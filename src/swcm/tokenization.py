"""Language tags (`<bo>`, `<ug>`, ...) in the tokenizer and the embeddings, and target sequences that carry them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import AddedToken
from torch import nn
from transformers import PreTrainedTokenizerBase

from .errors import CheckpointError, RecipeError
from .languages import LANGUAGE_NAMES, lang_code, lang_tag


def start_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """`<s>` for XLM-R style vocabularies, `[CLS]` for BERT style ones."""
    token_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    if token_id is None:
        raise CheckpointError(
            f"tokenizer {type(tokenizer).__name__} has neither a cls nor a bos token to start sequences"
        )
    return token_id


def end_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """`</s>` for XLM-R style vocabularies, `[SEP]` for BERT style ones."""
    token_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if token_id is None:
        raise CheckpointError(
            f"tokenizer {type(tokenizer).__name__} has neither a sep nor an eos token to end sequences"
        )
    return token_id


def add_lang_tags(tokenizer: PreTrainedTokenizerBase, codes: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Add `<code>` special tokens; returns (id of every tag by code, codes whose tag is new to the vocabulary)."""
    codes = [lang_code(c) for c in codes]
    if len(set(codes)) != len(codes):
        raise RecipeError(f"duplicate language codes in {codes}")
    vocab = tokenizer.get_vocab()
    new = [c for c in codes if lang_tag(c) not in vocab]
    tokenizer.add_tokens(
        [AddedToken(lang_tag(c), special=True, normalized=False, single_word=False) for c in new],
        special_tokens=True,
    )
    ids = {c: tokenizer.convert_tokens_to_ids(lang_tag(c)) for c in codes}
    return ids, new


@torch.no_grad()
def init_lang_tag_embeddings(
    embeddings: nn.Embedding, tokenizer: PreTrainedTokenizerBase, tag_ids: dict[str, int], codes: Sequence[str]
) -> None:
    """Set each new tag's row to the mean embedding of its language name's pieces (the code itself if unnamed)."""
    unk = tokenizer.unk_token_id
    for code in codes:
        pieces = tokenizer(LANGUAGE_NAMES.get(code, code), add_special_tokens=False)["input_ids"]
        pieces = [p for p in pieces if p != unk and p < embeddings.num_embeddings and p not in tag_ids.values()]
        rows = embeddings.weight[pieces] if pieces else embeddings.weight
        embeddings.weight[tag_ids[code]] = rows.mean(dim=0)


def encode_targets(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    tgt_lang: str,
    max_length: int | None = None,
) -> torch.Tensor:
    """Labels `<tgt-lang> y1 .. yn </s>`, padded with -100. The model prepends the start token `<s>` itself."""
    tag_id = tokenizer.convert_tokens_to_ids(lang_tag(tgt_lang))
    if tag_id is None or tag_id == tokenizer.unk_token_id:
        raise CheckpointError(f"tokenizer has no language tag {lang_tag(tgt_lang)}; add it with add_lang_tags")
    eos = end_token_id(tokenizer)
    rows = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        body = ids if max_length is None else ids[: max(0, max_length - 2)]
        rows.append([tag_id, *body, eos])
    width = max(len(r) for r in rows)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        labels[i, : len(row)] = torch.tensor(row)
    return labels
