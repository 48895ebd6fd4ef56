"""Training datasets: a folder of clean RGB images with caption sidecars and a `dataset.json`.

The layout (docs/contracts.md) is read by local and cloud training alike::

    datasets_dir/<name>/images/<stem>.<ext>   <stem> = first 16 hex of the stored file's sha256
    datasets_dir/<name>/images/<stem>.txt     caption sidecar (kohya / ai-toolkit / fal layout)
    datasets_dir/<name>/dataset.json          {"name", "created_at", "items": [...]}

Imports take files, folders, zips (read in memory: no member is ever extracted to a path it names)
and URLs. Each file is decoded on its own and the manifest is written after each one, so a bad or
hostile file only ever costs itself. Re-importing the same content is a no-op (content hash).

The manifest is read item by item: a damaged file is quarantined and its last good copy
(``dataset.json.bak``) read; an item that does not parse is copied to ``quarantine/`` and the others
load. Two processes importing into one dataset at once both land: every save re-reads the manifest
under a lock (`storage.file_lock`) and merges it with what this process changed.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from masuka_nb.buckets import list_files, read_bytes
from masuka_nb.config import settings
from masuka_nb.errors import DatasetError, MasukaError
from masuka_nb.log import get_logger
from masuka_nb.lora.caption import caption_dataset
from masuka_nb.lora.curate import curate
from masuka_nb.lora.imageio import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, ImageRejected, decode_image
from masuka_nb.storage import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    file_lock,
    is_bucket_url,
    read_file_bytes,
    read_json_guarded,
    read_text_file,
    safe_name,
)

__all__ = ["Dataset", "DatasetItem", "ImportReport", "InboxFile", "Rejection", "ZipLimits", "min_side_for"]

log = get_logger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif",
                    ".avif", ".jfif", ".dib"}
CAPTION_SOURCES = ("user", "florence-2", "blip-2", "none")


@dataclass
class DatasetItem:
    """One image of a dataset, as stored in `dataset.json`."""

    file: str
    sha256: str
    width: int
    height: int
    caption: str = ""
    caption_source: str = "none"
    keep: bool = True
    scores: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    source_sha256: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.file).stem

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetItem:
        """An item from the manifest, checked field by field (`ValueError` names what is wrong)."""
        if not isinstance(data, dict):
            raise ValueError(f"an item is a JSON object, not {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name, kinds in _ITEM_TYPES.items():
            value = known.get(name)
            if name in known and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
                raise ValueError(f"`{name}` is {type(known[name]).__name__}")
        for name in ("file", "sha256", "width", "height"):
            if name not in known:
                raise ValueError(f"`{name}` is missing")
        file = PurePosixPath(known["file"])
        # an item names a file inside images/: a manifest someone sent cannot point training at ~/.ssh
        if file.parent != PurePosixPath("images") or file.name in ("", ".", ".."):
            raise ValueError(f"`file` {known['file']!r} is not a file in images/")
        return cls(**known)


_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    "file": (str,), "sha256": (str,), "width": (int,), "height": (int,), "caption": (str,), "caption_source": (str,),
    "keep": (bool,), "scores": (dict,), "source": (str,), "source_sha256": (str,), "notes": (list,),
}


@dataclass
class Rejection:
    source: str
    code: str
    reason: str


@dataclass
class ImportReport:
    """What one import did: per file, imported, skipped as a duplicate, or rejected with a reason."""

    imported: list[DatasetItem] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (source, existing file)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # imported, but something beside it was not (a caption)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.warnings += other.warnings

    def summary(self) -> str:
        lines = [f"{len(self.imported)} imported, {len(self.duplicates)} duplicates skipped, "
                 f"{len(self.rejected)} rejected"]
        lines += [f"  ✗ {r.source}: {r.reason}" for r in self.rejected]
        lines += [f"  ! {w}" for w in self.warnings]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ImportReport({self.summary()!r})"


@dataclass(frozen=True)
class InboxFile:
    """One file in a dataset's inbox: ready to import, or skipped and why."""

    path: Path
    ready: bool
    why: str = ""
    size: int = 0


