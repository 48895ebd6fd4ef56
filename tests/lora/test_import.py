"""Dataset import: awkward files, safe zips, URLs, de-duplication, and nothing lost on failure."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from functools import partial

import numpy as np
import pytest
from PIL import Image

from masuka_nb.errors import DatasetError, DownloadError
from masuka_nb.lora import Dataset
from tests.lora.helpers import encode, gradient

EXPECTED_REJECTIONS = {
    "truncated.jpg": "truncated",
    "empty.jpg": "empty",
    "notes.jpg": "not_an_image",
    "tiny.png": "too_small",
    "bomb.png": "decompression_bomb",
}


def test_awkward_corpus_each_file_imported_or_rejected_with_reason(awkward_corpus):
    ds = Dataset.create("awkward")
    report = ds.import_files(list(awkward_corpus.items()))
    rejected = {r.source: r.code for r in report.rejected}
    assert rejected == EXPECTED_REJECTIONS
    assert all(r.reason for r in report.rejected)
    imported = {it.source for it in report.imported}
    assert imported == set(awkward_corpus) - set(EXPECTED_REJECTIONS)
    for it in ds.items:
        path = ds.path_of(it)
        data = path.read_bytes()
        assert it.file == f"images/{it.stem}{path.suffix}"
        assert it.stem == hashlib.sha256(data).hexdigest()[:16] == it.sha256[:16]
        with Image.open(path) as im:
            assert im.mode == "RGB"
            assert (im.width, im.height) == (it.width, it.height)


def _stored(ds: Dataset, source: str) -> np.ndarray:
    item = next(i for i in ds.items if i.source == source)
    with Image.open(ds.path_of(item)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int32)


def test_conversions_keep_the_picture(awkward_corpus):
    ds = Dataset.create("conv")
    ds.import_files(list(awkward_corpus.items()))
    rotated = _stored(ds, "rotated.jpg")
    assert rotated.shape[:2] == (400, 300)  # EXIF orientation 6 turned 400×300 into portrait
    sixteen = _stored(ds, "sixteen.png")
    # 16-bit ramp 0..65535 must become 0..255, not a white image clipped at 255.
    assert sixteen[:, 0].mean() < 5 and sixteen[:, -1].mean() > 250 and 100 < sixteen.mean() < 155
    gif = _stored(ds, "animated.gif")
    assert gif[..., 0].mean() > 200 and gif[..., 1].mean() < 40  # first (red) frame
    transparent = _stored(ds, "transparent.png")
    assert transparent.min() >= 250  # fully transparent pixels flattened on white
    cmyk = _stored(ds, "cmyk.jpg")
    assert cmyk.std() > 20  # a real picture, not a flat colour
    notes = {i.source: i.notes for i in ds.items}
    assert any("EXIF" in n for n in notes["rotated.jpg"])
    assert any("first frame" in n for n in notes["animated.gif"])
    assert any("CMYK" in n for n in notes["cmyk.jpg"])


def test_reimport_is_a_no_op_and_dataset_json_follows_the_contract(awkward_corpus):
    ds = Dataset.create("again")
    first = ds.import_files(list(awkward_corpus.items()))
    files_before = sorted(p.name for p in ds.images_dir.iterdir())
    second = ds.import_files(list(awkward_corpus.items()))
    assert second.imported == []
    assert len(second.duplicates) == len(first.imported)
    assert sorted(p.name for p in ds.images_dir.iterdir()) == files_before
    manifest = json.loads((ds.root / "dataset.json").read_text())
    assert manifest["name"] == "again" and manifest["created_at"]
    for entry in manifest["items"]:
        assert {"file", "sha256", "width", "height", "caption", "caption_source", "keep", "scores", "source"} <= set(entry)
        assert entry["caption_source"] in ("user", "florence-2", "blip-2", "none")


def test_one_bad_file_never_loses_the_others(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encode(gradient(300, 300), "PNG"))

    def uploads():
        yield str(good)
        yield str(tmp_path / "missing.png")  # unreadable: rejected, not fatal
        yield ("second.png", encode(gradient(300, 300, 3), "PNG"))
        raise RuntimeError("the upload widget died")

    ds = Dataset.create("crashy")
    with pytest.raises(RuntimeError):
        ds.import_files(uploads())
    reloaded = Dataset.load("crashy")
    assert sorted(i.source for i in reloaded.items) == sorted([str(good), "second.png"])


def test_colab_upload_dict_is_accepted():
    ds = Dataset.create("colab")
    report = ds.import_files({"a.png": encode(gradient(300, 300, 1), "PNG"), "b.png": encode(gradient(300, 300, 2), "PNG")})
    assert sorted(i.source for i in report.imported) == ["a.png", "b.png"]


def test_min_side_is_configurable():
    ds = Dataset.create("small", min_side=64)
    report = ds.import_files([("a.png", encode(gradient(100, 80), "PNG"))])
    assert len(report.imported) == 1
    strict = Dataset.create("strict")
    assert strict.import_files([("a.png", encode(gradient(100, 80), "PNG"))]).rejected[0].code == "too_small"


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_is_read_safely(tmp_path):
    archive = tmp_path / "upload.zip"
    archive.write_bytes(_zip({
        "photos/a.png": encode(gradient(300, 300, 1), "PNG"),
        "photos/a.txt": "mk, a red square on a table",
        "../../escape.png": encode(gradient(300, 300, 2), "PNG"),
        "/abs/root.png": encode(gradient(300, 300, 3), "PNG"),
        "bomb.bmp": b"\0" * 5_000_000,  # compresses ≈1000:1
        "__MACOSX/._a.png": b"junk",
    }))
    ds = Dataset.create("zipped")
    report = ds.import_zip(archive)
    assert [i.source.split("!")[1] for i in report.imported] == ["photos/a.png"]
    reasons = {r.source.split("!")[1]: r.reason for r in report.rejected}
    assert "escapes" in reasons["../../escape.png"]
    assert "absolute" in reasons["/abs/root.png"]
    assert "ratio" in reasons["bomb.bmp"]
    assert not (tmp_path / "escape.png").exists() and not (ds.root.parent / "escape.png").exists()
    item = report.imported[0]
    assert item.caption == "mk, a red square on a table" and item.caption_source == "user"
    assert (ds.images_dir / f"{item.stem}.txt").read_text().strip() == item.caption


def test_not_a_zip_is_a_dataset_error(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(DatasetError) as err:
        Dataset.create("bad").import_zip(bad)
    assert err.value.argument == "path_or_url"


@pytest.fixture
def zip_server(tmp_path):
    (tmp_path / "set.zip").write_bytes(_zip({f"p{k}.png": encode(gradient(300, 300, k), "PNG") for k in range(3)}))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_import_zip_from_url(zip_server):
    ds = Dataset.create("remote")
    report = ds.import_zip(f"{zip_server}/set.zip")
    assert len(report.imported) == 3 and not report.rejected
    with pytest.raises(DownloadError) as err:  # a plain URL is a download, not a provider
        ds.import_zip(f"{zip_server}/missing.zip")
    assert err.value.code == "DOWNLOAD_FAILED" and err.value.argument == "path_or_url"
    assert err.value.details["status"] == 404


def test_import_folder_and_user_caption_edits(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    (folder / "a.png").write_bytes(encode(gradient(300, 300, 1), "PNG"))
    (folder / "a.txt").write_text("my own words")
    (folder / "b.jpg").write_bytes(encode(gradient(300, 300, 2), "JPEG"))
    ds = Dataset.create("folder")
    report = ds.import_folder(folder)
    assert len(report.imported) == 2
    a = ds.item(str(folder / "a.png"))
    assert a.caption == "my own words" and a.caption_source == "user"
    b = ds.item(str(folder / "b.jpg"))
    (ds.images_dir / f"{b.stem}.txt").write_text("edited in the file browser\n")
    assert ds.sync_captions() == 1
    assert Dataset.load("folder").item(b.stem).caption == "edited in the file browser"


def test_bad_dataset_name():
    with pytest.raises(DatasetError) as err:
        Dataset.create("../etc")
    assert err.value.argument == "name"


def test_cloud_trainer_reads_our_dataset_folder():
    """The hosted-APIs room zips this folder for fal/Replicate: the layout must be what it reads."""
    from masuka_nb.lora.cloud import build_dataset_zip

    ds = Dataset.create("for-cloud")
    ds.import_files([(f"p{k}.png", encode(gradient(300, 300, k), "PNG")) for k in range(3)])
    ds.set_caption(ds.items[0].file, "mk, on the beach")
    ds.set_keep(ds.items[2].file, False)
    data, _digest, count = build_dataset_zip(ds)
    assert count == 2
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read(f"{ds.items[0].stem}.txt").decode() == "mk, on the beach"
        assert f"{ds.items[2].stem}.png" not in zf.namelist()


def test_heic_without_the_plugin_is_rejected_with_the_fix(awkward_corpus, monkeypatch):
    from masuka_nb.lora import imageio

    monkeypatch.setattr(imageio, "_heif_state", False)  # as on a machine without the `heic` extra
    report = Dataset.create("no-heif").import_files([("photo.heic", awkward_corpus["photo.heic"])])
    assert report.rejected[0].code == "heif_unsupported"
    assert "pillow-heif" in report.rejected[0].reason


def test_a_layered_psd_imports_as_its_flattened_composite():
    from tests.lora.helpers import layered_psd

    ds = Dataset.create("psd")
    report = ds.import_files([("poster.psd", layered_psd(colors=((200, 40, 40), (40, 40, 200))))])
    assert len(report.imported) == 1, report.summary()
    with Image.open(ds.path_of(ds.items[0])) as im:
        assert im.size == (300, 280) and im.convert("RGB").getpixel((10, 10)) == (40, 40, 200)


EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 300 300
%%EndComments
newpath 0 0 moveto 300 0 lineto 300 300 lineto 0 300 lineto closepath 0.5 setgray fill
showpage
%%EOF
"""


def test_eps_without_ghostscript_says_what_is_missing_not_damaged():
    import shutil

    from masuka_nb.lora.imageio import ImageRejected, decode_image

    if shutil.which("gs"):
        assert decode_image(EPS, "drawing.eps").image.size[0] >= 256
        return
    with pytest.raises(ImageRejected) as err:
        decode_image(EPS, "drawing.eps")
    assert err.value.code == "eps_needs_ghostscript"
    assert "Ghostscript" in err.value.reason and "apt-get install -y ghostscript" in err.value.reason
    assert "damaged" not in err.value.reason
