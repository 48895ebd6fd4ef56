"""The job runner: paid hosted jobs submitted once, polled, downloaded, finished, never lost.

    job = masuka_nb.VideoGenerator().submit("a lighthouse at dawn")
    masuka_nb.jobs.list()          # newest first, from MASUKA's home (Drive when mounted)
    masuka_nb.jobs.resume_all()    # after a restart: poll and download what was in flight
    masuka_nb.jobs.get(job.id).wait()

Records live in the job store (`masuka_nb.hosted.store`). The record is written in state ``submitting``
*before* the submit leaves; the provider's raw answer is written as soon as it arrives, before it is
read (`masuka_nb.hosted.ledger`). Any 2xx to a paid create is "accepted": when its body cannot be
read, or the answer never came whole, the job is marked ``needs_attention`` (with the provider, the
time, what was answered and what to check), charged to the session budget, and never resubmitted
nor sent to another route. A record found in ``submitting`` after a crash is treated the same way.

One process carries a job on at a time (`masuka_nb.hosted.lease`: a lease with a fencing token);
others wait for it and return its result. The owner downloads into a ``.part`` file of its own,
resumed with HTTP Range, checks its size (and hash where the provider gives one) and kind, and
renames it into place only while it still holds the lease. Every wait (poll pace, Retry-After,
backoff, another owner) wakes for a `CancelToken`, for `Job.cancel()` and for Ctrl-C / Colab's Stop,
leaving the job resumable. A full or read-only disk is DISK_FULL / NOT_WRITABLE saying what was kept.

Kinds of job are a registry, not names: a `Job` subclass declares ``kind = "video"`` and is registered
when its module is imported; each record also names its class, so a fresh process can finish it.

States: submitting → submitted → running → downloading → completed | failed | cancelled | expired | needs_attention.
"""

from __future__ import annotations

import builtins
import contextlib
import glob
import hashlib
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb.config import settings
from masuka_nb.errors import (
    CancelledError,
    InvalidRequestError,
    JobError,
    JobExpiredError,
    JobFailedError,
    JobNotFoundError,
    MasukaError,
    ProviderBadResponseError,
    StorageError,
    error_for_code,
)
from masuka_nb.hosted import pricing
from masuka_nb.hosted.http import wait_or_cancel
from masuka_nb.hosted.lease import HEARTBEAT_S, LEASE_S, Holder, Lease, LeaseLostError, acquire
from masuka_nb.hosted.ledger import SubmitLedger, recording
from masuka_nb.hosted.providers import get_provider
from masuka_nb.hosted.store import (
    ACTIVE,
    ATTENTION,
    TERMINAL,
    Download,
    JobRecord,
    Poll,
    _now,
    discard_unsaved,
    flush_unsaved,
    jobs_dir,
    load,
    records,
    save,
)
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter
from masuka_nb.storage import storage_error

__all__ = [
    "ACTIVE",
    "ATTENTION",
    "HEARTBEAT_S",
    "LEASE_S",
    "TERMINAL",
    "Download",
    "Job",
    "JobRecord",
    "Poll",
    "check_waiting",
    "get",
    "job_timings",
    "jobs_dir",
    "list_jobs",
    "poll_interval",
    "register_kind",
    "resume_all",
    "save",
    "submit_recorded",
    "wait_all",
    "wait_or_cancel",
]

log = get_logger(__name__)

_KINDS: dict[str, type[Job]] = {}


def register_kind(kind: str, cls: type[Job]) -> None:
    """Say which `Job` subclass finishes records of `kind` (subclasses with a `kind` do this themselves)."""
    _KINDS[kind] = cls


def poll_interval(provider: Any, override: float | None = None) -> float:
    """How often a job polls: the caller's value, else the `poll_interval` setting, else the provider's own pace."""
    if override is not None:
        return override
    configured = settings().poll_interval
    return float(configured) if configured is not None else float(provider.default_poll_interval)


# ---- one owner per job in this process (threads); across processes it is the lease ----------------
_local: dict[str, tuple[threading.Lock, threading.Event]] = {}
_local_lock = threading.Lock()


def _local_state(job_id: str) -> tuple[threading.Lock, threading.Event]:
    with _local_lock:
        if job_id not in _local:
            _local[job_id] = (threading.Lock(), threading.Event())
        return _local[job_id]


