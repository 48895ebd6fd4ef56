"""History: every generation, training run and video job, recorded with its full recipe.

One JSON file per record under ``history_dir/YYYY-MM/``, written atomically. That layout needs no
lock, no mmap and no append (none of which the Drive mount does reliably), lets several processes
record at once, and means an interrupted write can only lose the record being written — never an
earlier one. Queries scan the files; a few thousand records read in well under a second.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb._redact import redact
from masuka_nb.storage import atomic_write_text

__all__ = ["History", "HistoryRecord", "Trashed", "forget_path", "get", "history", "query", "record", "trash"]

KINDS = ("image", "video", "training", "comparison", "caption", "batch", "grid", "upscale")


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

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)


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
        out = []
        for path in self._files():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                out.append(HistoryRecord(**{k: v for k, v in data.items() if k in HistoryRecord.__dataclass_fields__}))
            except (OSError, ValueError, TypeError):
                continue  # a foreign or damaged file must not hide the rest
        return out

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
        """Newest first. `text` matches the prompt and recipe, case-insensitively."""
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

    def get(self, record_id: str) -> HistoryRecord | None:
        for path in self.root.glob(f"*/{record_id}.json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            return HistoryRecord(**data)
        return None


    def forget_path(self, record_id: str, path: str) -> HistoryRecord | None:
        """Drop `path` from a record (its file was deleted); a record left with no file and no other
        content goes too. Returns the record as kept, or None."""
        for file in self.root.glob(f"*/{record_id}.json") if record_id else ():
            rec = HistoryRecord(**json.loads(file.read_text(encoding="utf-8")))
            rec.paths = [p for p in rec.paths if str(p) != str(path)]
            if not rec.paths and rec.kind in ("image", "comparison"):
                file.unlink(missing_ok=True)
                return None
            atomic_write_text(file, rec.to_json())
            return rec
        return None


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def history() -> History:
    """The history in MASUKA's current home (resolved now)."""
    from masuka_nb.config import settings

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


def record_outcome(kind: str, state: dict[str, Any], t0: float, *, paths: Iterable[Any] | None = None,
                   timings: dict[str, float] | None = None, error: Any = None,
                   extra: dict[str, Any] | None = None) -> HistoryRecord | None:
    """Record how an engine's run ended (ok, cancelled or failed) from its state dict (model, prompt,
    recipe, plan). A history that cannot be written is logged, never raised: a full disk must not hide
    what was made or the original error."""
    import time

    from masuka_nb.errors import CancelledError, MasukaError
    from masuka_nb.log import get_logger

    plan = state.get("plan")
    status = "ok" if error is None else ("cancelled" if isinstance(error, CancelledError) else "failed")
    prompt = state.get("prompt")
    try:
        return record(HistoryRecord(
            kind=kind, status=status, model=str(state.get("model") or ""),
            prompt=prompt if isinstance(prompt, str) else repr(prompt)[:200],
            recipe=state.get("recipe") or {}, paths=[str(p) for p in paths or []],
            timings=timings or {"total": time.perf_counter() - t0},
            plan=plan.as_dict() if hasattr(plan, "as_dict") else None,
            error=error.to_dict() if error is not None else None,
            extra=extra or {},
        ))
    except MasukaError as exc:
        get_logger(__name__).warning("history.record_failed", error=str(exc))
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
        import shutil

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
        import shutil

        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.moved = []


def trash(record_id: str, paths: Iterable[str | os.PathLike[str]] | None = None) -> Trashed:
    """Delete outputs with an Undo: `paths` of record `record_id` (all of its files when None) move to a trash
    folder in MASUKA's home and leave the record (which goes too when nothing of it is left). Returns what
    `Trashed.restore()` needs to put everything back."""
    import shutil

    from masuka_nb.config import settings

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
