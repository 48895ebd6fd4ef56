"""One history writer: every engine records through `history.write`, every kind it writes is in `KINDS` (so the
History tab can filter it), one timing schema that old records are read into, and a history that cannot be
written is a warning, never a failure."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb import history
from masuka_nb.errors import DiskFullError

PACKAGE = Path(__file__).resolve().parents[1] / "masuka_nb"


def _writes() -> dict[str, set[str]]:
    """module → the kinds it passes to history.write as a literal; and every direct HistoryRecord write."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("record", "record_outcome") and path.name != "history.py" \
                    and "history" in ast.unparse(node.func):
                out.setdefault(str(path.relative_to(PACKAGE)), set()).add("<a second writer>")
            if name == "write" and "history" in ast.unparse(node.func) and node.args \
                    and isinstance(node.args[0], ast.Constant):
                out.setdefault(str(path.relative_to(PACKAGE)), set()).add(node.args[0].value)
    return out


def test_every_engine_records_through_the_one_writer_with_a_known_kind():
    writes = _writes()
    assert not [m for m, kinds in writes.items() if "<a second writer>" in kinds], writes
    written = set().union(*writes.values())
    assert written <= set(history.KINDS), written - set(history.KINDS)
    # the engines' own task classes name their kinds as data: every one is a known kind
    from masuka_nb.image.edit import EditTask
    from masuka_nb.image.generation import TextToImage
    from masuka_nb.image.upscaling import TileRefine
    from masuka_nb.video.local import VideoTask

    assert {t.kind for t in (TextToImage, EditTask, TileRefine, VideoTask)} <= set(history.KINDS)
    with pytest.raises(ValueError):
        history.write("edits")  # a kind the History tab could not filter is a bug, caught at once


def test_old_records_read_into_the_one_timing_schema():
    assert history.normalize_timings({"total": 3.0, "generate": 2.0, "load": 0.5}) == {
        "seconds_total": 3.0, "seconds_run": 2.0, "seconds_load": 0.5}
    for old, phase in (({"total_s": 4.0}, "total"), ({"caption_s": 1.5}, "total"), ({"compare_s": 2.0}, "total"),
                       ({"train_s": 9.0}, "run"), ({"seconds_total": 7.0}, "total")):
        assert history.seconds(old, phase) == next(iter(old.values()))
    rec = history.write("caption", timings={"caption_s": 1.5})
    assert rec.timings == {"seconds_total": 1.5} and history.get(rec.id).seconds() == 1.5


def test_edits_are_recorded_and_filterable_in_the_history_tab():
    pytest.importorskip("ipywidgets")
    from masuka_nb.ui.gallery import HistoryPanel

    photo = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype("uint8"))
    res = mk.edit(photo, "make it night", steps=1, progress=False)
    mk.generate("a fox", model="tiny-flux", width=32, height=32, steps=1, progress=False)
    panel = HistoryPanel()
    assert [v for _, v in panel.kind.options][1:] == list(history.KINDS)
    panel.kind.value = "edit"
    panel.refresh()
    assert [r.id for r in panel.records] == [res.history_id]
    assert panel.records[0].seconds("total") == pytest.approx(res.elapsed_s, rel=1e-3)


def test_a_history_that_cannot_be_written_is_a_warning_with_what_was_saved(monkeypatch):
    def full(self, rec):
        raise DiskFullError("Could not write the history: the disk is full.", argument="path", value="history")

    monkeypatch.setattr(history.History, "record", full)
    said: list[str] = []
    assert history.write("image", paths=["/x.png"], warnings=said) is None
    assert said and "history could not be updated" in said[0] and "/x.png" in said[0]
    res = mk.upscale(Image.new("RGB", (16, 16)), factor=2)
    assert res.paths[0].is_file() and res.history_id == ""
