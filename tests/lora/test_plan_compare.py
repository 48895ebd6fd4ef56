"""Training plans per GPU (recipes, PLAN_DOES_NOT_FIT with the fitting alternative) and LoRA comparison grids."""

from __future__ import annotations

import numpy as np
import pytest

from masuka_nb.errors import InvalidRequestError, PlanDoesNotFitError
from masuka_nb.lora import compare
from masuka_nb.lora.plan import estimate_vram_gb, plan_training, recommended_steps


def test_t4_gets_the_qlora_recipe():
    plan = plan_training(n_images=20, gpu="t4", trigger_word="mk")
    c = plan.config
    assert (c.quantization, c.optimizer, c.mixed_precision) == ("nf4", "adamw8bit", "fp16")
    assert 4 <= c.rank <= 16 and 512 <= c.resolution <= 768 and c.gradient_checkpointing
    assert plan.estimated_vram_gb < plan.available_vram_gb


def test_t4_at_1024_does_not_fit_and_names_the_plan_that_does():
    with pytest.raises(PlanDoesNotFitError) as err:
        plan_training(n_images=20, gpu="t4", resolution=1024, rank=16)
    alt = err.value.details["alternative"]
    assert alt["resolution"] <= 768
    fitting = plan_training(n_images=20, gpu="t4", resolution=alt["resolution"], rank=alt["rank"])
    assert fitting.estimated_vram_gb <= 15.0
    assert "train_cloud" in err.value.hint


def test_bf16_gpus_train_in_bf16_without_quantization():
    for gpu in ("a100-40", "a100-80", "h100"):
        c = plan_training(n_images=20, gpu=gpu).config
        assert (c.mixed_precision, c.quantization, c.optimizer) == ("bf16", None, "adamw")
        assert c.resolution == 1024 and c.rank == 16


def test_cpu_cannot_train_a_real_model_but_points_to_the_cloud():
    with pytest.raises(PlanDoesNotFitError) as err:
        plan_training(n_images=20, gpu="cpu")
    assert err.value.details["alternative"] == {"cloud": "train_cloud"}


def test_memory_model_matches_the_published_points():
    # QLoRA rank 4 at 512×768 ≈ 9 GB; plain bf16 LoRA on the same setup ≈ 26 GB (memory.md).
    qlora = estimate_vram_gb(quantization="nf4", precision="fp16", rank=4, resolution=627, optimizer="adamw8bit")
    plain = estimate_vram_gb(quantization=None, precision="bf16", rank=4, resolution=627)
    assert qlora == pytest.approx(9.0, abs=1.0)
    assert plain == pytest.approx(26.0, abs=1.5)


def test_recommended_values_and_validation():
    assert recommended_steps(3) == 500 and recommended_steps(20) == 2000 and recommended_steps(500) == 2500
    assert plan_training(n_images=10, base="tiny-flux").config.resolution == 64
    with pytest.raises(InvalidRequestError) as err:
        plan_training(n_images=10, base="tiny-flux", rank=0)
    assert err.value.argument == "rank"
    with pytest.raises(InvalidRequestError) as err:
        plan_training(n_images=10, base="tiny-sd3")
    assert err.value.argument == "base"


@pytest.mark.gpu
def test_qlora_loads_the_nf4_transformer_on_a_gpu(dataset_of):
    from masuka_nb.lora import train

    ds = dataset_of(2)
    run = train(ds, base="flux1-dev", trigger_word="mk", steps=2, rank=4, resolution=512, gpu="t4",
                checkpoint_every=1, sample_every=0)
    assert run.finished and run.lora_path.is_file()


def test_compare_renders_a_labelled_grid_and_records_it(trained_run):
    from masuka_nb.history import query

    result = compare([trained_run.lora_path.parent], prompts=["mk on a sofa", "mk in snow"], seeds=[1, 2],
                     weights=(0.5, 1.0), width=32, height=32, steps=2)
    assert len(result.cells) == 3 * 2 * 2  # base + two weights, × prompts × seeds
    assert result.grid.width > 4 * 32 and result.grid.height > 3 * 32
    base = np.asarray(result.cell(None, 0.0, "mk on a sofa", 1).image, dtype=float)
    half = np.asarray(result.cell(trained_run.name, 0.5, "mk on a sofa", 1).image, dtype=float)
    full = np.asarray(result.cell(trained_run.name, 1.0, "mk on a sofa", 1).image, dtype=float)
    assert np.abs(full - base).mean() > np.abs(half - base).mean() > 0
    assert result.path.is_file()
    rec = query(kind="comparison")[0]
    assert rec.paths == [str(result.path)] and rec.model == "tiny-flux"


def test_compare_rejects_a_missing_lora():
    with pytest.raises(InvalidRequestError) as err:
        compare(["no-such-lora"], prompts=["x"], seeds=[1])
    assert err.value.argument == "loras"