def _take_lease(job_id: str, *, submitting: bool = False) -> Lease | Holder:
    try:
        return acquire(job_id)
    except OSError as exc:  # the leases live beside the records: a full or read-only disk stops here
        saved = ("Nothing was sent to the provider and nothing was paid." if submitting else
                 "Nothing of the job changed; free space (or make it writable), then run "
                 "`masuka_nb.jobs.resume_all()`.")
        err = storage_error(exc, path=jobs_dir() / "leases", what=f"the lease of job {job_id}", saved=saved)
        if submitting:
            err.details["not_sent"] = True
        raise err from exc


# ---- the paid submit ---------------------------------------------------------------------------


def submit_recorded(record: JobRecord, send: Callable[[], Any], *, usd: float | None) -> None:
    """The paid-submit protocol, in one place.

    The record is saved as ``submitting`` (a full disk stops here: nothing sent, nothing paid), then
    `send()` lets the request leave with the submit ledger listening. Accepted and read: ``submitted``,
    charged to the session budget. Accepted (any 2xx) but unreadable, or possibly accepted (no whole
    answer): ``needs_attention``, charged, and an error with ``accepted`` / ``maybe_accepted`` in its
    details that no caller may answer by sending the job elsewhere. Refused: ``failed``.
    """
    lock, _ = _local_state(record.id)
    with lock:  # a resume_all() in another thread waits for the submit instead of judging it half-done
        lease = _take_lease(record.id, submitting=True)
        if isinstance(lease, Holder):
            raise JobError(f"Job {record.id} is already held by {lease}.", argument="job", value=record.id)
        try:
            _submit(record, send, usd)
        finally:
            lease.release()


def _submit(record: JobRecord, send: Callable[[], Any], usd: float | None) -> None:
    record.state, record.error, record.attention = "submitting", None, None
    try:
        save(record)
    except StorageError as exc:  # nothing left: the kept copy must not turn into a job that "may be paid"
        discard_unsaved(record.id)
        why = {"DISK_FULL": "the disk is full", "NOT_WRITABLE": "that place is read-only"}.get(exc.code, exc.message)
        raise type(exc)(f"Could not record job {record.id} in {jobs_dir()} before sending it: {why}. Nothing was sent "
                        f"to {record.provider} and nothing was paid.", argument="path", value=str(jobs_dir()),
                        not_sent=True, provider=record.provider) from exc
    with recording(record) as book:
        try:
            send()
        except BaseException as exc:
            _after_failed_send(record, book, exc, usd)
    record.state, record.submitted_at = "submitted", _now()
    _charge(record, usd)
    try:
        save(record)
    except StorageError as exc:  # kept in memory by save(); the job is paid: say so, never resubmit
        exc.details.update(accepted=True, maybe_accepted=True)
        raise


def _charge(record: JobRecord, usd: float | None) -> None:
    pricing.charge(usd, job=record.id)


def _after_failed_send(record: JobRecord, book: SubmitLedger, exc: BaseException, usd: float | None) -> None:
    interrupted = isinstance(exc, KeyboardInterrupt)
    maybe = book.maybe_accepted or (isinstance(exc, MasukaError) and bool(exc.details.get("maybe_accepted")))
    if maybe and record.provider_job_id and book.accepted and not isinstance(exc, MasukaError):
        # The id was read; something after it broke (or Stop was pressed): the job is simply submitted.
        record.state, record.submitted_at = "submitted", _now()
        _charge(record, usd)
        _save_or_raise(record, accepted=True)
        if interrupted:
            raise CancelledError(f"Stopped after job {record.id} was submitted to {record.provider} as "
                                 f"{record.provider_job_id}.", argument="job", value=record.id,
                                 hint=f"`masuka_nb.jobs.get('{record.id}').wait()` picks it up.") from None
        raise JobError(f"Job {record.id} was submitted to {record.provider} as {record.provider_job_id}, then "
                       f"failed locally: {type(exc).__name__}: {exc}", argument="job", value=record.id,
                       hint=f"`masuka_nb.jobs.get('{record.id}').wait()` carries it on.", accepted=True) from exc
    if maybe:
        err = _needs_attention(record, book, exc)
        _charge(record, usd)
        _save_or_raise(record, accepted=book.accepted)
        raise err from (None if isinstance(exc, (MasukaError, KeyboardInterrupt)) else exc)
    # Refused, or never sent: nothing was paid.
    if interrupted:
        err: MasukaError = CancelledError(f"Stopped before {record.provider} received job {record.id}; nothing "
                                          "was sent or paid.", argument="job", value=record.id)
    elif isinstance(exc, MasukaError):
        err = exc
    else:
        err = JobError(f"Submitting job {record.id} to {record.provider} failed before anything was accepted: "
                       f"{type(exc).__name__}: {exc}", argument="job", value=record.id,
                       hint="Nothing was paid. This is likely a bug in MASUKA: please report it.")
    record.state = "cancelled" if interrupted else "failed"
    record.error = _error_dict(err)
    with contextlib.suppress(StorageError):  # the refusal is the news; save() kept the record in memory
        save(record)
    if err is exc:
        raise err
    raise err from (None if interrupted else exc)


