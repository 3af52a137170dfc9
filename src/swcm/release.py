"""Convert the authors' released XLM-SWCM checkpoint (`xlm-swcm.bin`, a torch state_dict of their `Seq2SeqModel`)
into an `SWCMForConditionalGeneration` with `release_compat=True`, by an explicit key map.

The file is read with `torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary objects.
Release layout: `encoder.*` (XLMRobertaModel), `embed_layer.*` and `decoder.embed_layer.*` (duplicates of the
encoder's embeddings), `decoder.layers.{j}.*` (custom: self_attention / cross_attention as torch
nn.MultiheadAttention with Q, K, V stacked in `in_proj_*`, ffn1.{0,2}, ffn2.{0,2}, norm1..norm4; normal:
self_attention, cross_attention, ffn.{0,2}, norm1, norm2) and `decoder.last_linear` (untied LM head).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .configuration_swcm import CUSTOM, NORMAL, SWCMConfig, layout_string
from .encoders import load_encoder_config, load_tokenizer
from .errors import CheckpointError
from .languages import LANGS, lang_tag
from .modeling_swcm import SWCMForConditionalGeneration
from .paths import check_input_file
from .tokenization import end_token_id, start_token_id

if TYPE_CHECKING:
    from .arguments import ConvertReleaseArgs

# Release module -> our module, per layer kind (norm names by position: pre-LN before each sublayer).
RELEASE_LAYER_MODULES: dict[str, dict[str, str]] = {
    CUSTOM: {
        "self_attention.out_proj": "self_attn.out_proj",
        "cross_attention.out_proj": "cross_attn.out_proj",
        "ffn1.0": "ffn1.fc1",
        "ffn1.2": "ffn1.fc2",
        "ffn2.0": "ffn2.fc1",
        "ffn2.2": "ffn2.fc2",
        "norm1": "self_attn_layer_norm",
        "norm2": "ffn1_layer_norm",
        "norm3": "cross_attn_layer_norm",
        "norm4": "ffn2_layer_norm",
    },
    NORMAL: {
        "self_attention.out_proj": "self_attn.out_proj",
        "cross_attention.out_proj": "cross_attn.out_proj",
        "ffn.0": "ffn.fc1",
        "ffn.2": "ffn.fc2",
        "norm1": "self_attn_layer_norm",  # used before both attentions in the release
        "norm2": "ffn_layer_norm",
    },
}
# nn.MultiheadAttention stacks [Q; K; V] in in_proj_weight / in_proj_bias.
IN_PROJ = {"self_attention": "self_attn", "cross_attention": "cross_attn"}
QKV = ("q_proj", "k_proj", "v_proj")
EMBEDDING_COPIES = ("embed_layer.", "decoder.embed_layer.")
UNUSED_PREFIXES = ("encoder.pooler.",)  # XLM-R's pooler: not used for generation
BUFFERS = ("encoder.embeddings.position_ids", "encoder.embeddings.token_type_ids")


class ReleaseError(CheckpointError):
    """A release checkpoint that cannot be converted, with the reason."""


def _unpickler_reason(err: Exception) -> str:
    """What torch's weights-only unpickler refused, without torch's advice to load with weights_only=False."""
    for line in str(err).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". Please use")[0].strip()
    return "unreadable as a tensor checkpoint"


def _refuse_compressed_entries(path: Path) -> None:
    """torch.save stores a zip checkpoint's entries uncompressed; a compressed one can unpack to far more memory
    than the file's size before any shape is checked (a 1 MB file held a 512 MB tensor), so it is refused."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # the legacy format: plain pickle, read by weights_only's unpickler
    try:
        with zipfile.ZipFile(path) as archive:
            packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ReleaseError(f"{path}: a damaged zip checkpoint ({err})") from None
    if packed:
        raise ReleaseError(
            f"{path}: {len(packed)} compressed entries (first: {packed[0]}); torch.save never compresses, so this "
            "file was not written by it and is refused"
        )


REQUIRED_KEYS = ("encoder.embeddings.word_embeddings.weight", "decoder.last_linear.weight")
"""Keys the conversion reads before the full key map checks everything."""


