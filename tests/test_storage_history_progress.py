import json
from datetime import datetime, timedelta, timezone

import pytest

from masuka_nb import history
from masuka_nb.errors import CancelledError
from masuka_nb.history import HistoryRecord
from masuka_nb.progress import CancelToken, ProgressReporter, collect_events
from masuka_nb.storage import atomic_open, atomic_write_json, safe_name, unique_path


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write('{"v": 2')
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_safe_names_and_unique_paths(tmp_path):
    assert safe_name("a cat / on the moon!") == "a-cat-on-the-moon"
    assert safe_name("   ") == "untitled"
    (tmp_path / "x.png").write_bytes(b"")
    assert unique_path(tmp_path, "x", ".png").name == "x-2.png"


def test_history_records_and_queries():
    now = datetime.now(timezone.utc)
    history.record(HistoryRecord(kind="image", status="ok", model="tiny-flux", prompt="A lighthouse at dawn"))
    history.record(HistoryRecord(kind="image", status="failed", model="tiny-sd3", prompt="a cat",
                                 error={"code": "OUT_OF_MEMORY"}))
    history.record(HistoryRecord(kind="video", status="ok", model="sora-2", prompt="waves"))
    assert len(history.query()) == 3
    assert [r.prompt for r in history.query(model="tiny-flux")] == ["A lighthouse at dawn"]
    assert [r.model for r in history.query(text="LIGHTHOUSE")] == ["tiny-flux"]
    assert [r.error["code"] for r in history.query(status="failed")] == ["OUT_OF_MEMORY"]
    assert len(history.query(kind="image", since=now - timedelta(minutes=1))) == 2
    assert history.query(until=now - timedelta(days=1)) == []
    newest = history.query(limit=1)[0]
    assert newest.prompt == "waves"
    assert history.get(newest.id).prompt == "waves"


def test_a_damaged_record_never_hides_the_others(masuka_home):
    rec = history.record(HistoryRecord(kind="image", status="ok", model="tiny-flux", prompt="kept"))
    folder = next((masuka_home / "history").iterdir())
    (folder / "zz-broken.json").write_text('{"kind": "image", "sta')  # an interrupted foreign write
    assert [r.id for r in history.query()] == [rec.id]


def test_progress_reporter_sends_events_with_eta_and_honours_cancel():
    events, sink = collect_events()
    token = CancelToken()
    rep = ProgressReporter("denoise", 4, progress=sink, cancel=token)
    rep.update(1)
    rep.update(2, message="half")
    assert [e.step for e in events] == [1, 2]
    assert events[1].eta_s is not None and events[1].fraction == 0.5
    token.cancel("stop button")
    with pytest.raises(CancelledError) as info:
        rep.check()
    assert "stop button" in str(info.value)
