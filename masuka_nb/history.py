"""History: every generation, training run and video job, recorded with its full recipe.

One JSON file per record under ``history_dir/YYYY-MM/``, written atomically. That layout needs no
lock, no mmap and no append (none of which the Drive mount does reliably), lets several processes
record at once, and means an interrupted write can only lose the record being written — never an
earlier one. Queries scan the files; a few thousand records read in well under a second.

Each record is read on its own: one that does not parse, or parses to the wrong shape (a list, a
`created_at` that is no date, a recipe that is no mapping), is moved to ``quarantine/`` beside it with
one warning, and every query, tab and batch carries on with the rest. Two processes recording at
once each write their own files (ids are time + random), so no lock is needed and none is lost.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _secrets
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb._redact import redact
from masuka_nb.config import settings
from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError
from masuka_nb.log import get_logger
from masuka_nb.storage import atomic_write_text, quarantine

log = get_logger(__name__)

__all__ = ["KINDS", "TIMINGS", "History", "HistoryRecord", "Trashed", "forget_path", "get", "history",
           "normalize_timings", "query", "record", "seconds", "trash", "write"]

# Every kind an engine records (the History tab filters by these); "app": a hosted generic app's job.
KINDS = ("image", "edit", "video", "training", "comparison", "caption", "batch", "grid", "upscale", "app")
# The one timing schema, in seconds: what each phase of a run took. Every engine records these names.
TIMINGS = ("seconds_total", "seconds_validate", "seconds_load", "seconds_run", "seconds_save", "seconds_cache",
           "seconds_submit", "seconds_estimate")
# Names older records used, read as the schema's (records are never rewritten).
_OLD_TIMINGS = {"total": "seconds_total", "total_s": "seconds_total", "compare_s": "seconds_total",
                "caption_s": "seconds_total", "seconds": "seconds_total", "validate": "seconds_validate",
                "load": "seconds_load", "generate": "seconds_run", "train_s": "seconds_run",
                "save": "seconds_save", "history": "seconds_history", "cache_s": "seconds_cache",
                "submit_s": "seconds_submit", "estimate": "seconds_estimate"}


@dataclass
class HistoryRecord:
    """What happened: `kind`, `status` ("ok" | "failed" | "cancelled"), the recipe, and where results went."""

    kind: str
    status: str
    model: str = ""
    prompt: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    created_at: str = ""

    def to_json(self) -> str:
        # Redact the whole serialised record: a key may hide in any nested field.
        return redact(json.dumps(asdict(self), indent=1, sort_keys=True, default=str))

    def seconds(self, phase: str = "total") -> float | None:
        """How long `phase` took ("total", "load", "run", ...), whichever names the record was written with."""
        return seconds(self.timings, phase)

    @property
    def created(self) -> datetime:
        """When it was recorded, always timezone-aware (a record without a zone is read as UTC)."""
        return _aware(datetime.fromisoformat(self.created_at))

    @classmethod
    def from_dict(cls, data: Any) -> HistoryRecord:
        """A record from its JSON, checked field by field; `ValueError` names the first field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"a record is a JSON object, not {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name, kinds in _FIELD_TYPES.items():
            if name in known and known[name] is None and type(None) not in kinds:
                known.pop(name)  # null where a default exists: take the default
            elif name in known and not isinstance(known[name], kinds):
                raise ValueError(f"`{name}` is {type(known[name]).__name__}, not {kinds[0].__name__}")
        for name in ("kind", "status", "created_at"):
            if not known.get(name):
                raise ValueError(f"`{name}` is missing")
        if not all(isinstance(p, str) for p in known.get("paths", [])):
            raise ValueError("`paths` holds something that is not a path")
        rec = cls(**known)
        try:
            rec.created  # noqa: B018 -- parsed once here, so no query meets a bad date later
        except (ValueError, TypeError) as exc:
            raise ValueError(f"`created_at` {rec.created_at!r} is not a date") from exc
        return rec


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "status": (str,), "model": (str,), "prompt": (str,), "recipe": (dict,), "paths": (list,),
    "timings": (dict,), "plan": (dict, type(None)), "error": (dict, type(None)), "extra": (dict,), "id": (str,),
    "created_at": (str,),
}
_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,120}")