def load_release_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: unwrapped from {"model_state_dict" | "state_dict": ...}, DataParallel's `module.`
    prefix removed. Refuses any pickled object that is not a tensor or a plain container."""
    path = Path(path)
    check_input_file(path, "--checkpoint")
    _refuse_compressed_entries(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except EOFError:
        raise ReleaseError(f"{path}: empty or cut short, not a checkpoint") from None
    except (pickle.UnpicklingError, RuntimeError) as err:
        if not _unpickler_reason(err):
            raise ReleaseError(f"{path}: not a torch checkpoint ({' '.join(str(err).split())[:120]})") from None
        raise ReleaseError(
            f"{path}: refused, not a plain tensor checkpoint ({_unpickler_reason(err)}); only tensors and plain "
            "containers are read, never other pickled objects"
        ) from None
    except Exception as err:  # torch.load on bytes that are no checkpoint fails in many ways (IndexError, ...)
        raise ReleaseError(f"{path}: not a torch checkpoint ({type(err).__name__}: {err})") from None
    for wrapper in ("model_state_dict", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not obj:
        raise ReleaseError(f"{path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ReleaseError(f"{path}: entries that are not tensors: {bad[:5]}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def release_layer_types(state: dict[str, torch.Tensor]) -> list[str]:
    """Layer kinds read off the checkpoint: layers with `ffn1` are custom, with `ffn` normal."""
    numbers = {k.split(".")[2] for k in state if k.startswith("decoder.layers.")}
    bad = sorted(n for n in numbers if not n.isdigit())
    if bad:
        raise ReleaseError(f"decoder layer keys with a layer index that is not a number: {bad[:5]}")
    indices = sorted(int(n) for n in numbers)
    if indices != list(range(len(indices))) or not indices:
        raise ReleaseError(f"decoder layers are not numbered 0..n-1: {indices}")
    kinds = []
    for j in indices:
        if f"decoder.layers.{j}.ffn1.0.weight" in state:
            kinds.append(CUSTOM)
        elif f"decoder.layers.{j}.ffn.0.weight" in state:
            kinds.append(NORMAL)
        else:
            raise ReleaseError(f"decoder layer {j} has neither ffn1 (custom) nor ffn (normal)")
    return kinds


@dataclass
class ReleaseConversion:
    state: dict[str, torch.Tensor]
    """Our parameter name -> tensor."""
    sources: dict[str, str]
    """Our parameter name -> release key (with a [q|k|v] slice note for in_proj)."""
    dropped: list[str] = field(default_factory=list)
    """Release keys deliberately not used (checked duplicates, unused pooler, buffers)."""
    unmapped: list[str] = field(default_factory=list)
    """Release keys the map does not know: must be empty."""


def map_release_state(state: dict[str, torch.Tensor], layer_types: list[str]) -> ReleaseConversion:
    out = ReleaseConversion(state={}, sources={})
    used: set[str] = set()

    def take(release_key: str, ours: str, tensor: torch.Tensor | None = None, note: str = "") -> None:
        out.state[ours] = (state[release_key] if tensor is None else tensor).clone()
        out.sources[ours] = release_key + note
        used.add(release_key)

    for key in state:
        if key.startswith("encoder.") and not key.startswith(UNUSED_PREFIXES) and key not in BUFFERS:
            take(key, "model." + key)
        elif key == "decoder.last_linear.weight" or key == "decoder.last_linear.bias":
            take(key, "lm_head." + key.rsplit(".", 1)[1])
    for j, kind in enumerate(layer_types):
        prefix, ours = f"decoder.layers.{j}.", f"model.decoder.layers.{j}."
        for release_module, our_module in RELEASE_LAYER_MODULES[kind].items():
            for leaf in ("weight", "bias"):
                key = f"{prefix}{release_module}.{leaf}"
                if key not in state:
                    raise ReleaseError(f"checkpoint lacks {key} ({kind} layer {j})")
                take(key, f"{ours}{our_module}.{leaf}")
        for release_attn, our_attn in IN_PROJ.items():
            for leaf in ("weight", "bias"):
                key = f"{prefix}{release_attn}.in_proj_{leaf}"
                if key not in state:
                    raise ReleaseError(f"checkpoint lacks {key} ({kind} layer {j})")
                for name, part, index in zip(QKV, state[key].chunk(3, dim=0), "qkv", strict=True):
                    take(key, f"{ours}{our_attn}.{name}.{leaf}", part, note=f"[{index}]")

    for key in state:
        if key in used:
            continue
        copy = next((p for p in EMBEDDING_COPIES if key.startswith(p)), None)
        if copy is not None:
            original = "encoder.embeddings." + key[len(copy) :]
            if original not in state or not torch.equal(state[original], state[key]):
                raise ReleaseError(f"{key} should duplicate {original} (the shared embeddings) but differs")
            out.dropped.append(key)
        elif key.startswith(UNUSED_PREFIXES) or key in BUFFERS:
            out.dropped.append(key)
        else:
            out.unmapped.append(key)
    return out


def convert_release(checkpoint: str | Path, encoder: str, out_dir: str | Path | None = None):
    """Returns (model, tokenizer, report); writes both to `out_dir` when given. `encoder` supplies the encoder's
    config and tokenizer (hfl/cino-base-v2 for the published weights); all weights come from the checkpoint."""
    state = load_release_state_dict(checkpoint)
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ReleaseError(f"{checkpoint}: not the XLM-SWCM release; it lacks {', '.join(missing)}")
    layer_types = release_layer_types(state)
    conversion = map_release_state(state, layer_types)
    if conversion.unmapped:
        raise ReleaseError(
            f"{len(conversion.unmapped)} checkpoint keys have no place in the model: {conversion.unmapped}"
        )
    encoder_config = load_encoder_config(encoder)
    tokenizer = load_tokenizer(encoder)
    vocab_size = state["decoder.last_linear.weight"].shape[0]
    words = state["encoder.embeddings.word_embeddings.weight"].shape[0]
    if words != vocab_size:
        raise ReleaseError(f"embeddings have {words} rows but the LM head {vocab_size}")
    encoder_config.vocab_size = vocab_size
    vocab = tokenizer.get_vocab()
    tags = {code: vocab[lang_tag(code)] for code in LANGS if lang_tag(code) in vocab}
    config = SWCMConfig(
        encoder=encoder_config.to_dict(),
        decoder_layer_types=layer_types,
        decoder_layer_norm="pre",
        release_compat=True,
        decoder_layer_norm_eps=1e-5,  # torch.nn.LayerNorm's default, which the release's decoder layers use
        vocab_size=vocab_size,
        lang_tags=list(tags),
        lang_tag_ids=tags,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=start_token_id(tokenizer),
        eos_token_id=end_token_id(tokenizer),
        decoder_start_token_id=start_token_id(tokenizer),
        tie_word_embeddings=False,
    )
    model = SWCMForConditionalGeneration(config)  # on CPU: the embeddings' non-persistent buffers must be real
    expected = set(model.state_dict())
    missing, extra = sorted(expected - set(conversion.state)), sorted(set(conversion.state) - expected)
    if missing or extra:
        raise ReleaseError(f"key map does not fit the model: missing {missing[:8]}, unexpected {extra[:8]}")
    for name, tensor in conversion.state.items():
        if tuple(model.state_dict()[name].shape) != tuple(tensor.shape):
            shape = tuple(model.state_dict()[name].shape)
            raise ReleaseError(f"{conversion.sources[name]} has shape {tuple(tensor.shape)}, {name} needs {shape}")
    model.load_state_dict(conversion.state, strict=True, assign=True)
    model.eval()
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        setattr(model.generation_config, name, getattr(config, name))
    report = {
        "checkpoint_keys": len(state),
        "model_tensors": len(conversion.state),
        "layout": layout_string(layer_types),
        "dropped": conversion.dropped,
        "unmapped": conversion.unmapped,
        "language_tags": tags,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    return model, tokenizer, report


def convert_release_command(args: ConvertReleaseArgs) -> str:
    """`swcm convert-release`: the converted model in args.out; where it went and what happened to every checkpoint
    key."""
    _, _, report = convert_release(args.checkpoint, args.encoder, args.out)
    return "\n".join(
        [
            f"converted {args.checkpoint} -> {args.out} (release_compat=True)",
            f"decoder layout: {report['layout']}",
            f"checkpoint keys: {report['checkpoint_keys']}; model tensors: {report['model_tensors']}",
            f"dropped (checked duplicates, unused pooler, buffers): {len(report['dropped'])}",
            f"unmapped keys: {len(report['unmapped'])}",
        ]
    )
