"""`import masuka_nb.image` (and the planner) must not pull in torch, diffusers or pydantic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_image_package_and_planner_import_light():
    code = ("import sys, masuka_nb, masuka_nb.image, masuka_nb.memory, masuka_nb.hub\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'pydantic', 'ipywidgets', 'httpx') "
            "if m in sys.modules]\n"
            "print(','.join(heavy))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == ""


def test_public_names_resolve_to_the_image_engine():
    import masuka_nb as mk
    from masuka_nb.image import generation, replay

    assert mk.generate is generation.generate and mk.reproduce is replay.reproduce
    assert mk.GenerationResult is generation.GenerationResult
    assert mk.ImageEngine.__name__ == "ImageEngine" and mk.MemoryPlan.__name__ == "MemoryPlan"
    assert callable(mk.plan)
