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
