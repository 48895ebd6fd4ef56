"""The job store's pieces on their own: the fenced lease (with an injected clock) and records kept when a save fails."""

from __future__ import annotations

import errno
import json
import socket
from pathlib import Path

import pytest

from masuka_nb.errors import MasukaError
from masuka_nb.hosted import lease, store
from masuka_nb.hosted.store import JobRecord


def _foreign(job_id: str, token: int, *, beat: float, pid: int = 1) -> None:
    """A lease file written by another live process on this host (pid 1 always exists)."""
    folder = store.jobs_dir() / "leases" / job_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{token:010d}.lease").write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "token": token,
                                                            "beat": beat, "released": False}))


def test_a_live_lease_is_respected_until_it_goes_quiet_then_taken_with_a_higher_token():
    now = [1000.0]
    _foreign("v1", 7, beat=1000.0)
    held = lease.acquire("v1", clock=lambda: now[0], ttl=90)
    assert isinstance(held, lease.Holder) and held.alive and held.pid == 1 and held.token == 7
    now[0] += 91  # no heartbeat for longer than the lease
    mine = lease.acquire("v1", clock=lambda: now[0], ttl=90)
    assert isinstance(mine, lease.Lease) and mine.token == 8
    assert sorted(p.name for p in (store.jobs_dir() / "leases" / "v1").iterdir()) == ["0000000008.lease"]


def test_a_superseded_owner_is_fenced_out_of_every_write():
    now = [0.0]
    first = lease.acquire("v2", clock=lambda: now[0], ttl=5)
    assert isinstance(first, lease.Lease)
    _foreign("v2", first.token + 1, beat=now[0])  # another process took it over
    for step in (first.check, first.beat):
        with pytest.raises(MasukaError) as info:
            step()
        assert info.value.code == "JOB_TAKEN_OVER"
    first.release()  # quiet: it is not ours any more
    assert json.loads((first.folder / f"{first.token + 1:010d}.lease").read_text())["pid"] == 1


def test_a_released_lease_is_taken_at_once_even_when_the_disk_was_too_full_to_say_so(monkeypatch):
    first = lease.acquire("v3")
    real = Path.write_text

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    first.release()  # cannot write the "released" marker: the file is renamed instead
    monkeypatch.setattr(Path, "write_text", real)
    assert [p.name for p in first.folder.iterdir()] == [f"{first.token:010d}.released.lease"]
    _foreign("v3", 0, beat=0)  # (an older file is ignored: the highest token decides)
    second = lease.acquire("v3", ttl=3600)
    assert isinstance(second, lease.Lease) and second.token == first.token + 1


def test_a_record_that_cannot_be_written_is_kept_and_written_later(monkeypatch):
    rec = JobRecord.new("video", "runway", provider_job_id="task-123", state="submitted")
    calls = []
    real_write = store._write

    def refuse(path, text):
        calls.append(path)
        from masuka_nb.storage import storage_error

        raise storage_error(OSError(errno.ENOSPC, "No space left on device"), path=path)

    monkeypatch.setattr(store, "_write", refuse)
    with pytest.raises(MasukaError) as info:
        store.save(rec, sleep=lambda s: None)
    err = info.value
    assert err.code == "DISK_FULL" and rec.id in str(err) and "task-123" in str(err) and "runway" in str(err)
    assert len(calls) == 1 + store.SAVE_RETRIES + 1  # the record, retried, then its spare copy
    assert store.load(rec.id).provider_job_id == "task-123"  # kept in this session
    assert [r.id for r in store.records()] == [rec.id]
    monkeypatch.setattr(store, "_write", real_write)  # space again
    assert store.flush_unsaved() == [rec.id]
    assert json.loads((store.jobs_dir() / f"{rec.id}.json").read_text())["provider_job_id"] == "task-123"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "a/b", None, 5, "x" * 300, "\x00"])
def test_a_job_id_is_never_a_path(bad):
    with pytest.raises(MasukaError) as info:
        store.load(bad)
    assert info.value.code == "JOB_NOT_FOUND"
