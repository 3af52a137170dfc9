"""swcm: XLM-SWCM, a text generator for extremely low-resource languages from a pretrained multilingual encoder."""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_swcm import SWCMConfig, decoder_layer_types
from .modeling_swcm import SWCMForConditionalGeneration, SWCMModel, SWCMPreTrainedModel
from .tokenization import DEFAULT_LANG_TAGS, add_lang_tags, encode_targets, lang_tag
from .weight_sharing import copy_previous_plan, weight_sharing_plan

__version__ = "0.1.0"

AutoConfig.register(SWCMConfig.model_type, SWCMConfig, exist_ok=True)
AutoModel.register(SWCMConfig, SWCMModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(SWCMConfig, SWCMForConditionalGeneration, exist_ok=True)

__all__ = [
    "DEFAULT_LANG_TAGS",
    "SWCMConfig",
    "SWCMForConditionalGeneration",
    "SWCMModel",
    "SWCMPreTrainedModel",
    "add_lang_tags",
    "copy_previous_plan",
    "decoder_layer_types",
    "encode_targets",
    "lang_tag",
    "weight_sharing_plan",
]
