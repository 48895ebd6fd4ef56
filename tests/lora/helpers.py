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


def layered_psd(width: int = 300, height: int = 280, colors=((200, 40, 40), (40, 40, 200))) -> bytes:
    """A valid multi-layer RGB Photoshop file, written from the format spec: one full-size layer per
    colour (raw channel data) and the flattened composite (the last colour)."""
    import struct

    def layer_record(name: bytes) -> bytes:
        rec = struct.pack(">iiii", 0, 0, height, width) + struct.pack(">H", 3)
        for channel in (0, 1, 2):
            rec += struct.pack(">hI", channel, 2 + width * height)
        rec += b"8BIMnorm" + bytes([255, 0, 0, 0])
        padded = bytes([len(name)]) + name
        padded += b"\0" * (-len(padded) % 4)
        extra = struct.pack(">II", 0, 0) + padded
        return rec + struct.pack(">I", len(extra)) + extra

    records = b"".join(layer_record(f"layer {i}".encode()) for i in range(len(colors)))
    pixels = b""
    for color in colors:
        for value in color:
            pixels += struct.pack(">H", 0) + bytes([value]) * (width * height)
    layer_info = struct.pack(">h", len(colors)) + records + pixels
    layer_info += b"\0" * (len(layer_info) % 2)
    layer_section = struct.pack(">I", len(layer_info)) + layer_info + struct.pack(">I", 0)
    header = b"8BPS" + struct.pack(">H", 1) + b"\0" * 6 + struct.pack(">HIIHH", 3, height, width, 8, 3)
    composite = struct.pack(">H", 0) + b"".join(bytes([v]) * (width * height) for v in colors[-1])
    return header + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", len(layer_section)) + \
        layer_section + composite
