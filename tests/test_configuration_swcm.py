import pytest
import torch
from transformers import XLMRobertaConfig

from swcm import SWCMConfig, SWCMForConditionalGeneration, decoder_layer_types
from swcm.configuration_swcm import layout_string


def test_paper_layout_for_12_layer_encoder():
    assert layout_string(decoder_layer_types(12, 3)) == "C C C N C C C N C C C N C C C"


@pytest.mark.parametrize(
    ("every", "expected_normals"),
    [(1, 11), (2, 5), (3, 3), (4, 2), (5, 2), (6, 1), (0, 0), (12, 0)],
)
def test_insertion_frequency_never_ends_with_a_normal_layer(every, expected_normals):
    types = decoder_layer_types(12, every)
    assert types.count("custom") == 12
    assert types.count("normal") == expected_normals
    assert types[-1] == "custom"


def test_bad_layouts_fail_with_one_line():
    with pytest.raises(ValueError, match="normal_every"):
        decoder_layer_types(12, -1)
    enc = XLMRobertaConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2).to_dict()
    with pytest.raises(ValueError, match="decoder_layer_types"):
        SWCMConfig(encoder=enc, decoder_layer_types=["custom", "mystery"])
    with pytest.raises(ValueError, match="decoder_init"):
        SWCMConfig(encoder=enc, decoder_init="copied")


def test_config_round_trip(tmp_path):
    enc = XLMRobertaConfig(num_hidden_layers=6, hidden_size=16, num_attention_heads=2).to_dict()
    config = SWCMConfig(encoder=enc, lang_tags=["bo"], lang_tag_ids={"bo": 7}, decoder_layer_norm="pre")
    config.save_pretrained(tmp_path)
    loaded = SWCMConfig.from_pretrained(tmp_path)
    assert loaded.decoder_layer_types == decoder_layer_types(6, 3)
    assert loaded.lang_tag_ids == {"bo": 7}
    assert loaded.decoder_layer_norm == "pre"
    assert loaded.encoder.model_type == "xlm-roberta"
    assert loaded.num_hidden_layers == len(loaded.decoder_layer_types)


def test_parameter_count_of_the_papers_configuration():
    """CINO-base-v2 shape: vocab 135,135 + 5 tags, 768 hidden, 12 layers, 514 positions; 15-layer decoder, untied head.

    The model card of KEVVVV/xlm-swcm says 492M. We count 491,625,956: encoder 189.2M (embeddings 104.2M + 12 layers
    of 7.09M), decoder 198.5M (12 custom layers of 14.17M + 3 normal layers of 9.45M), LM head 103.9M (weight + bias).
    The authors' release also keeps XLM-R's unused pooler (768 x 768 + 768 = 590,592), which gives 492,216,548;
    both round to 492M. Built on the meta device: no weights are allocated.
    """
    encoder = XLMRobertaConfig(
        vocab_size=135_135,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
    )
    config = SWCMConfig(encoder=encoder.to_dict(), vocab_size=135_140)
    with torch.device("meta"):
        model = SWCMForConditionalGeneration(config)
    counts = model.parameter_counts()
    assert counts == {"encoder": 189_239_040, "decoder": 198_464_256, "lm_head": 103_922_660, "total": 491_625_956}
    pooler = 768 * 768 + 768
    assert round(counts["total"] / 1e6) == 492
    assert round((counts["total"] + pooler) / 1e6) == 492
    # Hand count of the same numbers, so the expected values above are derived rather than copied.
    attention, ffn, norm = 4 * (768 * 768 + 768), 2 * 768 * 3072 + 3072 + 768, 2 * 768
    embeddings = 135_140 * 768 + 514 * 768 + 768 + norm
    assert counts["encoder"] == embeddings + 12 * (attention + ffn + 2 * norm)
    assert counts["decoder"] == 12 * (2 * attention + 2 * ffn + 4 * norm) + 3 * (2 * attention + ffn + 3 * norm)
