"""LoRA training beyond FLUX.1: FLUX.2 [klein] and Z-Image on their tiny twins, through the same `lora.train`.

Each base: the loss falls, samples are written, the run resumes after a SIGKILL to the same LoRA, the PEFT file and
the ComfyUI-loadable file (kohya keys for FLUX.2, `diffusion_model.` keys for Z-Image) load back into generation and
through diffusers' own converters to the same pixels, ComfyUI's own key-mapping rules map every exported key onto a
weight of the model it was trained for, and a LoRA made for one base is refused on the other with a clear error.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError, LoraIncompatibleError, PlanDoesNotFitError
from masuka_nb.lora import TrainingRun, train
from tests.lora.helpers import encode, gradient

ROOT = Path(__file__).resolve().parents[2]
BASES = ("tiny-flux2-klein", "tiny-zimage")
ARGS = dict(trigger_word="mk", steps=12, learning_rate=1e-2, resolution=32, checkpoint_every=3, seed=0)


@pytest.fixture(scope="session")
def runs_2026(tmp_path_factory, tiny_cache):
    """One finished run per base (its paths are absolute, in its own home)."""
    from masuka_nb.config import reset_configuration
    from masuka_nb.lora import Dataset

    out = {}
    mp = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("MASUKA_"):
            mp.delenv(key, raising=False)
    mp.setenv("MASUKA_HOME", str(tmp_path_factory.mktemp("train-2026")))
    mp.setenv("MASUKA_CACHE_DIR", str(tiny_cache))
    mp.setenv("MASUKA_PROGRESS", "off")
    reset_configuration()
    try:
        ds = Dataset.create("overfit")
        ds.import_files([(f"img{k}.png", encode(gradient(256, 256 + 64 * k, k), "PNG")) for k in range(3)])
        for base in BASES:
            out[base] = train(ds, base=base, sample_every=6, sample_prompts=["mk on a sofa"], sample_seeds=[0],
                              **ARGS)
    finally:
        mp.undo()
        reset_configuration()
    return out


@pytest.mark.parametrize("base", BASES)
def test_a_lora_trains_on_the_new_bases_with_samples_and_both_files(runs_2026, base):
    run = runs_2026[base]
    assert run.finished and run.step == ARGS["steps"] and len(run.losses) == ARGS["steps"]
    assert run.stats["eval_loss_end"] < run.stats["eval_loss_start"]  # fixed noise: it learns the set
    assert [p.name for p in run.samples] == ["step-0000006-p0-s0.png", "step-0000012-p0-s0.png"]
    meta = json.loads((run.lora_path.parent / "masuka_lora.json").read_text())
    assert meta["base_model"] == base and meta["trigger_word"] == "mk"
    peft = load_file(str(run.lora_path))
    assert peft and all(k.startswith("transformer.") and ".lora_" in k for k in peft)
    other = load_file(str(run.kohya_path))
    if base == "tiny-flux2-klein":
        assert run.kohya_path.name.endswith(".kohya.safetensors")
        assert {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",
                "lora_unet_single_blocks_0_linear1.lora_up.weight"} <= set(other)
    else:
        assert run.kohya_path.name.endswith(".comfyui.safetensors") and meta["comfyui_file"] == run.kohya_path.name
        assert set(other) == {"diffusion_model." + k.removeprefix("transformer.") for k in peft}


@pytest.mark.parametrize("base", BASES)
def test_the_lora_loads_back_into_generation_and_changes_the_image(runs_2026, base):
    run = runs_2026[base]
    from masuka_nb.image.lora import validate_lora

    info = validate_lora(run.lora_path, model=base)
    assert info.rank == 4 and info.trigger_word == "mk"
    kw = dict(model=base, width=32, height=32, steps=2, seed=7, save=False, progress=False)
    plain = np.asarray(mk.generate("mk on a sofa", **kw).images[0], dtype=float)
    by_folder = np.asarray(mk.generate("mk on a sofa", loras=[str(run.lora_path.parent)], **kw).images[0], dtype=float)
    by_other = np.asarray(mk.generate("mk on a sofa", loras=[str(run.kohya_path)], **kw).images[0], dtype=float)
    assert np.abs(by_folder - plain).mean() > 0.05  # 0–255 pixels: the LoRA changes the image
    np.testing.assert_allclose(by_other, by_folder, atol=1.0)  # the ComfyUI file is the same LoRA


def _pipe(base: str):
    from diffusers import DiffusionPipeline

    from masuka_nb.models.tiny import tiny_dir

    pipe = DiffusionPipeline.from_pretrained(str(tiny_dir(base)))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _render(pipe, base: str) -> np.ndarray:
    kw = {"guidance_scale": 0.0} if base == "tiny-zimage" else {}
    out = pipe(prompt="mk on a sofa", num_inference_steps=2, width=32, height=32, output_type="np",
               generator=torch.Generator("cpu").manual_seed(7), **kw).images[0]
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("base", BASES)
def test_diffusers_own_converter_reads_the_comfyui_file_as_the_same_lora(runs_2026, base):
    run = runs_2026[base]
    peft, other, plain = _pipe(base), _pipe(base), _pipe(base)
    peft.load_lora_weights(str(run.lora_path.parent), weight_name=run.lora_path.name)
    other.load_lora_weights(str(run.kohya_path.parent), weight_name=run.kohya_path.name)
    a, b = _render(peft, base), _render(other, base)
    assert np.abs(a - _render(plain, base)).mean() > 1e-4
    np.testing.assert_allclose(b, a, atol=2e-4)


# ---- ComfyUI's own key-mapping rules, written out from its source -------------------------------------------------
# https://github.com/comfyanonymous/ComfyUI/blob/master/comfy/lora.py (model_lora_keys_unet, load_lora) and
# comfy/utils.py (z_image_to_diffusers), read 2026-12. ComfyUI's models keep the original checkpoints' names under
# `diffusion_model.`: BFL's for FLUX.2 (comfy.model_base.Flux2 is a Flux subclass), Z-Image's fused-qkv names for
# Lumina2/Z-Image. What a LoRA key maps onto:
#   every model: "lora_unet_" + name.replace(".", "_") -> "diffusion_model.<name>.weight" (kohya)
#   Lumina2 (Z-Image): for each diffusers name k of z_image_to_diffusers: "diffusion_model.<k>", "transformer.<k>",
#       "lycoris_<k with _>", "<k>" -> the native weight, q/k/v as (qkv, (dim 0, offset, size)) slices
# load_lora consumes "<x>.lora_up.weight"/"<x>.lora_down.weight" (kohya), "<x>.lora_B.weight"/"<x>.lora_A.weight"
# (diffusers) and "<x>.alpha"; any other key is "lora key not loaded".
# ComfyUI itself is not on PyPI, so CI runs these rules; the files were also loaded once through ComfyUI's own
# loader into its own Flux2 / Lumina2 models (docs/contracts.md, "Checked through ComfyUI's own code").

def _comfy_unet_key_map(native: dict[str, tuple[int, ...]], diffusers_to_native: dict[str, object]) -> dict:
    key_map: dict[str, object] = {}
    for k in native:
        if k.startswith("diffusion_model.") and k.endswith(".weight"):
            key_lora = k[len("diffusion_model."):-len(".weight")].replace(".", "_")
            key_map[f"lora_unet_{key_lora}"] = k
            key_map[k[:-len(".weight")]] = k
    for k, to in diffusers_to_native.items():
        if k.endswith(".weight"):
            key_lora = k[:-len(".weight")]
            for alias in (f"diffusion_model.{key_lora}", f"transformer.{key_lora}",
                          f"lycoris_{key_lora.replace('.', '_')}", key_lora):
                key_map[alias] = to
    return key_map


def _comfy_load(lora: dict[str, torch.Tensor], key_map: dict, native: dict[str, tuple[int, ...]]) -> list[str]:
    """ComfyUI's load_lora over `key_map`; returns the keys it leaves unloaded, and checks every patch's shape."""
    loaded = set()
    for x, target in key_map.items():
        for up, down in ((f"{x}.lora_up.weight", f"{x}.lora_down.weight"), (f"{x}.lora_B.weight", f"{x}.lora_A.weight")):
            if up in lora:
                name, offset = (target, None) if isinstance(target, str) else target
                rows = offset[2] if offset else native[name][0]
                delta = lora[up].float() @ lora[down].float()
                assert tuple(delta.shape) == (rows, native[name][1]), (x, tuple(delta.shape), native[name], offset)
                loaded |= {up, down, f"{x}.alpha"}
    return [k for k in lora if k not in loaded]


def _z_image_to_diffusers(n_layers: int, n_refiners: int, dim: int) -> dict[str, object]:
    """comfy/utils.py z_image_to_diffusers for the attention and feed-forward weights (output_prefix
    "diffusion_model.")."""
    out: dict[str, object] = {}
    blocks = [f"layers.{i}" for i in range(n_layers)]
    blocks += [f"{kind}.{i}" for kind in ("context_refiner", "noise_refiner") for i in range(n_refiners)]
    for b in blocks:
        qkv = f"diffusion_model.{b}.attention.qkv.weight"
        for j, p in enumerate(("to_q", "to_k", "to_v")):
            out[f"{b}.attention.{p}.weight"] = (qkv, (0, j * dim, dim))
        out[f"{b}.attention.to_out.0.weight"] = f"diffusion_model.{b}.attention.out.weight"
        for w in ("w1", "w2", "w3"):
            out[f"{b}.feed_forward.{w}.weight"] = f"diffusion_model.{b}.feed_forward.{w}.weight"
    return out


def _native_zimage(transformer) -> dict[str, tuple[int, ...]]:
    sd = transformer.state_dict()
    native: dict[str, tuple[int, ...]] = {}
    for k, v in sd.items():
        m = re.match(r"(.*)\.attention\.to_([qkv])\.weight$", k)
        if m:
            native[f"diffusion_model.{m.group(1)}.attention.qkv.weight"] = (3 * v.shape[0], v.shape[1])
        elif ".attention.to_out.0." in k:
            native[f"diffusion_model.{k.replace('.attention.to_out.0.', '.attention.out.')}"] = tuple(v.shape)
        else:
            native[f"diffusion_model.{k}"] = tuple(v.shape)
    return native


# BFL's FLUX.2 names for the diffusers modules MASUKA trains (diffusers' convert_flux2_transformer_checkpoint_to_diffusers,
# https://github.com/huggingface/diffusers/blob/main/src/diffusers/loaders/single_file_utils.py, read in reverse)
_FLUX2_NATIVE = {r"transformer_blocks\.(\d+)\.attn\.to_[qkv]": ("double_blocks.{}.img_attn.qkv", 3),
                 r"transformer_blocks\.(\d+)\.attn\.to_out\.0": ("double_blocks.{}.img_attn.proj", 1),
                 r"single_transformer_blocks\.(\d+)\.attn\.to_qkv_mlp_proj": ("single_blocks.{}.linear1", 1),
                 r"single_transformer_blocks\.(\d+)\.attn\.to_out": ("single_blocks.{}.linear2", 1)}


def _native_flux2(transformer) -> dict[str, tuple[int, ...]]:
    native: dict[str, tuple[int, ...]] = {}
    for k, v in transformer.state_dict().items():
        for pattern, (name, fused) in _FLUX2_NATIVE.items():
            m = re.fullmatch(pattern + r"\.weight", k)
            if m:
                native[f"diffusion_model.{name.format(m.group(1))}.weight"] = (fused * v.shape[0], v.shape[1])
    return native


@pytest.mark.parametrize("base", BASES)
def test_comfyui_rules_map_every_exported_key_onto_the_models_weights(runs_2026, base):
    run = runs_2026[base]
    transformer = _pipe(base).transformer
    lora = load_file(str(run.kohya_path))
    if base == "tiny-zimage":
        cfg = transformer.config
        native = _native_zimage(transformer)
        key_map = _comfy_unet_key_map(native, _z_image_to_diffusers(cfg.n_layers, cfg.n_refiner_layers, cfg.dim))
    else:
        native = _native_flux2(transformer)
        key_map = _comfy_unet_key_map(native, {})
    assert _comfy_load(lora, key_map, native) == []  # every key lands on a weight of the right shape
    # ... and a file for the other base lands nowhere
    other = load_file(str(runs_2026[next(b for b in BASES if b != base)].kohya_path))
    assert _comfy_load(other, key_map, native) == list(other)


# ---- resume after a kill, refusal on another base, plans ---------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
def test_a_killed_run_resumes_to_the_same_lora(base, dataset_of, masuka_home):
    ds = dataset_of(2)
    args = {**ARGS, "steps": 16}
    reference = train(ds, base=base, name="straight", **args)
    cmd = [sys.executable, "-m", "masuka_nb.lora.cli", "train", "--dataset", ds.name, "--name", "killed", "--events",
           "--base", base, "--trigger-word", "mk", "--steps", "16", "--learning-rate", "0.01", "--resolution", "32",
           "--checkpoint-every", "3", "--seed", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
    killed_at = None
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("global_step", 0) >= 4:  # the step-3 checkpoint is on disk
                proc.send_signal(signal.SIGKILL)
                killed_at = event["global_step"]
                break
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL and killed_at is not None
    interrupted = TrainingRun.load("killed")
    assert interrupted.status == "running" and interrupted.latest_checkpoint is not None
    resumed = train(ds, base=base, name="killed", **args)
    assert resumed.finished and resumed.stats["resumed_from"] >= 3
    a, b = load_file(str(reference.lora_path)), load_file(str(resumed.lora_path))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("trained", "other"), [("tiny-zimage", "tiny-flux2-klein"), ("tiny-flux2-klein", "tiny-zimage"),
                                                ("tiny-zimage", "tiny-flux")])
def test_a_lora_trained_on_one_base_is_refused_on_another(runs_2026, trained, other):
    run = runs_2026[trained]
    for source in (run.lora_path, run.kohya_path):
        with pytest.raises(LoraIncompatibleError) as err:
            mk.generate("mk on a sofa", model=other, loras=[str(source)], width=32, height=32, steps=1, save=False)
        assert trained in str(err.value) and other in str(err.value) and err.value.argument == "loras"


def test_training_plans_for_the_real_new_bases():
    from masuka_nb.lora.plan import plan_training

    for base in ("flux2-klein", "zimage-turbo"):
        t4 = plan_training(base=base, n_images=10, gpu="t4")
        assert t4.config.quantization == "nf4" and t4.config.mixed_precision == "fp16"
        assert t4.config.optimizer == "adamw8bit" and t4.estimated_vram_gb <= 15.0 * 0.92
        assert any("NF4" in n for n in t4.notes)
        a100 = plan_training(base=base, n_images=10, gpu="a100-40")
        assert a100.config.quantization is None and a100.config.mixed_precision == "bf16"
        with pytest.raises(PlanDoesNotFitError):
            plan_training(base=base, n_images=10, gpu="cpu")
    for base in ("qwen-image", "wan2.1-t2v-1.3b", "sd35-large"):
        with pytest.raises(InvalidRequestError) as err:
            plan_training(base=base, n_images=10, gpu="a100-40")
        assert err.value.argument == "base" and "zimage-turbo" in err.value.hint


@pytest.mark.gpu
@pytest.mark.parametrize("base", BASES)
def test_qlora_on_the_new_bases_quantizes_the_transformer_while_loading_on_a_gpu(base, dataset_of, tmp_path,
                                                                                  monkeypatch):
    """The T4 recipe (NF4 transformer quantized as it loads, fp16, 8-bit AdamW) on the tiny twins, on CUDA."""
    bnb = pytest.importorskip("bitsandbytes")
    from masuka_nb.lora.plan import TrainingConfig
    from masuka_nb.lora.runs import TrainingRun
    from masuka_nb.lora.trainer import _Trainer

    seen = {}
    original = _Trainer._add_lora

    def spy(self, model):
        seen["linear4bit"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
        return original(self, model)

    monkeypatch.setattr(_Trainer, "_add_lora", spy)
    cfg = TrainingConfig(base=base, trigger_word="mk", steps=2, rank=4, learning_rate=1e-3, resolution=32,
                         checkpoint_every=1, sample_every=2, sample_prompts=["mk"], quantization="nf4",
                         optimizer="adamw8bit", mixed_precision="fp16")
    ds = dataset_of(2)
    run = TrainingRun(name=f"gpu-{cfg.fingerprint()}", run_dir=tmp_path / cfg.fingerprint(), config=cfg,
                      dataset_root=ds.root)
    run.run_dir.mkdir(parents=True)
    run.save()
    run = _Trainer(run, ds).run(progress=False, cancel=None)
    assert run.finished and np.isfinite(run.losses).all() and seen["linear4bit"] > 0 and run.samples