def _save_or_raise(record: JobRecord, *, accepted: bool) -> None:
    try:
        save(record)
    except StorageError as exc:
        exc.details.update(accepted=accepted, maybe_accepted=True)
        raise


def _needs_attention(record: JobRecord, book: SubmitLedger, exc: BaseException) -> MasukaError:
    """Mark a paid create that cannot be followed, and build the error the caller sees."""
    answer = book.answer or (book.entries[-1] if book.entries else None)
    when = (answer or {}).get("at") or _now()
    if book.accepted:
        reason = exc.message if isinstance(exc, MasukaError) else f"{type(exc).__name__}: {exc}"
        happened = (f"{record.provider} answered HTTP {answer['status']} at {when} to the paid request, so it "
                    f"accepted the job, but its answer could not be read ({reason[:200]}).")
        cls: type[MasukaError] = ProviderBadResponseError
    else:
        why = exc.message if isinstance(exc, MasukaError) else "the run was interrupted while the request was out"
        happened = (f"The paid request left for {record.provider} at {when}, but no whole answer came back "
                    f"({why[:200]}): {record.provider} may have accepted the job.")
        cls = type(exc) if isinstance(exc, MasukaError) else CancelledError
    what = f" ({record.provider_model or record.model})" if (record.provider_model or record.model) else ""
    prompt = f", prompt {record.prompt[:60]!r}" if record.prompt else ""
    check = (f"Open {record.provider}'s dashboard (its list of jobs or its usage page) and look for a {record.kind} "
             f"job{what} made around {when}{prompt}. If it is there, it is paid for and its result is there. "
             f"Do not submit it again before you have looked: MASUKA did not send it anywhere else and never "
             "resends it.")
    record.state = ATTENTION
    record.attention = {
        "since": _now(), "provider": record.provider, "provider_model": record.provider_model,
        "why": "accepted" if book.accepted else "maybe_accepted", "what_happened": happened,
        "answered": {k: (answer or {}).get(k) for k in ("at", "status", "request_id", "answer")} if answer else None,
        "provider_job_id": record.provider_job_id, "what_to_check": check,
    }
    details = {"provider": record.provider, "job_id": record.id, "accepted": book.accepted, "maybe_accepted": True,
               "status": (answer or {}).get("status"), "request_id": (answer or {}).get("request_id")}
    if isinstance(exc, MasukaError):
        details = {**{k: v for k, v in exc.details.items() if k not in ("provider", "argument")}, **details}
    err = cls(f"{happened} Job {record.id} is recorded as needing attention; it was not sent anywhere else.",
              argument="job", value=record.id, hint=check, **details)
    record.error = _error_dict(err)
    return err


def _error_dict(err: MasukaError) -> dict[str, Any]:
    out = err.to_dict()
    out["details"] = {k: str(v) for k, v in err.details.items()}
    return out


# ---- finding jobs ------------------------------------------------------------------------------


def _job_class(record: JobRecord) -> type[Job]:
    """The one way to find a job's class: the kind registered for the record's `kind` (the engines register
    theirs when their module is imported; `masuka_nb.jobs` imports every one before it reads a record).
    The hosted layer imports no engine: a kind nobody registered is finished as a plain `Job`."""
    return _KINDS.get(record.kind, Job)


def from_record(record: JobRecord) -> Job:
    return _job_class(record)(record)


def get(id: str) -> Job:
    """The job `id` (a `VideoJob` or `CloudTrainingJob`), read from the store now."""
    return from_record(load(id))