def read_record(path: Path) -> HistoryRecord | None:
    """The record in `path`, or None: a file that does not parse is quarantined (one warning), never raised."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None  # forgotten by another process since it was listed
    except OSError as exc:
        log.warning("history.unreadable", path=str(path), error=str(exc))
        return None
    try:
        return HistoryRecord.from_dict(json.loads(raw.decode("utf-8")))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        quarantine(path, reason=f"not a history record: {exc}")
        return None


class History:
    """The history kept in one folder. `masuka_nb.history()` gives the one in MASUKA's home."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def record(self, rec: HistoryRecord) -> HistoryRecord:
        now = datetime.now(timezone.utc)
        if not rec.created_at:
            rec.created_at = now.isoformat(timespec="microseconds")
        if not rec.id:
            rec.id = now.strftime("%Y%m%dT%H%M%S%f") + "-" + _secrets.token_hex(3)
        folder = self.root / rec.created.strftime("%Y-%m")
        atomic_write_text(folder / f"{rec.id}.json", rec.to_json())
        return rec

    def _files(self) -> Iterable[Path]:
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("*/*.json"), reverse=True)

    def all(self) -> list[HistoryRecord]:
        """Every readable record, newest first (damaged ones are quarantined on the way)."""
        return [rec for rec in map(read_record, self._files()) if rec is not None]

    def query(
        self,
        *,
        kind: str | None = None,
        model: str | None = None,
        text: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[HistoryRecord]:
        """Newest first. `text` matches the prompt and recipe, case-insensitively. `since`/`until` take a
        datetime or an ISO date string ("2026-12-01")."""
        for name, value in (("kind", kind), ("model", model), ("text", text), ("status", status)):
            if value is not None and not isinstance(value, str):
                raise _bad_filter(name, value, "a string")
        since, until = _when("since", since), _when("until", until)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise _bad_filter("limit", limit, "a whole number ≥ 0")
        needle = text.lower() if text else None
        out = []
        for rec in self.all():
            if kind and rec.kind != kind:
                continue
            if model and rec.model != model:
                continue
            if status and rec.status != status:
                continue
            created = rec.created
            if since and created < _aware(since):
                continue
            if until and created > _aware(until):
                continue
            if needle and needle not in rec.prompt.lower() and needle not in json.dumps(rec.recipe).lower():
                continue
            out.append(rec)
            if limit and len(out) >= limit:
                break
        return out

    def _record_files(self, record_id: Any) -> list[Path]:
        # an id is a name, never a pattern: "*" or "../x" must not reach the glob
        if not isinstance(record_id, str) or not _ID.fullmatch(record_id):
            return []
        return sorted(self.root.glob(f"*/{record_id}.json"))

    def get(self, record_id: str) -> HistoryRecord | None:
        for path in self._record_files(record_id):
            rec = read_record(path)
            if rec is not None:
                return rec
        return None

    def forget_path(self, record_id: str, path: str) -> HistoryRecord | None:
        """Drop `path` from a record (its file was deleted); a record left with no file and no other
        content goes too. Returns the record as kept, or None."""
        for file in self._record_files(record_id):
            rec = read_record(file)
            if rec is None:
                continue
            rec.paths = [p for p in rec.paths if str(p) != str(path)]
            if not rec.paths and rec.kind in ("image", "comparison"):
                file.unlink(missing_ok=True)
                return None
            atomic_write_text(file, rec.to_json())
            return rec
        return None


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _bad_filter(name: str, value: Any, expected: str):
    return InvalidRequestError(f"`{name}` must be {expected}, not {type(value).__name__}.", argument=name,
                               value=value, hint="e.g. history.query(kind=\"image\", since=\"2026-12-01\", limit=20)")


def _when(name: str, value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise _bad_filter(name, value, "a datetime or an ISO date such as \"2026-12-01\"")


def history() -> History:
    """The history in MASUKA's current home (resolved now)."""
    return History(settings().history_dir)


def record(rec: HistoryRecord) -> HistoryRecord:
    return history().record(rec)


def query(**filters: Any) -> list[HistoryRecord]:
    """`masuka_nb.history.query(model="flux1-dev", text="lighthouse", since=...)`: newest first."""
    return history().query(**filters)


def get(record_id: str) -> HistoryRecord | None:
    return history().get(record_id)


def forget_path(record_id: str, path: str) -> HistoryRecord | None:
    return history().forget_path(record_id, path)


def normalize_timings(timings: dict[str, Any] | None) -> dict[str, float]:
    """`timings` under the schema's names (`TIMINGS`): older records' names (`total`, `total_s`, `generate`,
    `caption_s`...) are read as the phase they measured; unknown names are kept as they are."""
    out: dict[str, float] = {}
    for key, value in (timings or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out.setdefault(_OLD_TIMINGS.get(key, key), float(value))
    return out


def seconds(timings: dict[str, Any] | None, phase: str = "total") -> float | None:
    """Seconds `phase` took in `timings` (any record's, old or new), or None when it was not measured."""
    name = phase if phase.startswith("seconds_") else f"seconds_{phase}"
    return normalize_timings(timings).get(name)


def write(kind: str, *, model: str = "", prompt: Any = "", recipe: dict[str, Any] | None = None,
          paths: Iterable[Any] = (), timings: dict[str, Any] | None = None, plan: Any = None, error: Any = None,
          status: str | None = None, extra: dict[str, Any] | None = None,
          warnings: list[str] | None = None) -> HistoryRecord | None:
    """The one history writer every engine uses: how a run ended (ok, or its `error`: cancelled or failed).

    `kind` is one of `KINDS`; `timings` go in under the schema's names; `plan` is a `MemoryPlan` (or a
    dict); `error` a `MasukaError`. A history that cannot be written is logged and None returned, never
    raised: a full disk must not hide what was made or the original error. With `warnings` (a result's list),
    that failure is said there too, with the paths that were saved."""
    if kind not in KINDS:
        raise ValueError(f"unknown history kind {kind!r}; add it to history.KINDS")
    if status is None:
        status = "ok" if error is None else ("cancelled" if isinstance(error, CancelledError) else "failed")
    plan_dict = plan.as_dict() if hasattr(plan, "as_dict") else plan if isinstance(plan, dict) else None
    try:
        return record(HistoryRecord(
            kind=kind, status=status, model=str(model or ""),
            prompt=prompt if isinstance(prompt, str) else repr(prompt)[:200],
            recipe=recipe or {}, paths=[str(p) for p in paths or ()],
            timings={k: round(v, 6) for k, v in normalize_timings(timings).items() if k != "seconds_history"},
            plan=plan_dict, error=error.to_dict() if hasattr(error, "to_dict") else error,
            extra=extra or {},
        ))
    except MasukaError as exc:
        log.warning("history.record_failed", kind=kind, error=str(exc))
        if warnings is not None:
            saved = [str(p) for p in paths or ()]
            where = f" The outputs are saved: {', '.join(saved)}." if saved and error is None else ""
            warnings.append(f"The history could not be updated ({exc.code}: {exc.message}).{where}")
        return None


@dataclass
class Trashed:
    """Files moved out of sight by `trash()`, and the record as it was: `restore()` puts both back,
    `purge()` deletes the files for good. One object per Delete, so an Undo restores exactly that."""

    record_id: str
    record_json: str | None  # the record before the delete (None: it had none)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (original path, where it waits in the trash)
    folder: str = ""

    def restore(self) -> HistoryRecord | None:
        """Undo: the files go back where they were and the record is as it was."""
        for original, waiting in self.moved:
            if Path(waiting).exists():
                Path(original).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(waiting, original)
        rec = None
        if self.record_json is not None:
            data = json.loads(self.record_json)
            rec = HistoryRecord(**{k: v for k, v in data.items() if k in HistoryRecord.__dataclass_fields__})
            atomic_write_text(history().root / rec.created.strftime("%Y-%m") / f"{rec.id}.json", rec.to_json())
        self.purge()
        return rec

    def purge(self) -> None:
        """Forget the trashed files for good (the next Delete, or the end of the session, does this)."""
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.moved = []


def trash(record_id: str, paths: Iterable[str | os.PathLike[str]] | None = None) -> Trashed:
    """Delete outputs with an Undo: `paths` of record `record_id` (all of its files when None) move to a trash
    folder in MASUKA's home and leave the record (which goes too when nothing of it is left). Returns what
    `Trashed.restore()` needs to put everything back."""
    root = history().root
    file = next(iter(root.glob(f"*/{record_id}.json")), None) if record_id else None
    before = file.read_text(encoding="utf-8") if file is not None else None
    rec = HistoryRecord(**json.loads(before)) if before is not None else None
    chosen = [str(p) for p in (paths if paths is not None else (rec.paths if rec else []))]
    folder = settings().home / "trash" / (datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f") + "-"
                                          + _secrets.token_hex(3))
    out = Trashed(record_id, before, [], str(folder))
    for i, original in enumerate(chosen):
        if Path(original).exists():
            waiting = folder / f"{i}-{Path(original).name}"
            waiting.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(original, waiting)
            out.moved.append((original, str(waiting)))
    if rec is not None and file is not None:
        rec.paths = [p for p in rec.paths if str(p) not in chosen]
        if not rec.paths and rec.kind in ("image", "comparison", "upscale", "grid", "edit"):
            file.unlink(missing_ok=True)
        else:
            atomic_write_text(file, rec.to_json())
    return out
