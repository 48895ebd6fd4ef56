"""A LoRA training step on every base the trainer offers (FLUX.1 dev, schnell, Kontext, Fill, FLUX.2 [klein],
Z-Image Turbo), on the real-layout twins served by the local Hub (bases whose step is the same computation on
the same weights, FLUX.1 dev and Kontext, train once): the trainer downloads through huggingface_hub itself,
caches the latents (Fill: with its masked image and mask) and the T5/CLIP or Qwen3 embeddings at the real
widths, adds the LoRA to the real module names and takes one optimizer step.

The plans are a GPU's: on a CPU `train(gpu=...)` refuses them before anything loads (checked), so the
a100-40 plan (16-bit base, no quantization) runs its loop here through the trainer `train` hands it to,
in fp32 (the trainer computes in fp32 without CUDA) at a small resolution. The T4 and L4 plans (NF4 base,
8-bit AdamW) need bitsandbytes on CUDA: `test_nf4_training_plan_steps_on_cuda`.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from masuka_nb.errors import PlanDoesNotFitError
from masuka_nb.models.registry import get_model
from tests.real.road import REAL, serve

pytestmark = pytest.mark.slow

BASES = [m for m in REAL if get_model(m).family in ("flux", "flux2", "zimage")]  # what plan_training accepts
# Per family, attention projections the "attention" preset must reach in the real module names: FLUX.1's double
# and single blocks, FLUX.2's fused single-block projection, Z-Image's main layers and both refiners.
TRAINED = {"flux": {"transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_q"},
           "flux2": {"transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_qkv_mlp_proj"},
           "zimage": {"layers.0.attention.to_q", "noise_refiner.0.attention.to_q",
                      "context_refiner.0.attention.to_q"}}


def _same_run(base: str) -> tuple:
    """What decides the computation of a training step: the transformer's weights (twin content key) and the
    trainer's branches (Fill's extra inputs, the text length). FLUX.1 dev and Kontext share all of it."""
    from masuka_nb.testing.twins import twin_component_key

    spec = get_model(base)
    return (twin_component_key(base, "transformer"), spec.task == "fill", spec.max_sequence_length)


GROUPS: dict[tuple, list[str]] = {}
for _base in BASES:
    GROUPS.setdefault(_same_run(_base), []).append(_base)
RESOLUTION = 64  # 4×4 packed latent tokens: the transformer's widths are real, the image is not


@pytest.fixture
def one_image(tmp_path, monkeypatch):
    """One photo in a dataset, and a cache of this test's own for the base it downloads (about 2 GB a base),
    deleted after it: in the session's cache every base's files stayed, and CI's second leg ran out of disk."""
    import shutil

    from masuka_nb.config import reset_configuration
    from masuka_nb.lora import Dataset
    from tests.lora.helpers import encode, gradient

    cache = tmp_path / "downloads"  # the base's files land in the models folder or the cache: both go here
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(cache / "cache"))
    monkeypatch.setenv("MASUKA_MODELS_DIR", str(cache / "models"))
    reset_configuration()
    ds = Dataset.create("road")
    report = ds.import_files([("img0.png", encode(gradient(256, 256, 0), "PNG"))])
    assert len(report.imported) == 1, report.summary()
    yield ds
    from tests.real.road import Homes

    Homes.unload()  # the trainer's models go before their files do
    shutil.rmtree(cache, ignore_errors=True)


def _run(dataset, cfg):
    from masuka_nb.config import settings
    from masuka_nb.lora.runs import TrainingRun
    from masuka_nb.lora.trainer import _Trainer

    run = TrainingRun(name=f"road-{cfg.base}", run_dir=settings().home / "training" / f"road-{cfg.base}",
                      config=cfg, dataset_root=dataset.root)
    run.run_dir.mkdir(parents=True)
    run.save()
    return _Trainer(run, dataset).run(progress=False, cancel=None)


@pytest.mark.parametrize("bases", list(GROUPS.values()), ids="+".join)
def test_a_lora_training_step_on_the_real_base(on_local_hub, road_homes, one_image, bases):
    from safetensors import safe_open

    from masuka_nb.lora import train
    from masuka_nb.lora.plan import TARGET_PRESETS, plan_training
    from masuka_nb.testing.twins import TWINS

    base = bases[0]
    spec = get_model(base)
    road_homes.unload()  # the engine's pipeline of this model's steps is not the trainer's
    serve(on_local_hub, base)
    on_local_hub.clear_log()
    for each in bases:  # the GPU plan is refused on a CPU, before anything loads
        with pytest.raises(PlanDoesNotFitError):
            train(one_image, base=each, trigger_word="mk", gpu="a100-40", steps=1)
    assert not on_local_hub.downloads()
    plan = plan_training(base=base, n_images=1, trigger_word="mk", gpu="a100-40", steps=1)
    for other in bases[1:]:  # the same step on the same weights: trained once, for all of them
        assert dataclasses.replace(plan_training(base=other, n_images=1, trigger_word="mk", gpu="a100-40",
                                                 steps=1).config, base=base) == plan.config
    assert plan.config.quantization is None and plan.config.mixed_precision == "bf16"
    # The CPU computes in fp32; the start/end evaluation losses (two more real-width forwards) stay off.
    cfg = dataclasses.replace(plan.config, mixed_precision="no", resolution=RESOLUTION, checkpoint_every=1,
                              sample_every=0, eval_loss=False)
    run = _run(one_image, cfg)
    assert run.finished and run.step == 1 and len(run.losses) == 1 and math.isfinite(run.losses[0])
    assert run.stats["vae_encodes"] == (2 if spec.task == "fill" else 1) and run.stats["text_encodes"] >= 1
    with safe_open(str(run.lora_path), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("transformer.") for k in keys)
    names = {k.rsplit(".lora_", 1)[0] for k in keys}
    assert cfg.target_modules == "attention" and TARGET_PRESETS["attention"][0] == "to_q"
    assert {f"transformer.{name}" for name in TRAINED[spec.family]} <= names
    fetched = set(on_local_hub.downloads(spec.repo))
    assert {"transformer/config.json", "vae/config.json"} <= fetched
    assert not fetched & set(TWINS[base].stand_ins), "the trainer fetched a root single-file checkpoint"


@pytest.mark.gpu
@pytest.mark.parametrize("profile", ["t4", "l4"])
@pytest.mark.parametrize("base", BASES)
def test_nf4_training_plan_steps_on_cuda(on_local_hub, one_image, base, profile):
    """The T4 / L4 plans whole: NF4 transformer (pre-quantized for flux1-dev, quantized while loading for
    the others), 8-bit AdamW, fp16 / bf16 mixed precision."""
    from masuka_nb.lora import train

    serve(on_local_hub, base)
    run = train(one_image, base=base, trigger_word="mk", gpu=profile, steps=1, resolution=RESOLUTION,
                checkpoint_every=1, sample_every=0)
    assert run.finished and run.step == 1 and math.isfinite(run.losses[0])
    assert run.config.quantization == "nf4" and run.config.optimizer == "adamw8bit"
