"""Cloud buckets through fsspec: read from ``gs://`` and ``s3://`` wherever a path is taken, and mirror the home.

    masuka_nb.buckets.sync("gs://my-bucket/masuka")                   # outputs, loras, datasets, history
    masuka_nb.buckets.sync("s3://my-bucket/masuka", what=("loras",))
    ds.import_zip("s3://my-bucket/photos.zip"); ds.import_folder("gs://my-bucket/photos")

``gs://`` goes through gcsfs (in Colab with the notebook's own Google login, `google.colab.auth`);
``s3://`` through s3fs (keys from Colab Secrets or the environment: AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, else boto's usual chain). The `gcs_endpoint_url` / `s3_endpoint_url` settings point
them elsewhere (an emulator, MinIO, R2).

`sync` is incremental by content hash and safe to interrupt: each file is one object written whole
(an object store never shows half an upload), files go up in concurrent batches, and the manifest at
``<destination>/.masuka-sync.json`` records a batch only after every upload in it is checked. A rerun after a kill re-sends only what the manifest
lacks, or what the bucket no longer holds at the recorded size.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import DependencyMissingError, InvalidRequestError, MasukaError, StorageError
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter
from masuka_nb.runtime import in_colab
from masuka_nb.secrets import get_secret, has_secret

__all__ = ["SYNCABLE", "SyncReport", "fetch", "filesystem", "is_bucket_url", "list_files", "read_bytes", "sync"]

log = get_logger(__name__)

SCHEMES = ("gs://", "gcs://", "s3://")
SYNCABLE = ("outputs", "loras", "datasets", "history", "jobs")
MANIFEST = ".masuka-sync.json"
# Written while being made, never worth mirroring: partial downloads and atomic-write temporaries.
_SKIP_SUFFIXES = (".part", ".incomplete", ".lock")


def is_bucket_url(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(SCHEMES)


def _split(url: str) -> tuple[str, str]:
    scheme, _, rest = url.partition("://")
    return ("gs" if scheme in ("gs", "gcs") else scheme), rest.strip("/")


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, bucket/path) for a ``gs://`` or ``s3://`` URL, with MASUKA's credentials and endpoints."""
    if not is_bucket_url(url):
        raise InvalidRequestError(f"`{url}` is not a bucket URL.", argument="destination", value=url,
                                  hint="Give gs://bucket/folder or s3://bucket/folder.")
    scheme, path = _split(url)
    if not path:
        raise InvalidRequestError(f"`{url}` names no bucket.", argument="destination", value=url,
                                  hint="Give gs://bucket/folder or s3://bucket/folder.")
    s = settings()
    try:
        if scheme == "gs":
            from gcsfs.core import GCSFileSystem  # the plain client (what Colab ships), no gRPC bucket probe

            if s.gcs_endpoint_url:
                return GCSFileSystem(token="anon", endpoint_url=s.gcs_endpoint_url, skip_instance_cache=True), path
            return GCSFileSystem(token=_colab_google_login(), skip_instance_cache=True), path
        import s3fs

        kwargs: dict[str, Any] = {"skip_instance_cache": True}
        if s.s3_endpoint_url:
            kwargs["client_kwargs"] = {"endpoint_url": s.s3_endpoint_url}
        key, secret = _aws_keys()
        if key and secret:
            kwargs.update(key=key, secret=secret)
        return s3fs.S3FileSystem(**kwargs), path
    except ImportError as exc:
        pkg = "gcsfs" if scheme == "gs" else "s3fs"
        raise DependencyMissingError(f"Reading {scheme}:// needs `{pkg}`, which is not installed.",
                                     argument="path", value=url,
                                     hint=f"pip install {pkg}  (or `pip install masuka-nb[cloud]`; Colab ships gcsfs).",
                                     ) from exc


def _colab_google_login() -> str | None:
    """In Colab, the notebook user's own Google login (a one-time prompt); elsewhere gcsfs's default chain."""
    if not in_colab():
        return None
    with contextlib.suppress(ImportError):
        from google.colab import auth  # type: ignore[import-not-found]

        auth.authenticate_user()
        return "google_default"
    return None


