"""Fixtures for the LoRA studio: awkward image files made in code, small datasets, one trained run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.lora.helpers import encode, gradient, png_bomb


@pytest.fixture(scope="session")
def awkward_corpus() -> dict[str, bytes]:
    """name -> bytes for every kind of file users really upload."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    base = gradient(320, 280)
    cmyk = encode(base.convert("CMYK"), "JPEG", quality=95)
    sixteen = Image.fromarray((np.tile(np.linspace(0, 65535, 300), (300, 1))).astype(np.uint16))
    # EXIF orientation 6: the stored pixels are landscape, the photo is portrait.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode(gradient(400, 300), "JPEG", exif=exif.tobytes(), quality=95)
    full_jpeg = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)),
                       "JPEG", quality=90)
    frames = [Image.new("RGB", (300, 300), c) for c in ((250, 0, 0), (0, 250, 0), (0, 0, 250))]
    gif_buf = io.BytesIO()
    frames[0].save(gif_buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgba = gradient(300, 300).convert("RGBA")
    rgba.putalpha(Image.new("L", (300, 300), 0))  # fully transparent: flattened on white
    palette = gradient(300, 300, 2).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return {
        "plain.jpg": encode(gradient(300, 300, 1), "JPEG", quality=95),
        "cmyk.jpg": cmyk,
        "sixteen.png": encode(sixteen, "PNG"),
        "rotated.jpg": rotated,
        "truncated.jpg": full_jpeg[: len(full_jpeg) // 3],
        "empty.jpg": b"",
        "notes.jpg": b"these are my holiday notes, not a picture\n" * 5,
        "tiny.png": encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
        "bomb.png": png_bomb(),
        "photo.heic": encode(gradient(300, 300, 3), "HEIF", quality=90),
        "animated.gif": gif_buf.getvalue(),
        "transparent.png": encode(rgba, "PNG"),
        "palette.png": encode(palette, "PNG"),
        "modern.webp": encode(gradient(300, 300, 4), "WEBP", quality=90),
        "scan.tiff": encode(gradient(300, 300, 5), "TIFF"),
        "old.bmp": encode(gradient(300, 300, 6), "BMP"),
        "new.avif": encode(gradient(300, 300, 7), "AVIF"),
    }


@pytest.fixture
def dataset_of():
    """dataset_of(n, name=...) -> a Dataset with n distinct gradient images (in this test's home)."""
    from masuka_nb.lora import Dataset

    def make(n: int, name: str = "ds", size: tuple[int, int] = (256, 256)) -> Dataset:
        ds = Dataset.create(name)
        report = ds.import_files([(f"img{k}.png", encode(gradient(*size, k), "PNG")) for k in range(n)])
        assert len(report.imported) == n, report.summary()
        return ds

    return make


TRAIN_ARGS = dict(base="tiny-flux", trigger_word="mk", steps=16, learning_rate=1e-2, resolution=32,
                  checkpoint_every=4, target_modules="double-blocks")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_cache):
    """One finished tiny-flux run shared by the tests (its paths are absolute, in its own home)."""
    import os

    from masuka_nb.config import reset_configuration

    home = tmp_path_factory.mktemp("trained-home")
    mp = pytest.MonkeyPatch()
    for key in list(os.environ):
        if key.startswith("MASUKA_"):
            mp.delenv(key, raising=False)
    mp.setenv("MASUKA_HOME", str(home))
    mp.setenv("MASUKA_CACHE_DIR", str(tiny_cache))
    mp.setenv("MASUKA_PROGRESS", "off")
    reset_configuration()
    try:
        from masuka_nb.lora import Dataset, train

        ds = Dataset.create("overfit")
        ds.import_files([(f"img{k}.png", encode(gradient(256, 256 + 64 * k, k), "PNG")) for k in range(3)])
        # A fixed seed: the run is the same on every machine (seed None would pick a random one per session).
        run = train(ds, seed=0, sample_every=8, sample_prompts=["mk on a sofa"], sample_seeds=[0], **TRAIN_ARGS)
    finally:
        mp.undo()
        reset_configuration()
    return run


def image_array(im) -> np.ndarray:
    return np.asarray(im, dtype=np.float32)


def read_png(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im
