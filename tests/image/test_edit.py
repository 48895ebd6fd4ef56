"""masuka_nb.edit with the tiny Kontext and Fill twins: edits replay pixel-identically from their recipe
(PNG and dict), masks are checked, the model must be an edit model, and every call lands in the history."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError
from masuka_nb.image.metadata import read_recipe


def _photo(w=64, h=64, seed=0):
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype("uint8"))


def _mask(w=64, h=64):
    m = Image.new("L", (w, h), 0)
    m.paste(255, (16, 16, 48, 48))
    return m


def _px(im):
    return np.asarray(im)


def test_kontext_edit_reproduces_pixel_identically_from_its_png():
    res = mk.edit(_photo(), "make it night", seed=11, steps=3)
    assert res.recipe["model"] == "tiny-flux-kontext" and res.recipe["task"] == "edit"
    assert "no CUDA GPU" in res.warnings[0] and "noise" in res.recipe["label"]
    assert res.images[0].size == (64, 64)
    recipe = read_recipe(res.paths[0])
    assert recipe["image_sha256"] == res.recipe["image_sha256"] and recipe["kind"] == "edit"
    again = mk.reproduce(res.paths[0])
    assert np.array_equal(_px(res.images[0]), _px(again.images[0]))
    other = mk.edit(_photo(), "make it night", seed=12, steps=3, save=False)
    assert not np.array_equal(_px(res.images[0]), _px(other.images[0]))
    rec = mk.history.query(kind="edit")[0]
    assert rec.status == "ok" and rec.recipe["prompt"] == "make it night"


def test_fill_edit_with_a_mask_reproduces_from_the_recipe_dict():
    res = mk.edit(_photo(seed=1), "a red scarf", mask=_mask(), seed=5, steps=3, save=False)
    assert res.recipe["model"] == "tiny-flux-fill" and res.recipe["mask_sha256"]
    again = mk.reproduce(res.recipe)
    assert np.array_equal(_px(res.images[0]), _px(again.images[0]))
    # A different mask is a different edit.
    moved = _mask()
    moved.paste(0, (16, 16, 48, 48))
    moved.paste(255, (0, 0, 24, 24))
    other = mk.edit(_photo(seed=1), "a red scarf", mask=moved, seed=5, steps=3, save=False)
    assert not np.array_equal(_px(res.images[0]), _px(other.images[0]))


def test_edit_takes_a_result_so_any_result_can_be_edited():
    made = mk.generate("a lighthouse", model="tiny-flux", seed=3, steps=2, save=False)
    res = mk.edit(made, "make it night", seed=4, steps=2, save=False)
    assert res.recipe["image_sha256"] != res.recipe.get("mask_sha256")
    assert res.images[0].size == made.images[0].size
    again = mk.reproduce(res.recipe)
    assert np.array_equal(_px(res.images[0]), _px(again.images[0]))


def test_a_recipe_whose_input_image_is_gone_says_so(masuka_home):
    res = mk.edit(_photo(), "make it night", seed=1, steps=2, save=False)
    for p in (masuka_home / "outputs" / "edits" / "inputs").iterdir():
        p.unlink()
    with pytest.raises(InvalidRequestError) as err:
        mk.reproduce(res.recipe)
    assert "input image" in str(err.value)


def test_sizes_are_trimmed_to_the_latent_grid_and_masks_must_match():
    res = mk.edit(_photo(70, 66), "night", seed=1, steps=2, save=False)
    assert res.images[0].size == (64, 64)
    with pytest.raises(InvalidRequestError) as err:
        mk.edit(_photo(), "x", mask=_mask(32, 32))
    assert err.value.argument == "mask"


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"model": "tiny-flux"}, "model"), ({"model": "tiny-flux-fill"}, "mask"),
    ({"model": "tiny-flux-kontext", "mask": "M"}, "mask"), ({"steps": 0}, "steps"), ({"seed": 2**40}, "seed"),
    ({"num_images": 0}, "num_images"), ({"instruction": ""}, "instruction"), ({"image": "/no/such.png"}, "image"),
])
def test_bad_edits_name_the_argument(kwargs, argument):
    kwargs = dict(kwargs)
    if kwargs.get("mask") == "M":
        kwargs["mask"] = _mask()
    image = kwargs.pop("image", _photo())
    instruction = kwargs.pop("instruction", "make it night")
    with pytest.raises(InvalidRequestError) as err:
        mk.edit(image, instruction, **kwargs)
    assert err.value.argument == argument and err.value.hint


def test_edit_plans_like_generation_and_records_speed():
    res = mk.edit(_photo(), "night", seed=2, steps=3, plan={"speed": "fast"}, save=False)
    assert res.plan.speed == "fast" and res.recipe["plan_overrides"] == {"speed": "fast"}
    again = mk.reproduce(res.recipe)
    assert again.plan.speed == "fast" and np.array_equal(_px(res.images[0]), _px(again.images[0]))
    t4 = mk.plan("flux1-kontext-dev", gpu="t4")
    assert t4.fits and t4.quantization == "nf4" and t4.dtype == "float16"
