"""The job store: one JSON record per paid hosted job, under ``settings().jobs_dir``.

Each record is replaced atomically on every change, keeping the last good version beside it as
``<id>.json.bak`` (no lock, no mmap, no append), so the store works on the Drive mount and with
several jobs, or processes, at once. A record never holds a key: the serialised text is redacted
before it is written. What a record *means* (polling it, downloading its result) is the runner's
business (`masuka_nb.hosted.runner`); this module only reads and writes them.

Nothing paid for is dropped, whatever happens to the files:

- A record that does not parse (truncated, ``[]``, wrong field types) is moved to ``quarantine/``
  beside it with one warning, and the last good version (``.bak``) is used instead. Whatever the
  damaged text still holds that the backup lacks (a provider job id written just before the damage)
  is pulled back in; with no backup at all, the fields that survive make a record marked
  ``needs_attention``.
- A record that cannot be written (a full or read-only disk) is kept in memory, written again a
  couple of times, copied to the local cache if that place takes it, and the save raises
  DISK_FULL / NOT_WRITABLE naming the job, its provider and the provider's job id. `records()`,
  `load()` and `flush_unsaved()` (which `resume_all()` calls first) see the kept copy, so once there
  is space again the job carries on as if nothing had happened.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import re
import secrets as _secrets
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb._redact import redact
from masuka_nb.config import settings
from masuka_nb.errors import JobNotFoundError, MasukaError, StorageError
from masuka_nb.log import get_logger
from masuka_nb.storage import atomic_open, quarantine

__all__ = ["ACTIVE", "ATTENTION", "TERMINAL", "Download", "JobRecord", "Poll", "discard_unsaved", "flush_unsaved",
           "jobs_dir", "load", "records", "save", "valid_job_id"]

log = get_logger(__name__)

ACTIVE = ("submitted", "running", "downloading")
# A paid create the provider accepted (or may have) whose job MASUKA cannot follow: the user must look.
ATTENTION = "needs_attention"
# "unknown" is what records written before the submit ledger called ATTENTION.
TERMINAL = ("completed", "failed", "cancelled", "expired", ATTENTION, "unknown")
STATES = ("submitting", *ACTIVE, *TERMINAL)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SAVE_RETRIES = 2  # writes after the first that fails, a short pause apart (a sync client freeing space)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class JobRecord:
    """Everything needed to carry a job on in another process. Never holds a key."""

    id: str
    kind: str
    provider: str
    model: str = ""
    provider_model: str = ""
    route: str = ""
    state: str = "submitting"
    provider_job_id: str | None = None
    base_url: str = ""
    prompt: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    estimate_usd: float | None = None
    cost_usd: float | None = None
    progress: float | None = None
    status_text: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    attempts: builtins.list[dict[str, Any]] = field(default_factory=builtins.list)
    notes: builtins.list[str] = field(default_factory=builtins.list)
    # The submit ledger: every answer a provider gave to a paid create, raw, written before it was read.
    ledger: builtins.list[dict[str, Any]] = field(default_factory=builtins.list)
    # Set with state ATTENTION: the provider, when, what it answered and what the user should check.
    attention: dict[str, Any] | None = None
    poll_interval: float = 5.0
    polls: int = 0
    history_id: str | None = None
    job_class: str = ""  # written by earlier versions; the class is found by `kind` (hosted.runner._job_class)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    submitted_at: str | None = None
    completed_at: str | None = None

    @classmethod
    def new(cls, kind: str, provider: str, **fields: Any) -> JobRecord:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        return cls(id=f"{kind[0]}{stamp}-{_secrets.token_hex(3)}", kind=kind, provider=provider, **fields)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Poll:
    """One look at a job: normalised state (queued|running|succeeded|failed|cancelled) and what came with it."""

    state: str
    progress: float | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    error: MasukaError | None = None
    wait: float | None = None
    logs: builtins.list[str] = field(default_factory=builtins.list)


@dataclass
class Download:
    """A result to fetch: `role` (video, thumbnail, lora, weights), its URL and what it must look like.

    `size` and `sha256`, where the provider states them, are checked before the file is renamed into place.
    """

    role: str
    url: str
    suffix: str
    content_types: tuple[str, ...] = ()
    required: bool = True
    size: int | None = None
    sha256: str | None = None


# ---- what a record's fields may hold -------------------------------------------------------------

_NUM = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "kind": (str,), "provider": (str,), "model": (str,), "provider_model": (str,), "route": (str,),
    "state": (str,), "provider_job_id": (str, type(None)), "base_url": (str,), "prompt": (str,),
    "request": (dict,), "estimate_usd": (*_NUM, type(None)), "cost_usd": (*_NUM, type(None)),
    "progress": (*_NUM, type(None)), "status_text": (str,), "outputs": (dict,), "extra": (dict,),
    "targets": (dict,), "paths": (dict,), "error": (dict, type(None)), "attempts": (list,), "notes": (list,),
    "ledger": (list,), "attention": (dict, type(None)), "poll_interval": _NUM, "polls": (int,),
    "history_id": (str, type(None)), "job_class": (str,), "created_at": (str,), "updated_at": (str,),
    "submitted_at": (str, type(None)), "completed_at": (str, type(None)),
}
assert set(_TYPES) == {f.name for f in fields(JobRecord)}


def valid_job_id(job_id: Any) -> bool:
    """A job id is a short file-name-safe word: never a path (`jobs.get("../x")` reads nothing outside)."""
    return isinstance(job_id, str) and bool(_ID.match(job_id)) and ".." not in job_id


def _problems(data: Any) -> str | None:
    """Why `data` is not a job record, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    for name in ("id", "kind", "provider"):
        if not isinstance(data.get(name), str) or not data.get(name):
            return f"`{name}` is missing or not text"
    if not valid_job_id(data["id"]):
        return f"`id` {data['id'][:40]!r} is not a job id"
    for name, value in data.items():
        kinds = _TYPES.get(name)
        if kinds is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            return f"`{name}` holds {type(value).__name__}"
    if data.get("state", "submitting") not in STATES:
        return f"unknown state {str(data.get('state'))[:40]!r}"
    return None


