"""The job runner: paid hosted jobs submitted once, polled, downloaded, finished, never lost.

    job = masuka_nb.VideoGenerator().submit("a lighthouse at dawn")
    masuka_nb.jobs.list()          # newest first, from MASUKA's home (Drive when mounted)
    masuka_nb.jobs.resume_all()    # after a restart: poll and download what was in flight
    masuka_nb.jobs.get(job.id).wait()

Records live in the job store (`masuka_nb.hosted.store`). The record is written in state ``submitting``
*before* the submit leaves; the provider's id is written as soon as it answers. A record found in
``submitting`` after a crash is marked ``unknown`` and never resubmitted (the provider may have taken
it: paying twice is worse than asking the user to look). Results are downloaded as soon as they exist,
into a ``.part`` file resumed with HTTP Range, checked, then renamed into place.

Kinds of job are a registry, not names: a `Job` subclass declares ``kind = "video"`` and is registered
when its module is imported; each record also names its class, so a fresh process can finish it.
Every wait (poll pace, Retry-After, backoff) wakes for a `CancelToken` and for `Job.cancel()`.

States: submitting → submitted → running → downloading → completed | failed | cancelled | expired | unknown.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb.errors import (
    CancelledError,
    JobError,
    JobExpiredError,
    JobFailedError,
    JobNotFoundError,
    MasukaError,
    ProviderBadResponseError,
    error_for_code,
)
from masuka_nb.hosted import pricing
from masuka_nb.hosted.http import wait_or_cancel
from masuka_nb.hosted.store import (
    ACTIVE,
    TERMINAL,
    Download,
    JobRecord,
    Poll,
    _now,
    jobs_dir,
    load,
    records,
    save,
)
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter

__all__ = ["ACTIVE", "TERMINAL", "Download", "Job", "JobRecord", "Poll", "get", "jobs_dir", "list_jobs",
           "poll_interval", "register_kind", "resume_all", "save", "submit_recorded", "wait_or_cancel"]

log = get_logger(__name__)

_KINDS: dict[str, type[Job]] = {}


def register_kind(kind: str, cls: type[Job]) -> None:
    """Say which `Job` subclass finishes records of `kind` (subclasses with a `kind` do this themselves)."""
    _KINDS[kind] = cls


def poll_interval(provider: Any, override: float | None = None) -> float:
    """How often a job polls: the caller's value, else the `poll_interval` setting, else the provider's own pace."""
    if override is not None:
        return override
    from masuka_nb.config import settings

    configured = settings().poll_interval
    return float(configured) if configured is not None else float(provider.default_poll_interval)


def submit_recorded(record: JobRecord, send: Callable[[], Any], *, usd: float | None) -> None:
    """The paid-submit protocol, in one place: the record is saved as `submitting` before `send()` lets the
    request leave; then it is `submitted` and the estimate is charged to the session budget. A MasukaError
    marks it `unknown` when the provider may have accepted it (never resubmitted) or `failed`, saves the
    error and re-raises. Anything else leaves it `submitting`, which a resume treats as unknown."""
    cls = _KINDS.get(record.kind)
    if cls is not None and not record.job_class:
        record.job_class = f"{cls.__module__}:{cls.__qualname__}"
    record.state, record.error = "submitting", None
    save(record)
    try:
        send()
    except MasukaError as exc:
        record.state = "unknown" if exc.details.get("maybe_accepted") else "failed"
        record.error = exc.to_dict()
        save(record)
        raise
    record.state, record.submitted_at = "submitted", _now()
    save(record)
    pricing.charge(usd)


def _job_class(record: JobRecord) -> type[Job]:
    if record.kind in _KINDS:
        return _KINDS[record.kind]
    module, _, name = record.job_class.partition(":")
    if module.startswith("masuka_nb.") and name:  # only our own classes are ever imported from a record
        with contextlib.suppress(ImportError, AttributeError):
            return getattr(importlib.import_module(module), name)
    return Job


def from_record(record: JobRecord) -> Job:
    return _job_class(record)(record)


def get(id: str) -> Job:
    """The job `id` (a `VideoJob` or `CloudTrainingJob`), read from the store now."""
    return from_record(load(id))


def list_jobs(*, kind: str | None = None, state: str | None = None) -> builtins.list[Job]:
    """Every job kept in MASUKA's home, newest first; `kind` ("video"/"training") and `state` filter."""
    out = [from_record(rec) for rec in records()
           if not (kind and rec.kind != kind) and not (state and rec.state != state)]
    out.sort(key=lambda j: j.record.created_at, reverse=True)
    return out


