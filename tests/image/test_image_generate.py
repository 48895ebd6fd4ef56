"""generate / reproduce through the real tiny pipelines: images, seeds, batches, img2img, metadata, cache,
history, cancel, previews and pipeline reuse."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb import history
from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError
from masuka_nb.image.engine import ImageEngine
from masuka_nb.image.metadata import parse_parameters, read_png_metadata, read_recipe
from masuka_nb.progress import CancelToken, collect_events

SMALL = dict(width=32, height=32, steps=2)


def px(im) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


@pytest.fixture
def engine() -> ImageEngine:
    return ImageEngine()


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
def test_text_to_image_batch_saves_pngs_with_recipe(engine, model):
    res = engine.generate("a red fox in snow", model=model, seed=41, num_images=2, **SMALL)
    assert res.seeds == [41, 42]
    assert [im.size for im in res.images] == [(32, 32), (32, 32)]
    assert len(res.paths) == 2 and all(p.is_file() and p.suffix == ".png" for p in res.paths)
    assert str(res.paths[0]).startswith(str(mk.settings().outputs_dir))
    assert px(res.images[0]).std() != 0  # a real decoded image, not a blank
    assert np.array_equal(px(Image.open(res.paths[1])), px(res.images[1]))
    meta = read_png_metadata(res.paths[1])
    params = parse_parameters(meta["parameters"])
    assert params["prompt"] == "a red fox in snow"
    assert params["Seed"] == "42" and params["Size"] == "32x32" and params["Steps"] == "2"
    assert params["Model"] == model
    recipe = read_recipe(res.paths[1])
    assert recipe["seeds"] == [41, 42] and recipe["image_index"] == 1
    assert recipe["label"].startswith("tiny random model")
    assert res.plan.device == "cpu" and res.timings["seconds_total"] > 0
    [rec] = history.query(kind="image", model=model)
    assert rec.status == "ok" and rec.paths == [str(p) for p in res.paths] and rec.recipe["seeds"] == [41, 42]


def test_seeds_decide_the_image_and_batches_match_single_runs(engine):
    a = engine.generate("a boat", model="tiny-flux", seed=7, save=False, **SMALL)
    b = engine.generate("a boat", model="tiny-flux", seed=7, save=False, **SMALL)
    c = engine.generate("a boat", model="tiny-flux", seed=8, save=False, **SMALL)
    batch = engine.generate("a boat", model="tiny-flux", seed=7, num_images=2, save=False, **SMALL)
    assert not b.cached or np.array_equal(px(a.image), px(b.image))
    mk.configure(result_cache=False)
    d = engine.generate("a boat", model="tiny-flux", seed=7, save=False, **SMALL)
    assert not d.cached and np.array_equal(px(a.image), px(d.image))
    assert np.abs(px(a.image) - px(c.image)).max() > 0
    assert np.abs(px(batch.images[0]) - px(a.image)).max() <= 1
    assert np.abs(px(batch.images[1]) - px(c.image)).max() <= 1


def test_random_seed_is_recorded_and_reproducible(engine):
    res = engine.generate("a kite", model="tiny-flux", save=True, **SMALL)
    assert 0 <= res.seeds[0] < 2**32
    again = mk.reproduce(res.paths[0])
    assert again.seeds == res.seeds and not again.cached
    assert np.array_equal(px(again.image), px(res.image))


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
def test_image_to_image_follows_the_input(engine, model):
    src = Image.new("RGB", (32, 32), (250, 10, 10))
    low = engine.generate("a poppy", model=model, image=src, strength=0.5, seed=3, steps=4, save=False)
    high = engine.generate("a poppy", model=model, image=src, strength=1.0, seed=3, steps=4, save=False)
    assert low.image.size == src.size  # image-to-image keeps the input's size by default
    assert low.recipe["strength"] == 0.5 and low.recipe["image_sha256"]
    assert np.abs(px(low.image) - px(high.image)).max() > 0
    assert engine.load_count == 1  # the img2img pipeline shares the loaded weights


def test_negative_prompt_is_used_on_sd3_and_refused_on_flux(engine):
    base = engine.generate("a cat", model="tiny-sd3", seed=1, save=False, **SMALL)
    neg = engine.generate("a cat", model="tiny-sd3", negative_prompt="blurry", seed=1, save=False, **SMALL)
    assert np.abs(px(base.image) - px(neg.image)).max() > 0
    assert neg.recipe["negative_prompt"] == "blurry"
    with pytest.raises(InvalidRequestError) as err:
        engine.generate("a cat", model="tiny-flux", negative_prompt="blurry", save=False, **SMALL)
    assert err.value.argument == "negative_prompt"


def test_prompt_past_the_encoder_limit_reports_the_cut_part(engine):
    prompt = "a very long prompt " * 8 + "THE-TAIL-THAT-IS-LOST"
    with pytest.raises(InvalidRequestError) as err:
        engine.generate(prompt, model="tiny-flux", save=False, **SMALL)
    assert "THE-TAIL-THAT-IS-LOST" in err.value.details["cut"]
    assert "THE-TAIL-THAT-IS-LOST" in str(err.value)


def test_result_cache_skips_the_pipeline_and_can_be_turned_off(engine):
    first = engine.generate("a fern", model="tiny-flux", seed=9, **SMALL)
    events, sink = collect_events()
    second = engine.generate("a fern", model="tiny-flux", seed=9, progress=sink, **SMALL)
    assert second.cached and not first.cached
    assert not [e for e in events if e.stage == "generate"]  # no denoising step ran
    assert second.paths == first.paths
    assert np.array_equal(px(second.image), px(first.image))
    mk.configure(result_cache=False)
    events.clear()
    third = engine.generate("a fern", model="tiny-flux", seed=9, progress=sink, **SMALL)
    assert not third.cached and [e.step for e in events if e.stage == "generate"][-1] == 2
    statuses = [(r.status, r.extra.get("cached")) for r in history.query(kind="image")]
    assert statuses.count(("ok", True)) == 1 and statuses.count(("ok", False)) == 2


def test_progress_events_and_previews(engine):
    events, sink = collect_events()
    engine.generate("a tower", model="tiny-flux", steps=3, width=32, height=32, progress=sink, previews=True,
                    save=False)
    steps = [e for e in events if e.stage == "generate"]
    assert [e.step for e in steps][:3] == [1, 2, 3] and steps[-1].total == 3
    assert all(isinstance(e.preview, Image.Image) for e in steps[:3])
    assert steps[1].eta_s is not None


def test_cancel_leaves_no_files_and_no_success_in_history(engine):
    token = CancelToken()

    def cancel_after_first(event):
        if event.stage == "generate" and event.step >= 1:
            token.cancel("stop pressed")

    with pytest.raises(CancelledError):
        engine.generate("a moth", model="tiny-flux", steps=4, width=32, height=32, progress=cancel_after_first,
                        cancel=token)
    out = mk.settings().outputs_dir
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))
    recs = history.query(kind="image")
    assert [r.status for r in recs] == ["cancelled"] and recs[0].error["code"] == "CANCELLED"
    # The engine stays usable after a cancel.
    assert engine.generate("a moth", model="tiny-flux", save=False, **SMALL).images


def test_a_cancel_inside_a_step_stops_at_the_next_block_not_at_the_end_of_the_step(engine):
    """A FLUX step on a T4 takes seconds, one of its blocks tens of milliseconds: Stop pressed while step 2 runs
    ends the run inside step 2 (finishing it would report step 2 first), and leaves no hook on the model."""
    import torch

    token, seen = CancelToken(), []

    def on_event(event):
        if event.stage == "generate":
            seen.append(event.step)

    def press_stop_inside_step_2(module, args):  # a global hook runs before the module's own
        if seen and max(seen) == 1 and type(module).__name__ == "FluxTransformerBlock":
            token.cancel("stop pressed")

    handle = torch.nn.modules.module.register_module_forward_pre_hook(press_stop_inside_step_2)
    try:
        with pytest.raises(CancelledError):
            engine.generate("a moth at noon", model="tiny-flux", steps=4, width=32, height=32, progress=on_event,
                            cancel=token, save=False)
    finally:
        handle.remove()
    assert token.cancelled and max(seen) == 1
    pipe = engine.pipeline("tiny-flux")
    assert not any(m._forward_pre_hooks for m in pipe.transformer.modules())
    assert engine.generate("a moth at noon", model="tiny-flux", save=False, **SMALL).images


def test_failures_are_recorded_with_their_code(engine):
    with pytest.raises(MasukaError):
        engine.generate("", model="tiny-flux")
    with pytest.raises(MasukaError):
        engine.generate("x", model="no-such-model")
    codes = sorted(r.error["code"] for r in history.query(kind="image", status="failed"))
    assert codes == ["INVALID_REQUEST", "MODEL_NOT_FOUND"]


def test_pipeline_reuse_and_switching(engine):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    pipe = engine.pipeline("tiny-flux")
    assert isinstance(pipe, FluxPipeline) and engine.load_count == 1
    engine.generate("a", model="tiny-flux", save=False, **SMALL)
    engine.generate("b", model="tiny-flux", save=False, **SMALL)
    assert engine.load_count == 1 and engine.pipeline("tiny-flux") is pipe
    assert isinstance(engine.pipeline("tiny-sd3"), StableDiffusion3Pipeline)
    assert engine.load_count == 2 and engine.loaded_model == "tiny-sd3"
    engine.unload()
    assert engine.loaded_model is None


def test_auto_model_is_tiny_flux_without_a_gpu_and_says_so():
    res = mk.generate("a lighthouse", **SMALL, save=False)
    assert res.recipe["model"] == "tiny-flux"
    assert "no CUDA GPU" in res.recipe["auto_model"] and res.warnings


def test_fp32_vae_under_a_bf16_transformer(engine):
    from dataclasses import replace

    plan = replace(mk.plan("tiny-flux", gpu="cpu"), dtype="bfloat16", text_encoder_dtype="bfloat16")
    res = engine.generate("a dune", model="tiny-flux", plan=plan, seed=2, save=False, **SMALL)
    pipe = engine.pipeline("tiny-flux", plan=plan)
    assert str(pipe.vae.dtype) == "torch.float32" and str(pipe.transformer.dtype) == "torch.bfloat16"
    assert px(res.image).std() > 0
    src = Image.new("RGB", (32, 32), (0, 90, 200))
    assert engine.generate("a dune", model="tiny-flux", plan=plan, image=src, strength=0.5, steps=4,
                           save=False).images


def test_reproduce_of_img2img_and_lora_recipes(engine, flux_lora, tmp_path):
    src = Image.new("RGB", (32, 32), (20, 200, 20))
    src.save(tmp_path / "in.png")
    res = mk.generate("a leaf", model="tiny-flux", image=tmp_path / "in.png", strength=0.75, steps=4, seed=4,
                      loras=[(str(flux_lora), 0.7)])
    assert res.recipe["loras"][0]["weight"] == 0.7
    params = parse_parameters(read_png_metadata(res.paths[0])["parameters"])
    assert params["loras"] == [("flux-style", 0.7)] and params["Denoising strength"] == "0.75"
    res.recipe["image_path"] = str(tmp_path / "in.png")
    again = mk.reproduce(res.recipe)
    assert np.array_equal(px(again.image), px(res.image))


@pytest.mark.parametrize("model", ["tiny-flux", "tiny-sd3"])
def test_freeing_text_encoders_after_encoding_gives_the_same_image(engine, model):
    from dataclasses import replace

    plan = mk.plan(model, gpu="cpu")
    # use_cache=False: both images are computed (a result-cache hit would compare an image with itself).
    normal = engine.generate("a quiet bay", model=model, plan=plan, seed=12, num_images=2, save=False,
                             use_cache=False, **SMALL)
    freed = engine.generate("a quiet bay", model=model, plan=replace(plan, free_text_encoders=True), seed=12,
                            num_images=2, save=False, use_cache=False, **SMALL)
    assert not normal.cached and not freed.cached and "seconds_run" in freed.timings
    assert freed.recipe["compute"]["free_text_encoders"] and not normal.recipe["compute"]["free_text_encoders"]
    for a, b in zip(normal.images, freed.images):
        assert np.abs(px(a) - px(b)).max() <= 1
    pipe = engine.pipeline(model, plan=replace(plan, free_text_encoders=True))
    assert pipe.text_encoder is not None  # re-attached after the run


def test_cache_entries_from_another_home_are_not_reused(engine, tmp_path, monkeypatch):
    first = engine.generate("a gull", model="tiny-flux", seed=3, **SMALL)
    monkeypatch.setenv("MASUKA_HOME", str(tmp_path / "other-home"))
    again = engine.generate("a gull", model="tiny-flux", seed=3, **SMALL)
    assert not again.cached and again.paths[0].is_relative_to(tmp_path / "other-home")
    assert np.array_equal(px(again.image), px(first.image))


def test_cache_hit_for_save_true_after_save_false_writes_the_pngs(engine):
    first = engine.generate("a heron", model="tiny-flux", seed=21, save=False, **SMALL)
    assert not first.paths and first.recipe["cache_paths"]
    hit = engine.generate("a heron", model="tiny-flux", seed=21, save=True, **SMALL)
    assert hit.cached and hit.paths[0].is_relative_to(mk.settings().outputs_dir) and hit.paths[0].is_file()
    assert np.array_equal(px(Image.open(hit.paths[0])), px(first.image))


def test_another_plan_is_never_answered_from_the_cache(engine):
    """The result cache keys on how the image is computed: the same recipe under a plan that frees the
    text encoders (or any other compute field) is a new computation, while the same plan is a hit."""
    from dataclasses import replace

    plan = mk.plan("tiny-flux", gpu="cpu")
    first = engine.generate("a slow river", model="tiny-flux", plan=plan, seed=5, save=False, **SMALL)
    again = engine.generate("a slow river", model="tiny-flux", plan=plan, seed=5, save=False, **SMALL)
    other = engine.generate("a slow river", model="tiny-flux", plan=replace(plan, free_text_encoders=True), seed=5,
                            save=False, **SMALL)
    assert not first.cached and again.cached and not other.cached
    engine.attention_backend = "native"
    try:
        native = engine.generate("a slow river", model="tiny-flux", plan=plan, seed=5, save=False, **SMALL)
    finally:
        engine.attention_backend = None
    assert not native.cached and native.recipe["compute"]["attention_backend"] == "native"
