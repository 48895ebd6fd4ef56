"""Cloud buckets through fsspec: read from ``gs://`` and ``s3://`` wherever a path is taken, and mirror the home.

    masuka_nb.storage.sync("gs://my-bucket/masuka")                   # outputs, loras, datasets, history
    masuka_nb.storage.sync("s3://my-bucket/masuka", what=("loras",))
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

from masuka_nb.errors import DependencyMissingError, InvalidRequestError, MasukaError, StorageError
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter

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
    from masuka_nb.config import settings

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
    from masuka_nb.runtime import in_colab

    if not in_colab():
        return None
    with contextlib.suppress(ImportError):
        from google.colab import auth  # type: ignore[import-not-found]

        auth.authenticate_user()
        return "google_default"
    return None


def _aws_keys() -> tuple[str | None, str | None]:
    from masuka_nb.secrets import get_secret, has_secret

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
    """What one `sync` did: files sent, files already there, bytes sent, and the manifest's address."""

    destination: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    manifest: str = ""

    def __str__(self) -> str:
        return (f"sync to {self.destination}: {len(self.uploaded)} sent ({self.bytes_uploaded / 1e6:.1f} MB), "
                f"{len(self.unchanged)} already there")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _local_files(what: tuple[str, ...]) -> list[tuple[str, Path]]:
    from masuka_nb.config import settings

    s = settings()
    out: list[tuple[str, Path]] = []
    for name in what:
        root = Path(getattr(s, f"{name}_dir"))
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES) and not path.is_symlink():
                out.append((f"{name}/{path.relative_to(root).as_posix()}", path))
    return out


def sync(destination: str, *, what: tuple[str, ...] = ("outputs", "loras", "datasets", "history"),
         progress: ProgressCallback | bool | None = None, cancel: CancelToken | None = None,
         batch: int = 16) -> SyncReport:
    """Mirror MASUKA's home (the folders in `what`) to a bucket; incremental, resumable, safe to interrupt."""
    what = tuple(what)
    bad = [w for w in what if w not in SYNCABLE]
    if bad or not what:
        raise InvalidRequestError(f"`what` cannot be {what!r}.", argument="what", value=what,
                                  hint=f"Choose among {', '.join(SYNCABLE)}.")
    fs, base = filesystem(destination)
    manifest_path = f"{base}/{MANIFEST}"
    report = SyncReport(destination=destination, manifest=f"{_split(destination)[0]}://{manifest_path}")
    try:
        remote_sizes = {p: (info or {}).get("size") for p, info in fs.find(base, detail=True).items()}
        manifest = json.loads(fs.cat_file(manifest_path)) if manifest_path in remote_sizes else {}
    except Exception as exc:
        raise _storage_error(destination, exc, doing="read", argument="destination") from exc
    recorded: dict[str, dict[str, Any]] = dict(manifest.get("files") or {})
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

    def send() -> None:
        """Upload the pending files at once (fsspec runs them concurrently), check each size, then record them."""
        nonlocal dirty
        if not pending:
            return
        remotes = [f"{base}/{rel}" for _, rel, _, _, _ in pending]
        try:
            fs.put([str(path) for _, _, path, _, _ in pending], remotes)  # each one object, written whole
            sizes: dict[str, Any] = {}
            for folder in sorted({r.rsplit("/", 1)[0] for r in remotes}):
                fs.invalidate_cache(folder)  # the listing at the start may have seen older objects
                sizes.update({e["name"].rstrip("/"): e.get("size") for e in fs.ls(folder, detail=True)})
        except Exception as exc:
            raise _storage_error(destination, exc, doing="upload to", argument="destination") from exc
        for (_, rel, _, size, sha), remote in zip(pending, remotes):
            if sizes.get(remote) != size:
                raise StorageError(f"{destination}/{rel} holds {sizes.get(remote)} bytes after the upload, not {size}.",
                                   argument="destination", value=destination, hint="Run the sync again.")
            recorded[rel] = {"sha256": sha, "size": size}
        dirty += len(pending)
        flush()  # recorded before it is reported: a progress event means the files are safely there
        dirty = 0
        for n, rel, _, size, _ in pending:
            report.uploaded.append(rel)
            report.bytes_uploaded += size
            reporter.update(n + 1, message=rel)
        pending.clear()

    try:
        for n, (rel, path) in enumerate(files):
            reporter.check("the sync")
            size, sha = path.stat().st_size, _sha256(path)
            known = recorded.get(rel)
            if known and known.get("sha256") == sha and remote_sizes.get(f"{base}/{rel}") == size:
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
    log.info("storage.sync", destination=destination, uploaded=len(report.uploaded), unchanged=len(report.unchanged))
    return report
