"""The model card (README.md) written beside every model swcm saves: XLM-SWCM models (`save_pretrained`: build,
pretrain, finetune, quickstart) and encoders (adapt, vocab prune / extend).

It says what the model was built from, its layout and initialisation, how it was trained (data, steps, precision)
and, once `swcm evaluate` has scored it, its metrics, under the Hugging Face metadata header (languages, license,
base_model). The card's inputs are kept in `swcm_card.json`, so evaluation can add its rows later and an encoder's
provenance carries on to the models built from it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .choices import PACKAGED_PREFIX
from .folders import write_atomically
from .languages import LANGUAGE_NAMES

CARD_DATA = "swcm_card.json"
"""The card's inputs, beside README.md."""
HUB_IDS = {"multilingual-e5-small": ("intfloat/multilingual-e5-small", "mit")}
"""Packaged encoders: the hub model they are, and its license (swcm.packaged ships the weights)."""


def provenance(encoder: str | os.PathLike) -> dict:
    """{"base_model": hub id or None, "license": id or None, "source": as named} of the encoder a model starts
    from: a packaged encoder's hub original, a folder's own card (a pruned or adapted encoder), or a hub id."""
    name = str(encoder)
    if name.startswith(PACKAGED_PREFIX):
        hub_id, license_id = HUB_IDS.get(name[len(PACKAGED_PREFIX) :], (None, None))
        return {"base_model": hub_id, "license": license_id, "source": name}
    card = Path(name) / CARD_DATA
    if card.is_file():
        data = json.loads(card.read_text(encoding="utf-8"))
        return {"base_model": data.get("base_model"), "license": data.get("license"), "source": name}
    looks_like_hub_id = not Path(name).exists() and name.count("/") == 1 and not name.startswith((".", "/", "~"))
    return {"base_model": name if looks_like_hub_id else None, "license": None, "source": name}


def _header(data: dict) -> list[str]:
    langs = data.get("languages") or []
    lines = ["---", f"language: [{', '.join(langs)}]" if langs else "language: []"]
    lines.append(f"license: {data.get('license') or 'other'}")
    lines.append("library_name: transformers")
    lines.append(f"pipeline_tag: {'text2text-generation' if data['kind'] == 'xlm-swcm' else 'fill-mask'}")
    if data.get("base_model"):
        lines.append(f"base_model: {data['base_model']}")
    lines += ["tags: [swcm, xlm-swcm, low-resource-languages]", "---", ""]
    return lines


