"""The image engine's shape: one job object, one run pipeline every task plugs into, imports that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "masuka_nb"


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_job_sits_under_the_pipeline_and_every_task():
    assert not imports(PKG / "image" / "job.py") & {"masuka_nb.image.generation", "masuka_nb.image.pipeline",
                                                     "masuka_nb.image.engine", "masuka_nb.image.edit"}


def test_the_pipeline_knows_no_task_and_the_engine_knows_no_pipeline():
    # the run pipeline is generic: tasks (generation, edit, upscaling, video.local) plug into it, not the reverse
    assert not imports(PKG / "image" / "pipeline.py") & {"masuka_nb.image.generation", "masuka_nb.image.edit",
                                                          "masuka_nb.image.upscaling", "masuka_nb.video.local"}
    top = imports(PKG / "image" / "engine.py", top_level_only=True)
    assert not top & {"masuka_nb.image.generation", "masuka_nb.image.pipeline"}
    # the one way back is ImageEngine.generate, a call-time forward to the front door
    assert imports(PKG / "image" / "engine.py") & {"masuka_nb.image.generation"} == {"masuka_nb.image.generation"}


def test_every_local_task_runs_through_the_one_pipeline_with_the_job_object():
    import inspect

    from masuka_nb.image import edit, generation, pipeline, upscaling
    from masuka_nb.video import local

    assert list(inspect.signature(pipeline.run).parameters) == ["task", "job"]
    assert list(inspect.signature(pipeline.run_with_fallback).parameters) == ["task", "job"]
    for task in (generation.TextToImage, edit.EditTask, upscaling.TileRefine, local.VideoTask):
        assert issubclass(task, pipeline.Task)
    for module in (generation, edit, local):  # no task keeps its own copy of the steps
        source = inspect.getsource(module)
        assert "def run_with_fallback" not in source and "callback_on_step_end" not in source
        assert "history.record(" not in source and "record_outcome" not in source


def test_engines_never_import_widgets():
    for room in ("image", "creative"):
        for path in (PKG / room).glob("*.py"):
            assert not any(m.startswith("ipywidgets") for m in imports(path)), path
