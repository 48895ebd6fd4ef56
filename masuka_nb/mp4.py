"""Clips as files: RGB frames written as H.264 MP4 (yuv420p, plays in every browser and in Colab's player)
with imageio-ffmpeg's bundled ffmpeg, and read back (frame count, fps, size, codec) by the same ffmpeg.

A write goes to a temporary file that is renamed onto the target at the end, so a cancelled or failed
write never leaves half a clip behind. The one H.264 writer for every engine (local video, `to_video`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masuka_nb.errors import DependencyMissingError, InvalidRequestError

__all__ = ["Mp4Info", "read_mp4", "write_mp4"]


def write_mp4(frames: list[Any], path: Path, *, fps: float, quality: int | None = None) -> Path:
    """Write RGB frames (PIL images) as H.264 MP4 (yuv420p, plays everywhere) with imageio-ffmpeg, into a
    temporary file renamed onto `path` at the end: a cancelled or failed write leaves nothing behind.

    `quality` None is x264's CRF 18 (visually lossless); 0–10 is imageio's quality scale. Odd sizes are
    padded by one edge pixel (yuv420p needs even sides)."""
    import os

    import numpy as np

    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise DependencyMissingError("Writing MP4 needs the imageio-ffmpeg package.", argument="video",
                                     value="mp4", hint="pip install imageio-ffmpeg (Colab has it).") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial.mp4")
    width, height = frames[0].size
    pw, ph = width + width % 2, height + height % 2
    crf = ["-crf", "18"] if quality is None else []
    writer = imageio_ffmpeg.write_frames(str(tmp), (pw, ph), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=quality,
                                         output_params=[*crf, "-movflags", "+faststart"],
                                         ffmpeg_log_level="error")
    try:
        writer.send(None)
        for i, frame in enumerate(frames):
            if frame.size != (width, height):
                raise InvalidRequestError(f"Frame {i} is {frame.size[0]}×{frame.size[1]}, not {width}×{height}.",
                                          argument="frames", value=i, hint="Every frame of a clip has one size.")
            arr = np.asarray(frame.convert("RGB"), dtype=np.uint8)
            if (pw, ph) != (width, height):
                arr = np.pad(arr, ((0, ph - height), (0, pw - width), (0, 0)), mode="edge")
            writer.send(np.ascontiguousarray(arr))
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class Mp4Info:
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str


def read_mp4(path: str | Path) -> Mp4Info:
    """Frame count, fps, size and codec of an MP4, read back by ffmpeg (decoding every frame)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    codec = str(meta.get("codec", "")).split()[0]
    return Mp4Info(count, float(meta["fps"]), int(meta["size"][0]), int(meta["size"][1]), codec)