def render(data: dict) -> str:
    """README.md from the card's inputs."""
    from . import __version__

    lines = _header(data)
    names = ", ".join(f"{LANGUAGE_NAMES.get(c, c)} ({c})" for c in data.get("languages") or [])
    if data["kind"] == "xlm-swcm":
        lines += [
            "# XLM-SWCM text generator",
            "",
            f"An encoder-decoder for {names}, made with swcm {__version__} after XLM-SWCM "
            "(Su et al., ACL 2025): the decoder reuses the pretrained encoder's weights.",
        ]
    else:
        lines += ["# Encoder for XLM-SWCM", "", f"A masked-LM encoder for {names}, made with swcm {__version__}."]
    lines += ["", "## Model", "", f"- **Built from:** `{data.get('source')}`" + _base(data)]
    lines += [f"- **{key}:** {value}" for key, value in data.get("model", {}).items()]
    lines += ["", "## Training", ""]
    stages = data.get("training") or []
    for number, stage in enumerate(stages, 1):
        lines += [f"{number}. **{stage.get('stage', 'training')}**"]
        lines += [f"   - {key}: {value}" for key, value in stage.items() if key != "stage"]
    if not stages:
        lines.append("Not trained yet: the starting point built from the encoder.")
    lines += ["", "## Evaluation", ""]
    rows = data.get("evaluation") or []
    if rows:
        lines += [
            "| task | language | data | examples | chrF++ | ROUGE-L F / P / R | off-target % |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            rouge = f"{r.get('rougeL_f', 0):.1f} / {r.get('rougeL_p', 0):.1f} / {r.get('rougeL_r', 0):.1f}"
            split = r.get("split", "all")
            where = Path(r.get("file") or "?").name + ("" if split == "all" else f" ({split} side)")
            lines.append(
                f"| {r.get('task')} | {r.get('lang')} | {where} | {r.get('n')} | {r.get('chrf++', 0):.1f} | {rouge} | "
                f"{r.get('off_target', 0):.0f} |"
            )
        reports = list(dict.fromkeys(r.get("report") or data.get("evaluation_source") or "?" for r in rows))
        lines += ["", "From `swcm evaluate`: " + ", ".join(f"`{report}`" for report in reports) + "."]
    else:
        lines.append("Not evaluated yet (`swcm evaluate --model THIS_FOLDER ...` adds its scores here).")
    if data["kind"] == "xlm-swcm":
        tag = (data.get("languages") or ["bo"])[0]
        lines += [
            "",
            "## Use",
            "",
            "```python",
            "from transformers import AutoTokenizer",
            "",
            "from swcm import SWCMForConditionalGeneration",
            "",
            'model = SWCMForConditionalGeneration.from_pretrained("THIS_FOLDER")',
            'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")',
            'batch = tokenizer(["中文新闻标题"], return_tensors="pt")',
            f'print(tokenizer.batch_decode(model.generate(**batch, tgt_lang="{tag}"), skip_special_tokens=True))',
            "```",
        ]
    return "\n".join(lines) + "\n"


def _base(data: dict) -> str:
    return (
        f" (based on [{data['base_model']}](https://huggingface.co/{data['base_model']}))"
        if data.get("base_model")
        else ""
    )


def write_card(folder: str | os.PathLike, data: dict) -> None:
    """README.md and swcm_card.json in `folder`, both written atomically."""
    folder = Path(folder)
    write_atomically(folder / CARD_DATA, json.dumps(data, ensure_ascii=False, indent=1))
    write_atomically(folder / "README.md", render(data))


def card_data(folder: str | os.PathLike | None) -> dict | None:
    """The card inputs saved in `folder`, if swcm saved a model there."""
    path = Path(folder) / CARD_DATA if folder else None
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None


def _stages(previous: dict | None, stage: dict | None) -> list[dict]:
    """The training history: the stages of the model this one was loaded from, then this one's."""
    return [*((previous or {}).get("training") or []), *([stage] if stage else [])]


def swcm_card_data(config, stage: dict | None = None) -> dict:
    """The card's inputs for an XLM-SWCM model: its config says what it is built from and how; the folder it was
    loaded from (config._name_or_path) holds its earlier training stages. Evaluation rows start empty: the weights
    may have changed."""
    from .configuration_swcm import layout_string

    encoder = config.encoder
    gates = "none (the paper's init)" if config.decoder_gate_init is None else f"{config.decoder_gate_init}"
    return {
        "kind": "xlm-swcm",
        "base_model": config.base_model,
        "license": config.base_model_license,
        "source": config.built_from or "unknown",
        "languages": list(config.lang_tags or []),
        "model": {
            "encoder": f"{encoder.model_type}, {encoder.num_hidden_layers} layers, hidden {encoder.hidden_size}",
            "decoder layout": f"{layout_string(config.decoder_layer_types)} (C: custom, N: normal)",
            "initialisation": f"decoder_init={config.decoder_init}, normal_init={config.normal_init}, "
            f"sublayer gates {gates}, lm_head_init={config.lm_head_init}"
            + (", converted release weights" if config.release_compat else ""),
            "vocabulary": f"{config.vocab_size:,} pieces; language tags "
            + " ".join(f"<{c}>" for c in config.lang_tag_ids),
        },
        "training": _stages(card_data(getattr(config, "_name_or_path", None)), stage),
    }


def encoder_card_data(source: str | os.PathLike, config, languages, stage: dict | None = None) -> dict:
    """The card's inputs for an encoder swcm wrote (pruned, extended or adapted from `source`)."""
    layers = getattr(config, "num_hidden_layers", "?")
    return {
        "kind": "encoder",
        **provenance(source),
        "languages": list(languages),
        "model": {
            "encoder": f"{config.model_type}, {layers} layers, hidden {getattr(config, 'hidden_size', '?')}",
            "vocabulary": f"{config.vocab_size:,} pieces",
        },
        "training": _stages(card_data(source), stage),
    }


def add_evaluation(folder: str | os.PathLike, rows: list[dict], report: str | os.PathLike) -> bool:
    """Put `swcm evaluate`'s rows into the card of a model folder swcm saved; False where there is none to update
    (a hub id, or a folder from elsewhere)."""
    path = Path(folder) / CARD_DATA
    if not path.is_file() or not os.access(folder, os.W_OK):
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [{**r, "report": str(report)} for r in rows]
    new = {_evaluation_key(r) for r in rows}
    earlier = [r for r in data.get("evaluation") or [] if _evaluation_key(r) not in new]
    data["evaluation"] = earlier + rows
    data.pop("evaluation_source", None)  # (cards before each row named its own report)
    write_card(folder, data)
    return True


def _evaluation_key(row: dict) -> tuple:
    """What a score is of: a new evaluation replaces an earlier row only for the same task, language, data file and
    split; scores of other files stay beside it."""
    return row.get("task"), row.get("lang"), row.get("file"), row.get("split", "all")