def _parse(text: str) -> tuple[JobRecord | None, str]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    why = _problems(data)
    return (None, why) if why else (JobRecord.from_dict(data), "")


_TOP = re.compile(r'^ "([a-z_]+)": ', re.M)  # top-level keys: records are written with indent=1


def _salvage(text: str) -> dict[str, Any]:
    """Every top-level field whose value is still whole in a damaged record's text (a truncated file)."""
    out: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    for m in _TOP.finditer(text):
        name = m.group(1)
        if name not in _TYPES or name in out:
            continue
        try:
            value, _ = decoder.raw_decode(text, m.end())
        except ValueError:
            continue
        if isinstance(value, _TYPES[name]) and not (isinstance(value, bool) and bool not in _TYPES[name]):
            out[name] = value
    return out


# ---- the store ---------------------------------------------------------------------------------


def jobs_dir() -> Path:
    return settings().jobs_dir


def _path(job_id: str) -> Path:
    return jobs_dir() / f"{job_id}.json"


# Records that could not be written (full or read-only disk), by (jobs folder, id): the paid job's
# provider id lives here until a save succeeds. Also copied to `_fallback_dir()` when that place takes it.
_unsaved: dict[tuple[str, str], JobRecord] = {}
_unsaved_lock = threading.Lock()


def _key(job_id: str) -> tuple[str, str]:
    return str(jobs_dir()), job_id


def _kept_here() -> dict[str, JobRecord]:
    folder = str(jobs_dir())
    with _unsaved_lock:
        return {job_id: rec for (where, job_id), rec in _unsaved.items() if where == folder}


def _fallback_dir() -> Path:
    """Where records that cannot be written are copied: the local cache, one folder per jobs folder."""
    tag = hashlib.sha256(str(jobs_dir()).encode()).hexdigest()[:12]
    return settings().cache_dir / "unsaved-jobs" / tag


def _serialise(record: JobRecord) -> str:
    # Redact the serialised record: a key could hide in a provider reply we keep.
    return redact(json.dumps(asdict(record), indent=1, sort_keys=True, default=str)) + "\n"


def _write(path: Path, text: str) -> None:
    with atomic_open(path, "w", backup=True) as fh:
        fh.write(text)


