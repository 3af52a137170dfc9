import json
from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from swcm import from_encoder
from swcm.data import (
    ExampleSettings,
    MicroBatchStream,
    PretrainExamples,
    build_mixture,
    open_source,
    temperature_probabilities,
)
from swcm.errors import DataError, RecipeError
from swcm.noising import NoiseConfig
from swcm.specs import SourceSpec


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_xlmr):
    return from_encoder(tiny_xlmr, return_tokenizer=True)


@pytest.fixture
def corpus(tmp_path):
    ug = write_jsonl(tmp_path / "ug.jsonl", [{"text": "ئۇيغۇرچە تىل. " * (1 + i % 5)} for i in range(40)])
    kk = write_jsonl(tmp_path / "kk.jsonl", [{"text": "қазақ тілі."} for _ in range(400)])
    mt = write_jsonl(tmp_path / "mt.jsonl", [{"zh": "中文世界", "mn": "монгол хэл", "en": "x"} for _ in range(50)])
    return tmp_path, ug, kk, mt


def make_examples(corpus_paths, tokenizer, tag_ids, alpha=0.3, mt_share=0.5, tasks=("dae", "mt"), max_length=64):
    _, ug, kk, mt = corpus_paths
    specs = [
        SourceSpec(path=str(ug), task="dae", lang="ug"),
        SourceSpec(path=str(kk), task="dae", lang="kk"),
        SourceSpec(path=str(mt), task="mt", langs=["zh", "mn"]),
    ]
    sources = [open_source(s, skip_bad=False, cache_dir=None) for s in specs]
    mixture = build_mixture(sources, alpha, mt_share, tasks)
    return PretrainExamples(sources, mixture, tokenizer, tag_ids, ExampleSettings(max_length=max_length)), sources


