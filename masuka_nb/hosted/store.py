"""The job store: one JSON record per paid hosted job, under ``settings().jobs_dir``.

Each record is replaced atomically on every change (no lock, no mmap, no append), so the store works on
the Drive mount and with several jobs, or processes, at once. A record never holds a key: the serialised
text is redacted before it is written. What a record *means* (polling it, downloading its result) is the
runner's business (`masuka_nb.hosted.runner`); this module only reads and writes them.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets as _secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb._redact import redact
from masuka_nb.errors import JobError, JobNotFoundError, MasukaError
from masuka_nb.storage import atomic_write_text

__all__ = ["ACTIVE", "TERMINAL", "Download", "JobRecord", "Poll", "jobs_dir", "load", "records", "save"]

ACTIVE = ("submitted", "running", "downloading")
TERMINAL = ("completed", "failed", "cancelled", "expired", "unknown")


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
    poll_interval: float = 5.0
    polls: int = 0
    history_id: str | None = None
    job_class: str = ""  # "module:Class" of the Job subclass that finishes it (set by the runner)
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
    """A result to fetch: `role` (video, thumbnail, lora, weights), its URL and what it must look like."""

    role: str
    url: str
    suffix: str
    content_types: tuple[str, ...] = ()
    required: bool = True


# ---- the store ---------------------------------------------------------------------------------


def jobs_dir() -> Path:
    from masuka_nb.config import settings

    return settings().jobs_dir


def save(record: JobRecord) -> None:
    record.updated_at = _now()
    driver = record.extra.get("driver")
    if driver and driver.get("pid") == os.getpid():
        driver["beat"] = record.updated_at
    # Redact the serialised record: a key could hide in a provider reply we keep.
    text = redact(json.dumps(asdict(record), indent=1, sort_keys=True, default=str))
    atomic_write_text(jobs_dir() / f"{record.id}.json", text + "\n")


def load(job_id: str) -> JobRecord:
    path = jobs_dir() / f"{job_id}.json"
    try:
        return JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise JobNotFoundError(f"No job `{job_id}` in {jobs_dir()}.", argument="id", value=job_id,
                               hint="`masuka_nb.jobs.list()` shows the jobs kept in MASUKA's home.") from None
    except (ValueError, TypeError) as exc:
        raise JobError(f"The record of job `{job_id}` is damaged: {exc}.", argument="id", value=job_id) from exc


def records() -> builtins.list[JobRecord]:
    """Every readable record in the store (a damaged or foreign file must not hide the others)."""
    folder = jobs_dir()
    out: builtins.list[JobRecord] = []
    if not folder.is_dir():
        return out
    for path in folder.glob("*.json"):
        try:
            out.append(JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    return out
