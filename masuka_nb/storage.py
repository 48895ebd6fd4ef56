"""Atomic writes to local disk or the Drive mount; reading from and mirroring to gs:// and s3:// buckets.

Write to a temporary file in the target folder, flush and fsync, then `os.replace` it into place:
a reader (or a crash) sees the old file or the new one, never half of one. Drive's FUSE mount
supports rename but not symlinks or reliable locks, so nothing here relies on either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from masuka_nb.errors import StorageError

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_json", "atomic_write_safetensors", "atomic_write_text", "ensure_dir",
           "file_sha256", "read_json", "safe_name", "unique_path"]


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the folder {p}: {exc.strerror or exc}.",
            argument="path",
            value=str(p),
            hint="Check that the disk (or Drive) is mounted, writable and not full.",
        ) from exc
    return p


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path` atomically.

    On any exception (including KeyboardInterrupt) the temporary file is removed and `path` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open writes only ('wb' or 'w')")
    target = Path(path)
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".incomplete", dir=target.parent)
    try:
        # mkstemp makes 0600 files; results get what any other new file gets (0666 less the umask),
        # so PNGs, LoRAs and history read like the videos beside them.
        with contextlib.suppress(OSError):  # Drive's FUSE mount may refuse chmod; the file is still written
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            with contextlib.suppress(OSError):  # some FUSE mounts refuse fsync; rename still protects
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_umask_cache: list[int] = []
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read once (reading it means setting and restoring it, so not on every write)."""
    with _UMASK_LOCK:
        if not _umask_cache:
            mask = os.umask(0o022)
            os.umask(mask)
            _umask_cache.append(mask)
    return _umask_cache[0]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_safetensors(path: str | os.PathLike[str], tensors: dict[str, Any],
                             metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file of torch tensors, written like every other file here (temp sibling, fsync, rename)."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata or None)
    return atomic_write_bytes(path, data)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, *, max_len: int = 60, default: str = "untitled") -> str:
    """A file-name-safe slug of `text` (prompts become readable file names)."""
    slug = _UNSAFE.sub("-", text.strip()).strip("-._")[:max_len].rstrip("-._")
    return slug or default


def unique_path(folder: str | os.PathLike[str], stem: str, suffix: str) -> Path:
    """`folder/stem.suffix`, or `stem-2.suffix`, `stem-3.suffix`... whichever does not exist yet."""
    base = Path(folder)
    candidate = base / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = base / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


# ---- cloud buckets (gs://, s3://): the work is in `masuka_nb.buckets`, loaded only when used ----

__all__ += ["is_bucket_url", "sync"]


def is_bucket_url(path: Any) -> bool:
    """True for ``gs://...`` and ``s3://...`` (read wherever MASUKA takes a path)."""
    return isinstance(path, str) and path.startswith(("gs://", "gcs://", "s3://"))


def sync(destination: str, *, what: tuple[str, ...] = ("outputs", "loras", "datasets", "history"),
         progress: Any = None, cancel: Any = None) -> Any:
    """Mirror MASUKA's home to a bucket: incremental by content hash, resumable, safe to interrupt.

        masuka_nb.storage.sync("gs://my-bucket/masuka")   # returns a `masuka_nb.buckets.SyncReport`
    """
    from masuka_nb.buckets import sync as _sync

    return _sync(destination, what=what, progress=progress, cancel=cancel)
