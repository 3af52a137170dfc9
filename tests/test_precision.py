import pytest
import torch

from swcm.precision import resolve_precision


@pytest.fixture
def cpu(monkeypatch):
    """A CPU whose bf16 support the test sets: cpu(avx512_bf16=..., amx=...)."""

    def make(avx512_bf16: bool, amx: bool = False, capability: str = "AVX2"):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)

    return make


def test_auto_is_fp32_on_an_avx2_cpu(cpu):
    cpu(avx512_bf16=False)
    choice = resolve_precision("auto")
    assert choice.precision == "fp32" and choice.accelerate == "no" and choice.dtype == torch.float32
    assert "AVX2" in choice.reason and "no native bf16" in choice.reason


@pytest.mark.parametrize("avx512_bf16, amx", [(True, False), (False, True)])
def test_auto_is_bf16_with_avx512_bf16_or_amx(cpu, avx512_bf16, amx):
    cpu(avx512_bf16=avx512_bf16, amx=amx, capability="AVX512")
    choice = resolve_precision("auto")
    assert choice.precision == "bf16" and choice.accelerate == "bf16"


def test_explicit_bf16_without_native_support_runs_with_a_warning(cpu):
    cpu(avx512_bf16=False)
    with pytest.warns(UserWarning, match="emulated"):
        assert resolve_precision("bf16").precision == "bf16"


def test_fp16_on_cpu_is_refused_and_fp32_aliases_accepted(cpu):
    cpu(avx512_bf16=True)
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16")
    assert resolve_precision("no").precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int4")


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp16")])
def test_auto_on_cuda_follows_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", device="cuda").precision == expected


def test_training_prints_its_precision_choice(cpu, tiny_xlmr, tmp_path, capsys):
    from swcm.recipe import FinetuneRecipe
    from swcm.training import finetune

    cpu(avx512_bf16=False)
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"zh": "中文", "ug": "ئۇيغۇرچە"}\n' * 4, encoding="utf-8")
    recipe = FinetuneRecipe(
        model=str(tiny_xlmr),
        train=[{"path": str(data), "task": "translation", "src_field": "zh", "tgt_field": "ug", "tgt_lang": "ug"}],
        out=str(tmp_path / "run"),
        max_steps=1,
        global_batch=2,
        micro_batch=2,
        num_workers=0,
        max_length=32,  # within the tiny model's 64 positions
    )
    assert recipe.mixed_precision == "auto"
    finetune(recipe)
    assert "precision fp32: auto: CPU capability AVX2" in capsys.readouterr().out
