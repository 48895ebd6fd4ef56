"""lora.compare is a grid: base and LoRA rows × prompt·seed columns, one history record with the grid image."""

from __future__ import annotations

import numpy as np

from masuka_nb.history import query
from masuka_nb.lora import compare


def test_compare_is_one_grid_with_one_record(flux_lora):
    res = compare([flux_lora], prompts=["a lamp", "a cup"], seeds=[1], weights=(0.5, 1.0), model="tiny-flux",
                  width=32, height=32, steps=2, progress=False)
    assert len(res.cells) == 3 * 2 and res.path.is_file() and res.path.parent.name == "comparisons"
    base = np.asarray(res.cell(None, 0.0, "a lamp", 1).image, dtype=float)
    half = np.asarray(res.cell(flux_lora.stem, 0.5, "a lamp", 1).image, dtype=float)
    full = np.asarray(res.cell(flux_lora.stem, 1.0, "a lamp", 1).image, dtype=float)
    assert np.abs(full - base).mean() > np.abs(half - base).mean() > 0
    (rec,) = query(kind="comparison")
    assert query(kind="image") == [] and rec.paths == [str(res.path)] and rec.model == "tiny-flux"
    assert rec.recipe["weights"] == [0.5, 1.0] and rec.recipe["prompts"] == ["a lamp", "a cup"]
    assert rec.recipe["labels"]["y"] == ["base", f"{flux_lora.stem} x0.5", f"{flux_lora.stem} x1"]


def test_a_lora_weight_axis_scales_the_given_loras(flux_lora):
    import masuka_nb as mk

    g = mk.grid("a lamp", x=("lora_weight", [0.0, 0.5, 1.0]), loras=[(flux_lora, 1.0)], model="tiny-flux", seed=2,
                width=32, height=32, steps=2, progress=False, save=False)
    weights = [c.recipe["loras"][0]["weight"] for c in g.cells]
    assert weights == [0.0, 0.5, 1.0] and g.labels["x"] == ["lora_weight: 0", "lora_weight: 0.5", "lora_weight: 1"]
    zero, half, full = (np.asarray(c.image, dtype=float) for c in g.cells)
    assert np.abs(full - zero).mean() > np.abs(half - zero).mean() > 0
