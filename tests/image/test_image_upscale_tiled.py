"""Tiled upscaling: tiles cover the image, blended overlaps leave no seam, tiled refine on tiny-flux,
recipes for every method, and the ESRGAN-family upscaler (spandrel) on a tiny network saved as a file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError
from masuka_nb.history import query
from masuka_nb.image.upscaling import tile_boxes, tiled


def gradient(w=256, h=64):
    x = np.linspace(40, 200, w)[None, :, None].repeat(h, 0).repeat(3, 2)
    return Image.fromarray(x.round().astype(np.uint8))


def test_tiles_cover_the_image_with_the_overlap_and_no_sliver():
    boxes = tile_boxes(300, 100, 128, 32)
    covered = np.zeros((100, 300), bool)
    for left, top, right, bottom in boxes:
        covered[top:bottom, left:right] = True
        assert right - left == 128 and bottom - top == 100
    assert covered.all() and [b[0] for b in boxes] == [0, 96, 172]
    assert tile_boxes(64, 64, 128, 32) == [(0, 0, 64, 64)]


def _drifting(piece_counter):
    """A tile processor whose output drifts per tile (brighter each tile), as a model's tiles do."""
    def fn(piece):
        k = piece_counter.append(1) or len(piece_counter)
        return Image.fromarray(np.clip(np.asarray(piece, dtype=int) + 12 * k, 0, 255).astype(np.uint8))
    return fn


def test_blended_overlaps_keep_tile_edges_smooth_on_a_smooth_image():
    img = gradient()
    hard = np.asarray(tiled(img, _drifting([]), tile=64, overlap=0), dtype=float)
    soft = np.asarray(tiled(img, _drifting([]), tile=64, overlap=32), dtype=float)
    step = np.abs(np.diff(np.asarray(img, dtype=float), axis=1)).max()
    hard_jump = np.abs(np.diff(hard, axis=1)).max()
    soft_jump = np.abs(np.diff(soft, axis=1)).max()
    assert hard_jump >= 10  # without overlap the drift shows as a seam
    assert soft_jump <= step + 12 / 32 * 2 + 1  # with it, at most the image's own step plus a sliver of drift
    same = np.asarray(tiled(img, lambda p: p, tile=64, overlap=32))
    assert np.abs(same.astype(int) - np.asarray(img, dtype=int)).max() <= 1  # blending alone changes nothing


def test_tiled_refine_on_tiny_flux_keeps_the_recipe_and_records_once():
    res = mk.generate("a harbour", model="tiny-flux", width=64, height=64, steps=2, seed=11, progress=False)
    up = mk.upscale(res, factor=4, method="refine", tile=128, overlap=32, steps=4, strength=0.5, save=True)
    assert up.image.size == (256, 256) and up.paths[0].is_file()
    assert up.recipe["upscale"]["tiles"] == 9 and up.recipe["upscale"]["factor"] == 4
    assert up.recipe["prompt"] == "a harbour" and up.recipe["width"] == 256 and up.seeds == [11]
    assert len(query(kind="image")) == 1 and [r.id for r in query(kind="upscale")] == [up.history_id]


def test_plain_resamplers_carry_their_recipe_and_bad_tiles_are_refused():
    big = mk.upscale(gradient(64, 32), factor=2, method="bicubic", save=True)
    recipe = json.loads(big.info["masuka_recipe"])
    assert big.size == (128, 64) and recipe["upscale"]["method"] == "bicubic"
    assert query(kind="upscale")[0].paths == [big.info["masuka_path"]]
    for kwargs in ({"tile": 50}, {"tile": 128, "overlap": 100}, {"tile": True}):
        with pytest.raises(InvalidRequestError):
            mk.upscale(gradient(), method="refine", model="tiny-flux", prompt="x", **kwargs)
    with pytest.raises(InvalidRequestError) as err:
        mk.upscale(gradient(), method="model")
    assert err.value.argument == "weights"
    with pytest.raises(InvalidRequestError):
        mk.upscale(gradient(), method="model", weights="/nowhere/4x.pth")


def _tiny_esrgan(path, nf=8, gc=32, blocks=1):
    """A Real-ESRGAN RRDBNet x4 state dict (new-arch keys) with 8 filters and one block, saved as safetensors
    (random weights). The growth channels stay 32: spandrel's RRDB fixes them."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    sd = {}

    def conv(name, cin, cout):
        sd[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        sd[f"{name}.bias"] = torch.zeros(cout)

    conv("conv_first", 3, nf)
    for b in range(blocks):
        for r in (1, 2, 3):
            for i in range(1, 6):
                conv(f"body.{b}.rdb{r}.conv{i}", nf + (i - 1) * gc, gc if i < 5 else nf)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, nf, nf)
    conv("conv_last", nf, 3)
    save_file(sd, str(path))
    return path


def test_an_esrgan_family_file_upscales_tile_by_tile(tmp_path):
    pytest.importorskip("spandrel", reason="spandrel (and torchvision) are installed on Colab, not on this CPU box")
    weights = _tiny_esrgan(tmp_path / "tiny-4x.safetensors")
    img = gradient(64, 48)
    whole = mk.upscale(img, factor=4, method="model", weights=weights)
    tiles = mk.upscale(img, factor=4, method="model", weights=weights, tile=128, overlap=32)
    assert whole.size == tiles.size == (256, 192)
    assert json.loads(tiles.info["masuka_recipe"])["upscale"]["tile"] == 128
    diff = np.abs(np.asarray(whole, dtype=int) - np.asarray(tiles, dtype=int))
    assert diff.mean() < 8  # same network: tiling only changes the tiles' borders a little
    half = mk.upscale(img, factor=2, method="model", weights=weights)
    assert half.size == (128, 96)
