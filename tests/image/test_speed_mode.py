"""Speed mode on tiny-flux: recorded in the plan and the recipe, replayed by reproduce, and the first-block
cache really skips transformer passes (counted inside the last block, which a cached step never enters)."""

from __future__ import annotations

import numpy as np
import torch

import masuka_nb as mk
from masuka_nb.image.speed import apply_speed, count_full_passes


def _pipe(plan):
    from diffusers import DiffusionPipeline

    from masuka_nb.models.tiny import ensure_tiny

    pipe = DiffusionPipeline.from_pretrained(ensure_tiny("tiny-flux"))
    pipe.set_progress_bar_config(disable=True)
    apply_speed(pipe, plan)
    return pipe


def _passes(plan, steps=12):
    pipe = _pipe(plan)
    with count_full_passes(pipe) as count:
        pipe("a fox", num_inference_steps=steps, height=64, width=64, generator=torch.Generator().manual_seed(0))
    return count


def test_the_cache_skips_passes_only_when_on():
    off = _passes(mk.plan("tiny-flux", gpu="cpu"))
    assert off.calls == 12 and off.saved == 0
    loose = _passes(mk.plan("tiny-flux", gpu="cpu", first_block_cache=0.5))
    assert loose.calls == 12 and loose.saved > 0


def test_speed_fast_is_in_the_recipe_and_reproduce_replays_it():
    res = mk.generate("a fox", model="tiny-flux", seed=4, steps=4, plan={"speed": "fast"})
    assert res.plan.speed == "fast" and res.plan.first_block_cache == 0.08
    assert "speed=fast" in res.recipe["plan"] and res.recipe["plan_overrides"]["speed"] == "fast"
    again = mk.reproduce(res.paths[0])
    assert again.plan.speed == "fast"
    assert np.array_equal(np.asarray(res.images[0]), np.asarray(again.images[0]))
