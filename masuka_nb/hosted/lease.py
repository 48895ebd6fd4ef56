"""One owner per job across processes: a lease file per owner, numbered with a fencing token.

    lease = acquire(job_id)          # a Lease, or a Holder (who owns it, whether it is still alive)
    lease.check()                    # LeaseLostError once another process took the job over
    lease.beat()                     # "still here" (and a check); every HEARTBEAT_S while working
    lease.release()

Two notebooks on one Drive, a notebook and a CLI, or two `resume_all()` calls must not both poll,
download and finish the same job (two writers made a corrupted MP4 that was recorded as done).
Drive's FUSE mount has no reliable locks, so the lease is made of files that need only an atomic
create-if-absent: ``<jobs>/leases/<job id>/<token>.lease``, made with ``os.link`` of a finished
temporary file (or ``O_EXCL`` where hard links are missing), holding the owner's host, pid and last
heartbeat. The highest token is the owner. A new owner takes token + 1 only when the current one has
released it, stopped beating for `LEASE_S`, or is a dead process on this host; two takers race for
the same number and exactly one create succeeds.

The token fences every write an owner makes (the job record, the rename of a downloaded file): an
owner that was paused past its lease and taken over sees a higher token at its next check and stops,
without touching the job again. The clock is injectable (tests step it instead of sleeping).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from masuka_nb.errors import JobError
from masuka_nb.hosted.store import jobs_dir, valid_job_id

__all__ = ["HEARTBEAT_S", "LEASE_S", "Holder", "Lease", "LeaseLostError", "acquire"]

LEASE_S = 90.0  # an owner not heard from for this long is presumed gone (Colab sessions die without notice)
HEARTBEAT_S = 20.0  # owners beat at least this often while they work
_CHECK_EVERY_S = 0.5  # fencing checks inside tight loops (download chunks) at most this often


class LeaseLostError(JobError):
    """Another process took the job over (this one was too slow to renew): stop touching the job.

    The runner catches it inside `Job.wait()` and waits for the new owner instead; it never reaches a user."""

    code = "JOB_TAKEN_OVER"


@dataclass
class Holder:
    """Who owns a job now: host, pid, token, seconds since their last heartbeat."""

    host: str
    pid: int
    token: int
    age: float
    alive: bool

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def _me() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _folder(job_id: str) -> Path:
    if not valid_job_id(job_id):
        raise JobError(f"No job {job_id!r}.", argument="id", value=job_id)
    return jobs_dir() / "leases" / job_id


def _files(folder: Path) -> dict[int, str]:
    """token -> file name (``<token>.lease``, or ``<token>.released.lease`` once let go on a full disk)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    out: dict[int, str] = {}
    for n in names:
        head = n.split(".")[0]
        if n.endswith(".lease") and head.isdigit():
            out[int(head)] = n
    return out


def _tokens(folder: Path) -> list[int]:
    return sorted(_files(folder))


def _name(token: int) -> str:
    return f"{token:010d}.lease"


def _read(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _create(path: Path, body: str) -> bool:
    """Create `path` holding `body` only if it does not exist; True when this call made it."""
    fd, tmp = tempfile.mkstemp(prefix=".lease-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        try:
            os.link(tmp, path)  # atomic and exclusive, and the file is whole the moment it appears
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links (Drive's FUSE mount): O_EXCL, then write
            try:
                out = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(out, "w", encoding="utf-8") as fh:
                fh.write(body)
            return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@dataclass
class Lease:
    """This process owns `job_id` with fencing `token` until `release()` (or until it is taken over)."""

    job_id: str
    token: int
    folder: Path
    clock: Callable[[], float] = time.time
    _checked_at: float = field(default=0.0, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / _name(self.token)

    def _body(self, *, released: bool = False) -> str:
        return json.dumps({**_me(), "token": self.token, "beat": self.clock(), "released": released})

    def check(self, *, cheap: bool = False) -> None:
        """Raise LeaseLostError when a higher token exists or this lease's file is gone.

        `cheap=True` skips the look when one was made in the last half second (download loops)."""
        now = time.monotonic()
        if cheap and now - self._checked_at < _CHECK_EVERY_S:
            return
        self._checked_at = now
        tokens = _tokens(self.folder)
        if self.token not in tokens or tokens[-1] > self.token:
            newer = tokens[-1] if tokens else None
            raise LeaseLostError(f"Job {self.job_id} was taken over by another process (token {newer} after "
                                 f"{self.token}); this one stops.", argument="job", value=self.job_id,
                                 hint=f"`masuka_nb.jobs.get('{self.job_id}').wait()` waits for the new owner.")

    def beat(self) -> None:
        """Renew the lease (and fence: raises LeaseLostError if it was lost)."""
        self.check()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.beat")
        tmp.write_text(self._body(), encoding="utf-8")
        os.replace(tmp, self.path)

    def release(self) -> None:
        """Give the job up: the next owner takes token + 1 at once. Quiet when it was already lost.

        On a full disk the released marker cannot be written; the file is renamed instead (a rename needs
        no space), so the next owner does not wait out LEASE_S for a process that has let go."""
        try:
            self.check()
        except (LeaseLostError, OSError):
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.release")
        try:
            tmp.write_text(self._body(released=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with contextlib.suppress(OSError):
                os.replace(self.path, self.folder / f"{self.token:010d}.released.lease")


def _holder(folder: Path, token: int, *, clock: Callable[[], float], ttl: float) -> Holder:
    name = _files(folder).get(token, _name(token))
    path = folder / name
    if name.endswith(".released.lease"):
        return Holder(host="?", pid=-1, token=token, age=0.0, alive=False)
    info = _read(path)
    if info is None:  # unreadable: judge by the file's own age
        try:
            beat = path.stat().st_mtime
        except OSError:
            beat = 0.0
        info = {"host": "?", "pid": -1, "beat": beat, "released": False}
    age = clock() - float(info.get("beat") or 0.0)  # type: ignore[arg-type]
    host, pid = str(info.get("host")), int(info.get("pid") or -1)  # type: ignore[call-overload]
    alive = not info.get("released") and age < ttl
    if alive and host == socket.gethostname() and pid > 0 and pid != os.getpid():
        alive = _pid_alive(pid)
    if alive and host == socket.gethostname() and pid == os.getpid():
        alive = False  # a lease of this very process left behind (a thread that died): take it back
    return Holder(host=host, pid=pid, token=token, age=age, alive=alive)


def acquire(job_id: str, *, clock: Callable[[], float] = time.time, ttl: float | None = None) -> Lease | Holder:
    """Own `job_id` (a `Lease`), or learn who does (a live `Holder`)."""
    ttl = LEASE_S if ttl is None else ttl
    folder = _folder(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(50):  # each lost race means someone else just made progress; this ends quickly
        tokens = _tokens(folder)
        top = tokens[-1] if tokens else 0
        if top:
            holder = _holder(folder, top, clock=clock, ttl=ttl)
            if holder.alive:
                return holder
        lease = Lease(job_id, top + 1, folder, clock)
        if _create(lease.path, lease._body()):
            for old, name in _files(folder).items():  # superseded owners' files: only the newest matters
                if old < lease.token:
                    with contextlib.suppress(OSError):
                        (folder / name).unlink()
            return lease
    raise JobError(f"Could not take job {job_id}: its lease files keep changing.", argument="job", value=job_id,
                   hint="Another process is busy with it; wait for it, or try again in a minute.")
