import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swcm.errors import RecipeError
from swcm.noising import MaskingConfig, NoiseConfig, mask_spans, mask_tokens, noise_document, split_sentences

MASK = 4
# Characters of the five scripts (Tibetan, Arabic for Uyghur, Cyrillic for Kazakh / Mongolian, traditional Mongolian,
# Chinese), their punctuation, and anything else Unicode has.
SCRIPTS = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0F00, max_codepoint=0x0FDA),
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
        st.characters(min_codepoint=0x0400, max_codepoint=0x04FF),
        st.characters(min_codepoint=0x1800, max_codepoint=0x18AF),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.sampled_from(list("。！？.!? \n།؟᠃")),
        st.characters(),
    ),
    max_size=300,
)


def test_mask_ratio_and_span_lengths_over_many_documents():
    rng = np.random.default_rng(0)
    masked_share, spans = [], []
    for _ in range(300):
        ids = list(range(100, 100 + int(rng.integers(40, 200))))
        out = mask_spans(ids, MASK, rng, ratio=0.35, poisson_lambda=3.5)
        kept = [t for t in out if t != MASK]
        masked_share.append(1 - len(kept) / len(ids))
        # span lengths: runs of removed ids between kept ones
        kept_set, run = set(kept), 0
        for t in ids:
            if t in kept_set:
                if run:
                    spans.append(run)
                run = 0
            else:
                run += 1
        if run:
            spans.append(run)
    assert abs(np.mean(masked_share) - 0.35) < 0.02
    assert 2.5 < np.mean(spans) < 5.0  # Poisson(3.5) lengths, cut by the budget, never 0


@settings(max_examples=150, deadline=None)
@given(text=SCRIPTS, seed=st.integers(0, 2**32 - 1))
def test_noise_never_corrupts_specials_and_labels_keep_the_original(text, seed):
    rng = np.random.default_rng(seed)
    sentences = split_sentences(text)

    def visible(s):
        return "".join(c for c in s if not c.isspace())

    assert visible("".join(sentences)) == visible(text), "splitting keeps every visible character, in order"
    # a stand-in tokenizer: one id per character, specials 0..4 never produced by text
    tokenised = [[5 + ord(c) for c in s] for s in sentences]
    config = NoiseConfig(delete_ratio=0.1, replace_ratio=0.1)
    source, labels = noise_document(tokenised, config, rng, MASK, vocab_ids=list(range(5, 500)))
    assert labels == [t for s in tokenised for t in s], "labels are the original tokens, in order"
    assert all(t >= 5 or t == MASK for t in source), "no special token other than <mask> appears"
    original = {t for s in tokenised for t in s}
    assert all(t in original or t == MASK or 5 <= t < 500 for t in source)
    if labels:
        assert len([t for t in source if t != MASK]) <= len(labels)


def test_sentence_split_in_every_script():
    assert split_sentences("第一句。第二句！") == ["第一句。", "第二句！"]
    assert split_sentences("བོད་ཡིག། སློབ་གྲྭ།") == ["བོད་ཡིག།", "སློབ་གྲྭ།"]
    assert split_sentences("بۇ بىر. ئۇ ئىككى؟ ئۈچ") == ["بۇ بىر.", "ئۇ ئىككى؟", "ئۈچ"]
    assert split_sentences("ᠮᠣᠩᠭᠣᠯ᠃ ᠬᠡᠯᠡ") == ["ᠮᠣᠩᠭᠣᠯ᠃", "ᠬᠡᠯᠡ"]


def test_permutation_changes_order_but_not_content():
    rng = np.random.default_rng(1)
    sentences = [[10 + i] * 3 for i in range(8)]
    source, labels = noise_document(sentences, NoiseConfig(mask_ratio=0.0), rng, MASK)
    assert sorted(source) == sorted(labels) and source != labels


def test_bad_rates_are_rejected():
    with pytest.raises(ValueError, match=r"mask_ratio: must be in \[0, 1\), got 1.5"):
        NoiseConfig(mask_ratio=1.5)
    with pytest.raises(ValueError, match="poisson_lambda: must be >= 0, got -1"):
        NoiseConfig(poisson_lambda=-1)


MLM_MASK = 999
MLM_VOCAB = np.arange(100, 200)


def test_mask_tokens_ratio_and_80_10_10():
    rng = np.random.default_rng(0)
    ids = list(range(1000, 1400))
    chosen = masked = random = kept = 0
    for _ in range(50):
        out, labels = mask_tokens(ids, list(range(len(ids))), MaskingConfig(), rng, MLM_MASK, MLM_VOCAB)
        for token, new, label in zip(ids, out, labels, strict=True):
            if label == -100:
                assert new == token, "unchosen tokens are never changed"
                continue
            assert label == token, "the label is the original token"
            chosen += 1
            masked += new == MLM_MASK
            random += 100 <= new < 200
            kept += new == token
    assert chosen == 50 * 60, "15% of 400 units"
    assert abs(masked / chosen - 0.8) < 0.03
    assert abs(random / chosen - 0.1) < 0.02
    assert abs(kept / chosen - 0.1) < 0.02


def test_whole_word_masking_takes_every_piece_of_a_word():
    rng = np.random.default_rng(1)
    ids = list(range(1000, 1012))
    units = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5]
    for _ in range(20):
        _, labels = mask_tokens(ids, units, MaskingConfig(mask_ratio=0.3), rng, MLM_MASK, MLM_VOCAB)
        chosen_units = {u for u, label in zip(units, labels, strict=True) if label != -100}
        assert len(chosen_units) == 2, "30% of 6 words"
        for u, label in zip(units, labels, strict=True):
            assert (label != -100) == (u in chosen_units)


def test_masking_config_is_validated():
    with pytest.raises(RecipeError, match="mask_ratio"):
        MaskingConfig(mask_ratio=0.0)
    with pytest.raises(RecipeError, match="sum"):
        MaskingConfig(mask_token=0.8, random_token=0.3)
