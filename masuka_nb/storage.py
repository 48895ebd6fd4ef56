"""Atomic writes to local disk or the Drive mount; reading from and mirroring to gs:// and s3:// buckets.

Write to a temporary file in the target folder, flush and fsync, then `os.replace` it into place:
a reader (or a crash) sees the old file or the new one, never half of one. Drive's FUSE mount
supports rename but not symlinks or reliable locks, so nothing here relies on either.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from masuka_nb.errors import DiskFullError, InvalidRequestError, NotWritableError, StorageError
from masuka_nb.log import get_logger

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_json", "atomic_write_safetensors", "atomic_write_text",
           "decode_text", "ensure_dir", "file_lock", "file_sha256", "quarantine", "read_file_bytes", "read_json",
           "read_json_guarded", "read_text_file", "refuse_special", "safe_name", "storage_error", "unique_path"]

log = get_logger(__name__)

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def storage_error(exc: OSError, *, path: str | os.PathLike[str], what: str = "a file",
                  saved: str | None = None) -> StorageError:
    """The one translation of a failed write into MASUKA's tree: DISK_FULL, NOT_WRITABLE or STORAGE_FAILED.

    `what` names the thing in plain words ("the image", "the job record"); `saved` says what did reach the
    disk and where, so the message never leaves the user guessing whether their result is lost.
    """
    if isinstance(exc, StorageError):
        return exc
    code = getattr(exc, "errno", None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    tail = f" {saved}" if saved else ""
    if code in _FULL:
        cls, why = DiskFullError, "the disk is full"
    elif code in _READ_ONLY:
        cls, why = NotWritableError, "that place is read-only or not writable"
    else:
        cls, why = StorageError, reason
    return cls(f"Could not write {what} to {path}: {why}.{tail}", argument="path", value=str(path),
               errno=code, saved=saved)


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if getattr(exc, "errno", None) in _FULL | _READ_ONLY:
            raise storage_error(exc, path=p, what="the folder") from exc
        raise StorageError(
            f"Cannot create the folder {p}: {exc.strerror or exc}.",
            argument="path",
            value=str(p),
            hint="Check that the disk (or Drive) is mounted, writable and not full.",
        ) from exc
    return p


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", *, backup: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success it replaces `path` atomically.

    On any exception (including KeyboardInterrupt) the temporary file is removed and `path` is untouched.
    A full or read-only disk becomes DISK_FULL / NOT_WRITABLE (`storage_error`), never a raw OSError.
    With ``backup=True`` the file being replaced is kept as ``<name>.bak`` (the last good version, which
    `read_json_guarded` falls back to when the file itself does not parse).
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open writes only ('wb' or 'w')")
    target = Path(path)
    refuse_special(target)
    ensure_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".incomplete", dir=target.parent)
    except OSError as exc:
        raise storage_error(exc, path=target) from exc
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
        if backup and target.exists():
            # a hard link keeps the old version without a window in which `target` is missing
            bak = target.with_name(target.name + ".bak")
            with contextlib.suppress(OSError):
                bak.unlink()
            try:
                os.link(target, bak)
            except OSError:  # Drive's FUSE mount has no hard links: a copy will do
                with contextlib.suppress(OSError):
                    shutil.copy2(target, bak)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        # only the system's own errors (with an errno): an encoder's OSError ("cannot write mode RGBA as
        # JPEG") is about the content, not the disk, and keeps its own type
        if isinstance(exc, OSError) and not isinstance(exc, StorageError) and exc.errno is not None:
            raise storage_error(exc, path=target) from exc
        raise


def refuse_special(target: Path, *, argument: str = "path") -> None:
    """A write never replaces a device, a FIFO, a socket or a folder: renaming over `/dev/zero` (as root,
    on Colab) would swap the device for a regular file for every other program on the machine."""
    import stat

    try:
        mode = os.stat(target).st_mode
    except OSError:
        return  # not there (the usual case), or not reachable: the write itself will say why
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, a pipe or a socket"
        raise InvalidRequestError(f"{target} is {kind}, not a file to write.", argument=argument, value=str(target),
                                  hint="Give the path of a new or ordinary file.")


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


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, backup: bool = False) -> Path:
    with atomic_open(path, "w", backup=backup) as fh:
        fh.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def atomic_write_safetensors(path: str | os.PathLike[str], tensors: dict[str, Any],
                             metadata: dict[str, str] | None = None) -> Path:
    """A safetensors file of torch tensors, written like every other file here (temp sibling, fsync, rename)."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata or None)
    return atomic_write_bytes(path, data)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


