"""Which pretrained encoders swcm can build on, and how to load one (config, weights, tokenizer) with checks."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoTokenizer,
    BertModel,
    CamembertModel,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaModel,
    XLMRobertaModel,
)
from transformers.utils import logging as hf_logging

from .choices import PACKAGED_PREFIX
from .errors import CheckpointError
from .folders import TOKENIZER_FILES
from .packaged import materialize

# Encoders whose layers have the BERT layout that the weight map expects (attention.self.{query,key,value},
# attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}), post-LN.
# CINO, multilingual-e5 and XLM-R are "xlm-roberta"; mBERT and LaBSE are "bert".
ENCODER_CLASSES: dict[str, type[PreTrainedModel]] = {
    "bert": BertModel,
    "xlm-roberta": XLMRobertaModel,
    "roberta": RobertaModel,
    "camembert": CamembertModel,
}
# RoBERTa-style embeddings number positions from padding_idx + 1; BERT from 0.
_PADDING_OFFSET_POSITIONS = {"xlm-roberta", "roberta", "camembert"}
# Checkpoint keys that an encoder-only model legitimately leaves behind (pooler, MLM / NSP heads).
IGNORABLE_ENCODER_KEY_PREFIXES = ("pooler.", "lm_head.", "cls.")


class EncoderError(CheckpointError):
    """An encoder that cannot be used: missing, unreadable or of an unsupported architecture."""


@contextmanager
def readable_weights(source: str | os.PathLike):
    """Turn safetensors' error on a truncated or corrupt weights file into one line naming the folder."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as err:
        raise EncoderError(
            f"{source}: the weights file (model.safetensors) is damaged or incomplete ({err}); copy or save it again"
        ) from None


def supported_encoder_types() -> str:
    return ", ".join(sorted(ENCODER_CLASSES))


def first_decoder_position_id(encoder_config: PreTrainedConfig) -> int:
    """Position id of the first decoder token, as the encoder's own embeddings number positions."""
    if encoder_config.model_type in _PADDING_OFFSET_POSITIONS:
        return encoder_config.pad_token_id + 1
    return 0


def encoder_class(encoder_config: PreTrainedConfig) -> type[PreTrainedModel]:
    try:
        return ENCODER_CLASSES[encoder_config.model_type]
    except KeyError:
        raise EncoderError(
            f"encoder model_type {encoder_config.model_type!r} is not supported; "
            f"supported: {supported_encoder_types()} (XLM-R / BERT family, e.g. CINO, mBERT, LaBSE, multilingual-e5)"
        ) from None


def resolve_encoder(name_or_path: str | os.PathLike) -> str:
    """Return a loadable local path or hub id; a missing local path is an error naming it.

    `packaged:NAME` is an encoder shipped inside a PyPI package (see swcm.packaged), converted on first use.
    """
    name = str(name_or_path)
    if name.startswith(PACKAGED_PREFIX):
        try:
            return str(materialize(name[len(PACKAGED_PREFIX) :]))
        except (KeyError, FileNotFoundError) as err:
            raise EncoderError(str(err).strip("'\"")) from None
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise EncoderError(f"encoder path {name!r} has no config.json (expected a saved transformers model)")
        return str(path)
    # A hub id is "name" or "owner/name"; anything else (absolute, relative with ./, deeper) is a path.
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or not name:
        raise EncoderError(f"encoder path {name!r} does not exist")
    return name


CONFIG_SIZES = (
    "hidden_size",
    "num_attention_heads",
    "num_hidden_layers",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)
"""An encoder config's sizes, checked before any weights are read."""