def save(record: JobRecord, *, sleep: Any = time.sleep) -> None:
    """Write `record` (atomically, keeping the last good version as `.bak`).

    A full or read-only disk: the write is tried again, the record is kept in memory (and copied to
    the local cache when that is a different, writable place), and DISK_FULL / NOT_WRITABLE is raised
    naming the job and its provider. Nothing of the job is lost while this process runs; a later
    `save`, `flush_unsaved()` or `resume_all()` writes it once there is room.
    """
    record.updated_at = _now()
    text = _serialise(record)
    path = _path(record.id)
    error: StorageError | None = None
    for attempt in range(SAVE_RETRIES + 1):
        try:
            _write(path, text)
        except StorageError as exc:
            error = exc
            if attempt < SAVE_RETRIES:
                sleep(0.05 * (attempt + 1))
            continue
        with _unsaved_lock:
            _unsaved.pop(_key(record.id), None)
        with contextlib.suppress(OSError):
            (_fallback_dir() / f"{record.id}.json").unlink()
        return
    assert error is not None
    with _unsaved_lock:
        _unsaved[_key(record.id)] = record
    kept = _keep_elsewhere(record, text, path)
    raise _unsaved_error(record, error, kept) from error


def _keep_elsewhere(record: JobRecord, text: str, path: Path) -> str:
    """Copy a record that cannot be written to the local cache (another disk when the home is on Drive)."""
    spare = _fallback_dir() / f"{record.id}.json"
    if spare.parent.resolve() == path.parent.resolve():
        return "in this session's memory"
    try:
        _write(spare, text)
    except (StorageError, OSError):
        return "in this session's memory"
    return f"in this session's memory and in {spare}"


def _unsaved_error(record: JobRecord, error: StorageError, kept: str) -> StorageError:
    pid = f" as {record.provider_job_id}" if record.provider_job_id else ""
    why = {"DISK_FULL": "the disk is full", "NOT_WRITABLE": "that place is read-only"}.get(error.code, error.message)
    msg = (f"The record of job {record.id} ({record.provider}{pid}) could not be written to {jobs_dir()}: {why}. "
           f"It is kept {kept}.")
    hint = ("Free some space (or make the folder writable), then run `masuka_nb.jobs.resume_all()`: it writes the "
            "record and carries the job on; it is never submitted again.")
    return type(error)(msg, argument="job", value=record.id, hint=hint, job_id=record.id, provider=record.provider,
                       provider_job_id=record.provider_job_id, state=record.state, kept=kept,
                       errno=error.details.get("errno"))


def discard_unsaved(job_id: str) -> None:
    """Forget a kept copy that must not come back (a record that failed to be written before anything was sent)."""
    with _unsaved_lock:
        _unsaved.pop(_key(job_id), None)
    with contextlib.suppress(OSError):
        (_fallback_dir() / f"{job_id}.json").unlink()


def flush_unsaved() -> builtins.list[str]:
    """Write every record kept in memory or in the local cache because its save failed; returns their ids.

    Records that still cannot be written stay kept (a warning says so); nothing is raised.
    """
    pending = {**_spares(), **_kept_here()}
    written = []
    for job_id, record in pending.items():
        current = _read_quietly(_path(job_id))
        if current is not None and current.updated_at > record.updated_at:
            record = current  # another process moved it on meanwhile
        try:
            save(record)
        except StorageError as exc:
            log.warning("jobs.still_unsaved", job=job_id, code=exc.code)
            continue
        written.append(job_id)
    return written


def _spares() -> dict[str, JobRecord]:
    folder = _fallback_dir()
    out: dict[str, JobRecord] = {}
    if not folder.is_dir():
        return out
    for path in folder.glob("*.json"):
        rec = _read_quietly(path)
        if rec is not None:
            out[rec.id] = rec
    return out


def _read_quietly(path: Path) -> JobRecord | None:
    try:
        return _parse(path.read_text(encoding="utf-8"))[0]
    except (OSError, UnicodeDecodeError):
        return None


def _newest(*candidates: JobRecord | None) -> JobRecord | None:
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda r: r.updated_at) if found else None


def _read_record(path: Path) -> JobRecord | None:
    """The record in `path`, or its last good version when it is damaged (the damaged file is quarantined)."""
    damaged: builtins.list[str] = []
    bak = path.with_name(path.name + ".bak")
    for candidate in (path, bak):
        try:
            raw = candidate.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:  # unreadable (permissions, I/O): leave it where it is, say so
            log.warning("jobs.unreadable", path=str(candidate), error=str(exc))
            continue
        text = raw.decode("utf-8", errors="replace")
        record, why = _parse(text)
        if record is not None:
            if candidate is bak:
                record = _recovered(record, damaged, path)
            return record
        damaged.append(text)
        quarantine(candidate, reason=why)
    if not damaged:
        return None
    return _rebuilt(damaged, path)