def _aws_keys() -> tuple[str | None, str | None]:
    if has_secret("AWS_ACCESS_KEY_ID") and has_secret("AWS_SECRET_ACCESS_KEY"):
        return get_secret("AWS_ACCESS_KEY_ID"), get_secret("AWS_SECRET_ACCESS_KEY")
    return None, None


def _storage_error(url: str, exc: BaseException, *, doing: str, argument: str = "path") -> MasukaError:
    if isinstance(exc, MasukaError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"Nothing at {url} ({doing}).", argument=argument, value=url,
                            hint="Check the bucket and the path (bucket names are case-sensitive).")
    if isinstance(exc, PermissionError):
        return StorageError(f"Not allowed to {doing} {url}: {exc}.", argument=argument, value=url,
                            hint="Check the credentials: in Colab, the Google account you logged in with "
                                 "(gs://) or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in Secrets (s3://).")
    return StorageError(f"Could not {doing} {url}: {type(exc).__name__}: {exc}.", argument=argument, value=url,
                        hint="Check the network, the bucket and the credentials, then try again.")


def list_files(url: str, *, argument: str = "path") -> list[str]:
    """Every file under the bucket folder `url`, as full URLs, sorted."""
    fs, path = filesystem(url)
    scheme = _split(url)[0]
    try:
        found = fs.find(path)
    except Exception as exc:
        raise _storage_error(url, exc, doing="list", argument=argument) from exc
    return sorted(f"{scheme}://{p}" for p in found)


def read_bytes(url: str, *, max_bytes: int, argument: str = "path") -> bytes:
    """The whole object at `url`, refused (before reading) when it is larger than `max_bytes`."""
    fs, path = filesystem(url)
    try:
        size = fs.info(path).get("size")
        if size is not None and size > max_bytes:
            raise InvalidRequestError(f"{url} is {size} bytes, above the limit of {max_bytes}.", argument=argument,
                                      value=url, hint="Split it, or raise the limit the call takes.")
        with fs.open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except Exception as exc:
        raise _storage_error(url, exc, doing="read", argument=argument) from exc
    if len(data) > max_bytes:
        raise InvalidRequestError(f"{url} is larger than {max_bytes} bytes.", argument=argument, value=url,
                                  hint="Split it, or raise the limit the call takes.")
    return data


def fetch(url: str, target: Path, *, max_bytes: int, argument: str = "path") -> Path:
    """Copy the object at `url` to `target` (atomically: a `.part` sibling, then renamed).

    (Not `storage.atomic_open`: `storage.sync` is built on this module, so this one stays below it.)
    """
    data = read_bytes(url, max_bytes=max_bytes, argument=argument)
    target = Path(target)
    part = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        os.replace(part, target)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise StorageError(f"Cannot write {target}: {exc.strerror or exc}.", argument=argument, value=str(target),
                           hint="Check free space and that the disk (or Drive) is mounted.") from exc
    return target


# ---- sync --------------------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one `sync` did: files sent, files already there, files that failed (and why), bytes sent."""

    destination: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): the rest of the sync went on
    bytes_uploaded: int = 0
    manifest: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        text = (f"sync to {self.destination}: {len(self.uploaded)} sent ({self.bytes_uploaded / 1e6:.1f} MB), "
                f"{len(self.unchanged)} already there")
        if self.failed:
            text += f", {len(self.failed)} failed (" + "; ".join(f"{f!r}: {why}" for f, why in self.failed[:3]) + \
                    (", …" if len(self.failed) > 3 else "") + ")"
        return text


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def remote_key(rel: str) -> str:
    """The object name for a local relative path: control characters (a newline in a file name) and `%`
    percent-encoded, so every legal local name is one valid, distinct object name on S3 and GCS alike."""
    return "".join(f"%{ord(c):02X}" if c == "%" or ord(c) < 32 or ord(c) == 127 else c for c in rel)


