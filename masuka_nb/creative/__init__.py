"""Batch and creative tools: prompt batches with templates and wildcards, X/Y/Z grids, style presets,
tiled upscaling (in `masuka_nb.image.upscaling`) and image sequences to MP4/GIF.

    import masuka_nb as mk
    mk.batch("a {red|blue} car, __style__", seeds=range(4))
    mk.grid("a lighthouse", x=("steps", [2, 4, 8]), y=("guidance", [2.5, 3.5]))
    mk.presets.list(); mk.to_video(result.images, fps=8, format="mp4")

This room sits on the image engine (it builds `image.job.GenerationJob`s through `image.generation`) and on
history/storage; the UI's Batch & grid panel calls only these functions. Modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masuka_nb._lazy import attach

__all__ = ["BatchResult", "GridResult", "Preset", "batch", "estimate", "expand", "grid", "presets", "to_video"]

_LAZY = {
    "BatchResult": "masuka_nb.creative.runner",
    "batch": "masuka_nb.creative.runner",
    "estimate": "masuka_nb.creative.runner",
    "GridResult": "masuka_nb.creative.grids",
    "grid": "masuka_nb.creative.grids",
    "Preset": "masuka_nb.creative.presets",
    "presets": ("masuka_nb.creative.presets", None),
    "expand": "masuka_nb.creative.templates",
    "to_video": "masuka_nb.creative.clips",
}

__getattr__, __dir__ = attach(globals(), _LAZY)

if TYPE_CHECKING:
    from masuka_nb.creative import presets
    from masuka_nb.creative.clips import to_video
    from masuka_nb.creative.grids import GridResult, grid
    from masuka_nb.creative.presets import Preset
    from masuka_nb.creative.runner import BatchResult, batch, estimate
    from masuka_nb.creative.templates import expand