def test_temperature_sampling_matches_alpha(corpus, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    examples, sources = make_examples(corpus, tokenizer, model.config.lang_tag_ids, alpha=0.3, tasks=("dae",))
    sizes = {"ug": sources[0].size, "kk": sources[1].size}
    expected = temperature_probabilities(sizes, 0.3)
    assert sizes["kk"] > sizes["ug"] and expected["kk"] < sizes["kk"] / sum(sizes.values())  # flattened
    tags = {i: c for c, i in model.config.lang_tag_ids.items()}
    counts = Counter(tags[examples.example(i)["labels"][0]] for i in range(3000))
    for lang, p in expected.items():
        assert abs(counts[lang] / 3000 - p) < 0.03, (lang, counts)
    uniform = temperature_probabilities(sizes, 0.0)
    assert uniform == {"ug": 0.5, "kk": 0.5}


def test_task_share_and_both_translation_directions(corpus, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tags = model.config.lang_tag_ids
    examples, _ = make_examples(corpus, tokenizer, tags, mt_share=0.25)
    batch = [examples.example(i) for i in range(2000)]
    mt = [e for e in batch if e["task"] == 1]
    assert abs(len(mt) / 2000 - 0.25) < 0.03
    zh_ids = tokenizer("中文世界", add_special_tokens=False)["input_ids"]
    mn_ids = tokenizer("монгол хэл", add_special_tokens=False)["input_ids"]
    to_mn = [e for e in mt if e["labels"][0] == tags["mn"]]
    to_zh = [e for e in mt if e["labels"][0] == tags["zh"]]
    assert len(to_mn) + len(to_zh) == len(mt) and abs(len(to_mn) - len(to_zh)) < 0.15 * len(mt)
    assert to_mn[0]["input_ids"][1:-1] == zh_ids and to_mn[0]["labels"][1:-1] == mn_ids
    assert to_zh[0]["input_ids"][1:-1] == mn_ids and to_zh[0]["labels"][1:-1] == zh_ids
    assert all(e["input_ids"][0] == tokenizer.cls_token_id and e["labels"][-1] == tokenizer.sep_token_id for e in batch)


def test_examples_are_a_pure_function_of_their_index(corpus, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    a, _ = make_examples(corpus, tokenizer, model.config.lang_tag_ids)
    b, _ = make_examples(corpus, tokenizer, model.config.lang_tag_ids)
    for i in [5, 0, 99, 5]:
        assert a.example(i) == b.example(i)


def test_long_documents_are_chunked_not_dropped(tmp_path, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    sentences = [f"{w} {i} тілі." for i, w in enumerate(("қазақ", "монгол", "ұйғыр", "тибет", "қытай", "орыс") * 6)]
    path = write_jsonl(tmp_path / "long.jsonl", [{"text": " ".join(sentences)}])
    source = open_source(SourceSpec(path=str(path), task="dae", lang="kk"), False, None)
    mixture = build_mixture([source], 0.3, 0.5, ["dae"])
    settings = ExampleSettings(max_length=24, noise=NoiseConfig(mask_ratio=0.0, permute_sentences=False))
    examples = PretrainExamples([source], mixture, tokenizer, model.config.lang_tag_ids, settings)
    seen = set()
    for i in range(300):
        labels = examples.example(i)["labels"]
        assert len(labels) <= 24
        seen.add(tuple(labels[1:-1]))
    pieces = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in sentences]
    windows = [tuple(t for sentence in chunk for t in sentence) for chunk in examples._chunks(pieces)]
    assert len(windows) >= 10 and all(len(w) <= 22 for w in windows)
    assert [t for w in windows for t in w] == [t for p in pieces for t in p], "the windows tile the document"
    assert seen == set(windows), "every window is trained on"


def test_malformed_lines_name_file_and_line_or_are_counted(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": 3}\nnot json\n{"text": ""}\n{"title": "no text"}\n', encoding="utf-8")
    spec = SourceSpec(path=str(path), task="dae", lang="kk")
    with pytest.raises(DataError, match=rf"{path}:2: field\(s\) \['text'\] are not strings"):
        open_source(spec, skip_bad=False, cache_dir=None)
    source = open_source(spec, skip_bad=True, cache_dir=tmp_path / "index")
    assert source.skipped == 4 and source.rows == 1
    assert source.read(0, 0) == (["ok"], f"{path}:1")
    again = open_source(spec, skip_bad=True, cache_dir=tmp_path / "index")  # from the cached index
    assert again.rows == 1 and again.skipped == 4
    with pytest.raises(DataError, match="4 malformed or empty lines"):
        open_source(spec, skip_bad=False, cache_dir=tmp_path / "index")


def test_bad_source_descriptions(tmp_path):
    with pytest.raises(RecipeError, match="a dae source needs `lang`"):
        SourceSpec(path="x.jsonl", task="dae")
    with pytest.raises(RecipeError, match="an mt source needs `langs: \\[src, tgt\\]`"):
        SourceSpec(path="x.jsonl", task="mt", langs=["zh"])
    with pytest.raises(DataError, match="no such file"):
        open_source(SourceSpec(path=str(tmp_path / "missing*.jsonl"), task="dae", lang="bo"), False, None)


@pytest.mark.parametrize(("world", "workers"), [(1, 2), (2, 1), (2, 2)])
def test_micro_batches_split_across_ranks_and_workers_in_order(corpus, model_and_tokenizer, world, workers):
    model, tokenizer = model_and_tokenizer
    examples, _ = make_examples(corpus, tokenizer, model.config.lang_tag_ids)
    pad = tokenizer.pad_token_id

    def take(rank, n, start=0):
        stream = MicroBatchStream(examples, 3, rank, world, start, pad)
        loader = DataLoader(stream, batch_size=None, num_workers=workers if workers > 1 else 0)
        out = []
        for batch in loader:
            out.append(batch)
            if len(out) == n:
                break
        return out

    per_rank = [take(r, 4) for r in range(world)]
    indices = sorted(int(b["batch_index"]) for batches in per_rank for b in batches)
    assert indices == list(range(4 * world)), "every micro-batch exactly once, none skipped"
    for rank, batches in enumerate(per_rank):
        assert [int(b["batch_index"]) for b in batches] == [rank + world * k for k in range(4)], "in order"
    reference = MicroBatchStream(examples, 3, 0, 1, 0, pad)
    first = next(iter(reference))
    assert np.array_equal(per_rank[0][0]["input_ids"].numpy(), first["input_ids"].numpy())
    # resuming at micro-batch 2 * world continues the same sequence
    assert [int(b["batch_index"]) for b in take(0, 2, start=2 * world)] == [2 * world, 3 * world]