def _local_files(what: tuple[str, ...]) -> list[tuple[str, Path]]:
    s = settings()
    out: list[tuple[str, Path]] = []
    for name in what:
        root = Path(getattr(s, f"{name}_dir"))
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.name.endswith(_SKIP_SUFFIXES) or "quarantine" in path.relative_to(root).parts[:-1]:
                continue
            with contextlib.suppress(OSError):  # gone since it was listed: nothing to send
                if path.is_file() and not path.is_symlink():
                    out.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return out


def _read_manifest(fs: Any, manifest_path: str, destination: str) -> dict[str, dict[str, Any]]:
    """{relative path: {"sha256", "size"}} from the bucket's manifest; a malformed one is copied aside and
    ignored (everything is then compared afresh), never an AttributeError."""
    try:
        raw = fs.cat_file(manifest_path)
    except FileNotFoundError:
        return {}
    except Exception as exc:
        raise _storage_error(destination, exc, doing="read", argument="destination") from exc
    try:
        data = json.loads(raw)
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            raise ValueError(f"its `files` is {type(files).__name__}, not a mapping")
    except (ValueError, UnicodeDecodeError) as exc:
        aside = f"{manifest_path.rsplit('/', 1)[0]}/quarantine/{MANIFEST}.{time.strftime('%Y%m%d-%H%M%S')}"
        with contextlib.suppress(Exception):
            fs.pipe_file(aside, raw)
        log.warning("storage.sync_manifest_quarantined", manifest=manifest_path, reason=str(exc)[:200], moved_to=aside)
        return {}
    return {rel: entry for rel, entry in files.items()
            if isinstance(rel, str) and isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)}


