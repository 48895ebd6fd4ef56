"""The tiny twins of the new pipelines: built from configs in code, saved as real diffusers folders, loaded
through from_pretrained offline, labelled noise, deterministic; FLUX.2 [klein] through masuka_nb.generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.models.registry import get_model
from masuka_nb.models.tiny import MARKER, TINY_LABEL, ensure_tiny

NEW_TWINS = ["tiny-flux-kontext", "tiny-flux-fill", "tiny-flux2-klein", "tiny-wan", "tiny-wan-i2v"]


def _inputs(model_id, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    img = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8"))
    spec = get_model(model_id)
    if spec.is_video:
        kw = dict(prompt="waves", num_inference_steps=2, height=32, width=32, num_frames=5, generator=g,
                  max_sequence_length=32, output_type="np")
        if spec.pipeline_class == "WanImageToVideoPipeline":
            kw["image"] = img.resize((32, 32))
        return kw
    kw = dict(prompt="a fox", num_inference_steps=2, height=64, width=64, generator=g,
              max_sequence_length=spec.max_sequence_length)
    if spec.task == "edit":
        kw.update(image=img, _auto_resize=False, max_area=64 * 64)
    if spec.task == "fill":
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (8, 8, 40, 40))
        kw.update(image=img, mask_image=mask)
    return kw


@pytest.mark.parametrize("model_id", NEW_TWINS)
def test_new_twins_load_offline_through_from_pretrained_and_are_deterministic(model_id):
    from diffusers import DiffusionPipeline

    spec = get_model(model_id)
    path = ensure_tiny(model_id)
    assert json.loads((path / MARKER).read_text())["label"] == TINY_LABEL
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == spec.pipeline_class
    assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6 < 20
    pipe = DiffusionPipeline.from_pretrained(path)  # a local folder: no Hub is asked, with or without HF_HUB_OFFLINE
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == spec.pipeline_class

    def run(seed):
        out = pipe(**_inputs(model_id, seed))
        return np.asarray(out.frames[0] if spec.is_video else out.images[0])

    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_flux2_klein_generates_deterministically_through_generate():
    a = mk.generate("a lighthouse", model="tiny-flux2-klein", seed=9, steps=2)
    b = mk.reproduce(a.paths[0])
    c = mk.generate("a lighthouse", model="tiny-flux2-klein", seed=10, steps=2, save=False)
    assert a.recipe["model"] == "tiny-flux2-klein" and "noise" in a.recipe["label"]
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(c.images[0]))


def test_new_registry_entries_carry_licence_gating_and_pipeline_data():
    import diffusers

    for mid in ("flux1-kontext-dev", "flux1-fill-dev", "flux2-klein", "wan2.1-t2v-1.3b", "wan2.2-ti2v-5b"):
        spec = get_model(mid)
        assert spec.licence and spec.licence_url.startswith("https://") and spec.published_url.startswith("https://")
        assert hasattr(diffusers, spec.pipeline_class) and hasattr(diffusers, spec.img2img_class)
        # Colab ships diffusers 0.39: every new pipeline must be there already.
        assert tuple(int(x) for x in spec.min_diffusers.split(".")) <= (0, 39)
    assert get_model("flux1-kontext-dev").gated and get_model("flux1-fill-dev").gated
    assert not get_model("flux2-klein").gated and get_model("flux2-klein").licence == "Apache-2.0"
    assert not get_model("wan2.1-t2v-1.3b").gated
    assert [m.id for m in mk.list_models(task="text-to-video")] == ["wan2.1-t2v-1.3b", "tiny-wan"]
    assert "wan2.1-t2v-1.3b" not in [m.id for m in mk.list_models()]  # the image form lists images only
    assert {m.task for m in mk.list_models(task=None)} >= {"edit", "fill", "image-to-video"}
    with pytest.raises(mk.errors.InvalidRequestError):
        mk.list_models(task="music")


def test_pyproject_admits_colabs_diffusers_and_needs_what_the_new_pipelines_need():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"diffusers>=0.37,<1"' in text  # Flux2KleinPipeline arrived in 0.37; Colab has 0.39
    assert "imageio-ffmpeg" in text and "ftfy" in text


def test_flux2_klein_loads_a_peft_lora_through_generate(tmp_path):
    import torch
    from diffusers import DiffusionPipeline, Flux2KleinPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(ensure_tiny("tiny-flux2-klein"))
    pipe.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"]))
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=g) if "lora_B" in k else v)  # B = 0 would be a no-op
             for k, v in get_peft_model_state_dict(pipe.transformer).items()}
    Flux2KleinPipeline.save_lora_weights(tmp_path, transformer_lora_layers=state)
    lora = tmp_path / "pytorch_lora_weights.safetensors"
    plain = mk.generate("a fox", model="tiny-flux2-klein", seed=1, steps=2, save=False)
    styled = mk.generate("a fox", model="tiny-flux2-klein", seed=1, steps=2, save=False, loras=[lora])
    again = mk.generate("a fox", model="tiny-flux2-klein", seed=1, steps=2, save=False)
    assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(styled.images[0]))
    assert np.array_equal(np.asarray(plain.images[0]), np.asarray(again.images[0]))  # unloaded after use
    assert styled.recipe["loras"][0]["sha256"]