def list_jobs(*, kind: str | None = None, state: str | None = None) -> builtins.list[Job]:
    """Every job kept in MASUKA's home, newest first; `kind` ("video"/"training") and `state` filter."""
    for name, value in (("kind", kind), ("state", state)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(f"`{name}` must be text or None.", argument=name, value=value)
    out = [from_record(rec) for rec in records()
           if not (kind and rec.kind != kind) and not (state and rec.state != state)]
    out.sort(key=lambda j: j.record.created_at, reverse=True)
    return out


def check_waiting(*, progress: Any, cancel: Any, timeout: Any = None, max_workers: Any = 1) -> None:
    """The arguments every wait takes, checked before anything starts."""
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise InvalidRequestError("`progress` must be True, False, None or a callback.", argument="progress",
                                  value=progress)
    if cancel is not None and not callable(getattr(cancel, "raise_if_cancelled", None)):
        raise InvalidRequestError("`cancel` must be a masuka_nb.progress.CancelToken or None.", argument="cancel",
                                  value=cancel)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0 or math.isinf(timeout)):
        raise InvalidRequestError("`timeout` must be a positive number of seconds or None.", argument="timeout",
                                  value=timeout)
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidRequestError("`max_workers` must be a whole number of at least 1.", argument="max_workers",
                                  value=max_workers)


class _Either:
    """A cancel token that is cancelled when the caller's token or our own stop flag is."""

    def __init__(self, outer: Any) -> None:
        self.outer = outer
        self.own = CancelToken()

    @property
    def cancelled(self) -> bool:
        return self.own.cancelled or bool(self.outer is not None and self.outer.cancelled)

    def raise_if_cancelled(self, what: str = "the task") -> None:
        self.own.raise_if_cancelled(what)
        if self.outer is not None:
            self.outer.raise_if_cancelled(what)


def wait_all(jobs: builtins.list[Job], *, progress: ProgressCallback | bool | None = False, max_workers: int = 8,
             cancel: CancelToken | None = None) -> builtins.list[Job]:
    """Wait for several jobs side by side (threads: the waiting is all network); return them.

    Each job's error is kept on it (``job.error``), so one bad job does not stop the others. A
    `cancel` token stops every wait at once and returns; Ctrl-C / Colab's Stop does the same and
    raises CANCELLED. Either way nothing is left waiting in the background for long: every worker
    wakes within ~50 ms (or when its network read ends) and the jobs stay resumable.
    """
    check_waiting(progress=progress, cancel=cancel, max_workers=max_workers)
    if not jobs:
        return []
    stop = _Either(cancel)

    def run(job: Job) -> Job:
        try:
            job.wait(progress=progress, cancel=stop)  # type: ignore[arg-type]
        except MasukaError as exc:
            job.last_error = exc
        return job

    pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(jobs))), thread_name_prefix="masuka-job")
    futures = [pool.submit(run, j) for j in jobs]
    try:
        pending = set(futures)
        while pending:
            _, pending = wait_futures(pending, timeout=0.05, return_when=FIRST_COMPLETED)
            if pending and stop.cancelled:
                stop.own.cancel("cancelled")
                # The workers wake within ~50 ms and note CANCELLED on their job; one stuck in a network
                # read is not waited for beyond half a second (it ends on its own, the job stays resumable).
                wait_futures(pending, timeout=0.5)
                break
    except KeyboardInterrupt:
        stop.own.cancel("stopped by the user")
        pool.shutdown(wait=False, cancel_futures=True)
        left = sum(1 for j in jobs if not j.done)
        raise CancelledError(f"Stopped waiting for {len(jobs)} hosted job(s); {left} still run at their providers "
                             "and stay resumable.", argument="cancel", value="KeyboardInterrupt",
                             hint="`masuka_nb.jobs.resume_all()` carries them on (nothing is submitted again).") from None
    pool.shutdown(wait=not stop.cancelled, cancel_futures=True)
    unsaved = [j for j in jobs if isinstance(j.last_error, StorageError)]
    if unsaved:
        log.warning("jobs.storage_errors", jobs=",".join(j.id for j in unsaved), code=unsaved[0].last_error.code)
    return jobs


