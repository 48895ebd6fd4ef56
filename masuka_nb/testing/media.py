"""Small, real media files made in code: an MP4 of JPEG frames, a safetensors file, a tar.

The MP4 is an ISO base-media file with one Motion-JPEG video track ('mp4v', object type 0x6C):
ffmpeg plays it and MASUKA can take its first frame without a video decoder.
"""

from __future__ import annotations

import io
import json
import struct
import tarfile
from functools import lru_cache

__all__ = ["safetensors_bytes", "tar_with", "tiny_mp4"]


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _desc(tag: int, payload: bytes) -> bytes:
    return bytes([tag, len(payload)]) + payload


def _frames(n: int, width: int, height: int) -> list[bytes]:
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        img = Image.new("RGB", (width, height), (20 + 30 * i % 200, 80, 160))
        ImageDraw.Draw(img).rectangle([i * 4 % width, 8, i * 4 % width + 12, 20], fill=(250, 220, 40))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        out.append(buf.getvalue())
    return out


@lru_cache(maxsize=8)
def tiny_mp4(frames: int = 8, width: int = 64, height: int = 48, fps: int = 8, pad_to: int = 0) -> bytes:
    """A valid MP4 of `frames` JPEG frames; `pad_to` grows it with a `free` box (for download tests)."""
    samples = _frames(frames, width, height)
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    mdat_payload = b"".join(samples)
    mdat = _box(b"mdat", mdat_payload)
    first_offset = len(ftyp) + 8
    timescale, delta = fps * 100, 100
    duration = frames * delta
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full(b"mvhd", struct.pack(">IIII", 0, 0, timescale, duration) + struct.pack(">IH", 0x10000, 0x100)
                 + b"\0" * 10 + matrix + b"\0" * 24 + struct.pack(">I", 2))
    tkhd = _full(b"tkhd", struct.pack(">IIIII", 0, 0, 1, 0, duration) + b"\0" * 8 + struct.pack(">HHHH", 0, 0, 0, 0)
                 + matrix + struct.pack(">II", width << 16, height << 16), flags=3)
    mdhd = _full(b"mdhd", struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    hdlr = _full(b"hdlr", struct.pack(">I", 0) + b"vide" + b"\0" * 12 + b"VideoHandler\0")
    vmhd = _full(b"vmhd", b"\0" * 8, flags=1)
    dinf = _box(b"dinf", _full(b"dref", struct.pack(">I", 1) + _full(b"url ", b"", flags=1)))
    dec = _desc(0x04, bytes([0x6C, 0x11]) + b"\0\0\0" + struct.pack(">II", 0, 0))
    esds = _full(b"esds", _desc(0x03, struct.pack(">HB", 1, 0) + dec + _desc(0x06, b"\x02")))
    entry = (b"\0" * 6 + struct.pack(">H", 1) + b"\0" * 16 + struct.pack(">HH", width, height)
             + struct.pack(">II", 0x480000, 0x480000) + b"\0" * 4 + struct.pack(">H", 1) + b"\0" * 32
             + struct.pack(">Hh", 0x18, -1) + esds)
    stsd = _full(b"stsd", struct.pack(">I", 1) + _box(b"mp4v", entry))
    stts = _full(b"stts", struct.pack(">III", 1, frames, delta))
    stsc = _full(b"stsc", struct.pack(">IIII", 1, 1, frames, 1))
    stsz = _full(b"stsz", struct.pack(">II", 0, frames) + b"".join(struct.pack(">I", len(s)) for s in samples))
    stco = _full(b"stco", struct.pack(">II", 1, first_offset))
    stbl = _box(b"stbl", stsd + stts + stsc + stsz + stco)
    minf = _box(b"minf", vmhd + dinf + stbl)
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    moov = _box(b"moov", mvhd + trak)
    data = ftyp + mdat + moov
    if pad_to > len(data) + 8:
        data += _box(b"free", b"\0" * (pad_to - len(data) - 8))
    return data


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file from raw buffers: name -> (dtype like "F32", shape, bytes)."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(raw for _, _, raw in tensors.values())


def tar_with(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