def _recovered(record: JobRecord, damaged: builtins.list[str], path: Path) -> JobRecord:
    """The backup, with what the damaged newer text still says that matters (the provider's job id)."""
    newer = _salvage(damaged[0]) if damaged else {}
    if newer.get("id", record.id) == record.id:
        if not record.provider_job_id and newer.get("provider_job_id"):
            record.provider_job_id = newer["provider_job_id"]
            if record.state == "submitting":
                record.state = "submitted"
            record.ledger = newer.get("ledger", record.ledger)
            record.extra = {**record.extra, **newer.get("extra", {})}
        if (newer.get("state") in ACTIVE and newer.get("updated_at", "") > record.updated_at
                and record.state in ("submitting", *ACTIVE)):
            record.state = newer["state"]
    record.notes.append(f"recovered from {path.name}.bak after {path.name} was found damaged (moved to quarantine/)")
    _restore(record, path)
    return record


def _rebuilt(damaged: builtins.list[str], path: Path) -> JobRecord | None:
    """No good version at all: rebuild what the damaged text still holds, marked for the user to check."""
    best = max((_salvage(t) for t in damaged), key=len)
    best.setdefault("id", path.stem)
    if _problems({k: best.get(k) for k in ("id", "kind", "provider")}) is not None:
        log.warning("jobs.record_lost", path=str(path), hint="the damaged copy is in quarantine/")
        return None
    record = JobRecord.from_dict(best)
    if record.provider_job_id and record.state in ("submitting", *ACTIVE):
        record.state = record.state if record.state in ACTIVE else "submitted"
    elif record.state not in TERMINAL or (record.state == "completed" and not record.paths):
        record.state = ATTENTION
        record.attention = {"since": _now(), "provider": record.provider,
                            "what_happened": f"The record {path.name} was damaged and had no backup; these fields "
                                             "were recovered from it.",
                            "what_to_check": f"Look on {record.provider}'s dashboard for this job; the damaged copy "
                                             "is in the quarantine/ folder beside the job records."}
    record.notes.append(f"rebuilt from the damaged {path.name} (no backup; the original is in quarantine/)")
    _restore(record, path)
    return record


def _restore(record: JobRecord, path: Path) -> None:
    try:
        save(record)
    except StorageError as exc:  # kept in memory by save(); the read still succeeds
        log.warning("jobs.restore_failed", job=record.id, code=exc.code)


def load(job_id: str) -> JobRecord:
    """The newest record of `job_id`: its file (or backup), or the copy kept because a save failed."""
    if not valid_job_id(job_id):
        raise JobNotFoundError(f"No job {str(job_id)[:80]!r}: a job id is a short word like 'v20261201-120000-abc123'.",
                               argument="id", value=job_id,
                               hint="`masuka_nb.jobs.list()` shows the jobs kept in MASUKA's home.")
    kept = _kept_here().get(job_id)
    spare = _read_quietly(_fallback_dir() / f"{job_id}.json")
    record = _newest(_read_record(_path(job_id)), kept, spare)
    if record is None:
        raise JobNotFoundError(f"No job `{job_id}` in {jobs_dir()}.", argument="id", value=job_id,
                               hint="`masuka_nb.jobs.list()` shows the jobs kept in MASUKA's home.")
    return record


def records() -> builtins.list[JobRecord]:
    """Every record in the store, one per job: a damaged file is quarantined and recovered, never hidden."""
    folder = jobs_dir()
    found: dict[str, JobRecord] = {}
    if folder.is_dir():
        # Only live files: a lone `.bak` is a record the user deleted (atomic writes never leave one).
        for path in sorted(folder.glob("*.json")):
            record = _read_record(path)
            if record is not None:
                found[record.id] = _newest(found.get(record.id), record)  # type: ignore[assignment]
    for job_id, record in {**_spares(), **_kept_here()}.items():
        found[job_id] = _newest(found.get(job_id), record)  # type: ignore[assignment]
    return builtins.list(found.values())
