import json
import os
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


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from masuka_nb.storage import _umask, atomic_write_bytes

    path = atomic_write_bytes(tmp_path / "image.png", b"png")
    plain = tmp_path / "plain.mp4"
    plain.write_bytes(b"mp4")  # how a video download (or any ordinary open()) lands
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode) == 0o666 & ~_umask()


def test_tqdm_sink_shows_one_bar_per_task_without_rates():
    import io

    from masuka_nb.progress import ProgressEvent, TqdmSink

    stream = io.StringIO()
    sink = TqdmSink(file=stream, mininterval=0)
    sink(ProgressEvent("load", 0, 1, "tiny-flux"))
    sink(ProgressEvent("generate", 1, 4))
    sink(ProgressEvent("generate", 4, 4, "step 4/4"))
    sink(ProgressEvent("generate", 4, 4, "1 image(s)"))  # the engine's closing `done` event
    text = stream.getvalue()
    assert "it/s" not in text and "s/it" not in text
    assert text.count("\n") <= 1  # one bar, redrawn in place, closed once
    assert "generate" in text and "4/4" in text


def test_outside_a_terminal_progress_is_whole_lines():
    import io

    from masuka_nb.progress import LineSink, ProgressReporter

    stream = io.StringIO()
    reporter = ProgressReporter("train", 100, progress=LineSink(stream))
    for step in range(1, 101):
        reporter.update(step, message=f"step {step}")
    reporter.done("done")
    lines = stream.getvalue().splitlines(keepends=True)
    assert all(line.endswith("\n") and line.startswith("train: ") for line in lines)
    assert 4 <= len(lines) <= 5  # the quarters and the end, not one per step
    assert "100/100" in lines[-1] and "it/s" not in stream.getvalue()


def test_the_default_sink_is_line_based_when_stderr_is_not_a_terminal(monkeypatch):
    import io

    from masuka_nb import progress

    monkeypatch.setenv("MASUKA_PROGRESS", "auto")
    from masuka_nb.config import reset_configuration

    reset_configuration()
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert isinstance(progress._default_sink(), progress.LineSink)


# ---- state-file guards and storage errors (the seams every room's state files use) ----


def test_a_full_or_read_only_disk_is_a_masuka_error_with_one_code_per_cause(tmp_path, monkeypatch):
    import errno

    from masuka_nb import storage
    from masuka_nb.errors import DiskFullError, NotWritableError, StorageError

    target = tmp_path / "image.png"
    target.write_bytes(b"old")
    for number, cls, code in ((errno.ENOSPC, DiskFullError, "DISK_FULL"), (errno.EROFS, NotWritableError, "NOT_WRITABLE"),
                              (errno.EACCES, NotWritableError, "NOT_WRITABLE"), (errno.EIO, StorageError, "STORAGE_FAILED")):
        def refuse(*args, _n=number):
            raise OSError(_n, os.strerror(_n))

        monkeypatch.setattr(storage.os, "replace", refuse)
        with pytest.raises(cls) as info:
            storage.atomic_write_bytes(target, b"new")
        assert info.value.code == code and isinstance(info.value, OSError)
        assert info.value.argument == "path" and str(target) in info.value.message
        monkeypatch.undo()
        assert target.read_bytes() == b"old"  # nothing half-written
        assert [p.name for p in tmp_path.iterdir()] == ["image.png"]  # no temporary left behind


def test_a_state_file_that_does_not_parse_is_quarantined_and_its_last_good_version_read(tmp_path):
    from masuka_nb import storage

    state = tmp_path / "jobs.json"
    storage.atomic_write_json(state, {"job": 1}, backup=True)
    storage.atomic_write_json(state, {"job": 2}, backup=True)
    assert storage.read_json_guarded(state, default={}, expect=dict) == {"job": 2}
    state.write_text('{"job": 3, "trunc')  # a write cut short by a crash
    assert storage.read_json_guarded(state, default={}, expect=dict) == {"job": 1}
    moved = list((tmp_path / "quarantine").iterdir())
    assert len(moved) == 1 and moved[0].read_text().startswith('{"job": 3')
    # a file of the wrong shape fails alone too, and a missing one is the default
    other = tmp_path / "history.json"
    other.write_text("[]")
    assert storage.read_json_guarded(other, default={}, expect=dict) == {}
    assert storage.read_json_guarded(tmp_path / "missing.json", default=[], expect=list) == []
