"""Image sequences to video: H.264 MP4 (plays in browsers and Colab) or an animated GIF.

    mk.to_video(result.images, fps=8)                          # MP4 next to your outputs
    mk.to_video(batch_result, format="gif", hold=2, size=(256, 256))
    mk.to_video(grid_result, axis="x", fps=2)                  # walk along a grid axis
    mk.to_video(mk.history.query(kind="image", text="fox"))    # a history selection

MP4 goes through imageio-ffmpeg (the ffmpeg binary it ships; Colab has it installed), libx264 with
yuv420p so every browser plays it; odd sizes are padded to even. GIF goes through Pillow. `hold`
repeats each frame; `interpolate=k` inserts k-1 cross-faded frames between neighbours.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError
from masuka_nb.image.request import open_image
from masuka_nb.mp4 import write_mp4
from masuka_nb.storage import ensure_dir, refuse_special, storage_error

__all__ = ["FORMATS", "to_video"]

FORMATS = ("mp4", "gif")
MAX_FRAMES = 20_000


def to_video(
    images_or_paths: Any,
    *,
    fps: float = 8,
    format: str = "mp4",
    size: tuple[int, int] | None = None,
    hold: int = 1,
    interpolate: int = 1,
    axis: str = "x",
    path: str | Path | None = None,
    quality: int = 8,
    loop: bool = True,
) -> Path:
    """Write the frames as a clip and return its path (default: `outputs_dir/clips/clip-<time>.<format>`).

    `images_or_paths`: PIL images, image paths, a batch or generation result, a grid result (its cells along
    `axis`), or history records. Frames must share one size unless `size=(w, h)` resizes them all.
    """
    if format not in FORMATS:
        raise InvalidRequestError(f"Unknown video format {format!r}.", argument="format", value=format,
                                  hint="Use format=\"mp4\" or format=\"gif\".")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0 or fps > 240:
        raise InvalidRequestError("`fps` must be a number above 0 (at most 240).", argument="fps", value=fps,
                                  hint="e.g. fps=8")
    for name, value in (("hold", hold), ("interpolate", interpolate)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 60:
            raise InvalidRequestError(f"`{name}` must be a whole number from 1 to 60.", argument=name, value=value,
                                      hint=f"{name}=1 leaves the frames as they are.")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 10:
        raise InvalidRequestError("`quality` must be a whole number from 1 to 10.", argument="quality", value=quality,
                                  hint="quality=8 is the default; 10 is the best.")
    if path is not None and (not isinstance(path, (str, os.PathLike)) or not Path(path).name):
        raise InvalidRequestError("`path` must be a file path (or None for the outputs folder).", argument="path",
                                  value=path, hint="e.g. path=\"clips/walk.mp4\"")
    frames = _frames(images_or_paths, axis)
    frames = _sized(frames, size)
    frames = _expand(frames, hold=hold, interpolate=interpolate)
    if len(frames) > MAX_FRAMES:
        raise InvalidRequestError(f"{len(frames)} frames (limit {MAX_FRAMES}).", argument="hold",
                                  value=len(frames), hint="Use a smaller hold or interpolate.")
    out = Path(path) if path is not None else _default_path(format)
    if out.suffix.lower() != f".{format}":
        out = out.with_suffix(f".{format}")
    refuse_special(out)  # never rename over a device or a pipe
    ensure_dir(out.parent)
    tmp = out.with_name(f".{out.stem}.incomplete{out.suffix}")
    try:
        (_write_mp4 if format == "mp4" else _write_gif)(frames, tmp, fps=float(fps), quality=quality, loop=loop)
        tmp.replace(out)  # never a half-written clip under the final name
    except OSError as exc:
        if exc.errno is None:
            raise
        raise storage_error(exc, path=out, what="the clip", saved="No clip was written; the frames are "
                            "unchanged.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _default_path(fmt: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return settings().outputs_dir / "clips" / f"clip-{stamp}.{fmt}"


def _frames(source: Any, axis: str) -> list[Any]:
    from PIL import Image

    items: Sequence[Any]
    if hasattr(source, "cells") and hasattr(source, "axes") and not isinstance(source, (list, tuple)):
        items = _grid_frames(source, axis)
    elif hasattr(source, "images") and not isinstance(source, (list, tuple)):
        items = list(source.images)
    elif isinstance(source, (str, Path, Image.Image)):
        items = [source]
    else:
        try:
            items = list(source)
        except TypeError:
            raise InvalidRequestError("`images_or_paths` must be images, paths, a result or history records.",
                                      argument="images_or_paths", value=source,
                                      hint="e.g. to_video(result.images)") from None
    frames = []
    for item in items:
        if hasattr(item, "paths") and hasattr(item, "kind"):  # a history record
            frames += [_open(p) for p in item.paths if str(p).lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]
        elif isinstance(item, Image.Image):
            frames.append(item.convert("RGB"))
        elif isinstance(item, (str, Path)):
            frames.append(_open(item))
        else:
            raise InvalidRequestError(f"A frame must be a PIL image or a path, not {type(item).__name__}.",
                                      argument="images_or_paths", value=item, hint="e.g. to_video(result.images)")
    if not frames:
        raise InvalidRequestError("There are no frames to encode.", argument="images_or_paths", value=[],
                                  hint="Pass at least one image.")
    return frames


def _grid_frames(result: Any, axis: str) -> list[Any]:
    if axis not in result.axes:
        raise InvalidRequestError(f"The grid has no axis {axis!r}.", argument="axis", value=axis,
                                  hint=f"Axes: {', '.join(result.axes)}.")
    # Frames walk the chosen axis; the other axes stay at their first value.
    fixed = {k: v[1][0] for k, v in result.axes.items() if k != axis}
    cells = [c for c in result.cells if all(getattr(c, k) == v for k, v in fixed.items())]
    order = {repr(v): i for i, v in enumerate(result.axes[axis][1])}
    cells.sort(key=lambda c: order[repr(getattr(c, axis))])
    return [c.image for c in cells]


def _open(path: Any) -> Any:
    return open_image(Path(path))


def _sized(frames: list[Any], size: tuple[int, int] | None) -> list[Any]:
    from PIL import Image

    if size is not None:
        if not (isinstance(size, (tuple, list)) and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= 8192 for v in size)):
            raise InvalidRequestError("`size` must be (width, height) in pixels, each 2 to 8192.", argument="size",
                                      value=size, hint="e.g. size=(512, 512)")
        return [f if f.size == tuple(size) else f.resize(tuple(size), Image.Resampling.LANCZOS) for f in frames]
    sizes = sorted({f.size for f in frames})
    if len(sizes) > 1:
        raise InvalidRequestError(f"The frames have {len(sizes)} different sizes: {sizes[:4]}.", argument="size",
                                  value=sizes[:4], hint=f"Pass size={sizes[-1]} to resize them all to one size.")
    return frames


def _expand(frames: list[Any], *, hold: int, interpolate: int) -> list[Any]:
    from PIL import Image

    out = []
    for i, frame in enumerate(frames):
        out += [frame] * hold
        if interpolate > 1 and i + 1 < len(frames):
            nxt = frames[i + 1]
            out += [Image.blend(frame, nxt, k / interpolate) for k in range(1, interpolate)]
    return out


def _write_mp4(frames: list[Any], path: Path, *, fps: float, quality: int, loop: bool) -> None:
    write_mp4(frames, path, fps=fps, quality=quality)  # MP4 has no loop flag: players loop it themselves


def _write_gif(frames: list[Any], path: Path, *, fps: float, quality: int, loop: bool) -> None:
    duration = max(20, round(1000 / fps))  # GIF delays are in 1/100 s; browsers clamp below 20 ms
    first, rest = frames[0], frames[1:]
    extra = {"loop": 0} if loop else {}  # no loop key: play once
    # Pillow folds identical neighbours (a `hold`) into one frame shown longer: same timing, smaller file.
    first.save(path, format="GIF", save_all=True, append_images=rest, duration=duration, optimize=False,
               disposal=1, **extra)
