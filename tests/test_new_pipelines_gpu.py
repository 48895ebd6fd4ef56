"""Each new pipeline on CUDA with its tiny twin: Wan text- and image-to-video, Kontext, Fill, FLUX.2 [klein],
in fp16 (a T4-like plan: fp32 VAE) and bf16, and speed mode on the GPU (skipped without CUDA)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.image.engine import ImageEngine
from masuka_nb.video.local import generate_local, read_mp4, unload

pytestmark = pytest.mark.gpu


def _cuda(model, profile="l4", **changes):
    return replace(mk.plan(model, gpu=profile), **changes)


def _photo(size=64):
    return Image.fromarray((np.random.default_rng(0).random((size, size, 3)) * 255).astype("uint8"))


@pytest.mark.parametrize("profile", ["t4", "l4"])
def test_tiny_wan_text_to_video_on_cuda(profile):
    unload()
    clip = generate_local("waves", model="tiny-wan", num_frames=9, steps=2, seed=1,
                          plan=_cuda("tiny-wan", profile, width=32, height=32, num_frames=9))
    assert clip.plan.device == "cuda" and read_mp4(clip.path).num_frames == 9
    unload()


def test_tiny_wan_image_to_video_on_cuda_with_speed_mode():
    unload()
    plan = _cuda("tiny-wan-i2v", width=32, height=32, num_frames=9, first_block_cache=0.08, speed="fast")
    clip = generate_local("rain", model="tiny-wan-i2v", image=_photo(32), num_frames=9, steps=3, seed=2, plan=plan)
    assert read_mp4(clip.path).num_frames == 9 and clip.recipe["speed"] == "fast"
    unload()


@pytest.mark.parametrize("model", ["tiny-flux-kontext", "tiny-flux-fill"])
def test_tiny_edits_on_cuda_reproduce(model):
    engine = ImageEngine()
    from masuka_nb.image.edit import run_edit

    mask = None
    if model == "tiny-flux-fill":
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (8, 8, 40, 40))
    plan = _cuda(model, width=64, height=64)
    a = run_edit(engine, _photo(), "make it night", model=model, mask=mask, steps=2, seed=3, plan=plan, save=False)
    b = run_edit(engine, _photo(), "make it night", model=model, mask=mask, steps=2, seed=3, plan=plan, save=False)
    assert a.plan.device == "cuda" and np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
    engine.unload()


@pytest.mark.parametrize("profile", ["t4", "l4"])
def test_tiny_flux2_klein_on_cuda_is_deterministic(profile):
    engine = ImageEngine()
    plan = _cuda("tiny-flux2-klein", profile, width=64, height=64)
    a = engine.generate("a gpu", model="tiny-flux2-klein", plan=plan, seed=4, steps=2, save=False)
    b = engine.generate("a gpu", model="tiny-flux2-klein", plan=plan, seed=4, steps=2, save=False)
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
    engine.unload()


def test_free_text_encoders_paths_on_cuda():
    engine = ImageEngine()
    from masuka_nb.image.edit import run_edit

    plan = _cuda("tiny-flux-kontext", width=64, height=64, free_text_encoders=True)
    res = run_edit(engine, _photo(), "night", model="tiny-flux-kontext", steps=2, seed=1, plan=plan, save=False)
    assert res.images
    engine.unload()
    unload()
    vplan = _cuda("tiny-wan", width=32, height=32, num_frames=5, free_text_encoders=True)
    clip = generate_local("waves", model="tiny-wan", num_frames=5, steps=2, seed=1, plan=vplan)
    assert read_mp4(clip.path).num_frames == 5
    unload()
