"""Small, real media files made in code: an H.264 MP4, a safetensors file, a tar.

The MP4 is what a provider sends: H.264 (yuv420p, `+faststart`) in an ISO base-media file, encoded by
the ffmpeg that imageio-ffmpeg ships (Colab's image has it), so browsers play the simulator's clips.
Motion-JPEG MP4s (what this module wrote before) are rejected by Chromium with
DEMUXER_ERROR_NO_SUPPORTED_STREAMS.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import tarfile
import tempfile
from functools import lru_cache

__all__ = ["safetensors_bytes", "tar_with", "tiny_mp4"]


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _frames(n: int, width: int, height: int) -> list[bytes]:
    """Raw RGB frames: a moving yellow bar on a shifting blue, so a player visibly plays."""
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        img = Image.new("RGB", (width, height), ((20 + 30 * i) % 200, 80, 160))
        x = i * 4 % width
        ImageDraw.Draw(img).rectangle([x, height // 6, x + max(4, width // 5), height // 6 + max(4, height // 4)],
                                      fill=(250, 220, 40))
        out.append(img.tobytes())
    return out


@lru_cache(maxsize=8)
def tiny_mp4(frames: int = 8, width: int = 64, height: int = 48, fps: int = 8, pad_to: int = 0) -> bytes:
    """A valid H.264 MP4 of `frames` frames (even sizes); `pad_to` grows it with a trailing `free`
    box (for download tests)."""
    import imageio_ffmpeg

    if width % 2 or height % 2:
        raise ValueError(f"H.264 (yuv420p) needs even sizes, not {width}×{height}")
    fd, name = tempfile.mkstemp(suffix=".mp4", prefix="masuka-clip-")
    os.close(fd)
    try:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264",
               "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-profile:v", "baseline", "-movflags", "+faststart",
               "-threads", "1", name]
        subprocess.run(cmd, input=b"".join(_frames(frames, width, height)), check=True, capture_output=True,
                       timeout=120)
        with open(name, "rb") as fh:
            data = fh.read()
    finally:
        os.unlink(name)
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


def noise_pngs(n: int, size: int = 256, *, prefix: str = "img") -> list[tuple[str, bytes]]:
    """`n` (name, PNG bytes) pairs of seeded noise pictures, each different: a dataset to import in tests and
    benchmarks (`Dataset.import_files(noise_pngs(2))`)."""
    import io

    import numpy as np
    from PIL import Image

    out = []
    for k in range(n):
        buf = io.BytesIO()
        Image.fromarray((np.random.default_rng(k).random((size, size, 3)) * 255).astype("uint8")).save(buf, "PNG")
        out.append((f"{prefix}{k}.png", buf.getvalue()))
    return out
