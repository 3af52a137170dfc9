"""Tiny pretrained-looking encoders saved to local directories (no downloads), shared by the tests."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # any accidental hub access fails at once instead of retrying


from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    GPT2Config,
    GPT2Model,
    XLMRobertaConfig,
    XLMRobertaModel,
    XLMRobertaTokenizer,
)

from swcm import from_encoder

# Characters of the five scripts, so tiny tokenizers cover text in every language the project targets.
CHARS = sorted(
    set("abcdefghijklmnopqrstuvwxyz0123456789.,!?")
    | set("中文你好世界新闻")
    | set("བོད་ཡིགཀཁགང")
    | set("ئۇيغۇرچەتىل")
    | set("қазақтілмонголхэ")
)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _save_trained_looking(model: torch.nn.Module, path: Path, seed: int) -> None:
    """Perturb every tensor (biases and LayerNorms too) so that copied and freshly initialised weights differ."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model.save_pretrained(path)


def save_tiny_xlmr(path: Path, layers: int = 4, hidden: int = 32, seed: int = 0, dropout: float = 0.1) -> Path:
    """An XLM-R style encoder: sentencepiece-unigram pieces, `<s>`=0 `<pad>`=1 `</s>`=2 `<unk>`=3, positions from 2."""
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for c in CHARS:
        vocab += [("▁" + c, -4.0), (c, -5.0)]
    vocab.append(("<mask>", 0.0))
    XLMRobertaTokenizer(vocab=vocab).save_pretrained(path)
    config = XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=66,
        type_vocab_size=1,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(seed)  # the same weights whatever ran before in the session
    _save_trained_looking(XLMRobertaModel(config), path, seed)  # with its pooler, as real checkpoints have
    return path


def save_tiny_bert(path: Path, layers: int = 4, hidden: int = 32, seed: int = 0) -> Path:
    """A BERT style encoder (mBERT / LaBSE layout): WordPiece, `[CLS]` / `[SEP]`, positions from 0."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARS, *("##" + c for c in CHARS)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    torch.manual_seed(seed)  # the same weights whatever ran before in the session
    _save_trained_looking(BertModel(config), path, seed)
    return path


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> Path:
    return save_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_xlmr_12(tmp_path_factory) -> Path:
    """12 layers like CINO-base, to check the paper's 15-layer decoder layout."""
    return save_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr-12"), layers=12, hidden=16)


@pytest.fixture(params=["xlmr", "bert"])
def tiny_encoder(request, tiny_xlmr, tiny_bert) -> Path:
    return {"xlmr": tiny_xlmr, "bert": tiny_bert}[request.param]


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2Model(
        GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=64, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def e5_cache(tmp_path_factory) -> Path:
    """A swcm cache holding the packaged multilingual-e5-small, converted once per test session."""
    return tmp_path_factory.mktemp("swcm-cache")


@pytest.fixture(scope="session")
def e5_dir(e5_cache) -> Path:
    from swcm.packaged import materialize

    return materialize("multilingual-e5-small", cache_dir=e5_cache)


@pytest.fixture(scope="session")
def tiny_model(tiny_xlmr, tmp_path_factory) -> Path:
    """An XLM-SWCM model folder built from the tiny XLM-R (untrained), with its tokenizer."""

    out = tmp_path_factory.mktemp("cli") / "model"
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
