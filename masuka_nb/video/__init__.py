"""Hosted video: `VideoGenerator`, its results and jobs, and cost estimates.

Light on purpose: the names resolve on first use, so `import masuka_nb.video` loads no httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masuka_nb._lazy import attach

__all__ = ["CostEstimate", "VideoGenerator", "VideoJob", "VideoRequest", "VideoResult", "list_video_models"]

_LAZY = {
    "CostEstimate": "masuka_nb.hosted.pricing",
    "VideoGenerator": "masuka_nb.video.generator",
    "VideoJob": "masuka_nb.video.generator",
    "VideoRequest": "masuka_nb.video.request",
    "VideoResult": "masuka_nb.video.result",
    "list_video_models": "masuka_nb.hosted.catalog",
}


__getattr__, __dir__ = attach(globals(), _LAZY)



if TYPE_CHECKING:
    from masuka_nb.hosted.catalog import list_video_models
    from masuka_nb.hosted.pricing import CostEstimate
    from masuka_nb.video.generator import VideoGenerator, VideoJob
    from masuka_nb.video.request import VideoRequest
    from masuka_nb.video.result import VideoResult