def min_side_for(base: str | None) -> int:
    """The smallest image side worth importing to train `base`: the default for real bases; the tiny offline
    bases train at 64 px, so the app's own tiny outputs (32-64 px) are accepted for them."""
    if base:
        from masuka_nb.models.registry import get_model

        try:
            spec = get_model(base)
        except MasukaError:
            return DEFAULT_MIN_SIDE
        if spec.tiny:
            return min(DEFAULT_MIN_SIDE, spec.min_size)
    return DEFAULT_MIN_SIDE


@dataclass(frozen=True)
class ZipLimits:
    """Caps for reading an archive: total and per-member uncompressed bytes, compression ratio, members."""

    max_total_bytes: int = 4 * 1024**3
    max_member_bytes: int = 256 * 1024**2
    max_ratio: float = 200.0
    max_members: int = 10_000
    max_download_bytes: int = 2 * 1024**3


MAX_URL_IMAGE_BYTES = 64 * 1024**2  # one photo, even a large HEIC/RAW-ish JPEG, is far below this
MAX_FILE_BYTES = 64 * 1024**2  # the same cap for a local file (read as a stream: /dev/zero is refused at once)
MAX_CAPTION_BYTES = 64 * 1024


def _check_path(value: Any, argument: str) -> Path:
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise DatasetError(f"`{argument}` must be a path, not {type(value).__name__}.", argument=argument,
                           value=value, hint="e.g. \"/content/photos\"")
    return Path(value)


