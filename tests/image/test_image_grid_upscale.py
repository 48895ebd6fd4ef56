"""Grids (LoRA comparisons, the gallery) and upscaling, including the img2img `refine` on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError
from masuka_nb.image import make_grid, upscale


def colours(n):
    return [Image.new("RGB", (20, 10), (40 * i, 255 - 40 * i, 100)) for i in range(n)]


def test_grid_layout_and_cells():
    sheet = make_grid(colours(5), gap=2)
    assert sheet.size == (3 * 20 + 4 * 2, 2 * 10 + 3 * 2)  # near-square: 3 columns, 2 rows
    assert sheet.getpixel((2 + 5, 2 + 5)) == (0, 255, 100)
    assert sheet.getpixel((2 + 22 + 5, 2 + 5)) == (40, 215, 100)
    row = make_grid(colours(3), rows=1, gap=0)
    assert row.size == (60, 10)


def test_grid_labels_are_drawn_under_each_cell():
    plain = make_grid(colours(2), cols=2, gap=0, background=(255, 255, 255))
    labelled = make_grid(colours(2), cols=2, gap=0, labels=["w=0.5", "w=1.0"], label_height=12)
    assert labelled.size == (plain.width, plain.height + 12)
    strip = np.asarray(labelled)[10:, :, :]
    assert (strip < 128).any()  # dark text in the label strip


def test_grid_row_and_column_headers_sit_left_and_on_top():
    plain = make_grid(colours(4), cols=2, gap=0)
    headed = make_grid([colours(4)[:2], colours(4)[2:]], gap=0, row_labels=["base", "mk ×1"],
                       col_labels=["sofa · 1", "snow · 2"], label_height=12)
    left, top = headed.width - plain.width, headed.height - plain.height
    assert left > 0 and top == 16
    pixels = np.asarray(headed)
    assert (pixels[:top, left:] < 128).any()  # column labels in the top strip
    assert (pixels[top:, :left] < 128).any()  # row labels in the left column
    assert headed.getpixel((left + 5, top + 5)) == plain.getpixel((5, 5))  # cells shift by the headers
    assert headed.getpixel((left + 25, top + 15)) == plain.getpixel((25, 15))
    only_rows = make_grid(colours(2), cols=1, gap=0, row_labels=["a", "b"])
    assert only_rows.height == 20 and only_rows.width > 20


def test_grid_refuses_bad_input():
    for kwargs in ({"images": []}, {"images": colours(3), "rows": 1, "cols": 2},
                   {"images": colours(2), "labels": ["one"]}, {"images": ["not an image"]},
                   {"images": colours(2), "cols": 0},
                   {"images": colours(4), "cols": 2, "row_labels": ["one"]},
                   {"images": colours(4), "cols": 2, "col_labels": ["a", "b", "c"]},
                   {"images": [colours(2), colours(1)]}):
        with pytest.raises(InvalidRequestError):
            make_grid(**kwargs)


def test_lanczos_upscale_doubles_the_size():
    big = upscale(Image.new("RGB", (32, 48), (10, 20, 30)), factor=2)
    assert big.size == (64, 96) and big.getpixel((5, 5)) == (10, 20, 30)
    with pytest.raises(InvalidRequestError):
        upscale(Image.new("RGB", (8, 8)), factor=20)
    with pytest.raises(InvalidRequestError):
        upscale(Image.new("RGB", (8, 8)), method="magic")
    with pytest.raises(InvalidRequestError):
        upscale(Image.new("RGB", (32, 32)), method="refine")  # no model, no prompt


def test_refine_reruns_img2img_with_the_recipe_model():
    res = mk.generate("a harbour", model="tiny-flux", width=32, height=32, steps=2, seed=11)
    refined = upscale(res.paths[0], factor=2, method="refine", steps=4, strength=0.5)
    assert refined.image.size == (64, 64)
    assert refined.recipe["model"] == "tiny-flux" and refined.recipe["strength"] == 0.5
    assert refined.recipe["prompt"] == "a harbour" and refined.seeds == [11]


def test_cli_demo_prints_paths_and_seeds(capsys):
    from masuka_nb.__main__ import main

    assert main(["demo", "--model", "tiny-flux", "--prompt", "a fox", "--num-images", "2", "--steps", "1",
                 "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "seed=5" in out and "seed=6" in out and ".png" in out and "noise" in out
