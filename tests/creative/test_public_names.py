"""The creative room's lazy names and the top-level ones it adds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_top_level_names_resolve_to_the_creative_room():
    import masuka_nb as mk
    from masuka_nb.creative import clips, grids, presets, runner
    from masuka_nb.image import upscaling

    assert mk.batch is runner.batch and mk.batch.estimate is runner.estimate
    assert mk.grid is grids.grid and mk.to_video is clips.to_video and mk.presets is presets
    assert mk.upscale is upscaling.upscale


def test_creative_all_is_sorted_equals_its_lazy_names_and_imports_light():
    import masuka_nb.creative as room

    assert room.__all__ == sorted(room.__all__) == sorted(room._LAZY)
    code = ("import sys, masuka_nb.creative, masuka_nb\nmasuka_nb.batch; masuka_nb.presets\n"
            "print(','.join(m for m in ('torch', 'diffusers', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""
