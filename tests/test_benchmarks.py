"""Smoke runs of the benchmark programs at tiny sizes: they run end to end and write what they promise.
(The measurements themselves are benchmarks/results/, made with `python benchmarks/*.py`.)"""

import json

import pytest
from benchmarks import ablations, decode_modes, gpu_check, paper_scale, quantized_agreement, speed, training_speed
from benchmarks import init_study as study

from swcm import from_encoder
from swcm.recipe import regional_compilation

from .conftest import SHARED_DATA


def test_divergence_gap_is_fp32s_gap_where_the_tokens_first_differ():
    reference = ([5, 6, 7, 2], [0.9, 0.02, 0.5, 0.3])
    assert quantized_agreement._divergence_gap(reference, [5, 6, 7, 2]) is None
    assert quantized_agreement._divergence_gap(reference, [5, 8, 7, 2]) == 0.02
    assert quantized_agreement._divergence_gap(reference, [5, 6]) == 0.5, "a shorter output differs where it stopped"
    assert quantized_agreement._divergence_gap(reference, [5, 6, 7, 2, 9]) == 0.3, "a longer one after fp32's last step"


def test_speed_benchmark_smoke(tiny_xlmr, tmp_path):

    agreement_model = tmp_path / "trained"
    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
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
    decodings = {"swcm fp32", "swcm int8", "swcm fp16", "bert2bert fp32", "mbart fp32", "ctranslate2-mbart fp32"}
    decodings |= {
        "ctranslate2-mbart int8",
        "bert2bert fp32, decoder attention eager",
        "swcm int8, whole cache reordered",
    }
    assert decodings <= {r["decoding"] for r in file["rows"]} and set(file["latency"]) >= decodings
    # 5 sentences x 4 forced tokens each, per beam size (the benchmark checks every batch's length)
    assert all(r["tokens"] == 20 and r["tokens_per_s"] > 0 for r in file["rows"])
    agreement = saved["quantized_agreement"]
    assert set(agreement) >= {"bo", "ug", "pooled"} and agreement["ug"]["sentences"] == 6
    assert all(0 <= agreement[lang][mode]["identical"] <= 100 for lang in ("bo", "ug") for mode in ("int8", "fp16"))
    assert agreement["pooled"]["fp16"]["sentences"] == sum(agreement[k]["sentences"] for k in agreement if len(k) == 2)
    assert "fp16: identical outputs %" in (tmp_path / "speed.md").read_text()
    assert "fp32, decoder attention eager" in agreement["pooled"]
    ties = agreement["near_ties"]
    assert ties["sentences"] == agreement["pooled"]["int8"]["sentences"]
    assert all(0 <= share <= 100 for share in ties["share_with_gap_under"].values())
    # one fp32 gap (>= 0) per output that differs from fp32's in tokens, so at least one per output differing in text
    for mode in ("int8", "fp16", "bf16 weights"):
        gaps = ties["divergence_gaps"][mode]
        differing = ties["sentences"] - round(agreement["pooled"][mode]["identical"] * ties["sentences"] / 100)
        assert differing <= len(gaps) <= ties["sentences"] and all(g >= 0 for g in gaps)
    assert saved["models"] == ["swcm", "bert2bert", "mbart"]
    # every (model, batch, beams, length) measured, each with the forced length (the benchmark checks it)
    assert len(saved["generation"]) == 3 * 2 * 2 * 2
    assert all(r["s_per_token"] > 0 for r in saved["generation"])
    ratios = result["summary"]["generation_ratios"]
    assert len(ratios) == 8 and all(r["speedup_vs_bert2bert"] > 0 and r["speedup_vs_mbart"] > 0 for r in ratios)
    compiled = ("swcm compiled",) if regional_compilation() else ()  # (accelerate from 1.x compiles by layer)
    assert {(r["model"], r["precision"]) for r in saved["training"]} == {
        (m, p) for m in ("swcm", "bert2bert", "mbart", *compiled) for p in ("fp32", "bf16")
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


def test_ablation_benchmark_runs_variants_over_seeds_on_the_quickstart(tiny_xlmr, tmp_path, capsys):
    args = ablations.AblationArgs(
        variants=["xlm-swcm", "base-a", "no-dae"],
        seeds=[0, 1],
        steps=2,
        encoder=str(tiny_xlmr),
        langs=["ug"],
        precision="fp32",
        work=tmp_path / "work",
        out=tmp_path / "out",
    )
    result = ablations.run(args)
    assert result["trained"] == 6 and result["reused"] == 0
    assert capsys.readouterr().out.count("reusing") == 5, "the first run's pruned encoder serves the others"
    # each variant changes only what it names, through the quickstart's recipe
    base_a = json.loads((tmp_path / "work" / "base-a-seed1" / "train" / "recipe.json").read_text())
    no_dae = json.loads((tmp_path / "work" / "no-dae-seed0" / "train" / "recipe.json").read_text())
    default = json.loads((tmp_path / "work" / "xlm-swcm-seed0" / "train" / "recipe.json").read_text())
    assert (base_a["normal_every"], base_a["seed"], base_a["max_steps"]) == (0, 1, 2)
    assert no_dae["tasks"] == ["mt"] and default["tasks"] == ["dae", "mt"] and default["normal_every"] == 3
    # the models are deleted unless asked for; the reports stay
    assert not (tmp_path / "work" / "base-a-seed1" / "train" / "final").exists()
    summary = json.loads((tmp_path / "out" / "ablations.json").read_text())["summary"]
    assert list(summary) == ["xlm-swcm", "base-a", "no-dae"]
    assert all(len(e["chrf++"]["ug"]) == 2 and all(v > 0 for v in e["heldout_loss"]["ug"]) for e in summary.values())
    markdown = (tmp_path / "out" / "ablations.md").read_text()
    assert "| base-a | 2 |" in markdown and "±" in markdown and "2 steps x 32 sequences" in markdown
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
    # --reuse keeps runs made with the same settings, and trains again those made with others
    args.reuse, args.variants = True, ["base-a"]
    assert ablations.run(args)["reused"] == 2
    args.steps = 3
    again = ablations.run(args)
    assert again["trained"] == 2 and again["reused"] == 0


def test_ablation_aggregates_reports_over_seeds(tmp_path):
    result = ablations.summarise(
        {
            variant: {
                seed: {
                    "languages": {"ug": {"chrf++_after": chrf + seed, "heldout_loss_after": 3.0 - chrf / 100}},
                    "heldout_curve": [{"step": 100, "heldout": 5.0 + seed}, {"step": 200, "heldout": 4.0 + seed}],
                    "train_seconds": 60.0,
                }
                for seed in (0, 1)
            }
            for variant, chrf in (("xlm-swcm", 30.0), ("random-decoder", 20.0))
        }
    )
    assert result["xlm-swcm"]["chrf++"]["ug"] == [30.0, 31.0] and result["xlm-swcm"]["curve"][200] == [4.0, 5.0]
    payload = {"summary": result, "args": {"steps": 200}, "batch_size": 32, "trained": 0, "reused": 4}
    payload["machine"] = {"date": "today", "cpu": "cpu", "threads": 2, "cpu_flags": ["avx2"]}
    markdown = ablations.render(payload)
    assert "| xlm-swcm | 2 | 30.50 ± 0.71 | 2.70 ± 0.00 | 1.0 |" in markdown
    assert "| random-decoder | 2 | 20.50 ± 0.71 |" in markdown and "held-out @ 100" in markdown


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
def test_init_study_smoke(tiny_xlmr, tmp_path):
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


def test_the_paper_scale_rehearsal_runs_at_tiny_size_and_projects_memory_and_hours(tmp_path):
    args = paper_scale.PaperScaleArgs(size="tiny", length=32, micro_batches=[1, 2], out=tmp_path)
    result = paper_scale.run(args)
    saved = json.loads((tmp_path / "paper_scale.json").read_text())
    assert saved["parameters"]["total"] == result["parameters"]["total"] > 0
    assert result["flops_per_token"] > 6 * result["parameters"]["decoder"]  # at least the decoder's 6 N per token
    assert set(result["steps"]) == {"kept", "checkpointed"}
    assert all(m["step_peak_bytes"] > 0 for steps in result["steps"].values() for m in steps.values())
    memory = {(r["micro_batch"], r["setup"], r["activations"]): r["gib"] for r in result["projections"]["memory"]}
    assert all(memory[(m, "FSDP x8", a)] < memory[(m, "DDP", a)] for m, _, a in memory)
    assert memory[(32, "DDP", "kept")] > memory[(1, "DDP", "kept")]
    assert all(hours > 0 for hours in result["projections"]["gpu_hours"].values())
    assert "GPU-hours at 40% MFU" in (tmp_path / "paper_scale.md").read_text()


def test_the_gpu_check_runs_to_the_end_on_cpu_at_tiny_size(tmp_path):
    args = gpu_check.GpuCheckArgs(size="tiny", length=32, micro_batches=[2], steps=1, out=tmp_path)
    result = gpu_check.run(args)
    assert [result[name]["status"] for name in ("bf16", "attention", "compile")] == ["PASS", "PASS", "PASS"]
    assert result["fsdp"]["status"] == ("PASS" if result["device"] == "cuda" else "SKIP")
    assert result["training"][0]["status"] == "PASS" and result["training"][0]["target_tokens_per_s"] > 0
    assert [row["beams"] for row in result["generation"]] == [1, 5]
    assert "| compile | PASS |" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data not found at {SHARED_DATA}")
def test_fast_modes_are_scored_against_fp32_on_held_out_real_text(tiny_model, tmp_path):
    args = quantized_agreement.FastModeArgs(model=tiny_model, limit=3, out=tmp_path)
    result = quantized_agreement.real_text_scores(args)
    cells = {(r["mode"], r["cell"]) for r in result["rows"]}
    assert cells == {(m, c) for m in quantized_agreement.MODES for c in ("ui:ug", "ui:kk", "ui:mn", "openpecha:bo")}
    assert all(r["n"] == 3 and 0 <= r["identical_to_fp32"] <= 100 for r in result["rows"])
    assert all(r["identical_to_fp32"] == 100 for r in result["rows"] if r["mode"] == "fp32")
    assert "| int8 | ui:ug | 3 |" in (tmp_path / "fast_modes.md").read_text()
    how = {r["mode"]: r["how"] for r in result["rows"]}
    assert "7-bit weights" in how["int8-7bit"], "int8 as a CPU without VNNI quantizes it"


def test_decode_modes_times_every_mode_per_shape_and_checks_what_auto_picks(tiny_model, tmp_path):
    args = decode_modes.DecodeModesArgs(model=tiny_model, shapes=["1x1", "2x2"], batches=1, new_tokens=3, out=tmp_path)
    result = decode_modes.run(args)
    assert [(r["batch"], r["beams"], r["rows_per_step"]) for r in result["rows"]] == [(1, 1, 1), (2, 2, 4)]
    for row in result["rows"]:
        rates = row["tokens_per_s"]
        assert {"fp32", "int8", "fp16"} <= set(rates) and all(rate > 0 for rate in rates.values())
        assert row["fastest"] == max(rates, key=rates.get) and row["auto"] in rates
        assert row["auto_share_of_fastest"] == rates[row["auto"]] / rates[row["fastest"]]
    assert "| 2x2 | 4 |" in (tmp_path / "decode_modes.md").read_text()


def test_the_training_step_program_compares_swcm_with_bert2bert(tiny_xlmr, tmp_path):
    args = training_speed.TrainingSpeedArgs(
        encoder=str(tiny_xlmr), no_prune=True, train_batch=2, train_length=8, train_steps=1, train_compiled=False,
        out=tmp_path,
    )  # fmt: skip
    result = training_speed.run(args)
    assert {(r["model"], r["precision"]) for r in result["training"]} == {
        (m, p) for m in ("swcm", "bert2bert") for p in ("fp32", "bf16")
    }
    report = (tmp_path / "training_speed.md").read_text()
    assert "- swcm: bf16_speedup" in report and "flops_ratio_vs_bert2bert_fp32" in report
