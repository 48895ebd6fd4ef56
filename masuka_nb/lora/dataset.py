"""Training datasets: a folder of clean RGB images with caption sidecars and a `dataset.json`.

The layout (docs/contracts.md) is read by local and cloud training alike::

    datasets_dir/<name>/images/<stem>.<ext>   <stem> = first 16 hex of the stored file's sha256
    datasets_dir/<name>/images/<stem>.txt     caption sidecar (kohya / ai-toolkit / fal layout)
    datasets_dir/<name>/dataset.json          {"name", "created_at", "items": [...]}

Imports take files, folders, zips (read in memory: no member is ever extracted to a path it names)
and URLs. Each file is decoded on its own and the manifest is written after each one, so a bad or
hostile file only ever costs itself. Re-importing the same content is a no-op (content hash).
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

from masuka_nb.errors import DatasetError, MasukaError
from masuka_nb.log import get_logger
from masuka_nb.lora.imageio import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, ImageRejected, decode_image
from masuka_nb.storage import atomic_write_bytes, atomic_write_json, atomic_write_text, ensure_dir, read_json

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
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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

    @property
    def ok(self) -> bool:
        return not self.rejected

    def merge(self, other: ImportReport) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected

    def summary(self) -> str:
        lines = [f"{len(self.imported)} imported, {len(self.duplicates)} duplicates skipped, "
                 f"{len(self.rejected)} rejected"]
        lines += [f"  ✗ {r.source}: {r.reason}" for r in self.rejected]
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Dataset:
    """A named dataset in `settings().datasets_dir`, or any folder with the same layout."""

    def __init__(self, root: str | os.PathLike[str], *, min_side: int = DEFAULT_MIN_SIDE,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = Path(root)
        self.min_side = min_side
        self.max_pixels = max_pixels
        manifest = self.root / "dataset.json"
        if not manifest.is_file():
            raise DatasetError(
                f"{self.root} is not a MASUKA dataset (no dataset.json).",
                argument="name_or_path",
                value=str(root),
                hint="Create one with `Dataset.create(name)`.",
            )
        data = read_json(manifest)
        self.name: str = data.get("name") or self.root.name
        self.created_at: str = data.get("created_at") or _now()
        self.items: list[DatasetItem] = [DatasetItem.from_dict(d) for d in data.get("items", [])]
        self.extra: dict[str, Any] = {k: v for k, v in data.items() if k not in ("name", "created_at", "items")}

    # ---- creation and loading ----
    @classmethod
    def create(cls, name: str, *, exist_ok: bool = True, min_side: int = DEFAULT_MIN_SIDE) -> Dataset:
        """A new (or, with `exist_ok`, the existing) dataset `name` under `settings().datasets_dir`."""
        from masuka_nb.config import settings
        from masuka_nb.storage import safe_name

        clean = safe_name(str(name), default="")
        if not clean or clean != str(name):
            raise DatasetError(
                f"Dataset name {name!r} must use only letters, digits, '.', '_' and '-'.",
                argument="name", value=name, hint=f"Try {clean or 'my-dataset'!r}.",
            )
        root = settings().datasets_dir / clean
        if (root / "dataset.json").is_file():
            if not exist_ok:
                raise DatasetError(f"Dataset {name!r} already exists.", argument="name", value=name,
                                   hint="Use `Dataset.load(name)` or pass exist_ok=True.")
            return cls(root, min_side=min_side)
        ensure_dir(root / "images")
        atomic_write_json(root / "dataset.json", {"name": clean, "created_at": _now(), "items": []})
        return cls(root, min_side=min_side)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> Dataset:
        from masuka_nb.config import settings

        path = Path(name_or_path)
        if not (path / "dataset.json").is_file():
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
        atomic_write_json(self.root / "dataset.json", {
            **self.extra, "name": self.name, "created_at": self.created_at,
            "items": [asdict(i) for i in self.items],
        })

    def content_hash(self) -> str:
        """A hash of what training would see: kept images and their captions."""
        h = hashlib.sha256()
        for item in sorted(self.kept, key=lambda i: i.sha256):
            h.update(item.sha256.encode())
            h.update(b"\0" + item.caption.encode("utf-8") + b"\0")
        return h.hexdigest()[:16]

    def item(self, key: str) -> DatasetItem:
        for it in self.items:
            if key in (it.file, it.stem, it.sha256, it.source, PurePosixPath(it.file).name):
                return it
        raise DatasetError(f"No item {key!r} in dataset {self.name!r}.", argument="key", value=key,
                           hint="Use an item's file, stem, sha256 or original name.")

    # ---- user edits (never overwritten by captioning unless asked) ----
    def set_caption(self, key: str, caption: str) -> DatasetItem:
        it = self.item(key)
        it.caption = caption.strip()
        it.caption_source = "user"
        atomic_write_text(self.images_dir / f"{it.stem}.txt", it.caption + "\n")
        self.save()
        return it

    def set_keep(self, key: str, keep: bool) -> DatasetItem:
        it = self.item(key)
        it.keep = bool(keep)
        it.scores["keep_overridden"] = True
        self.save()
        return it

    def sync_captions(self) -> int:
        """Pick up captions edited in the `.txt` sidecars (e.g. in Colab's file editor). Returns how many changed."""
        changed = 0
        for it in self.items:
            side = self.images_dir / f"{it.stem}.txt"
            if side.is_file():
                text = side.read_text(encoding="utf-8").strip()
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
        side = self.images_dir / f"{stem}.txt"
        if side.is_file():  # a caption that came with the upload (e.g. kohya-style zip)
            item.caption, item.caption_source = side.read_text(encoding="utf-8").strip(), "user"
        self.items.append(item)
        known[sha] = known[source_sha] = item
        report.imported.append(item)
        self.save()  # after each file: a crash later never loses this one

    def _import_stream(self, entries: Iterable[tuple[str, bytes | Exception, str | None]]) -> ImportReport:
        """entries: (source name, bytes or the error met reading it, caption text that came with it)."""
        report = ImportReport()
        known = self._known()
        ensure_dir(self.images_dir)
        for source, data, caption in entries:
            if isinstance(data, Exception):
                report.rejected.append(Rejection(source, "unreadable", str(data)))
                continue
            try:
                before = len(report.imported)
                self._import_one(source, data, report, known)
                if caption and len(report.imported) > before:
                    item = report.imported[-1]
                    item.caption, item.caption_source = caption.strip(), "user"
                    atomic_write_text(self.images_dir / f"{item.stem}.txt", item.caption + "\n")
                    self.save()
            except OSError as exc:  # disk full, Drive gone: stop, but what is saved stays saved
                from masuka_nb.errors import StorageError

                raise StorageError(f"Writing {source} into {self.root} failed: {exc}.", argument="path",
                                   value=str(self.root), hint="Check free space and that Drive is mounted.",
                                   ) from exc
        log.info("dataset.import", dataset=self.name, imported=len(report.imported),
                 duplicates=len(report.duplicates), rejected=len(report.rejected))
        return report

    def import_files(self, paths_or_bytes: Iterable[str | os.PathLike[str] | bytes | tuple[str, bytes]] | str
                     | os.PathLike[str] | bytes) -> ImportReport:
        """Import images given as paths, URLs (http(s), gs://, s3://), raw bytes or (name, bytes) pairs (a Colab upload)."""
        if isinstance(paths_or_bytes, (str, os.PathLike, bytes, bytearray, dict)):
            paths_or_bytes = [paths_or_bytes]  # one item; a dict is Colab's files.upload() {name: bytes}
        return self._import_stream(self._entries(paths_or_bytes))

    def _entries(self, things: Iterable[Any]) -> Iterator[tuple[str, bytes | Exception, str | None]]:
        for n, thing in enumerate(things):
            if isinstance(thing, (bytes, bytearray)):
                yield f"upload-{n}", bytes(thing), None
            elif isinstance(thing, tuple) and len(thing) == 2:
                yield str(thing[0]), bytes(thing[1]), None
            elif isinstance(thing, dict):  # Colab's files.upload() returns {name: bytes}
                for name, data in thing.items():
                    yield str(name), bytes(data), None
            elif isinstance(thing, str) and thing.startswith(("http://", "https://", "gs://", "gcs://", "s3://")):
                from masuka_nb.hosted.download import download_bytes

                try:  # one image at a URL or in a bucket, through the one downloader (size-capped)
                    yield thing, download_bytes(thing, max_bytes=MAX_URL_IMAGE_BYTES, argument="paths_or_bytes"), None
                except MasukaError as exc:
                    yield thing, exc, None
            else:
                path = Path(thing)
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    yield str(path), exc, None
                    continue
                side = path.with_suffix(".txt")
                caption = side.read_text(encoding="utf-8") if side.is_file() else None
                yield str(path), data, caption

    def import_folder(self, path: str | os.PathLike[str], *, recursive: bool = True,
                      max_file_bytes: int = 64 * 1024**2) -> ImportReport:
        """Import every file of a folder (or of a gs:// / s3:// bucket folder) whose extension is an image one."""
        from masuka_nb.storage import is_bucket_url

        if is_bucket_url(path):
            return self._import_stream(_bucket_entries(str(path), recursive=recursive, max_bytes=max_file_bytes))
        folder = Path(path)
        if not folder.is_dir():
            raise DatasetError(f"{folder} is not a folder.", argument="path", value=str(path),
                               hint="Pass the folder that holds the images.")
        files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir()) if p.is_file())
        images = [p for p in files if p.suffix.lower() != ".txt" and not p.name.startswith(".")]
        return self._import_stream(self._entries(images))

    def import_zip(self, path_or_url: str | os.PathLike[str], *, limits: ZipLimits = ZipLimits()) -> ImportReport:
        """Import the images of a zip file, or of a zip at an http(s), gs:// or s3:// URL, read safely in memory."""
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
        target = Path(path) if path else self.root / f"{self.name}.zip"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
            for it in self.kept:
                zf.write(self.path_of(it), PurePosixPath(it.file).name)
                if it.caption:
                    zf.writestr(f"{it.stem}.txt", it.caption + "\n")
        return target

    # ---- curation and captioning live in their own modules ----
    # ---- inbox: a folder to drop many or large files into (Colab's upload widget fails from 1 MB) ----
    @property
    def inbox(self) -> Path:
        """`<dataset>/inbox`: put photos or zips here (Colab's Files pane, Drive), then `import_inbox()`."""
        return self.root / "inbox"

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
        from masuka_nb.lora.curate import curate

        return curate(self, reference_image=reference_image, **kwargs)

    def caption(self, model: str = "florence-2", trigger_word: str | None = None, overwrite: bool = False,
                **kwargs: Any):
        """Caption every image with `.txt` sidecars (see `masuka_nb.lora.caption`)."""
        from masuka_nb.lora.caption import caption_dataset

        return caption_dataset(self, model=model, trigger_word=trigger_word, overwrite=overwrite, **kwargs)


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
    from masuka_nb.buckets import list_files, read_bytes

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
