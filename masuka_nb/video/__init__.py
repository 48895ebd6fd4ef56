"""Hosted video: `VideoGenerator`, its results and jobs, and cost estimates.

Light on purpose: the names resolve on first use, so `import masuka_nb.video` loads no httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["CostEstimate", "VideoGenerator", "VideoJob", "VideoResult", "list_video_models"]

_LAZY = {
    "CostEstimate": "masuka_nb.video.cost",
    "VideoGenerator": "masuka_nb.video.generator",
    "VideoJob": "masuka_nb.video.generator",
    "VideoResult": "masuka_nb.video.generator",
    "list_video_models": "masuka_nb.video.catalog",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'masuka_nb.video' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from masuka_nb.video.catalog import list_video_models
    from masuka_nb.video.cost import CostEstimate
    from masuka_nb.video.generator import VideoGenerator, VideoJob, VideoResult
