"""swcm: XLM-SWCM, a text generator for extremely low-resource languages from a pretrained multilingual encoder.

`import swcm` is light. The model classes load torch and transformers on first use (`from swcm import
SWCMForConditionalGeneration`), and loading them registers XLM-SWCM with transformers' Auto classes, so that
`AutoModelForSeq2SeqLM.from_pretrained` opens saved models: the command line starts (and `swcm --help` answers)
without loading either.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "SWCMConfig": "configuration_swcm",
    "decoder_layer_types": "configuration_swcm",
    "SWCMForConditionalGeneration": "modeling_swcm",
    "SWCMModel": "modeling_swcm",
    "SWCMPreTrainedModel": "modeling_swcm",
    "load_model_folder": "modeling_swcm",
    "from_encoder": "build",
    "LANGS": "languages",
    "lang_tag": "languages",
    "add_lang_tags": "tokenization",
    "encode_targets": "tokenization",
    "copy_previous_plan": "weight_sharing",
    "weight_sharing_plan": "weight_sharing",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