def load_encoder_config(name_or_path: str | os.PathLike) -> PreTrainedConfig:
    source = resolve_encoder(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EncoderError(f"cannot load encoder config {source!r}: {first}") from None
    encoder_class(config)  # fail early on an unsupported architecture
    bad = [f"{name} {getattr(config, name, None)!r}" for name in CONFIG_SIZES if not _positive(config, name)]
    if bad:
        raise EncoderError(f"encoder config {source}: sizes must be whole numbers > 0, got {', '.join(bad)}")
    if config.hidden_size % config.num_attention_heads:
        raise EncoderError(
            f"encoder config {source}: hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
            f"{config.num_attention_heads}"
        )
    return config


def _positive(config, name: str) -> bool:
    value = getattr(config, name, None)
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def load_encoder(name_or_path: str | os.PathLike) -> PreTrainedModel:
    """Load pretrained encoder weights, failing on any missing key and on unexpected keys other than heads."""
    config = load_encoder_config(name_or_path)
    cls = encoder_class(config)
    # transformers' own load report would list the pooler as unexpected; the check below is ours, and stricter.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with readable_weights(name_or_path):
            model, info = cls.from_pretrained(
                resolve_encoder(name_or_path), add_pooling_layer=False, output_loading_info=True
            )
    except (RuntimeError, ValueError):  # transformers' report of which tensors differ is silenced above
        raise EncoderError(
            f"encoder {name_or_path!r}: its weights do not fit its config.json (a size there, such as vocab_size or "
            "max_position_embeddings, differs from the weights')"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    unexpected = [k for k in info["unexpected_keys"] if not k.startswith(IGNORABLE_ENCODER_KEY_PREFIXES)]
    problems = {"missing": list(info["missing_keys"]), "unexpected": unexpected, "mismatched": info["mismatched_keys"]}
    if any(problems.values()):
        raise EncoderError(f"encoder {name_or_path!r} weights do not match {cls.__name__}: {problems}")
    return model


# what a tokenizer is saved as (fast, sentencepiece, WordPiece / BPE vocabularies)


def load_tokenizer(name_or_path: str | os.PathLike) -> PreTrainedTokenizerBase:
    source = resolve_encoder(name_or_path)
    folder = Path(source)
    if folder.is_dir() and not any((folder / name).is_file() for name in TOKENIZER_FILES):
        # transformers would fall back to a tokenizer of a handful of special tokens: every text becomes <unk>
        raise EncoderError(f"{source}: no tokenizer files (one of {', '.join(TOKENIZER_FILES)}) in the encoder folder")
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EncoderError(f"cannot load the tokenizer of encoder {source!r}: {first}") from None


# The masked-LM head of each family, as the SWCM parameters it initialises (`lm_head_init="mlm-head"`):
# SWCM name -> name in the transformers ForMaskedLM model's state dict.
MLM_HEAD_MAPS: dict[str, dict[str, str]] = {
    "lm_head": {  # XLM-R, RoBERTa, CamemBERT
        "head_transform.dense.weight": "lm_head.dense.weight",
        "head_transform.dense.bias": "lm_head.dense.bias",
        "head_transform.layer_norm.weight": "lm_head.layer_norm.weight",
        "head_transform.layer_norm.bias": "lm_head.layer_norm.bias",
        "lm_head.weight": "lm_head.decoder.weight",
        "lm_head.bias": "lm_head.bias",
    },
    "cls": {  # BERT, mBERT, LaBSE, multilingual-e5 after swcm adapt
        "head_transform.dense.weight": "cls.predictions.transform.dense.weight",
        "head_transform.dense.bias": "cls.predictions.transform.dense.bias",
        "head_transform.layer_norm.weight": "cls.predictions.transform.LayerNorm.weight",
        "head_transform.layer_norm.bias": "cls.predictions.transform.LayerNorm.bias",
        "lm_head.weight": "cls.predictions.decoder.weight",
        "lm_head.bias": "cls.predictions.bias",
    },
}


MLM_HEAD_PREFIXES = ("lm_head.", "cls.")


def load_masked_lm(name_or_path: str | os.PathLike) -> tuple[PreTrainedModel, bool]:
    """(the encoder as a transformers masked-LM model, whether the checkpoint had its own MLM head). A head the
    checkpoint lacks is new, its decoder tied to the word embeddings; any other missing weight is an error."""
    from transformers import AutoModelForMaskedLM

    load_encoder_config(name_or_path)  # supported architecture, readable config
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with readable_weights(name_or_path):
            mlm, info = AutoModelForMaskedLM.from_pretrained(resolve_encoder(name_or_path), output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    missing_body = [k for k in info["missing_keys"] if not k.startswith(MLM_HEAD_PREFIXES)]
    if missing_body:
        raise EncoderError(f"encoder {name_or_path!r}: weights missing from the checkpoint: {missing_body[:5]}")
    has_head = not any(k.startswith(MLM_HEAD_PREFIXES) for k in info["missing_keys"])
    if not has_head:
        mlm.tie_weights()
    return mlm, has_head


def mlm_head_state(mlm: PreTrainedModel, has_head: bool, name_or_path: str | os.PathLike) -> dict:
    """A loaded masked-LM model's head (load_masked_lm) as SWCM parameters (see MLM_HEAD_MAPS); an error if the
    checkpoint had none."""
    family = next((f for f in MLM_HEAD_MAPS if hasattr(mlm, f)), None)
    if family is None or not has_head:
        raise EncoderError(
            f"encoder {name_or_path!r} has no masked-LM head to start the LM head from; "
            "train one with `swcm adapt`, or use lm_head_init='embeddings'"
        )
    state = mlm.state_dict()
    absent = [src for src in MLM_HEAD_MAPS[family].values() if src not in state]
    if absent:
        raise EncoderError(f"encoder {name_or_path!r}: masked-LM head tensors {absent} not found")
    return {dst: state[src] for dst, src in MLM_HEAD_MAPS[family].items()}


def keep_encoder_layers(name_or_path: str | os.PathLike, layers: int, out_dir: str | os.PathLike) -> Path:
    """Save the encoder with only its first `layers` layers (and its tokenizer) to `out_dir`: a smaller, faster
    model whose layers are still the pretrained ones (e.g. for CPU runs of a few minutes)."""
    model = load_encoder(name_or_path)
    total = model.config.num_hidden_layers
    if not 1 <= layers <= total:
        raise EncoderError(f"cannot keep {layers} layers of an encoder with {total}")
    model.encoder.layer = model.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    out = Path(out_dir)
    model.save_pretrained(out)
    load_tokenizer(name_or_path).save_pretrained(out)
    return out
