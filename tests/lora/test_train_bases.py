"""Training on every FLUX base MASUKA offers: Kontext and Fill (whose transformer reads the masked image and
the mask: in_channels 384 at full size) train on the CPU as tiny twins; the NF4 plans of the bases without a
pre-quantized repo quantize while loading; 8-bit AdamW runs wherever bitsandbytes does; the NF4 and
pre-quantized-T5 branches need a GPU (bitsandbytes quantizes diffusers models on CUDA only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masuka_nb.lora import train
from masuka_nb.lora.plan import plan_training

ARGS = dict(trigger_word="mk", steps=4, learning_rate=1e-2, resolution=32, checkpoint_every=2,
            target_modules="double-blocks")


@pytest.mark.parametrize("base", ["tiny-flux-fill", "tiny-flux-kontext"])
def test_a_lora_trains_on_the_edit_and_fill_bases(base, dataset_of):
    run = train(dataset_of(2, name=f"set-{base}"), base=base, sample_every=4, sample_prompts=["mk on a sofa"],
                sample_seeds=[0], **ARGS)
    assert run.finished and run.step == 4 and np.isfinite(run.losses).all()
    assert run.lora_path.is_file() and [p.name for p in run.samples] == ["step-0000004-p0-s0.png"]


def test_fill_trains_with_the_masked_image_and_the_mask(dataset_of, monkeypatch):
    """The Fill transformer is called with the packed latents followed by the masked image's latents and the
    mask, exactly as wide as its `in_channels` (384 for the real one)."""
    from diffusers import FluxTransformer2DModel

    seen = []
    forward = FluxTransformer2DModel.forward

    def spy(self, *args, **kwargs):
        seen.append((kwargs["hidden_states"].shape[-1], self.config.in_channels))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(FluxTransformer2DModel, "forward", spy)
    run = train(dataset_of(2, name="fill-set"), base="tiny-flux-fill", sample_every=0, **ARGS)
    assert run.finished and seen and all(width == in_channels for width, in_channels in seen)
    assert seen[0][1] > 16  # more than the latents alone


def test_fill_masks_are_drawn_from_the_seed_and_cover_part_of_the_image():
    from masuka_nb.lora.trainer import _fill_mask

    a = _fill_mask(0, "abc", (64, 48))
    assert torch.equal(a, _fill_mask(0, "abc", (64, 48))) and not torch.equal(a, _fill_mask(1, "abc", (64, 48)))
    covered = float(a.mean())
    assert set(a.unique().tolist()) <= {0.0, 1.0} and 0.4**2 - 0.01 <= covered <= 1.0


@pytest.mark.parametrize("base", ["flux1-schnell", "flux1-kontext-dev", "flux1-fill-dev", "flux1-dev"])
def test_t4_nf4_plans_name_the_quantized_transformer_they_load(base):
    plan = plan_training(base=base, n_images=10, trigger_word="mk", gpu="t4")
    cfg = plan.config
    assert cfg.quantization == "nf4"
    if base == "flux1-dev":
        assert cfg.quantized_repo == "diffusers/FLUX.1-dev-bnb-4bit" and "pre-quantized" in plan.describe()
    else:
        assert cfg.quantized_repo is None and "quantized while loading" in plan.describe()


def test_nf4_runs_without_a_prequantized_repo_quantize_the_transformer_while_loading(monkeypatch, tmp_path):
    """The call the trainer makes for schnell / Kontext / Fill under NF4: `quantization_config` is passed
    (it used to load the 23.8 GB fp16 transformer), and an unquantized result is refused."""
    from diffusers import FluxTransformer2DModel

    from masuka_nb.errors import TrainingFailedError
    from masuka_nb.lora.plan import TrainingConfig
    from masuka_nb.lora.runs import TrainingRun
    from masuka_nb.lora.trainer import _Trainer

    calls = []

    def fake_load(repo, **kwargs):
        calls.append((repo, kwargs))
        return torch.nn.Linear(2, 2)  # not quantized: the trainer must notice

    located = []

    def fake_locate(spec, dplan, *, progress=None):  # the files come through masuka_nb.hub, along its plan
        located.append(dplan)
        return tmp_path / dplan.repo.replace("/", "--")

    monkeypatch.setattr(FluxTransformer2DModel, "from_pretrained", staticmethod(fake_load))
    monkeypatch.setattr(_Trainer, "_device", lambda self: torch.device("cuda"))
    monkeypatch.setattr("masuka_nb.lora.trainer.locate_model", fake_locate)
    monkeypatch.setattr("masuka_nb.hub._list_repo", lambda repo, revision: ())
    for quantized_repo, expect_config in ((None, True), ("some/prequantized-repo", False)):
        cfg = TrainingConfig(base="flux1-schnell", quantization="nf4", mixed_precision="fp16",
                             quantized_repo=quantized_repo)
        trainer = _Trainer(TrainingRun(name="t", run_dir=tmp_path, config=cfg, dataset_root=tmp_path), dataset=None)
        repo = trainer._source()[1]
        with pytest.raises(TrainingFailedError, match="unquantized"):
            trainer._transformer(repo)
        loaded_repo, kwargs = calls[-1]
        expected = quantized_repo or "black-forest-labs/FLUX.1-schnell"
        assert loaded_repo == str(tmp_path / expected.replace("/", "--"))
        # the base's own files without the transformer a pre-quantized repo brings, that repo's transformer
        assert ("transformer/*.safetensors" in located[-2 if quantized_repo else -1].allow_patterns) \
            == (quantized_repo is None)
        assert kwargs["torch_dtype"] == torch.float16
        assert ("quantization_config" in kwargs) == expect_config
        if expect_config:
            qc = kwargs["quantization_config"]
            assert qc.load_in_4bit and qc.bnb_4bit_quant_type == "nf4" and qc.bnb_4bit_compute_dtype == torch.float16


# ---- the branches only a GPU runs ----

def _gpu_run(tmp_path, dataset, **changes):
    from masuka_nb.lora.plan import TrainingConfig
    from masuka_nb.lora.runs import TrainingRun
    from masuka_nb.lora.trainer import _Trainer

    cfg = TrainingConfig(**{**dict(base="tiny-flux", trigger_word="mk", steps=2, rank=4, learning_rate=1e-3,
                                   resolution=32, checkpoint_every=1, sample_every=0, target_modules="double-blocks"),
                            **changes})
    run = TrainingRun(name=f"gpu-{cfg.fingerprint()}", run_dir=tmp_path / cfg.fingerprint(), config=cfg,
                      dataset_root=dataset.root)
    run.run_dir.mkdir(parents=True)
    run.save()
    return _Trainer(run, dataset).run(progress=False, cancel=None)


@pytest.mark.gpu
@pytest.mark.parametrize("base", ["tiny-flux", "tiny-flux-fill"])
def test_qlora_quantizes_the_transformer_and_t5_while_loading_on_a_gpu(base, dataset_of, tmp_path, monkeypatch):
    bnb = pytest.importorskip("bitsandbytes")
    from masuka_nb.lora.trainer import _Trainer

    seen = {}
    original = _Trainer._add_lora

    def spy(self, model):
        seen["linear4bit"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
        return original(self, model)

    monkeypatch.setattr(_Trainer, "_add_lora", spy)
    run = _gpu_run(tmp_path, dataset_of(2), base=base, quantization="nf4", optimizer="adamw8bit",
                   mixed_precision="fp16")
    assert run.finished and np.isfinite(run.losses).all() and seen["linear4bit"] > 0


def test_8bit_adamw_is_the_optimizer_that_runs(dataset_of, tmp_path):
    """bitsandbytes' AdamW8bit (it has a CPU backend too, so this runs everywhere bitsandbytes is installed):
    its checkpointed state is bitsandbytes' (state1/state2 under its quant-state key), not torch's exp_avg."""
    pytest.importorskip("bitsandbytes")
    run = _gpu_run(tmp_path, dataset_of(2), optimizer="adamw8bit", mixed_precision="bf16")
    from masuka_nb.lora.checkpoints import read_checkpoint

    state = read_checkpoint(run.latest_checkpoint).optimizer["state"]  # safetensors + JSON, no pickle
    assert run.finished and state
    for s in state.values():
        inner = s.get("__bnb_optimizer_quant_state__", s)
        assert "state1" in inner and "exp_avg" not in s


@pytest.mark.gpu
def test_a_prequantized_t5_and_transformer_are_loaded_from_the_repo_the_plan_names(dataset_of, tmp_path):
    """The flux1-dev road on a T4: transformer and T5 from a pre-quantized folder (made here by saving the
    tiny twin's NF4 components), the rest from the base."""
    bnb = pytest.importorskip("bitsandbytes")
    from diffusers import BitsAndBytesConfig as DiffusersBnb
    from diffusers import FluxTransformer2DModel
    from transformers import BitsAndBytesConfig, T5EncoderModel

    from masuka_nb.models.tiny import ensure_tiny

    tiny = ensure_tiny("tiny-flux")
    repo = tmp_path / "prequantized"
    FluxTransformer2DModel.from_pretrained(tiny, subfolder="transformer", quantization_config=DiffusersBnb(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float16),
        torch_dtype=torch.float16).save_pretrained(repo / "transformer")
    T5EncoderModel.from_pretrained(tiny, subfolder="text_encoder_2", dtype=torch.float16, quantization_config=
                                   BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
                                   ).save_pretrained(repo / "text_encoder_2")
    run = _gpu_run(tmp_path, dataset_of(2), quantization="nf4", optimizer="adamw8bit", mixed_precision="fp16",
                   quantized_repo=str(repo))
    assert run.finished and np.isfinite(run.losses).all()
    del bnb