def resume_all(*, progress: ProgressCallback | bool | None = False, max_workers: int = 8,
               cancel: CancelToken | None = None) -> builtins.list[Job]:
    """Carry on every unfinished job (poll, download, finish), concurrently; return them all.

    Jobs left in ``submitting`` by a crash are marked ``unknown`` (see the module doc). Errors are
    kept on each job (``job.error``), not raised, so one bad job does not stop the others. A `cancel`
    token stops every wait at once; the jobs stay resumable.
    """
    pending = [j for j in list_jobs() if j.record.state in ("submitting", *ACTIVE)]
    if not pending:
        return []

    def run(job: Job) -> Job:
        with contextlib.suppress(MasukaError):
            job.wait(progress=progress, cancel=cancel)
        return job

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(pending)))) as pool:
        return builtins.list(pool.map(run, pending))


# ---- who is carrying a job on ------------------------------------------------------------------
# In this process: one lock and one cancel flag per job id, shared by every Job object for it.
# Across processes (two notebooks on one Drive): a lease in the record, renewed as it is saved; a
# lease from a dead process on this host, or one not renewed for LEASE_S, is taken over.
LEASE_S = 90.0
HEARTBEAT_S = 20.0
_local: dict[str, tuple[threading.Lock, threading.Event]] = {}
_local_lock = threading.Lock()


def _local_state(job_id: str) -> tuple[threading.Lock, threading.Event]:
    with _local_lock:
        if job_id not in _local:
            _local[job_id] = (threading.Lock(), threading.Event())
        return _local[job_id]