def resume_all(*, progress: ProgressCallback | bool | None = False, max_workers: int = 8,
               cancel: CancelToken | None = None) -> builtins.list[Job]:
    """Carry on every unfinished job (poll, download, finish), concurrently; return them all.

    Records kept in memory because a save failed are written first. Jobs left in ``submitting`` by
    a crash are marked ``needs_attention`` (see the module doc). Errors are kept on each job
    (``job.error``), not raised, so one bad job does not stop the others; a `cancel` token or Ctrl-C
    stops every wait at once (see `wait_all`) and the jobs stay resumable.
    """
    check_waiting(progress=progress, cancel=cancel, max_workers=max_workers)
    flush_unsaved()
    pending = [j for j in list_jobs() if j.record.state in ("submitting", *ACTIVE)]
    return wait_all(pending, progress=progress, max_workers=max_workers, cancel=cancel)


# ---- a job -------------------------------------------------------------------------------------


class _BadBytes(Exception):
    """A downloaded file does not check out (size, hash or kind): it is dropped and fetched afresh once."""


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
        self.last_error: MasukaError | None = None  # what the last wait() in this process ran into
        # shared by every Job object for this id: one waiter at a time; cancel() must not wait for it
        self._lock, self._cancelled = _local_state(record.id)
        self._lease: Lease | None = None
        self._cancel: Any = None
        self._beat_at = 0.0

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
        return self.last_error or _error_from_dict(self.record.error)

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
        """Poll until the provider is done, download the result, finish it; return `result()`.

        When another process is carrying the job on, this waits for it and returns its result (or
        takes over if it stops answering). `timeout` bounds the whole wait; the job keeps running.
        """
        check_waiting(progress=progress, cancel=cancel, timeout=timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._cancel = cancel
        with self._lock:
            try:
                while True:
                    with contextlib.suppress(JobNotFoundError):
                        self.refresh()  # another waiter (thread or process) may have finished it meanwhile
                    if self.record.state == "completed":
                        return self.result()
                    if self.record.state in TERMINAL:
                        raise self._stored_error()
                    lease = self._take(deadline)
                    if lease is None:
                        continue  # it finished under its other owner: look at the record again
                    try:
                        return self._drive(lease, progress, deadline)
                    except LeaseLostError as exc:
                        log.info("jobs.taken_over", job=self.id, detail=exc.message)
            except KeyboardInterrupt:
                # The job keeps running at the provider; its record stays resumable.
                raise CancelledError(f"Stopped waiting for job {self.id}; it is still running at {self.provider}.",
                                     argument="job", value=self.id,
                                     hint=f"`masuka_nb.jobs.get('{self.id}').wait()` picks it up again.") from None

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
        self.record_history("cancelled")

    def result(self) -> Any:
        """What the job made: here the provider's output (subclasses return their own result type)."""
        if self.record.state != "completed":
            raise self._stored_error()
        return self.record.outputs

    # -- ownership --
    def _take(self, deadline: float | None) -> Lease | None:
        """This process's lease on the job, or None once the job ended while another process owned it."""
        while True:
            got = _take_lease(self.id)
            if isinstance(got, Lease):
                return got
            if deadline is not None and time.monotonic() > deadline:
                raise JobError(f"Job {self.id} is being carried on by {got} (heard from {got.age:.0f} s ago); it is "
                               f"still {self.record.state}.", argument="job", value=self.id,
                               hint=f"Wait for it there, or call `.wait()` again; after {LEASE_S:g} s without news "
                                    "from it, this process takes the job over.")
            self._sleep(min(max(self.record.poll_interval, 0.05), 5.0))
            with contextlib.suppress(JobNotFoundError):
                self.refresh()
            if self.record.state in TERMINAL:
                return None

    def _save(self) -> None:
        """Save the record as its owner: only while this process still holds the lease (fencing)."""
        if self._lease is not None:
            self._lease.check()
            self.record.extra["fence"] = self._lease.token
        save(self.record)

    def _beat(self) -> None:
        if self._lease is not None and time.monotonic() - self._beat_at > HEARTBEAT_S:
            self._lease.beat()
            self._beat_at = time.monotonic()

    def _drive(self, lease: Lease, progress: Any, deadline: float | None) -> Any:
        self._lease, self._beat_at = lease, time.monotonic()
        try:
            with contextlib.suppress(JobNotFoundError):
                self.refresh()  # the previous owner may have moved it on before letting go
            rec = self.record
            if rec.state in TERMINAL:
                return self.result()
            reporter = ProgressReporter(f"{rec.provider} {rec.provider_model or rec.model}", 100,
                                        progress=progress, cancel=self._cancel)
            provider = self._provider()
            if rec.state == "submitting" and not self._adopt_from_ledger(provider):
                provider.close()
                self._mark_attention_after_crash()
            provider.client.cancel, provider.client.cancel_event = self._cancel, self._cancelled
            try:
                if rec.state in ("submitted", "running"):
                    self._poll_until_done(provider, reporter, deadline)
                if rec.state == "downloading":
                    self._download(provider, reporter)
                    self._finish()
                    self._complete()
            finally:
                provider.close()
                if self._cancelled.is_set() and rec.state != "cancelled":
                    rec.state = "cancelled"  # cancel() raced a save of ours: it wins
                    with contextlib.suppress(MasukaError):
                        self._save()
            reporter.done(rec.state)
            return self.result()
        finally:
            lease.release()
            self._lease = None

    # -- the steps --
    def _provider(self):
        return get_provider(self.record.provider, base_url=self.record.base_url or None)

    def _poll_until_done(self, provider, reporter: ProgressReporter, deadline: float | None) -> None:
        rec = self.record
        start = time.monotonic()
        grace = settings().job_not_found_grace
        while True:
            reporter.check(f"job {rec.id}")
            self._beat()
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
                if rec.extra.get("id_from"):  # an id read from an unexpected answer: paid, so look, not fail
                    self._attention_unfollowable(exc)
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
                self._save()
                return
            if poll.state in ("failed", "cancelled"):
                err = poll.error or JobFailedError(f"{rec.provider} reports job {rec.provider_job_id} {poll.state}.",
                                                   provider=rec.provider, request_id=rec.provider_job_id)
                self._fail(err, "cancelled" if poll.state == "cancelled" else "failed")
            new_state = "running" if poll.state == "running" else rec.state
            if changed or new_state != rec.state:
                rec.state = new_state
                self._save()
            if deadline is not None and time.monotonic() > deadline:
                raise JobError(f"Job {rec.id} is still {rec.state}; it keeps running.", argument="timeout",
                               value=round(deadline - start, 3), hint="Call `.wait()` again later.")
            self._sleep(poll.wait if poll.wait is not None else rec.poll_interval)

    def _sleep(self, seconds: float) -> None:
        """The poll pace (or the provider's Retry-After), cut short by a cancel token or `cancel()`."""
        try:
            wait_or_cancel(seconds, self._cancel, also=self._cancelled, what=f"Waiting for job {self.record.id}")
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
                self._save()
            reporter.restage(f"download {d.role}", 100)
            try:
                part = self._fetch(provider, d, target, reporter)
            except JobExpiredError as exc:
                self._fail(exc, "expired")
            except (LeaseLostError, CancelledError, StorageError):
                raise
            except MasukaError as exc:
                if d.required:
                    raise
                log.info("jobs.optional_download_failed", job=rec.id, role=d.role, code=exc.code)
                continue
            if self._lease is not None:
                self._lease.check()  # only the owner renames into place
            try:
                os.replace(part, target)
            except OSError as exc:
                raise self._disk_error(exc, part, d) from exc
            rec.paths[d.role] = str(target)
            self._save()

    def _fetch(self, provider, d: Download, target: Path, reporter: ProgressReporter) -> Path:
        """Download `d` into this owner's own `.part` file and check it; returns the checked file."""
        shown = [-1]

        def on_bytes(got: int, total: int | None) -> None:
            pct = int(100 * got / total) if total else 0
            if pct != shown[0]:  # one event per percent, not per network read
                shown[0] = pct
                reporter.update(pct, message=f"{got / 1e6:.1f} MB")
            self._beat()  # renews the lease during a long download

        def fence(got: int, total: int | None) -> None:
            if self._lease is not None:
                self._lease.check(cheap=True)  # a taken-over owner stops writing at once

        for fresh in (False, True):
            try:
                part = self._own_part(target)
                result = provider.client.download(d.url, part, content_types=d.content_types, on_bytes=on_bytes,
                                                  before_write=fence)
            except OSError as exc:
                if self._lease is not None:
                    self._lease.check()  # our file vanished because another process took the job over
                if exc.errno is None:
                    raise
                raise self._disk_error(exc, self._own_part_name(target), d) from exc
            if self._lease is not None:
                self._lease.check()  # only the owner checks and keeps what it downloaded
            try:
                self._verify(d, part, result.bytes, result.content_type)
                return part
            except _BadBytes as bad:
                part.unlink(missing_ok=True)  # a bad file never replaces a good one; the next try starts clean
                log.warning("jobs.download_rejected", job=self.id, role=d.role, why=str(bad))
                if fresh:
                    raise ProviderBadResponseError(
                        f"{self.record.provider}'s {d.role} for job {self.id} does not check out: {bad}.",
                        provider=self.record.provider, request_id=self.record.provider_job_id,
                        hint="Run `.wait()` again to download it afresh.") from None
        raise AssertionError("unreachable")

    def _own_part_name(self, target: Path) -> Path:
        token = self._lease.token if self._lease is not None else 0
        return target.with_name(f"{target.name}.{token}.part")

    def _own_part(self, target: Path) -> Path:
        """This owner's `.part` file, started from the longest one an earlier owner left (copied, never shared:
        a paused earlier owner waking up writes into its own file, not ours)."""
        part = self._own_part_name(target)
        if part.exists():
            return part
        part.parent.mkdir(parents=True, exist_ok=True)
        older = [p for p in part.parent.glob(glob.escape(target.name) + ".*part") if p != part and p.is_file()]
        if older:
            best = max(older, key=lambda p: p.stat().st_size)
            tmp = part.with_name(part.name + ".copy")
            shutil.copyfile(best, tmp)
            os.replace(tmp, part)
            for p in older:
                with contextlib.suppress(OSError):
                    p.unlink()
        return part

    def _verify(self, d: Download, part: Path, size: int, content_type: str) -> None:
        try:
            actual = part.stat().st_size
        except FileNotFoundError:
            raise _BadBytes("the downloaded file vanished") from None
        if actual != size:
            raise _BadBytes(f"{actual} bytes on disk, {size} received")
        if d.size is not None and actual != d.size:
            raise _BadBytes(f"{actual} bytes, the provider says {d.size}")
        if d.sha256:
            h = hashlib.sha256()
            with open(part, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
            if h.hexdigest() != d.sha256.lower():
                raise _BadBytes("its SHA-256 differs from the provider's")
        try:
            self._check_file(d, part, content_type)
        except ProviderBadResponseError as exc:
            raise _BadBytes(exc.message) from None

    def _disk_error(self, exc: OSError, part: Path, d: Download) -> StorageError:
        rec = self.record
        kept = part.stat().st_size if part.exists() else 0
        return storage_error(exc, path=part, what=f"the {d.role} of job {rec.id}",
                             saved=f"Nothing is lost: the job is still at {rec.provider} as {rec.provider_job_id}, "
                                   f"{kept} bytes of it are kept in {part.parent}, and its record is in {jobs_dir()}. "
                                   "Free some space, then run `masuka_nb.jobs.resume_all()` (soon: some providers' "
                                   "result links expire after a day).")

    def _check_file(self, d: Download, part: Path, content_type: str) -> None:
        """Subclasses check the bytes (MP4 box, safetensors header) by raising ProviderBadResponseError."""

    def _target_path(self, d: Download) -> Path:
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
        self._save()
        self.record_history("ok")
        log.info("jobs.completed", job=rec.id, provider=rec.provider, cost=rec.cost_usd)

    def _fail(self, err: MasukaError, state: str) -> None:
        rec = self.record
        rec.state = state
        rec.error = _error_dict(err)
        self._save()
        self.record_history("cancelled" if state == "cancelled" else "failed")
        raise err

    def _attention_unfollowable(self, exc: MasukaError) -> None:
        """The job was accepted (paid) but its id, read from an unexpected answer, is unknown to the provider."""
        rec = self.record
        rec.state = ATTENTION
        check = (f"Open {rec.provider}'s dashboard and look for a {rec.kind} job made around {rec.submitted_at}; "
                 "it is paid for. MASUKA did not send it anywhere else.")
        rec.attention = {"since": _now(), "provider": rec.provider, "why": "accepted",
                         "what_happened": f"{rec.provider} accepted the job, but the id read from its unexpected "
                                          f"answer ({rec.extra.get('id_from')} = {rec.provider_job_id}) is unknown "
                                          f"to it: {exc.message}",
                         "provider_job_id": rec.provider_job_id, "what_to_check": check}
        err = JobError(f"Job {rec.id} needs attention: {rec.attention['what_happened']}", argument="job",
                       value=rec.id, hint=check, provider=rec.provider)
        rec.error = _error_dict(err)
        self._save()
        raise err

    def _adopt_from_ledger(self, provider) -> bool:
        """A record left in `submitting` whose ledger holds the provider's accepted answer: read the job id
        from that answer now (the process that got it died before it could, or its record was damaged)."""
        rec = self.record
        accepted = [e for e in rec.ledger if isinstance(e, dict) and isinstance(e.get("status"), int)
                    and 200 <= e["status"] < 300 and isinstance(e.get("answer"), str)]
        if not accepted or not provider.adopt_answer(rec, accepted[-1]):
            return False
        rec.state, rec.submitted_at = "submitted", rec.submitted_at or accepted[-1].get("at")
        rec.notes.append("the provider's job id was read from the submit ledger after the submitting process stopped")
        self._save()
        return True

    def _mark_attention_after_crash(self) -> None:
        rec = self.record
        book = SubmitLedger(rec)
        book.entries = [e for e in rec.ledger if isinstance(e, dict)]
        book.accepted = any(isinstance(e.get("status"), int) and 200 <= e["status"] < 300 for e in book.entries)
        book.answer = next((e for e in reversed(book.entries) if e.get("status") and 200 <= e["status"] < 300), None)
        book.in_flight = True  # the submitting process stopped before it could say how it ended
        err = _needs_attention(rec, book, JobError(
            f"the runtime stopped while job {rec.id} was being submitted to {rec.provider}", argument="job",
            value=rec.id))
        self._save()
        raise err

    def _stored_error(self) -> MasukaError:
        return _error_from_dict(self.record.error) or JobError(f"Job {self.record.id} is {self.record.state}.",
                                                               argument="job", value=self.record.id)

    def _history_fields(self) -> dict[str, Any]:
        return {}

    def record_history(self, status: str) -> None:
        """Record how the job ended (ok, cancelled or failed) in the history, through the one writer."""
        rec = self.record
        fields = {"kind": rec.kind, "status": status, "model": rec.model, "prompt": rec.prompt,
                  "recipe": {"provider": rec.provider, "provider_model": rec.provider_model, "job_id": rec.id,
                             "provider_job_id": rec.provider_job_id, **rec.request},
                  "paths": builtins.list(rec.paths.values()),
                  "timings": job_timings(rec), "error": rec.error,
                  "extra": {"cost_usd": rec.cost_usd, "estimate_usd": rec.estimate_usd, "notes": rec.notes}}
        fields.update(self._history_fields())
        fields.pop("kind")
        saved = history.write(rec.kind, **fields)  # one writer; a failure is logged (the job's record has it all)
        if saved is None:
            return
        rec.history_id = saved.id
        with contextlib.suppress(StorageError, LeaseLostError):
            self._save()


def _since(stamp: str) -> float:
    try:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return 0.0


def job_timings(rec: JobRecord) -> dict[str, float]:
    """A job's timings in the history's schema: `seconds_total` (created to done), `seconds_submit`."""
    out: dict[str, float] = {}
    try:
        created = datetime.fromisoformat(rec.created_at)
        if rec.completed_at:
            out["seconds_total"] = round((datetime.fromisoformat(rec.completed_at) - created).total_seconds(), 3)
        if rec.submitted_at:
            out["seconds_submit"] = round((datetime.fromisoformat(rec.submitted_at) - created).total_seconds(), 3)
    except (TypeError, ValueError):
        pass
    return out


def _error_from_dict(data: dict[str, Any] | None) -> MasukaError | None:
    if not data or not isinstance(data, dict):
        return None
    cls = error_for_code(str(data.get("code", "")))
    details = data.get("details") if isinstance(data.get("details"), dict) else {}
    details = {k: v for k, v in details.items() if k not in ("argument", "value", "hint", "code")}
    try:
        return cls(str(data.get("message", "")), hint=data.get("hint"), code=data.get("code"),
                   argument=data.get("argument"), **details)
    except TypeError:
        return MasukaError(str(data.get("message", "")), code=data.get("code"))


# `masuka_nb.jobs.list()` is the public name; the module uses `builtins.list` for the type.
list = list_jobs
