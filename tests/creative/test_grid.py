"""X/Y/Z grids on the tiny models: labels, a model axis, prompt search/replace, one record; bad axes refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError
from masuka_nb.history import query
from masuka_nb.image import make_grid

SMALL = {"width": 32, "height": 32, "steps": 2, "progress": False}


def test_a_model_axis_and_prompt_sr_make_one_labelled_grid_and_one_record():
    g = mk.grid("a red car", x=("model", ["tiny-flux", "tiny-sd3"]), y=("prompt_sr", ["red", "blue"]), seed=3,
                **SMALL)
    assert len(g.cells) == 4
    assert g.cell(x="tiny-sd3", y="blue").recipe["model"] == "tiny-sd3"
    assert g.cell(x="tiny-flux", y="blue").recipe["prompt"] == "a blue car"
    assert g.labels == {"x": ["model: tiny-flux", "model: tiny-sd3"], "y": ["red", "blue"]}
    # cells are scaled up to min_cell (128) so the labels have room; headers sit left and on top
    assert g.sheet.width > 2 * 128 and g.sheet.height > 2 * 128
    pixels = np.asarray(g.sheet)
    assert (pixels[:20, 140:] < 100).any() and (pixels[150:, :20] < 100).any()
    (rec,) = query(kind="grid")
    assert query(kind="image") == []  # the grid is the one record, with its image and every cell's recipe
    assert rec.paths == [str(g.path)] and len(rec.recipe["cells"]) == 4 and g.path.is_file()
    again = mk.generate("a blue car", model="tiny-sd3", seed=3, save=False, width=32, height=32, steps=2,
                        progress=False)
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(g.cell(x="tiny-sd3", y="blue").image))


def test_a_z_axis_gives_one_sheet_per_value_and_numbers_are_labelled_plainly():
    g = mk.grid("a fern", x=("steps", [1, 2]), y=("guidance", [1.5, 3.0]), z=("seed", [1, 2]), model="tiny-flux",
                width=32, height=32, progress=False, save=False, record=False)
    assert len(g.sheets) == 2 and len(g.cells) == 8 and g.sheet.width > 2 * g.sheets[0].width - 1
    assert g.labels["y"] == ["guidance: 1.5", "guidance: 3"] and g.labels["z"] == ["seed: 1", "seed: 2"]
    assert g.path is None and query(kind="grid") == []
    size = mk.grid("a fern", x=("size", ["32x32", "64x32"]), model="tiny-flux", steps=1, progress=False,
                   save=False, record=False)
    assert [c.image.size for c in size.cells] == [(32, 32), (64, 32)]


def _ink_rows(image: Image.Image, x0: int, x1: int, y1: int) -> int:
    """How many pixel rows of a header area hold dark text (the text's height, roughly)."""
    dark = (np.asarray(image.convert("L"))[:y1, x0:x1] < 100).any(axis=1)
    return int(dark.sum())


def test_labels_stay_readable_at_any_cell_size():
    for size in (16, 64, 512):
        cells = [Image.new("RGB", (size, size), (200, 200, 200)) for _ in range(2)]
        sheet = make_grid(cells, cols=2, col_labels=["steps: 4", "guidance: 3.5 with a long tail"], min_cell=128)
        top = sheet.height - max(size, 128) - 8
        assert top >= 14  # a header strip tall enough for the text
        assert _ink_rows(sheet, 0, sheet.width, top) >= 8  # glyphs at least 8 pixels tall
    big = make_grid([Image.new("RGB", (1024, 1024))] * 2, cols=2, col_labels=["a", "b"])
    small = make_grid([Image.new("RGB", (128, 128))] * 2, cols=2, col_labels=["a", "b"])
    assert big.height - 1024 > 2 * (small.height - 128)  # text grows with the cells


@pytest.mark.parametrize("kwargs, argument", [
    ({"x": ("sampler", [1, 2])}, "x"),
    ({"x": ("steps", [])}, "x"),
    ({"x": ("steps", [1]), "y": ("steps", [2])}, "y"),
    ({"x": "steps"}, "x"),
    ({"x": ("prompt_sr", ["zebra", "horse"])}, "x"),
    ({"x": ("lora_weight", [0.5, 1.0])}, "x"),
    ({"x": ("size", ["big"])}, "x"),
    ({"x": ("steps", [1, 2], ["one"])}, "x"),
    ({"x": ("steps", [2, 300])}, "x"),  # a cell the image engine would refuse: refused here, named by its axis
    ({"x": ("size", ["64x64", "9000x64"])}, "x"),
    ({"x": ("guidance", [1.0, 99.0])}, "x"),
])
def test_bad_axes_are_refused_before_any_cell_runs(kwargs, argument):
    with pytest.raises(InvalidRequestError) as err:
        mk.grid("a cat", model="tiny-flux", **{**SMALL, **kwargs})
    assert err.value.argument == argument and err.value.hint
    assert query(kind="image") == [] and query(kind="grid") == []