def _check_int(value: Any, argument: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DatasetError(f"`{argument}` must be a whole number ≥ {minimum}.", argument=argument, value=value,
                           hint=f"e.g. {argument}={max(minimum, 256)}")
    return value


def _check_bool(value: Any, argument: str) -> bool:
    if not isinstance(value, bool):
        raise DatasetError(f"`{argument}` must be True or False.", argument=argument, value=value)
    return value


class CaptionProblem(str):
    """Internal: a caption file beside an image that could not be read (the image is imported without it)."""


def _caption_of(side: Path, report: ImportReport | None = None, *, warnings: list[str] | None = None) -> str | None:
    """The caption sidecar beside an image, bounded and decoded; a bad one is a warning, not a rejection."""
    if not side.is_file():
        return None
    try:
        return read_text_file(side, max_bytes=MAX_CAPTION_BYTES, argument="paths_or_bytes", what="caption file")
    except MasukaError as exc:
        msg = f"caption {side.name} not read: {exc.message}"
        for sink in (report.warnings if report is not None else None, warnings):
            if sink is not None:
                sink.append(msg)
        log.warning("dataset.caption_skipped", path=str(side), reason=exc.message)
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Dataset:
    """A named dataset in `settings().datasets_dir`, or any folder with the same layout."""

    def __init__(self, root: str | os.PathLike[str], *, min_side: int = DEFAULT_MIN_SIDE,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = _check_path(root, "name_or_path")
        self.min_side = _check_int(min_side, "min_side", minimum=1)
        self.max_pixels = _check_int(max_pixels, "max_pixels", minimum=1)
        manifest = self.root / "dataset.json"
        if not manifest.is_file() and not manifest.with_name("dataset.json.bak").is_file():
            raise DatasetError(
                f"{self.root} is not a MASUKA dataset (no dataset.json).",
                argument="name_or_path",
                value=str(root),
                hint="Create one with `Dataset.create(name)`.",
            )
        data = _read_manifest(manifest)
        name = data.get("name")
        self.name: str = name if isinstance(name, str) and name else self.root.name
        created = data.get("created_at")
        self.created_at: str = created if isinstance(created, str) and created else _now()
        self.items: list[DatasetItem] = _items_of(data, manifest)
        self.extra: dict[str, Any] = {k: v for k, v in data.items() if k not in ("name", "created_at", "items")}
        self._loaded = {it.sha256: asdict(it) for it in self.items}  # what save() compares against to merge

    # ---- creation and loading ----
    @classmethod
    def create(cls, name: str, *, exist_ok: bool = True, min_side: int = DEFAULT_MIN_SIDE) -> Dataset:
        """A new (or, with `exist_ok`, the existing) dataset `name` under `settings().datasets_dir`."""
        clean = safe_name(str(name), default="")
        if not clean or clean != str(name):
            raise DatasetError(
                f"Dataset name {name!r} must use only letters, digits, '.', '_' and '-'.",
                argument="name", value=name, hint=f"Try {clean or 'my-dataset'!r}.",
            )
        _check_bool(exist_ok, "exist_ok")
        _check_int(min_side, "min_side", minimum=1)
        root = settings().datasets_dir / clean
        if (root / "dataset.json").is_file() or (root / "dataset.json.bak").is_file():
            if not exist_ok:
                raise DatasetError(f"Dataset {name!r} already exists.", argument="name", value=name,
                                   hint="Use `Dataset.load(name)` or pass exist_ok=True.")
            return cls(root, min_side=min_side)
        ensure_dir(root / "images")
        with file_lock(root / "dataset.json"):  # two processes creating one dataset: the first one's stays
            if not (root / "dataset.json").is_file() and not (root / "dataset.json.bak").is_file():
                atomic_write_json(root / "dataset.json", {"name": clean, "created_at": _now(), "items": []})
        return cls(root, min_side=min_side)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> Dataset:
        path = _check_path(name_or_path, "name_or_path")
        if not (path / "dataset.json").is_file() and not (path / "dataset.json.bak").is_file():
            path = settings().datasets_dir / str(name_or_path)
        return cls(path)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def path_of(self, item: DatasetItem) -> Path:
        return self.root / item.file

    @property
    def kept(self) -> list[DatasetItem]:
        return [i for i in self.items if i.keep]

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, items={len(self.items)}, kept={len(self.kept)})"

    def save(self) -> None:
        """Write the manifest, merged with what other processes wrote since it was read (under a lock).

        An item this object changed (or added) wins; every other item is taken as it is on disk, so two
        imports (or an import and a caption edit) into one dataset at once both keep their work.
        """
        manifest = self.root / "dataset.json"
        with file_lock(manifest):
            on_disk = _items_of(_read_manifest(manifest), manifest, warn=False) if manifest.is_file() else []
            mine = {it.sha256: it for it in self.items}
            changed = {sha for sha, it in mine.items() if self._loaded.get(sha) != asdict(it)}
            merged: list[DatasetItem] = []
            for theirs in on_disk:
                ours = mine.get(theirs.sha256)
                if ours is None:
                    merged.append(theirs)  # another process imported it
                    continue
                if theirs.sha256 not in changed:
                    vars(ours).update(vars(theirs))  # untouched here: theirs is at least as new
                merged.append(ours)
            on_disk_shas = {it.sha256 for it in on_disk}
            merged += [it for it in self.items if it.sha256 not in on_disk_shas]
            atomic_write_json(manifest, backup=True, obj={
                **self.extra, "name": self.name, "created_at": self.created_at,
                "items": [asdict(i) for i in merged],
            })
        self.items = merged
        self._loaded = {it.sha256: asdict(it) for it in self.items}

    def content_hash(self) -> str:
        """A hash of what training would see: kept images and their captions."""
        h = hashlib.sha256()
        for item in sorted(self.kept, key=lambda i: i.sha256):
            h.update(item.sha256.encode())
            h.update(b"\0" + item.caption.encode("utf-8") + b"\0")
        return h.hexdigest()[:16]

    def item(self, key: str) -> DatasetItem:
        if not isinstance(key, str):
            raise DatasetError(f"`key` must be an item's file, stem, sha256 or original name, not "
                               f"{type(key).__name__}.", argument="key", value=key, hint="e.g. ds.items[0].file")
        for it in self.items:
            if key in (it.file, it.stem, it.sha256, it.source, PurePosixPath(it.file).name):
                return it
        raise DatasetError(f"No item {key!r} in dataset {self.name!r}.", argument="key", value=key,
                           hint="Use an item's file, stem, sha256 or original name.")

    # ---- user edits (never overwritten by captioning unless asked) ----
    def set_caption(self, key: str, caption: str) -> DatasetItem:
        if not isinstance(caption, str):
            raise DatasetError(f"`caption` must be text, not {type(caption).__name__}.", argument="caption",
                               value=caption, hint="e.g. ds.set_caption(\"img0.png\", \"mk, a red bike\")")
        it = self.item(key)
        it.caption = caption.strip()
        it.caption_source = "user"
        atomic_write_text(self.images_dir / f"{it.stem}.txt", it.caption + "\n")
        self.save()
        return it

    def set_keep(self, key: str, keep: bool) -> DatasetItem:
        _check_bool(keep, "keep")
        it = self.item(key)
        it.keep = keep
        it.scores["keep_overridden"] = True
        self.save()
        return it

    def sync_captions(self) -> int:
        """Pick up captions edited in the `.txt` sidecars (e.g. in Colab's file editor). Returns how many changed."""
        changed = 0
        for it in self.items:
            text = _caption_of(self.images_dir / f"{it.stem}.txt")
            if text is not None:
                text = text.strip()
                if text != it.caption:
                    it.caption, it.caption_source = text, "user"
                    changed += 1
        if changed:
            self.save()
        return changed

    # ---- import ----
    def _known(self) -> dict[str, DatasetItem]:
        known: dict[str, DatasetItem] = {}
        for it in self.items:
            known[it.sha256] = it
            if it.source_sha256:
                known[it.source_sha256] = it
        return known

    def _import_one(self, source: str, data: bytes, report: ImportReport, known: dict[str, DatasetItem]) -> None:
        source_sha = hashlib.sha256(data).hexdigest()
        if source_sha in known:
            report.duplicates.append((source, known[source_sha].file))
            return
        try:
            decoded = decode_image(data, source, min_side=self.min_side, max_pixels=self.max_pixels)
        except ImageRejected as rej:
            report.rejected.append(Rejection(source, rej.code, rej.reason))
            return
        if decoded.untouched:
            stored, ext = data, ".jpg" if decoded.format == "JPEG" else ".png"
        else:
            buf = io.BytesIO()
            decoded.image.save(buf, format="PNG", optimize=False)
            stored, ext = buf.getvalue(), ".png"
        sha = hashlib.sha256(stored).hexdigest()
        if sha in known:
            report.duplicates.append((source, known[sha].file))
            return
        stem = sha[:16]
        atomic_write_bytes(self.images_dir / f"{stem}{ext}", stored)
        w, h = decoded.image.size
        item = DatasetItem(file=f"images/{stem}{ext}", sha256=sha, width=w, height=h, source=source,
                           source_sha256=source_sha, notes=decoded.notes)
        caption = _caption_of(self.images_dir / f"{stem}.txt", report)
        if caption is not None:  # a caption that came with the upload (e.g. kohya-style zip)
            item.caption, item.caption_source = caption.strip(), "user"
        self.items.append(item)
        try:
            self.save()  # after each file: a crash later never loses this one
        except BaseException:
            self.items = [it for it in self.items if it is not item]  # not listed: not reported as imported
            raise
        known[sha] = known[source_sha] = item
        report.imported.append(item)

    def _import_stream(self, entries: Iterable[tuple[str, bytes | Exception, str | None]]) -> ImportReport:
        """entries: (source name, bytes or the error met reading it, caption text that came with it)."""
        report = ImportReport()
        known = self._known()
        ensure_dir(self.images_dir)
        for source, data, caption in entries:
            if isinstance(data, Exception):
                reason = data.message if isinstance(data, MasukaError) else str(data)
                report.rejected.append(Rejection(source, "unreadable", reason))
                continue
            if isinstance(caption, CaptionProblem):  # the image still comes in, without that caption
                report.warnings.append(str(caption))
                caption = None
            try:
                before = len(report.imported)
                self._import_one(source, data, report, known)
                if caption and len(report.imported) > before:
                    item = report.imported[-1]
                    item.caption, item.caption_source = caption.strip(), "user"
                    atomic_write_text(self.images_dir / f"{item.stem}.txt", item.caption + "\n")
                    self.save()
            except OSError as exc:  # disk full, Drive gone: stop, but what is saved stays saved
                from masuka_nb.storage import storage_error

                saved = (f"{len(report.imported)} image(s) of this import were saved in {self.images_dir} and are "
                         "listed in dataset.json; importing again skips them." if report.imported else
                         f"Nothing of this import was saved; the dataset in {self.root} is as it was.")
                cause = exc.__cause__ if isinstance(exc, MasukaError) and isinstance(exc.__cause__, OSError) else exc
                raise storage_error(cause, path=self.root, what=f"{source}", saved=saved) from exc
        log.info("dataset.import", dataset=self.name, imported=len(report.imported),
                 duplicates=len(report.duplicates), rejected=len(report.rejected))
        return report

    def import_files(self, paths_or_bytes: Iterable[str | os.PathLike[str] | bytes | tuple[str, bytes]] | str
                     | os.PathLike[str] | bytes, *, max_file_bytes: int = MAX_FILE_BYTES) -> ImportReport:
        """Import images given as paths, URLs (http(s), gs://, s3://), raw bytes or (name, bytes) pairs (a Colab upload).

        A local file larger than `max_file_bytes`, or one that is not a regular file (a device, a FIFO, a
        socket), is rejected on its own, before it is read."""
        _check_int(max_file_bytes, "max_file_bytes", minimum=1)
        if isinstance(paths_or_bytes, (str, os.PathLike, bytes, bytearray, dict, tuple)) and not (
                isinstance(paths_or_bytes, tuple) and len(paths_or_bytes) != 2):
            paths_or_bytes = [paths_or_bytes]  # one item; a dict is Colab's files.upload() {name: bytes}
        if not isinstance(paths_or_bytes, Iterable):
            raise DatasetError(f"`paths_or_bytes` must be paths, URLs, bytes or (name, bytes) pairs, not "
                               f"{type(paths_or_bytes).__name__}.", argument="paths_or_bytes",
                               value=paths_or_bytes, hint="e.g. ds.import_files([\"/content/a.jpg\", \"b.png\"])")
        return self._import_stream(self._entries(paths_or_bytes, max_file_bytes=max_file_bytes))

    def _entries(self, things: Iterable[Any], *, max_file_bytes: int = MAX_FILE_BYTES,
                 ) -> Iterator[tuple[str, bytes | Exception, str | None]]:
        for n, thing in enumerate(things):
            if isinstance(thing, (bytes, bytearray, memoryview)):
                yield f"upload-{n}", bytes(thing), None
            elif isinstance(thing, tuple) and len(thing) == 2:
                yield from _named_bytes(thing[0], thing[1], n)
            elif isinstance(thing, dict):  # Colab's files.upload() returns {name: bytes}
                for name, data in thing.items():
                    yield from _named_bytes(name, data, n)
            elif not isinstance(thing, (str, os.PathLike)) or isinstance(thing, bool):
                yield (f"item {n}", DatasetError(f"not a path, URL, bytes or (name, bytes) pair but a "
                                                 f"{type(thing).__name__}"), None)
            elif isinstance(thing, str) and thing.startswith(("http://", "https://", "gs://", "gcs://", "s3://")):
                from masuka_nb.hosted.download import download_bytes

                try:  # one image at a URL or in a bucket, through the one downloader (size-capped)
                    yield thing, download_bytes(thing, max_bytes=MAX_URL_IMAGE_BYTES, argument="paths_or_bytes"), None
                except MasukaError as exc:
                    yield thing, exc, None
            else:
                path = Path(thing)
                try:
                    data = read_file_bytes(path, max_bytes=max_file_bytes, argument="paths_or_bytes", what="image")
                except MasukaError as exc:
                    yield str(path), exc, None
                    continue
                problems: list[str] = []
                caption = _caption_of(path.with_suffix(".txt"), warnings=problems)
                yield str(path), data, CaptionProblem(problems[0]) if problems else caption

    def import_folder(self, path: str | os.PathLike[str], *, recursive: bool = True,
                      max_file_bytes: int = 64 * 1024**2) -> ImportReport:
        """Import every file of a folder (or of a gs:// / s3:// bucket folder) whose extension is an image one."""
        _check_bool(recursive, "recursive")
        _check_int(max_file_bytes, "max_file_bytes", minimum=1)
        if is_bucket_url(path):
            return self._import_stream(_bucket_entries(str(path), recursive=recursive, max_bytes=max_file_bytes))
        folder = _check_path(path, "path")
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder.", argument="path", value=str(path),
                               hint="Pass the folder that holds the images.")
        try:
            files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
        except OSError as exc:
            raise DatasetError(f"The folder {folder} cannot be listed: {exc.strerror or exc}.", argument="path",
                               value=str(path), hint="Check that it is readable (and Drive mounted).") from exc
        images = [p for p in files if p.suffix.lower() != ".txt" and not p.name.startswith(".")]
        return self._import_stream(self._entries(images, max_file_bytes=max_file_bytes))

    def import_zip(self, path_or_url: str | os.PathLike[str], *, limits: ZipLimits = ZipLimits()) -> ImportReport:
        """Import the images of a zip file, or of a zip at an http(s), gs:// or s3:// URL, read safely in memory."""
        if not isinstance(limits, ZipLimits):
            raise DatasetError("`limits` must be a ZipLimits.", argument="limits", value=limits,
                               hint="e.g. limits=ZipLimits(max_total_bytes=2 * 1024**3)")
        _check_path(path_or_url, "path_or_url")
        text = str(path_or_url)
        if text.startswith(("http://", "https://", "gs://", "gcs://", "s3://")):
            from masuka_nb.hosted.download import download_bytes

            data = download_bytes(text, max_bytes=limits.max_download_bytes, argument="path_or_url")
            return self._import_stream(_zip_entries(io.BytesIO(data), text, limits))
        path = Path(path_or_url)
        if not path.is_file():
            raise DatasetError(f"No zip file at {path}.", argument="path_or_url", value=text,
                               hint="Give the path of a .zip file or an http(s) URL of one.")
        with open(path, "rb") as fh:
            return self._import_stream(_zip_entries(fh, text, limits))

    def to_zip(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Kept images with their caption sidecars, flat, in one zip (what cloud trainers upload)."""
        target = _check_path(path, "path") if path is not None else self.root / f"{self.name}.zip"
        missing = [it.file for it in self.kept if not self.path_of(it).is_file()]
        if missing:
            raise DatasetError(f"{len(missing)} kept image(s) of {self.name!r} are missing on disk: "
                               f"{', '.join(missing[:3])}.", argument="dataset", value=self.name,
                               hint="Re-import them, or set keep=False on them.")
        with atomic_open(target, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for it in self.kept:  # written whole or not at all: a full disk leaves no half zip
                zf.write(self.path_of(it), PurePosixPath(it.file).name)
                if it.caption:
                    zf.writestr(f"{it.stem}.txt", it.caption + "\n")
        return target

    # ---- curation and captioning live in their own modules ----
    # ---- inbox: a folder to drop many or large files into (Colab's upload widget fails from 1 MB) ----
    @property
    def inbox(self) -> Path:
        """`<inbox_dir>/<dataset name>` (the `inbox_dir` setting): put photos or zips here (Colab's Files pane,
        Drive), then `import_inbox()`. Outside the dataset's own folder, so nothing there is taken for a photo."""
        return settings().inbox_dir / self.name

    def inbox_files(self) -> list[InboxFile]:
        """What waits in the inbox, each file ready or skipped with the reason (nothing is imported yet)."""
        if not self.inbox.is_dir():
            return []
        out = []
        for path in sorted(p for p in self.inbox.iterdir() if p.is_file() and not p.name.startswith(".")):
            size = path.stat().st_size
            if path.suffix.lower() not in (*IMAGE_EXTENSIONS, ".zip"):
                out.append(InboxFile(path, False, f"not an image or a zip ({path.suffix or 'no extension'})", size))
            elif size == 0:
                out.append(InboxFile(path, False, "empty file (still copying?)", size))
            else:
                out.append(InboxFile(path, True, "", size))
        return out

    def import_inbox(self) -> ImportReport:
        """Import every ready file of the inbox (zips unpacked); each file handled moves to `inbox/.done`,
        so the next import sees only what is new."""
        report = ImportReport()
        done = self.inbox / ".done"
        for f in self.inbox_files():
            if not f.ready:
                continue
            report.merge(self.import_zip(f.path) if f.path.suffix.lower() == ".zip" else self.import_files([f.path]))
            ensure_dir(done)
            os.replace(f.path, done / f.path.name)
        return report

    def curate(self, reference_image: Any = None, **kwargs: Any):
        """Score and flag every image; returns a `CurationReport` (see `masuka_nb.lora.curate`)."""
        _known_arguments(curate, kwargs, "curate")
        return curate(self, reference_image=reference_image, **kwargs)

    def caption(self, model: str = "florence-2", trigger_word: str | None = None, overwrite: bool = False,
                **kwargs: Any):
        """Caption every image with `.txt` sidecars (see `masuka_nb.lora.caption`)."""
        _known_arguments(caption_dataset, kwargs, "caption")
        if not isinstance(model, str):
            raise DatasetError("`model` must be a captioner's name.", argument="model", value=model,
                               hint="e.g. model=\"florence-2\" or \"blip-2\"")
        if trigger_word is not None and not isinstance(trigger_word, str):
            raise DatasetError("`trigger_word` must be text.", argument="trigger_word", value=trigger_word)
        _check_bool(overwrite, "overwrite")
        return caption_dataset(self, model=model, trigger_word=trigger_word, overwrite=overwrite, **kwargs)


def _known_arguments(fn: Any, kwargs: dict[str, Any], method: str) -> None:
    """A misspelt keyword is a DatasetError naming it, not Python's TypeError from deep inside."""
    import inspect

    allowed = [n for n, prm in inspect.signature(fn).parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise DatasetError(f"Dataset.{method}() takes no argument {', '.join(map(repr, unknown))}.",
                           argument=unknown[0], value=kwargs[unknown[0]],
                           hint=f"It takes: {', '.join(allowed)}.")


def _named_bytes(name: Any, data: Any, n: int) -> Iterator[tuple[str, bytes | Exception, str | None]]:
    label = str(name)[:200]
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield label, bytes(data), None
    else:  # bytes(10**12) would try to allocate a terabyte: only real bytes are taken
        yield label or f"item {n}", DatasetError(f"the content is a {type(data).__name__}, not bytes"), None


def _read_manifest(manifest: Path) -> dict[str, Any]:
    """dataset.json as a mapping: a damaged one is quarantined and dataset.json.bak read instead."""
    data = read_json_guarded(manifest, expect=dict)
    if data is not None and not manifest.is_file():  # read from dataset.json.bak: put it back as the manifest
        try:
            atomic_write_json(manifest, data)
        except MasukaError as exc:
            log.warning("dataset.manifest_not_restored", path=str(manifest), error=str(exc))
    if data is None:
        if manifest.exists():
            raise DatasetError(f"{manifest} cannot be read.", argument="name_or_path", value=str(manifest.parent),
                               hint="Check that the disk (or Drive) is mounted and the file readable.")
        log.warning("dataset.manifest_rebuilt", path=str(manifest))
        return {"items": []}  # quarantined with no good copy left: an empty dataset, the images stay on disk
    return data


def _items_of(data: dict[str, Any], manifest: Path, *, warn: bool = True) -> list[DatasetItem]:
    """The manifest's items, one by one: an item that does not parse is copied to quarantine/ (once)."""
    raw = data.get("items", [])
    if not isinstance(raw, list):
        raw = []
    items, seen, bad = [], set(), []
    for entry in raw:
        try:
            item = DatasetItem.from_dict(entry)
        except (ValueError, TypeError) as exc:
            bad.append((entry, str(exc)))
            continue
        if item.sha256 not in seen:
            seen.add(item.sha256)
            items.append(item)
    if bad and warn:
        _quarantine_records(manifest, bad)
    return items


def _quarantine_records(manifest: Path, bad: list[tuple[Any, str]]) -> None:
    import json
    import tempfile

    try:
        folder = ensure_dir(manifest.parent / "quarantine")
        fd, tmp = tempfile.mkstemp(prefix=f"{manifest.name}.items.", suffix=".json", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump([{"item": e, "reason": why} for e, why in bad], fh, indent=1, default=str)
        where = f"copied to {tmp}"
    except (OSError, MasukaError) as exc:
        where = f"not copied aside ({exc})"
    log.warning("dataset.items_quarantined", manifest=str(manifest), count=len(bad), reason=bad[0][1], where=where)


def _unsafe_member(name: str) -> str | None:
    p = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path in the archive"
    if ".." in p.parts:
        return "path escapes the archive ('..')"
    return None


def _zip_entries(fh: Any, label: str, limits: ZipLimits) -> Iterator[tuple[str, bytes | Exception, str | None]]:
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{label} is not a readable zip: {exc}.", argument="path_or_url", value=label,
                           hint="Re-create the archive (zip format) and try again.") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_members:
            raise DatasetError(f"{label} holds {len(infos)} files, above the limit of {limits.max_members}.",
                               argument="path_or_url", value=label, hint="Split the archive.")
        captions = {}
        for info in infos:
            if info.filename.lower().endswith(".txt") and not _unsafe_member(info.filename) \
                    and info.file_size <= 64 * 1024:
                captions[str(PurePosixPath(info.filename).with_suffix(""))] = zf.read(info).decode("utf-8", "replace")
        total = 0
        for info in infos:
            name = info.filename
            base = PurePosixPath(name.replace("\\", "/"))
            if base.name.startswith(".") or "__MACOSX" in base.parts or name.lower().endswith(".txt"):
                continue
            source = f"{label}!{name}"
            bad = _unsafe_member(name)
            if bad:
                yield source, DatasetError(f"rejected: {bad}"), None
                continue
            if info.file_size > limits.max_member_bytes:
                yield source, DatasetError(f"member is {info.file_size} bytes, above the per-file limit"), None
                continue
            if info.compress_size and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
                yield source, DatasetError(
                    f"compression ratio {info.file_size / info.compress_size:.0f}:1 exceeds {limits.max_ratio:.0f}:1 "
                    "(zip bomb)"), None
                continue
            total += info.file_size
            if total > limits.max_total_bytes:
                yield source, DatasetError("the archive's total size is above the limit"), None
                continue
            try:
                # Read at most the declared size + 1: a lying header cannot make us inflate more.
                with zf.open(info) as member:
                    data = member.read(limits.max_member_bytes + 1)
                if len(data) > limits.max_member_bytes:
                    yield source, DatasetError("member inflates past the per-file limit"), None
                    continue
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                yield source, exc, None
                continue
            yield source, data, captions.get(str(base.with_suffix("")))


def _bucket_entries(url: str, *, recursive: bool, max_bytes: int) -> Iterator[tuple[str, bytes | Exception, str | None]]:
    """(name, bytes or the error, caption) for each image under a bucket folder; `name.txt` beside it is its caption."""
    prefix = url.rstrip("/") + "/"
    files = [f for f in list_files(url, argument="path") if recursive or "/" not in f[len(prefix):]]
    names = set(files)
    for f in files:
        if f.endswith(".txt") or f.rsplit("/", 1)[-1].startswith("."):
            continue
        try:
            data: bytes | Exception = read_bytes(f, max_bytes=max_bytes, argument="path")
        except MasukaError as exc:
            data = exc
        side = f.rsplit(".", 1)[0] + ".txt"
        caption = read_bytes(side, max_bytes=1 << 20, argument="path").decode("utf-8", "replace") if side in names else None
        yield f, data, caption
