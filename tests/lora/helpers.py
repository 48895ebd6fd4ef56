"""Image helpers for the LoRA studio tests (made in code, no files on disk)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gradient(w: int, h: int, k: int = 0) -> Image.Image:
    """A smooth, sharp-edged test picture; `k` changes it enough to defeat perceptual hashes."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * (k + 1) * 255 // max(w, 1)) % 256
    g = (yy * 255 // max(h, 1) + 40 * k) % 256
    b = ((xx // 16 + yy // 16) % 2) * (120 + 30 * k % 130)
    return Image.fromarray(np.stack([r, g, b], -1).astype(np.uint8))


def png_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A PNG whose header claims 1.6 gigapixels with a few bytes of data (a decompression bomb)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def photo(k: int, w: int = 320, h: int = 320) -> Image.Image:
    """A photo-like picture: large soft shapes (what perceptual hashes see) plus fine sharp grain
    (what a blur score sees), different for every `k`."""
    rng = np.random.default_rng(1000 + k)
    coarse = Image.fromarray(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    grain = rng.integers(-30, 30, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(coarse, dtype=np.int32) + grain, 0, 255).astype(np.uint8))