def sync(destination: str, *, what: tuple[str, ...] = ("outputs", "loras", "datasets", "history"),
         progress: ProgressCallback | bool | None = None, cancel: CancelToken | None = None,
         batch: int = 16) -> SyncReport:
    """Mirror MASUKA's home (the folders in `what`) to a bucket; incremental, resumable, safe to interrupt.

    A file that cannot be sent (deleted mid-sync, unreadable, refused by the bucket) is listed in
    `SyncReport.failed` with the reason, and every other file still goes up.
    """
    if isinstance(what, str):
        what = (what,)
    if not isinstance(what, (tuple, list, set, frozenset)):
        raise InvalidRequestError(f"`what` must be a tuple of folder names, not {type(what).__name__}.",
                                  argument="what", value=what, hint=f"Choose among {', '.join(SYNCABLE)}.")
    what = tuple(what)
    bad = [w for w in what if not isinstance(w, str) or w not in SYNCABLE]
    if bad or not what:
        raise InvalidRequestError(f"`what` cannot be {what!r}.", argument="what", value=what,
                                  hint=f"Choose among {', '.join(SYNCABLE)}.")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidRequestError("`batch` must be a whole number ≥ 1.", argument="batch", value=batch, hint="e.g. 16")
    if not isinstance(destination, str):
        raise InvalidRequestError(f"`destination` must be a bucket URL, not {type(destination).__name__}.",
                                  argument="destination", value=destination, hint="e.g. \"gs://my-bucket/masuka\"")
    fs, base = filesystem(destination)
    manifest_path = f"{base}/{MANIFEST}"
    report = SyncReport(destination=destination, manifest=f"{_split(destination)[0]}://{manifest_path}")
    try:
        remote_sizes = {p: (info or {}).get("size") for p, info in fs.find(base, detail=True).items()}
    except Exception as exc:
        raise _storage_error(destination, exc, doing="read", argument="destination") from exc
    recorded = _read_manifest(fs, manifest_path, destination) if manifest_path in remote_sizes else {}
    files = _local_files(what)
    reporter = ProgressReporter(f"sync → {destination}", max(1, len(files)), progress=progress, cancel=cancel)
    dirty = 0

    def flush() -> None:
        body = {"format": 1, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": recorded}
        try:
            fs.pipe_file(manifest_path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())
        except Exception as exc:
            raise _storage_error(destination, exc, doing="write the manifest to", argument="destination") from exc

    pending: list[tuple[int, str, Path, int, str]] = []

    def failed(n: int, rel: str, why: str) -> None:
        report.failed.append((rel, why))
        log.warning("storage.sync_file_failed", file=rel, reason=why)
        reporter.update(n + 1, message=f"{rel}: failed")

    whys: dict[str, str] = {}

    def upload() -> set[str]:
        """Send the pending files; the remote names that failed (after a failed batch each file is sent
        alone, so one vanished or refused file names itself and the others still go up)."""
        lpaths = [str(path) for _, _, path, _, _ in pending]
        remotes = [f"{base}/{remote_key(rel)}" for _, rel, _, _, _ in pending]
        try:
            fs.put(lpaths, remotes)  # each one object, written whole; lists: no glob expansion of names
            return set()
        except Exception as exc:
            log.info("storage.sync_batch_retry", files=len(lpaths), error=type(exc).__name__)
        bad: set[str] = set()
        for lpath, remote in zip(lpaths, remotes):
            try:
                fs.put_file(lpath, remote)
            except Exception as exc:
                bad.add(remote)
                whys[remote] = f"{type(exc).__name__}: {exc}"[:200]
        return bad

    def send() -> None:
        """Upload the pending files at once (fsspec runs them concurrently), check each size, then record them."""
        nonlocal dirty
        if not pending:
            return
        bad = upload()
        remotes = [f"{base}/{remote_key(rel)}" for _, rel, _, _, _ in pending]
        sizes: dict[str, Any] = {}
        try:
            for folder in sorted({r.rsplit("/", 1)[0] for r in remotes}):
                fs.invalidate_cache(folder)  # the listing at the start may have seen older objects
                sizes.update({e["name"].rstrip("/"): e.get("size") for e in fs.ls(folder, detail=True)})
        except Exception as exc:
            raise _storage_error(destination, exc, doing="list", argument="destination") from exc
        for (n, rel, _, size, sha), remote in zip(pending, remotes):
            if remote in bad:
                failed(n, rel, whys.get(remote, "the upload failed"))
                continue
            if sizes.get(remote) != size:
                failed(n, rel, f"the bucket holds {sizes.get(remote)} bytes after the upload, not {size} "
                               "(changed while sent?); the next sync sends it again")
                continue
            recorded[rel] = {"sha256": sha, "size": size}
            dirty += 1
            report.uploaded.append(rel)
            report.bytes_uploaded += size
        if dirty:
            flush()  # recorded before it is reported: a progress event means the files are safely there
            dirty = 0
        for n, rel, _, _, _ in pending:
            if rel in recorded and rel in report.uploaded:
                reporter.update(n + 1, message=rel)
        pending.clear()

    try:
        for n, (rel, path) in enumerate(files):
            reporter.check("the sync")
            try:
                size, sha = path.stat().st_size, _sha256(path)
            except OSError as exc:  # deleted or made unreadable since the listing: this file only
                failed(n, rel, f"could not be read: {exc.strerror or exc}")
                continue
            known = recorded.get(rel)
            if known and known.get("sha256") == sha and remote_sizes.get(f"{base}/{remote_key(rel)}") == size:
                report.unchanged.append(rel)
                reporter.update(n + 1, message=rel)
                continue
            pending.append((n, rel, path, size, sha))
            if len(pending) >= batch:
                send()
        send()
    finally:
        if dirty:  # whatever was checked so far is kept, even on a cancel or an error
            with contextlib.suppress(MasukaError):
                flush()
                dirty = 0
    if dirty or manifest_path not in remote_sizes:
        flush()
    reporter.done(str(report))
    log.info("storage.sync", destination=destination, uploaded=len(report.uploaded), unchanged=len(report.unchanged),
             failed=len(report.failed))
    return report
