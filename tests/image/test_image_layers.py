"""The image engine's shape: one job object, and imports that point one way (generation → denoise → engine)."""

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


def test_job_sits_under_generation_denoise_and_engine():
    assert not imports(PKG / "image" / "job.py") & {"masuka_nb.image.generation", "masuka_nb.image.denoise",
                                                     "masuka_nb.image.engine"}


def test_denoise_never_reaches_back_to_generation_and_engine_imports_neither_at_import_time():
    assert "masuka_nb.image.generation" not in imports(PKG / "image" / "denoise.py")
    top = imports(PKG / "image" / "engine.py", top_level_only=True)
    assert not top & {"masuka_nb.image.generation", "masuka_nb.image.denoise"}
    # the one way back is ImageEngine.generate, a call-time forward to the front door
    every = imports(PKG / "image" / "engine.py")
    assert every & {"masuka_nb.image.generation"} == {"masuka_nb.image.generation"}
    assert "masuka_nb.image.denoise" not in every


def test_run_and_denoise_take_the_job_not_loose_arguments():
    import inspect

    from masuka_nb.image import denoise, generation

    assert list(inspect.signature(denoise.run_with_fallback).parameters) == ["job"]
    assert list(inspect.signature(generation.execute).parameters) == ["job"]


def test_engines_never_import_widgets():
    for room in ("image", "creative"):
        for path in (PKG / room).glob("*.py"):
            assert not any(m.startswith("ipywidgets") for m in imports(path)), path