_UNMOVABLE: set[str] = set()  # damaged files that could not be moved (read-only home): warned about once


def quarantine(path: str | os.PathLike[str], *, reason: str) -> Path | None:
    """Move a state file (or a copy of one bad record) that does not parse out of the way, with one warning.

    It goes to ``quarantine/`` beside it, named with the time, so nothing is deleted and everything else
    keeps working; the user can look at it or send it in a bug report.
    """
    src = Path(path)
    if not src.exists():
        return None
    folder = src.parent / "quarantine"
    dest = folder / f"{src.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    n = 2
    while dest.exists():
        dest = folder / f"{src.name}.{time.strftime('%Y%m%d-%H%M%S')}-{n}"
        n += 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    except OSError as exc:  # a read-only place: leave it, but still say so once
        key = str(src)
        if key not in _UNMOVABLE:
            _UNMOVABLE.add(key)
            log.warning("%s could not be read (%s) and could not be moved aside: %s", src, reason, exc)
        return None
    log.warning("%s could not be read (%s); it was moved to %s and the rest carries on.", src, reason, dest)
    return dest


def read_json_guarded(path: str | os.PathLike[str], *, default: Any = None,
                      expect: type | tuple[type, ...] = (dict, list)) -> Any:
    """Read a JSON state file that must never break a whole feature.

    Missing: `default`. Not JSON, or not of the `expect`ed top-level type: the file is quarantined and the
    last good version (``<name>.bak``, kept by ``atomic_write_json(..., backup=True)``) is read instead, else
    `default`. Unreadable (permissions, I/O): `default` with a warning.
    """
    src = Path(path)
    for candidate in (src, src.with_name(src.name + ".bak")):
        try:
            with open(candidate, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            quarantine(candidate, reason=f"not valid JSON: {exc}")
            continue
        except OSError as exc:
            log.warning("%s could not be read: %s", candidate, exc)
            continue
        if isinstance(data, expect):
            return data
        quarantine(candidate, reason=f"expected {_kind(expect)}, found {type(data).__name__}")
    return default


def _kind(expect: type | tuple[type, ...]) -> str:
    types = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(t.__name__ for t in types)


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
    """`masuka_nb.buckets.sync` under its old name (this one goes in the next release).

    Storage sits below the buckets room, so this is a documented lazy edge (tests/test_architecture.py),
    kept only while the old name still works."""
    import warnings

    # the documented lazy edge: storage → buckets, for one release
    from masuka_nb.buckets import sync as _sync

    warnings.warn("masuka_nb.storage.sync is now masuka_nb.buckets.sync.", DeprecationWarning, stacklevel=2)
    return _sync(destination, what=what, progress=progress, cancel=cancel)


# ---- reading what a user points at: bounded, regular files only, text decoded one file at a time ----

__all__ += ["TEXT_FALLBACK"]

TEXT_FALLBACK = "cp1252"  # what a non-UTF-8 text file from Windows (Notepad, Excel's CSV) most often is


def read_file_bytes(path: str | os.PathLike[str], *, max_bytes: int, argument: str = "path",
                    what: str = "file") -> bytes:
    """The bytes of the regular file at `path`, never more than `max_bytes` of them.

    Read as a stream from one open descriptor, so a file's advertised size does not matter: `/dev/zero`,
    a FIFO, a socket or a device is refused before a byte is read (opening a FIFO would even block),
    and a file that grows while read stops at the cap. Every refusal is an `InvalidRequestError`
    naming `argument`; a file that cannot be read is a `StorageError`.
    """
    import stat

    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise InvalidRequestError("`max_file_bytes` must be a whole number of bytes ≥ 0.", argument="max_file_bytes",
                                  value=max_bytes, hint="e.g. max_file_bytes=64 * 1024**2")
    p = Path(path)

    def special(mode: int) -> str | None:
        if stat.S_ISREG(mode):
            return None
        return ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")

    with contextlib.suppress(OSError):  # refused before opening: opening a socket fails, a FIFO may block
        kind = special(os.stat(p).st_mode)
        if kind:
            raise InvalidRequestError(f"{p} is {kind}, not a regular {what}.", argument=argument, value=str(p),
                                      hint="Give the path of an ordinary file.")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError as exc:
        raise InvalidRequestError(f"No {what} at {p}.", argument=argument, value=str(p),
                                  hint="Check the path (Colab's Files panel shows it).") from exc
    except IsADirectoryError as exc:
        raise InvalidRequestError(f"{p} is a folder, not a {what}.", argument=argument, value=str(p),
                                  hint="Give the path of one file.") from exc
    except OSError as exc:
        raise StorageError(f"Cannot open {p}: {exc.strerror or exc}.", argument=argument, value=str(p),
                           hint="Check the permissions, and that the disk (or Drive) is mounted.") from exc
    try:
        info = os.fstat(fd)  # again on what was opened: it may have been swapped since the check
        kind = special(info.st_mode)
        if kind:
            raise InvalidRequestError(f"{p} is {kind}, not a regular {what}.", argument=argument, value=str(p),
                                      hint="Give the path of an ordinary file.")
        if info.st_size > max_bytes:
            raise InvalidRequestError(f"{p} is {info.st_size} bytes, above the limit of {max_bytes}.",
                                      argument=argument, value=str(p),
                                      hint="Use a smaller file, or raise the limit the call takes (`max_file_bytes`).")
        chunks, got = [], 0
        while got <= max_bytes:
            block = os.read(fd, min(1 << 20, max_bytes + 1 - got))
            if not block:
                break
            chunks.append(block)
            got += len(block)
        if got > max_bytes:
            raise InvalidRequestError(f"{p} is larger than {max_bytes} bytes.", argument=argument, value=str(p),
                                      hint="Use a smaller file, or raise the limit the call takes (`max_file_bytes`).")
        return b"".join(chunks)
    except OSError as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(f"Cannot read {p}: {exc.strerror or exc}.", argument=argument, value=str(p),
                           hint="Check that the disk (or Drive) is mounted, then try again.") from exc
    finally:
        os.close(fd)


def decode_text(data: bytes, *, name: str = "the file", argument: str = "path") -> tuple[str, str | None]:
    """(text, note) for the bytes of a text file: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252.

    `note` says when a fallback was used (None for UTF-8). Bytes that are not text at all (NUL bytes
    without a UTF-16 BOM: an image or a zip renamed .txt) are an `InvalidRequestError` naming `name`.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "read as UTF-16"
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in data:
        try:
            return data.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            try:
                return data.decode(TEXT_FALLBACK), f"not UTF-8; read as {TEXT_FALLBACK}"
            except UnicodeDecodeError:
                return data.decode("latin-1"), "not UTF-8; read as Latin-1"
    raise InvalidRequestError(f"{name} is not a text file (it holds binary data).", argument=argument, value=name,
                              hint="Save it as plain text (UTF-8).")


def read_text_file(path: str | os.PathLike[str], *, max_bytes: int = 16 * 1024**2, argument: str = "path",
                   what: str = "text file") -> str:
    """A text file (captions, wildcards, prompt lists): bounded like `read_file_bytes`, decoded by `decode_text`.

    A fallback decoding is logged once per call; it never stops the caller.
    """
    data = read_file_bytes(path, max_bytes=max_bytes, argument=argument, what=what)
    text, note = decode_text(data, name=str(path), argument=argument)
    if note:
        log.info("storage.text_fallback", path=str(path), note=note)
    return text


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` while a read-modify-write of `path` runs.

    `fcntl.flock`: the kernel drops it when its process dies (a SIGKILL leaves no stale lock, unlike a
    lock *file*), and on Drive's FUSE mount, which does not implement locks, the kernel still serves it
    locally, between the processes of one runtime (the only writers that meet there: nothing locks
    across two machines sharing one Drive). Where locking is unsupported the body runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # Windows: one process per home is the rule there
        yield
        return
    target = Path(path)
    lock = target.with_name(target.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:  # a read-only place: no write will follow anyway, so nothing to protect
        log.debug("storage.lock_unavailable", path=str(lock), error=str(exc))
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.debug("storage.lock_unsupported", path=str(lock), error=str(exc))
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


MAX_IMAGE_FILE_BYTES = 512 * 1024**2  # a 100-megapixel PNG is ~300 MB; a local image above this is not a photo
__all__ += ["MAX_IMAGE_FILE_BYTES", "open_local"]


def open_local(path: str | os.PathLike[str], *, argument: str, what: str = "image",
               max_bytes: int = MAX_IMAGE_FILE_BYTES) -> Any:
    """A file-like in memory holding the regular file at `path` (bounded, never a device or a FIFO):
    what `PIL.Image.open` should be given instead of a path a user typed."""
    import io

    return io.BytesIO(read_file_bytes(path, max_bytes=max_bytes, argument=argument, what=what))
