"""notebooks/04_batch_and_grids.ipynb: Colab-shaped like the others, and executed end to end on tiny-flux."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = "04_batch_and_grids.ipynb"
papermill = pytest.importorskip("papermill")


def test_batch_notebook_has_the_colab_shape():
    nb = nbformat.read(ROOT / "notebooks" / NAME, as_version=4)
    assert f"https://colab.research.google.com/github/masuka-ai/masuka/blob/main/notebooks/{NAME}" in nb.cells[0].source
    (form,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert "#@title" in form.source and all(" = " in ln.split("#@param")[0]
                                            for ln in form.source.splitlines() if "#@param" in ln)
    src = "\n".join(c.source for c in nb.cells)
    assert 'drive.mount("/content/drive")' in src and "setup_colab.main" in src and "accelerate launch" in src
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_batch_notebook_runs_on_tiny_flux(tmp_path, monkeypatch, masuka_home):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    out = tmp_path / NAME
    papermill.execute_notebook(
        str(ROOT / "notebooks" / NAME), str(out), cwd=str(ROOT / "notebooks"), kernel_name="python3",
        progress_bar=False, execution_timeout=300,
        parameters={"MOUNT_DRIVE": False, "SETUP": "skip", "MODEL": "tiny-flux", "WIDTH": 32, "HEIGHT": 32,
                    "STEPS": 1, "GRID_X": "steps", "GRID_X_VALUES": "1, 2", "GRID_Y": "model",
                    "GRID_Y_VALUES": "tiny-flux, tiny-sd3", "UPSCALE_TILE": 64, "VIDEO_FORMAT": "mp4"})
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "4 image(s), 0 resumed" in text and "grid: 4 cells" in text
    assert "upscaled to (64, 64) in 1 tile(s)" in text or "upscaled to (64, 64)" in text
    clip = [ln.split("clip:")[-1].strip() for ln in text.splitlines() if ln.startswith("clip:")]
    assert clip and Path(clip[0]).is_file() and Path(clip[0]).is_relative_to(masuka_home)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(shown) >= 2  # the batch sheet and the grid