def _me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def _claim(record: JobRecord) -> None:
    """Take the job's lease, or refuse (JOB_ERROR) while another live process holds it."""
    me = _me()
    other = record.extra.get("driver")
    if other and (other.get("host"), other.get("pid")) != (me["host"], me["pid"]):
        try:
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(other["beat"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            age = LEASE_S
        alive = _pid_alive(int(other["pid"])) if other.get("host") == me["host"] else True
        if alive and age < LEASE_S:
            raise JobError(f"Job {record.id} is being carried on by process {other['pid']} on {other['host']}.",
                           argument="job", value=record.id,
                           hint=f"Wait for it there, or try again after {LEASE_S:g} s without news from it.")
    record.extra["driver"] = {**me, "beat": _now()}
    save(record)


def _release(record: JobRecord) -> None:
    if (record.extra.get("driver") or {}).get("pid") == os.getpid():
        record.extra.pop("driver", None)
        save(record)


# ---- a job -------------------------------------------------------------------------------------


class Job:
    """A hosted job backed by its record. `wait()` polls, downloads and finishes; `cancel()` asks the provider."""

    needs_download = False  # a generic app's JSON output is its whole result
    kind = ""  # a subclass that sets it is the registered class for records of that kind

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            register_kind(cls.kind, cls)

    def __init__(self, record: JobRecord) -> None:
        self.record = record
        # shared by every Job object for this id: one waiter at a time; cancel() must not wait for it
        self._lock, self._cancelled = _local_state(record.id)

    # -- public --
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def provider(self) -> str:
        return self.record.provider

    @property
    def error(self) -> MasukaError | None:
        return _error_from_dict(self.record.error)

    @property
    def done(self) -> bool:
        return self.record.state in TERMINAL

    def __repr__(self) -> str:
        r = self.record
        return f"<{type(self).__name__} {r.id} {r.provider}/{r.provider_model or r.model} {r.state}>"

    def refresh(self) -> Job:
        """Re-read the record from the store (another process may have moved it on)."""
        self.record = load(self.record.id)
        return self

    def wait(self, progress: ProgressCallback | bool | None = None, *, timeout: float | None = None,
             cancel: CancelToken | None = None) -> Any:
        """Poll until the provider is done, download the result, finish it; return `result()`."""
        with self._lock:
            with contextlib.suppress(JobNotFoundError):
                self.refresh()  # another waiter (thread or process) may have finished it meanwhile
            rec = self.record
            if rec.state == "completed":
                return self.result()
            if rec.state == "submitting":
                self._mark_unknown()
            if rec.state in TERMINAL:
                raise self._stored_error()
            reporter = ProgressReporter(f"{rec.provider} {rec.provider_model or rec.model}", 100,
                                        progress=progress, cancel=cancel)
            provider = self._provider()
            provider.client.cancel, provider.client.cancel_event = cancel, self._cancelled
            self._cancel = cancel
            try:
                _claim(rec)
                if rec.state in ("submitted", "running"):
                    self._poll_until_done(provider, reporter, timeout)
                if rec.state == "downloading":
                    self._download(provider, reporter)
                    self._finish()
                    self._complete()
            except KeyboardInterrupt:
                # The job keeps running at the provider; its record stays resumable.
                raise CancelledError(f"Stopped waiting for job {rec.id}; it is still running at {rec.provider}.",
                                     argument="job", value=rec.id,
                                     hint=f"`masuka_nb.jobs.get('{rec.id}').wait()` picks it up again.") from None
            finally:
                provider.close()
                if self._cancelled.is_set() and rec.state != "cancelled":
                    rec.state = "cancelled"  # cancel() raced a save of ours: it wins
                    save(rec)
                _release(rec)
            reporter.done(rec.state)
            return self.result()

    def cancel(self) -> None:
        """Ask the provider to cancel (when it can) and mark the job cancelled; a running `wait()` stops."""
        rec = self.record
        if rec.state in TERMINAL:
            return
        self._cancelled.set()
        if rec.provider_job_id:
            provider = self._provider()
            try:
                if not provider.cancel(rec):
                    rec.notes.append(f"{rec.provider} offers no cancel: the job runs to its end (and may be billed)")
            finally:
                provider.close()
        rec.state = "cancelled"
        rec.error = CancelledError(f"Job {rec.id} was cancelled.", argument="job", value=rec.id).to_dict()
        save(rec)
        self._record_history("cancelled")

    def result(self) -> Any:
        """What the job made: here the provider's output (subclasses return their own result type)."""
        if self.record.state != "completed":
            raise self._stored_error()
        return self.record.outputs

    # -- the steps --
    def _provider(self):
        from masuka_nb.hosted.providers import get_provider

        return get_provider(self.record.provider, base_url=self.record.base_url or None)

    def _poll_until_done(self, provider, reporter: ProgressReporter, timeout: float | None) -> None:
        rec = self.record
        start = time.monotonic()
        from masuka_nb.config import settings

        grace = settings().job_not_found_grace
        while True:
            reporter.check(f"job {rec.id}")
            try:
                poll = provider.poll(rec)
                if self._cancelled.is_set():
                    raise CancelledError(f"Job {rec.id} was cancelled.", argument="job", value=rec.id)
            except JobNotFoundError as exc:
                # A fresh task can be briefly unknown (CometAPI's `task_not_exist`); later it is gone.
                if time.monotonic() - start < grace and rec.polls < 1000:
                    rec.polls += 1
                    self._sleep(rec.poll_interval)
                    continue
                self._fail(exc, "failed")
            rec.polls += 1
            changed = poll.state != rec.state or (poll.progress or 0) - (rec.progress or 0) >= 0.1
            if poll.progress is not None:
                rec.progress = poll.progress
            rec.status_text = poll.message or poll.state
            if poll.logs:  # training logs: the newest line is the most useful status
                rec.extra["log_tail"] = poll.logs[-20:]
                rec.status_text = f"{rec.status_text}: {poll.logs[-1][:120]}"
            reporter.update(int(100 * (rec.progress or 0)), message=rec.status_text)
            if poll.state == "succeeded":
                rec.outputs = poll.outputs
                rec.state = "downloading"
                save(rec)
                return
            if poll.state in ("failed", "cancelled"):
                err = poll.error or JobFailedError(f"{rec.provider} reports job {rec.provider_job_id} {poll.state}.",
                                                   provider=rec.provider, request_id=rec.provider_job_id)
                self._fail(err, "cancelled" if poll.state == "cancelled" else "failed")
            new_state = "running" if poll.state == "running" else rec.state
            if changed or new_state != rec.state or _since(rec.updated_at) > HEARTBEAT_S:
                rec.state = new_state
                save(rec)
            if timeout is not None and time.monotonic() - start > timeout:
                raise JobError(f"Job {rec.id} is still {rec.state} after {timeout:g} s; it keeps running.",
                               argument="timeout", value=timeout, hint="Call `.wait()` again later.")
            self._sleep(poll.wait if poll.wait is not None else rec.poll_interval)

    def _sleep(self, seconds: float) -> None:
        """The poll pace (or the provider's Retry-After), cut short by a cancel token or `cancel()`."""
        try:
            wait_or_cancel(seconds, getattr(self, "_cancel", None), also=self._cancelled,
                           what=f"Waiting for job {self.record.id}")
        except CancelledError:
            if self._cancelled.is_set():  # cancel() asked the provider already: record it as cancelled
                raise CancelledError(f"Job {self.record.id} was cancelled.", argument="job",
                                     value=self.record.id) from None
            raise CancelledError(f"Stopped waiting for job {self.record.id}; it is still running at "
                                 f"{self.record.provider}.", argument="job", value=self.record.id,
                                 hint=f"`masuka_nb.jobs.get('{self.record.id}').wait()` picks it up again.") from None

    def _download(self, provider, reporter: ProgressReporter) -> None:
        rec = self.record
        downloads = provider.downloads(rec)
        if not downloads and self.needs_download:
            self._fail(ProviderBadResponseError(f"{rec.provider} finished job {rec.provider_job_id} without a result.",
                                                provider=rec.provider, request_id=rec.provider_job_id), "failed")
        for d in downloads:
            if d.role in rec.paths or d.role in rec.extra.get("consumed", ()):
                continue  # fetched (and maybe already unpacked) before a restart
            target = Path(rec.targets.get(d.role) or self._target_path(d))
            if d.role not in rec.targets:
                rec.targets[d.role] = str(target)
                save(rec)
            part = target.with_name(target.name + ".part")
            reporter.restage(f"download {d.role}", 100)
            shown = [-1]

            def on_bytes(got: int, total: int | None, shown=shown) -> None:
                pct = int(100 * got / total) if total else 0
                if pct != shown[0]:  # one event per percent, not per network read
                    shown[0] = pct
                    reporter.update(pct, message=f"{got / 1e6:.1f} MB")
                    if _since(rec.updated_at) > HEARTBEAT_S:
                        save(rec)  # renews the lease during a long download

            try:
                result = provider.client.download(d.url, part, content_types=d.content_types, on_bytes=on_bytes)
                self._check_file(d, part, result.content_type)
            except JobExpiredError as exc:
                self._fail(exc, "expired")
            except MasukaError as exc:
                if d.required:
                    raise
                log.info("jobs.optional_download_failed", job=rec.id, role=d.role, code=exc.code)
                continue
            os.replace(part, target)
            rec.paths[d.role] = str(target)
            save(rec)

    def _check_file(self, d: Download, part: Path, content_type: str) -> None:
        """Subclasses check the bytes (MP4 box, safetensors header); a bad file never replaces a good one."""

    def _target_path(self, d: Download) -> Path:
        from masuka_nb.config import settings

        return settings().outputs_dir / "jobs" / f"{self.record.id}-{d.role}{d.suffix}"

    def _finish(self) -> None:
        """Subclasses turn downloaded files into the final result (thumbnail, LoRA folder)."""

    def _complete(self) -> None:
        rec = self.record
        rec.state = "completed"
        rec.progress = 1.0
        rec.completed_at = _now()
        if rec.cost_usd is None:
            rec.cost_usd = rec.estimate_usd
        save(rec)
        self._record_history("ok")
        log.info("jobs.completed", job=rec.id, provider=rec.provider, cost=rec.cost_usd)

    def _fail(self, err: MasukaError, state: str) -> None:
        rec = self.record
        rec.state = state
        rec.error = err.to_dict()
        rec.error["details"] = {k: str(v) for k, v in err.details.items()}
        save(rec)
        self._record_history("cancelled" if state == "cancelled" else "failed")
        raise err

    def _mark_unknown(self) -> None:
        rec = self.record
        rec.state = "unknown"
        rec.error = JobError(
            f"Job {rec.id} was being submitted to {rec.provider} when the runtime stopped; whether "
            f"{rec.provider} accepted it is unknown.", argument="job", value=rec.id,
            hint=f"Check the {rec.provider} dashboard before submitting again (it was not resubmitted "
                 "so that it cannot be paid twice).").to_dict()
        save(rec)

    def _stored_error(self) -> MasukaError:
        return _error_from_dict(self.record.error) or JobError(f"Job {self.record.id} is {self.record.state}.")

    def _history_fields(self) -> dict[str, Any]:
        return {}

    def _record_history(self, status: str) -> None:
        from masuka_nb import history

        rec = self.record
        fields = {"kind": rec.kind, "status": status, "model": rec.model, "prompt": rec.prompt,
                  "recipe": {"provider": rec.provider, "provider_model": rec.provider_model, "job_id": rec.id,
                             "provider_job_id": rec.provider_job_id, **rec.request},
                  "paths": builtins.list(rec.paths.values()),
                  "timings": _timings(rec), "error": rec.error,
                  "extra": {"cost_usd": rec.cost_usd, "estimate_usd": rec.estimate_usd, "notes": rec.notes}}
        fields.update(self._history_fields())
        try:
            saved = history.record(history.HistoryRecord(**fields))
        except MasukaError as exc:  # the job's own record already holds everything
            log.warning("jobs.history_failed", job=rec.id, code=exc.code)
            return
        rec.history_id = saved.id
        save(rec)


def _since(stamp: str) -> float:
    try:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return 0.0


def _timings(rec: JobRecord) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        created = datetime.fromisoformat(rec.created_at)
        if rec.completed_at:
            out["total_s"] = round((datetime.fromisoformat(rec.completed_at) - created).total_seconds(), 3)
        if rec.submitted_at:
            out["submit_s"] = round((datetime.fromisoformat(rec.submitted_at) - created).total_seconds(), 3)
    except ValueError:
        pass
    return out


def _error_from_dict(data: dict[str, Any] | None) -> MasukaError | None:
    if not data:
        return None
    cls = error_for_code(data.get("code", ""))
    details = data.get("details") or {}
    try:
        return cls(data.get("message", ""), hint=data.get("hint"), code=data.get("code"), **details)
    except TypeError:
        return MasukaError(data.get("message", ""), code=data.get("code"))


# `masuka_nb.jobs.list()` is the public name; the module uses `builtins.list` for the type.
list = list_jobs
