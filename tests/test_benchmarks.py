"""Smoke runs of the benchmark programs at tiny sizes: they run end to end and write what they promise.
(The measurements themselves are benchmarks/results/, made with `python benchmarks/*.py`.)"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from .conftest import SHARED_DATA

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_speed_benchmark_smoke(tiny_xlmr, tmp_path):
    from swcm import SWCMForConditionalGeneration

    speed = load("speed")
    agreement_model = tmp_path / "trained"
    model, tokenizer = SWCMForConditionalGeneration.from_encoder(tiny_xlmr, return_tokenizer=True)
    model.save_pretrained(agreement_model)
    tokenizer.save_pretrained(agreement_model)
    args = speed.SpeedArgs(
        encoder=str(tiny_xlmr),
        no_prune=True,
        out=tmp_path,
        batch_sizes=[1, 2],
        new_tokens=[4, 8],
        beams=[1, 2],
        repeats=1,
        train_batch=2,
        train_length=8,
        train_steps=1,
        file_sentences=5,
        file_tokens=4,
        file_beams=[1, 2],
        latency_sentences=2,
        work=tmp_path / "work",
        agreement_model=agreement_model,
        agreement_names=6,
    )
    result = speed.run(args)
    saved = json.loads((tmp_path / "speed.json").read_text())
    file = saved["file_throughput"]
    decodings = {"swcm fp32", "swcm int8", "bert2bert fp32", "mbart fp32", "ctranslate2-mbart fp32"}
    decodings |= {"ctranslate2-mbart int8"}
    assert decodings <= {r["decoding"] for r in file["rows"]} and set(file["latency"]) >= decodings
    # 5 sentences x 4 forced tokens each, per beam size (the benchmark checks every batch's length)
    assert all(r["tokens"] == 20 and r["tokens_per_s"] > 0 for r in file["rows"])
    agreement = saved["int8_agreement"]
    assert set(agreement) >= {"bo", "ug"} and agreement["ug"]["sentences"] == 6
    assert all(0 <= agreement[lang]["identical"] <= 100 for lang in ("bo", "ug"))
    assert saved["models"] == ["swcm", "bert2bert", "mbart"]
    # every (model, batch, beams, length) measured, each with the forced length (the benchmark checks it)
    assert len(saved["generation"]) == 3 * 2 * 2 * 2
    assert all(r["s_per_token"] > 0 for r in saved["generation"])
    ratios = result["summary"]["generation_ratios"]
    assert len(ratios) == 8 and all(r["speedup_vs_bert2bert"] > 0 and r["speedup_vs_mbart"] > 0 for r in ratios)
    assert {(r["model"], r["precision"]) for r in saved["training"]} == {
        (m, p) for m in ("swcm", "bert2bert", "mbart") for p in ("fp32", "bf16")
    }
    # the decoder with two attentions and two FFNs per custom layer counts more FLOPs per token than bert2bert's
    flops = saved["generation_flops_per_token"]
    assert flops["swcm"] > flops["bert2bert"] > 0
    assert all(r["flops_per_step"] > 0 and r["tokens_per_s"] > 0 for r in saved["training"])
    assert {s["model"] for s in result["summary"]["decode_scaling"]} == {"swcm", "bert2bert", "mbart"}
    markdown = (tmp_path / "speed.md").read_text()
    assert "| batch | beams | new tokens |" in markdown and "achieved GFLOP/s" in markdown
    assert "## File throughput" in markdown and "| ctranslate2-mbart int8 |" in markdown
    assert "identical outputs %" in markdown and "CPU flags: " in markdown
    assert (tmp_path / "generation.png").stat().st_size > 0 and (tmp_path / "training.png").stat().st_size > 0


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
def test_ablation_benchmark_smoke(tiny_xlmr, tmp_path):
    ablations = load("ablations")
    args = ablations.AblationArgs(
        encoder=str(tiny_xlmr),
        no_prune=True,
        variants=["xlm-swcm", "no-dae"],
        out=tmp_path / "out",
        work=tmp_path / "work",
        stage1_steps=2,
        stage2_steps=2,
        batch=4,
        max_length=32,
        mt_limit=20,
        title_upsample=1,
        title_test=2,
        eval_limit=2,
        max_new_tokens=4,
        precision="no",
    )
    report = ablations.run(args)
    saved = json.loads((tmp_path / "out" / "ablations.json").read_text())
    assert list(saved["variants"]) == ["xlm-swcm", "no-dae"]
    for variant in saved["variants"].values():
        sets = [r["set"] for r in variant["scores"]]
        assert sets == [
            "ntrex zh-ug",
            "ntrex zh-kk",
            "ntrex zh-mn",
            "cmilbench zh-ug",
            "cmilbench zh-mn",
            "ug essay titles",
        ]
        assert all(r["n"] == 2 and r["heldout_loss"] > 0 for r in variant["scores"])
        assert [r["step"] for r in variant["curves"]["pretrain"]] == [2]
        assert [r["step"] for r in variant["curves"]["finetune"]] == [2]
    # -DAE pretrains on translation only: its log has no denoising loss
    assert saved["variants"]["no-dae"]["curves"]["pretrain"][0].get("loss_dae") is None
    assert saved["variants"]["xlm-swcm"]["curves"]["pretrain"][0]["loss_dae"] > 0
    recipe = (tmp_path / "work" / "no-dae" / "pretrain.yaml").read_text()
    assert "tasks:\n- mt" in recipe
    markdown = (tmp_path / "out" / "ablations.md").read_text()
    assert "| xlm-swcm |" in markdown and "| no-dae |" in markdown
    assert report["total_seconds"] > 0 and (tmp_path / "out" / "curves.png").is_file()
    # --reuse evaluates the trained models again and keeps the first run's training times
    again = ablations.run(ablations.AblationArgs(**{**vars(args), "reuse": True, "variants": ["no-dae"]}))
    first = report["variants"]["no-dae"]
    assert again["variants"]["no-dae"]["seconds"]["pretrain"] == pytest.approx(first["seconds"]["pretrain"], abs=0.1)
    assert again["variants"]["no-dae"]["scores"][0]["heldout_loss"] == pytest.approx(first["scores"][0]["heldout_loss"])


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
def test_init_study_smoke(tiny_xlmr, tmp_path):
    study = load("init_study")
    args = study.StudyArgs(
        encoder=str(tiny_xlmr),
        no_prune=True,
        variants=["paper", "random", "adapted-mlm-head", "default-enc1e-4"],
        seeds=[0, 1],
        steps=2,
        batch=2,
        eval_every=1,
        heldout=3,
        train_pairs=8,
        adapt_steps=2,
        precision="fp32",
        out=tmp_path / "out",
        work=tmp_path / "work",
    )
    payload = study.run(args)
    saved = json.loads((tmp_path / "out" / "init_study.json").read_text())
    assert set(saved["results"]) == {"paper", "random", "adapted-mlm-head", "default-enc1e-4"}
    recipe = json.loads((tmp_path / "work" / "default-enc1e-4-seed0" / "train" / "recipe.json").read_text())
    assert recipe["encoder_lr"] == 1e-4 and recipe["lr"] == args.lr
    for runs in saved["results"].values():
        assert set(runs) == {"0", "1"}
        for rows in runs.values():
            assert [r["step"] for r in rows] == [0, 1, 2], "the start, then every eval_every steps"
            assert all(r["heldout"] > 0 for r in rows) and {"heldout_ug", "heldout_kk", "heldout_mn"} <= set(rows[-1])
            assert 0 <= rows[0]["decoder_start"]["entropy"] <= rows[0]["decoder_start"]["log_vocab"] + 1e-6
    # seeds give different random decoders, and the same seed the same run
    random_runs = saved["results"]["random"]
    assert random_runs["0"][0]["heldout"] != random_runs["1"][0]["heldout"]
    assert (tmp_path / "work" / "adapt-2" / "final" / "config.json").is_file()
    markdown = (tmp_path / "out" / "init_study.md").read_text()
    assert "| paper |" in markdown and "±" in markdown
    assert payload["total_seconds"] > 0 and (tmp_path / "out" / "curves.png").stat().st_size > 0
    assert payload["runs_trained"] == 8 and payload["runs_reused"] == 0
    # --reuse keeps finished runs and says so
    args.variants, args.reuse = ["paper"], True
    again = study.run(args)
    assert again["runs_trained"] == 0 and again["runs_reused"] == 2
    assert again["results"]["paper"] == payload["results"]["paper"]
    assert "2 reused from" in (tmp_path / "out" / "init_study.md").read_text()


def test_quickstart_seeds_aggregates_reports(tmp_path):
    seeds = load("quickstart_seeds")
    for build, chrf in (("default", 30.0), ("random", 20.0)):
        for seed in (0, 1):
            folder = tmp_path / "work" / f"{build}-seed{seed}"
            folder.mkdir(parents=True)
            report = {
                "languages": {"ug": {"chrf++_after": chrf + seed, "heldout_loss_after": 3.0 - chrf / 100}},
                "heldout_curve": [{"step": 100, "heldout": 5.0 + seed}, {"step": 200, "heldout": 4.0 + seed}],
            }
            (folder / "report.json").write_text(json.dumps(report))
    args = seeds.SeedsArgs(builds=["default", "random"], seeds=[0, 1], work=tmp_path / "work", out=tmp_path, reuse=True)
    result = seeds.run(args)
    assert result["trained"] == 0 and result["reused"] == 4
    assert result["summary"]["default"]["chrf++"]["ug"] == [30.0, 31.0]
    markdown = (tmp_path / "quickstart_seeds.md").read_text()
    assert "| default | 2 | 30.50 ± 0.71 | 2.70 ± 0.00 |" in markdown and "| random | 2 | 20.50 ± 0.71 |" in markdown
    assert "held-out @ 100" in markdown and (tmp_path / "curves.png").stat().st_size > 0
