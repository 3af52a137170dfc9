"""The pretraining stage end to end on a tiny model, through the CLI: exact resume after SIGKILL, corrupt
checkpoints, DDP equivalence, ablation switches."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from swcm import from_encoder
from swcm.cli import parse
from swcm.recipe import regional_compilation
from swcm.training import fsdp_wrap_classes

from .test_data import write_jsonl

REPOSITORY = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def recipe_file(tiny_xlmr, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrain-data")
    kk = write_jsonl(folder / "kk.jsonl", [{"text": f"қазақ {i} тілі. монгол {i % 7} хэл."} for i in range(60)])
    ug = write_jsonl(folder / "ug.jsonl", [{"text": f"ئۇيغۇرچە {i} تىل."} for i in range(30)])
    mt = write_jsonl(folder / "mt.jsonl", [{"zh": f"中文 {i}", "mn": f"монгол {i}"} for i in range(40)])
    sources = [
        {"path": str(kk), "task": "dae", "lang": "kk"},
        {"path": str(ug), "task": "dae", "lang": "ug"},
        {"path": str(mt), "task": "mt", "langs": ["zh", "mn"]},
    ]
    return write_recipe(folder, tiny_xlmr, sources)


def write_recipe(folder, model, sources: list[dict], **settings):
    """A tiny pretraining recipe over `sources` (12 steps of 8, checkpoints every 4) in folder/recipe.yaml."""
    recipe = {
        "model": str(model),
        "sources": sources,
        "max_steps": 12,
        "global_batch": 8,
        "micro_batch": 4,
        "max_length": 32,
        "lr": 1e-3,
        "mixed_precision": "fp32",
        "num_workers": 1,
        "save_every": 4,
        "keep_checkpoints": 3,
        "log_every": 1,
        **settings,
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


def run(recipe_file, out, *extra, launcher=(sys.executable, "-m", "swcm.cli")):
    return subprocess.run(
        [*launcher, "pretrain", "--config", str(recipe_file), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def losses(out):
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1)), "one log row per step, no duplicates"
    return rows


@pytest.fixture(scope="module")
def uninterrupted(recipe_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-a")
    result = run(recipe_file, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_uninterrupted_run_writes_logs_plot_checkpoints_and_model(uninterrupted):
    rows = losses(uninterrupted)
    assert len(rows) == 12 and rows[-1]["loss"] < rows[0]["loss"]
    assert all(r["loss_dae"] is not None and r["loss_mt"] is not None for r in rows)
    assert (uninterrupted / "loss.png").stat().st_size > 1000
    assert list((uninterrupted / "tb").iterdir()), "TensorBoard event file"
    assert sorted(p.name for p in (uninterrupted / "checkpoints").iterdir()) == [
        "step-00000004",
        "step-00000008",
        "step-00000012",
    ]
    assert (uninterrupted / "final" / "model.safetensors").is_file()
    # the model card: the starting point untrained, the final model with this run as its training stage
    initial = (uninterrupted / "initial" / "README.md").read_text(encoding="utf-8")
    final = (uninterrupted / "final" / "README.md").read_text(encoding="utf-8")
    assert initial.startswith("---\nlanguage: [") and "Not trained yet" in initial
    assert "1. **pretraining**" in final and "12 x 8 sequences" in final and "- tasks: dae, mt" in final
    assert "kk.jsonl" in final and "precision: fp32" in final


def test_sigkill_and_resume_follow_the_uninterrupted_loss_curve(recipe_file, uninterrupted, tmp_path):
    out = tmp_path / "run-b"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "swcm.cli",
            "pretrain",
            "--config",
            str(recipe_file),
            "--out",
            str(out),
            "--save_every",
            "3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    log = out / "log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= 7:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "final").exists(), "killed before the end"
    result = run(recipe_file, out, "--save_every", "3", "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout
    expected, got = losses(uninterrupted), losses(out)
    assert len(got) == 12
    for a, b in zip(expected, got, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), (a, b)
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-9)


def test_a_corrupt_checkpoint_is_detected_and_the_previous_one_used(recipe_file, uninterrupted, tmp_path):
    out = tmp_path / "run-c"
    result = run(recipe_file, out)
    assert result.returncode == 0, result.stderr[-3000:]
    newest = out / "checkpoints" / "step-00000012"
    weights = next(newest.glob("model*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # a torn write
    (out / "checkpoints" / ".tmp-step-00000016").mkdir()  # an interrupted save is never a candidate
    result = run(recipe_file, out, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"checkpoint {newest} is unusable" in result.stderr and "does not match its checksum" in result.stderr
    assert "step-00000008 at step 8" in result.stdout
    for a, b in zip(losses(uninterrupted), losses(out), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(recipe_file, tmp_path):
    """Without dropout (a second rank draws other dropout masks than a second micro-batch would), 2 processes x
    micro-batch 4 and 1 process x micro-batch 4 x 2 accumulation see the same data and take the same steps."""
    from .conftest import save_tiny_xlmr

    encoder = save_tiny_xlmr(tmp_path / "encoder", dropout=0.0)
    args = ("--model", str(encoder), "--num_workers", "0", "--max_steps", "6")
    single = run(recipe_file, tmp_path / "one", *args)
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29533",
        "-m",
        "swcm.cli",
    )
    ddp = run(recipe_file, tmp_path / "ddp", *args, launcher=launcher)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "1 process(es) x 4 x 2 accumulation" in single.stdout and "2 process(es) x 4 x 1 accumulation" in ddp.stdout
    for a, b in zip(losses(tmp_path / "one"), losses(tmp_path / "ddp"), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=2e-5), (a, b)


def test_fsdp_sharded_model_trains_as_the_whole_one(tmp_path):
    """XLM-SWCM under FSDP2 (FULL_SHARD, a wrap unit per encoder and decoder layer, as configs/accelerate/fsdp.yaml
    asks for), 2 CPU processes on gloo, each with half of every batch: the losses of three AdamW steps and the
    gathered full state dict equal those of the unsharded model on the whole batch. (accelerate turns FSDP on only on
    GPU backends, so this drives torch's fully_shard directly; benchmarks/gpu_check.py runs the accelerate path.)"""
    from .conftest import save_tiny_xlmr

    encoder = save_tiny_xlmr(tmp_path / "encoder", dropout=0.0)
    worker = Path(__file__).with_name("fsdp_worker.py")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29534"]
    done = subprocess.run([*launcher, str(worker), str(encoder)], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("FSDP "))
    result = json.loads(line[5:])
    assert result["missing"] == []
    assert result["losses"] == pytest.approx(result["reference"], abs=1e-5)
    assert result["largest"] < 1e-4, "the weights after three steps"
    from accelerate.commands.config.config_args import load_config_from_file

    shipped = {
        name: load_config_from_file(str(REPOSITORY / "configs" / "accelerate" / f"{name}.yaml"))
        for name in ("ddp", "fsdp")
    }
    assert (shipped["ddp"].distributed_type, shipped["fsdp"].distributed_type) == ("MULTI_GPU", "FSDP")
    assert (
        shipped["fsdp"].fsdp_config["fsdp_version"] == 2 and shipped["fsdp"].fsdp_config["fsdp_reshard_after_forward"]
    )
    config = yaml.safe_load((REPOSITORY / "configs" / "accelerate" / "fsdp.yaml").read_text())
    wrapped = set(config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"].split(","))
    assert fsdp_wrap_classes(from_encoder(encoder)) <= wrapped, "the shipped config wraps the layers the test wraps"


@pytest.mark.skipif(regional_compilation(), reason="the installed accelerate compiles layer by layer")
def test_compile_on_an_accelerate_that_cannot_is_one_line(recipe_file, tmp_path, capsys):
    from swcm.cli import main

    args = ["pretrain", "--config", str(recipe_file), "--out", str(tmp_path / "run"), "--compile", "true"]
    assert main(args) == 2
    assert "compile: the installed accelerate" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not regional_compilation(), reason="the installed accelerate cannot compile layer by layer")
def test_a_compiled_run_follows_the_eager_loss_curve(recipe_file, tmp_path):
    """`compile: true` (torch.compile of each layer kind, inductor): the same losses as eager, step by step."""
    from .conftest import save_tiny_xlmr

    encoder = save_tiny_xlmr(tmp_path / "encoder", dropout=0.0)
    args = ("--model", str(encoder), "--num_workers", "0", "--max_steps", "3")
    eager = run(recipe_file, tmp_path / "eager", *args)
    compiled = run(recipe_file, tmp_path / "compiled", *args, "--compile", "true")
    assert eager.returncode == 0 and compiled.returncode == 0, compiled.stderr[-3000:]
    for a, b in zip(losses(tmp_path / "eager"), losses(tmp_path / "compiled"), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4), (a, b)


def test_two_runs_in_one_process_may_use_different_precisions(recipe_file, tmp_path):
    """A library caller (or `main` called twice) trains fp32 and then bf16 in one process: accelerate's process-wide
    state would refuse the second Accelerator; each run leaves it clean."""
    from swcm.cli import main

    for precision in ("fp32", "bf16"):
        args = ["--out", str(tmp_path / precision), "--max_steps", "1", "--num_workers", "0"]
        assert main(["pretrain", "--config", str(recipe_file), *args, "--mixed_precision", precision]) == 0


@pytest.mark.parametrize(("tasks", "absent"), [("mt", "loss_dae"), ("dae", "loss_mt")])
def test_ablation_switches_turn_an_objective_off(recipe_file, tmp_path, tasks, absent):
    out = tmp_path / tasks
    result = run(recipe_file, out, "--tasks", f"[{tasks}]", "--max_steps", "3", "--num_workers", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(r[absent] is None for r in losses(out))


def load_recipe(path, flags=(), command="pretrain"):
    """The recipe `swcm COMMAND --config PATH FLAGS` runs."""
    return parse([command, "--config", str(path), *flags])[1]


def test_recipe_overrides_and_errors(recipe_file, capsys):
    from jsonargparse import ArgumentError

    from swcm.cli import main
    from swcm.errors import RecipeError

    recipe = load_recipe(
        recipe_file,
        ["--lr", "3e-4", "--noise.mask_ratio", "0.2", "--tasks", "[mt]", "--epochs", "2", "--max_steps", "null"],
    )
    assert recipe.lr == 3e-4 and recipe.noise.mask_ratio == 0.2 and recipe.tasks == ["mt"] and recipe.epochs == 2.0
    assert recipe.total_steps(usable_lines=100) == 25  # 2 epochs x 100 lines / 8 per step
    with pytest.raises(ArgumentError, match="learning_rate"):
        load_recipe(recipe_file, ["--learning_rate", "1"])
    assert main(["pretrain", "--config", str(recipe_file), "--lr", "fast"]) == 2
    assert capsys.readouterr().err == "swcm pretrain: error: lr: expected float; got 'fast'\n"
    with pytest.raises(RecipeError, match="global_batch 8 is not a multiple of micro_batch 3 x 1 processes"):
        load_recipe(recipe_file, ["--micro_batch", "3"]).accumulation(1)
    bad = recipe_file.parent / "bad.yaml"
    bad.write_text(recipe_file.read_text().replace("kk.jsonl", "missing.jsonl"))
    result = run(bad, recipe_file.parent / "never")
    assert result.returncode == 2 and result.stderr.strip().endswith("missing.jsonl: no such file")


def test_the_recipes_in_the_repository_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "recipes"
    paper = load_recipe(folder / "xlm-swcm-pretrain.yaml")
    assert (paper.lr, paper.warmup_ratio, paper.global_batch, paper.max_length, paper.grad_clip, paper.epochs) == (
        1e-4,
        0.1,
        600,
        256,
        1.0,
        8,
    )
    assert paper.model == "hfl/cino-base-v2" and paper.accumulation(8) == 3 and paper.mixed_precision == "auto"
    small = load_recipe(folder / "cpu-small.yaml")
    assert small.model == "packaged:multilingual-e5-small" and small.prune_vocab and small.max_steps


def test_finetune_translation_summarization_and_mrc(tiny_xlmr, tmp_path):
    mt = write_jsonl(tmp_path / "mt.jsonl", [{"zh": f"中文 {i}", "ug": f"ئۇيغۇر {i}"} for i in range(12)])
    headlines = write_jsonl(
        tmp_path / "h.jsonl", [{"kk": {"body": f"қазақ тілі {i}", "headline": "қазақ"}} for i in range(6)]
    )
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "中文?", "context": "中文 " * 50, "answers": ["中文"]}] * 4)
    recipe = {
        "model": str(tiny_xlmr),
        "train": [
            {"path": str(mt), "task": "translation", "tgt_lang": "ug", "src_field": "zh", "tgt_field": "ug"},
            {
                "path": str(headlines),
                "task": "summarization",
                "tgt_lang": "kk",
                "text_field": "kk.body",
                "summary_field": "kk.headline",
                "limit": 3,
            },
            {"path": str(qa), "task": "mrc", "tgt_lang": "zh", "answer_field": "answers"},
            {"path": str(qa), "task": "mrc", "tgt_lang": "zh", "answer_field": "answers", "limit": 0},
        ],
        "heldout": [
            {
                "name": "mt_ug",
                "path": str(mt),
                "task": "translation",
                "tgt_lang": "ug",
                "src_field": "zh",
                "tgt_field": "ug",
                "limit": 4,
            },
            {"name": "qa", "path": str(qa), "task": "mrc", "tgt_lang": "zh", "answer_field": "answers"},
        ],  # fmt: skip
        "heldout_every": 6,
        "epochs": 2,
        "global_batch": 4,
        "micro_batch": 4,
        "max_length": 24,
        "lr": 1e-3,
        "mixed_precision": "fp32",
        "num_workers": 0,
        "save_every": 100,
        "log_every": 1,
    }
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "ft"
    result = subprocess.run(
        [sys.executable, "-m", "swcm.cli", "finetune", "--config", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # 24 translation items (both directions) + 3 headlines (limit) + 4 mrc = 31; 2 epochs / 4 per step = 16 steps
    assert "4 mrc (4 contexts cut)" in result.stdout and "left out (limit 0)" in result.stdout
    rows = losses(out)
    assert len(rows) == 16
    assert {k for r in rows for k, v in r.items() if k.startswith("loss_") and v is not None} == {
        "loss_translation",
        "loss_summarization",
        "loss_mrc",
    }
    assert (out / "final" / "model.safetensors").is_file() and (out / "loss.png").is_file()
    # the learning curve: held-out losses every heldout_every steps and at the last one, in the log rows
    measured = {r["step"]: r for r in rows if "heldout_qa" in r}
    assert sorted(measured) == [6, 12, 16]
    assert all(r["heldout_mt_ug"] > 0 and r["heldout_qa"] > 0 and r["heldout"] > 0 for r in measured.values())
    assert measured[16]["heldout_qa"] < measured[6]["heldout_qa"]  # it learns the one answer


def test_heldout_settings_are_checked():
    from swcm.errors import RecipeError
    from swcm.recipe import FinetuneRecipe

    base = {"model": "m", "train": [{"path": "a.jsonl", "task": "mrc", "tgt_lang": "kk"}], "max_steps": 4}
    held = {"path": "a.jsonl", "task": "mrc", "tgt_lang": "kk", "split": "test"}
    with pytest.raises(RecipeError, match="heldout_every: must be a multiple of log_every 5, got 12"):
        FinetuneRecipe(**base, heldout=[{**held, "name": "a"}], heldout_every=12, log_every=5)
    with pytest.raises(RecipeError, match=r"heldout: each name at most once, got \['a', 'a'\]"):
        FinetuneRecipe(**base, heldout=[{**held, "name": "a"}, {**held, "name": "a"}])
    with pytest.raises(RecipeError, match="name 'a b' must be letters"):
        FinetuneRecipe(**base, heldout=[{**held, "name": "a b"}])
    with pytest.raises(RecipeError, match=r"heldout\[0\]: needs name"):
        FinetuneRecipe(**base, heldout=[held])


def test_the_finetuning_recipes_load():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "recipes"
    mt = load_recipe(folder / "real-translation-cpu.yaml", command="finetune")
    assert [f.tgt_lang for f in mt.train] == ["ug", "kk", "mn", "bo"] and not any(f.both_directions for f in mt.train)
    transfer = load_recipe(folder / "crosslingual-transfer.yaml", command="finetune")
    assert [f.limit for f in transfer.train] == [None, 100, 100, 100, 100]
    zero_shot = load_recipe(folder / "crosslingual-transfer.yaml", command="finetune")
    for f in zero_shot.train[1:]:
        f.limit = 0  # k = 0: Chinese only
    assert sum(f.limit == 0 for f in zero_shot.train) == 4


def test_encoder_and_gates_get_their_own_rates_and_encoder_lr_zero_freezes(recipe_file, tiny_xlmr, tmp_path):
    import torch
    from safetensors.torch import load_file

    from swcm.checks import RecipeError
    from swcm.training import parameter_groups

    model = from_encoder(tiny_xlmr, lang_tags=("kk", "ug", "mn", "zh"))
    names = {id(p): n for n, p in model.named_parameters()}
    recipe = load_recipe(recipe_file, ["--encoder_lr", "1e-4"])
    groups = parameter_groups(model, recipe)
    assert sum(len(g["params"]) for g in groups) == len(names), "every parameter in exactly one group"
    assert any(n.endswith("_gate") for n in names.values()), "the default shared build has gates"
    for group in groups:
        parts = {
            "encoder" if n.startswith("model.encoder.") else "gate" if n.endswith("_gate") else "rest"
            for n in (names[id(p)] for p in group["params"])
        }
        assert len(parts) == 1
        assert group["lr"] == {"encoder": 1e-4, "gate": recipe.lr * 10, "rest": recipe.lr}[parts.pop()]
        decays = {
            p.ndim >= 2 and "LayerNorm" not in names[id(p)] and "layer_norm" not in names[id(p)]
            for p in group["params"]
        }
        assert decays == {group["weight_decay"] > 0}
    rates = {g["lr"] for g in parameter_groups(model, load_recipe(recipe_file, ["--gate_lr_scale", "3"]))}
    assert rates == {recipe.lr, 3 * recipe.lr}

    with pytest.raises(RecipeError, match="encoder_lr: must be >= 0"):
        load_recipe(recipe_file, ["--encoder_lr", "-1"])
    with pytest.raises(RecipeError, match="gate_lr_scale: must be > 0"):
        load_recipe(recipe_file, ["--gate_lr_scale", "0"])

    out = tmp_path / "frozen"
    result = run(recipe_file, out, "--encoder_lr", "0", "--max_steps", "3", "--save_every", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = load_file(out / "initial" / "model.safetensors"), load_file(out / "final" / "model.safetensors")
    encoder = [k for k in before if k.startswith("model.encoder.")]
    decoder = [k for k in before if k.startswith("model.decoder.layers.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder), "a frozen encoder does not move"
    assert any(not torch.equal(before[k], after[k]) for k in decoder), "the decoder trains"


def test_seed_repeats_a_finetune_from_a_model_folder(tiny_xlmr, tmp_path):
    """Issue 15, defect 3: with `model:` an XLM-SWCM folder (no build from the encoder), the seed must still fix
    dropout and data order, so two identical runs give identical losses."""
    import torch

    from swcm.recipe import FinetuneRecipe
    from swcm.training import finetune

    model, tokenizer = from_encoder(tiny_xlmr, return_tokenizer=True)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    mt = write_jsonl(tmp_path / "mt.jsonl", [{"zh": f"中文 {i}", "ug": f"ئۇيغۇر {i}"} for i in range(16)])
    runs = []
    for name in ("a", "b"):
        torch.rand(7)  # move the global generator: only the recipe's seed may decide the run
        recipe = FinetuneRecipe(
            model=str(tmp_path / "model"),
            train=[{"path": str(mt), "task": "translation", "tgt_lang": "ug", "src_field": "zh", "tgt_field": "ug"}],
            out=str(tmp_path / name),
            max_steps=3,
            global_batch=4,
            micro_batch=4,
            max_length=16,
            lr=1e-3,
            mixed_precision="fp32",
            num_workers=0,
            save_every=3,
            log_every=1,
            seed=5,
        )
        finetune(recipe)
        runs.append([r["loss"] for r in losses(tmp_path / name)])
    assert runs[0] == runs[1] and len(runs[0]) == 3


def test_a_used_out_folder_is_refused_unless_resumed_with_the_same_recipe_or_overwritten(
    uninterrupted, recipe_file, tmp_path
):
    out = tmp_path / "used"
    shutil.copytree(uninterrupted, out)
    log, saved = (out / "log.jsonl").read_bytes(), (out / "recipe.json").read_bytes()
    again = run(recipe_file, out, "--max_steps", "4")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1] == (
        f"swcm pretrain: error: {out} already holds a run (log.jsonl, checkpoints, final); --resume continues it, "
        "--overwrite deletes it and starts again, or choose another out"
    )
    changed = run(recipe_file, out, "--resume", "--lr", "3e-4")
    assert changed.returncode == 2
    assert "--resume: the recipe differs from the run's" in changed.stderr and "lr: 0.001 -> 0.0003" in changed.stderr
    assert (out / "log.jsonl").read_bytes() == log and (out / "recipe.json").read_bytes() == saved, "nothing written"
    fresh = run(recipe_file, out, "--overwrite", "--max_steps", "4")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert [r["step"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())] == [1, 2, 3, 4]
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step-00000004"], "the old run is gone"
    assert json.loads((out / "recipe.json").read_text())["max_steps"] == 4


def test_overwrite_removes_only_the_run_and_a_failed_start_keeps_it(uninterrupted, recipe_file, tmp_path):
    """--overwrite deletes what a run wrote, never a user's files in the folder; and a new run whose start-up fails
    (a bad data line) leaves the earlier run as it was."""
    out = tmp_path / "used"
    shutil.copytree(uninterrupted, out)
    (out / "thesis.txt").write_text("mine", encoding="utf-8")
    (out / "sub").mkdir()
    (out / "sub" / "notes.txt").write_text("mine too", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "қазақ тілі"}\nnot json\n', encoding="utf-8")
    bad_recipe = tmp_path / "bad.yaml"
    recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    bad_recipe.write_text(
        yaml.safe_dump({**recipe, "sources": [{"path": str(bad), "task": "dae", "lang": "kk"}]}), encoding="utf-8"
    )
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    failed = run(bad_recipe, out, "--overwrite")
    assert failed.returncode == 2 and f"{bad}:2" in failed.stderr, failed.stderr[-2000:]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before, "the earlier run and the user's files are as they were"
    fresh = run(recipe_file, out, "--overwrite", "--max_steps", "2")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert (out / "thesis.txt").read_text(encoding="utf-8") == "mine"
    assert (out / "sub" / "notes.txt").read_text(encoding="utf-8") == "mine too"
    assert [p.name for p in sorted((out / "checkpoints").iterdir())] == ["step-00000002"]
    assert not (out / ".swcm-overwritten").exists()


@pytest.mark.parametrize("signum, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_a_stop_signal_checkpoints_the_finished_step_and_resume_follows_the_curve(
    recipe_file, uninterrupted, tmp_path, signum, to_group
):
    """SIGTERM (a scheduler) or Ctrl-C (SIGINT to the whole process group, data workers included): the step in
    flight finishes, a checkpoint of it is written, the exit code is 128 + signal; --resume then continues exactly."""
    out = tmp_path / "stopped"
    command = [sys.executable, "-m", "swcm.cli", "pretrain", "--config", str(recipe_file), "--out", str(out)]
    command += ["--save_every", "100"]  # no periodic checkpoint: only the stop writes one
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True
    )
    log = out / "log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 5):
        time.sleep(0.05)
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err[-3000:]
    last = err.strip().splitlines()[-1]
    step = int(last.split("after step ")[1].split(";")[0])
    assert step >= 5 and last == (
        f"swcm pretrain: stopped by {signal.Signals(signum).name} after step {step}; checkpoint "
        f"{out / 'checkpoints' / f'step-{step:08d}'}; the same command with --resume continues the run"
    )
    assert "Traceback" not in err and not (out / "final").exists()
    assert [p.name for p in (out / "checkpoints").iterdir()] == [f"step-{step:08d}"]
    result = run(recipe_file, out, "--save_every", "100", "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {step}" in result.stdout
    for a, b in zip(losses(uninterrupted), losses(out), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6), (a, b)


def test_a_run_holds_its_folder_and_a_stale_lock_is_taken_over(recipe_file, tmp_path):
    """A second run into a folder a live run holds is refused in one line; the lock of a process that is gone is
    taken over with a warning, and released when the run ends."""
    import socket

    from swcm.folders import LOCK

    out = tmp_path / "held"
    out.mkdir()
    (out / LOCK).write_text(f"{os.getpid()} {socket.gethostname()}\n")  # this test's process: alive
    busy = run(recipe_file, out, "--max_steps", "2")
    holder = f"process {os.getpid()} on {socket.gethostname()}"
    assert busy.returncode == 2
    assert (
        busy.stderr.strip()
        .splitlines()[-1]
        .startswith(f"swcm pretrain: error: {out} is in use by another swcm run ({holder})")
    )
    assert sorted(p.name for p in out.iterdir()) == [LOCK], "nothing written"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK).write_text(f"{dead.pid} {socket.gethostname()}\n")
    taken = run(recipe_file, out, "--max_steps", "2")
    assert taken.returncode == 0, taken.stderr[-3000:]
    assert f"taking over the lock of run {dead.pid}, which is no longer running" in taken.stderr
    assert not (out / LOCK).exists() and (out / "final").is_dir()


@pytest.mark.parametrize(
    "length, message",
    [
        ("2", "max_length: must be at least 8 (the special tokens, the language tag and some text), got 2"),
        ("1000", "max_length: 1000 is over the model's 64 positions"),
    ],
)
def test_max_length_outside_what_works_is_refused_at_start_up(recipe_file, tmp_path, length, message):
    result = run(recipe_file, tmp_path / "out", "--max_length", length)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == f"swcm pretrain: error: {message}"
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "log.jsonl").exists()


def test_finetune_skips_and_counts_malformed_lines_when_asked(tiny_xlmr, tmp_path):
    lines = [json.dumps({"zh": f"中文 {i}", "ug": f"ئۇيغۇر {i}"}, ensure_ascii=False) for i in range(8)]
    lines[2], lines[5] = "{not json", json.dumps({"zh": "中文"})
    path = tmp_path / "mt.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = {
        "model": str(tiny_xlmr),
        "train": [{"path": str(path), "task": "translation", "tgt_lang": "ug", "src_field": "zh", "tgt_field": "ug"}],
        "max_steps": 1,
        "global_batch": 2,
        "micro_batch": 2,
        "max_length": 16,
        "mixed_precision": "fp32",
        "num_workers": 0,
    }
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    command = [sys.executable, "-m", "swcm.cli", "finetune", "--config", str(config)]
    strict = subprocess.run([*command, "--out", str(tmp_path / "a")], capture_output=True, text=True, env=ENV)
    assert strict.returncode == 2 and f"{path}:3: " in strict.stderr.strip().splitlines()[-1]
    lenient = subprocess.run(
        [*command, "--out", str(tmp_path / "b"), "--skip_bad_lines", "true"], capture_output=True, text=True, env=ENV
    )
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    assert f"{path}: 2 malformed lines skipped (first: {path}:3: " in lenient.stdout
    assert f"{path}: 6 translation" in lenient.stdout


_FAULTS_PER_STEP = """
import statistics, sys, torch
from swcm.training import keep_freed_memory
def faults():
    return int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[7])  # minflt
if sys.argv[1] == "keep":
    assert keep_freed_memory()
counts = []
for _ in range(9):  # "steps": 64 MiB allocated, touched and freed
    before = faults()
    torch.empty(64 * 2**18).fill_(1.0)
    counts.append(faults() - before)
print(statistics.median(counts[3:]))  # after warm-up; the median, as the kernel may reclaim idle pages now and then
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and /proc are Linux's")
def test_cpu_training_keeps_freed_memory_instead_of_faulting_it_back_in_every_step():
    """A freed 64 MiB activation is reused by the next step without page faults once training's allocator setting is
    on; without it, glibc hands it back to the OS and every step faults its 16,384 pages in again."""

    def faults(mode: str) -> int:
        run = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, mode], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return int(float(run.stdout.split()[-1]))

    assert faults("default") > 16_000
    assert faults("keep") < 1_000


def test_training_adamw_is_fused_on_cpu_and_steps_as_the_default_one():
    import torch

    from swcm.training import adamw

    torch.manual_seed(0)
    weights = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    copies = [w.detach().clone().requires_grad_() for w in weights]
    fused, plain = adamw(weights, 1e-2, torch.device("cpu")), torch.optim.AdamW(copies, lr=1e-2)
    assert fused.defaults["fused"] is True
    for _ in range(3):
        for params, optimizer in ((weights, fused), (copies, plain)):
            sum((p**2).sum() for p in params).backward()
            optimizer.step()
            optimizer.zero_grad()
    for w, c in zip(weights, copies, strict=True):
        torch.testing.assert_close(w, c)
