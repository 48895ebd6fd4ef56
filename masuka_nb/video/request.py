"""One request for hosted video, shared by `estimate`, `submit` and `generate`.

    VideoRequest(prompt="waves at night")                       # the model's own seconds/resolution
    VideoRequest(prompt="a fox", model="kling-v3", seconds=12)  # Kling 3 makes 3-15 s

`seconds`, `resolution` and `aspect_ratio` left as None take the chosen model's defaults (see
`masuka_nb.hosted.catalog.model_info`), so a request that names nothing is sent exactly as asked.
`motion_intensity` is None unless the user sets it: then it is mapped where a route has a motion
control, warned about once where it has none, and refused in strict mode.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from masuka_nb.errors import InvalidRequestError
from masuka_nb.hosted.catalog import DEFAULT_VIDEO_MODEL

__all__ = ["DEFAULT_MODEL", "VideoRequest"]

# A live model, cheap for what it makes (8 s at 1080p with audio): see the catalog for its sources.
DEFAULT_MODEL = DEFAULT_VIDEO_MODEL  # the catalog says which (no pydantic needed to read it)
MAX_PROMPT_CHARS = 5000
_RESOLUTION = re.compile(r"^\d{1,5}p$|^\dk$", re.IGNORECASE)  # "720p", "1080p", "4k" (tiny local models: "32p")
_ASPECT = re.compile(r"^(\d+(?:\.\d+)?)[:x](\d+(?:\.\d+)?)$")


class VideoRequest(BaseModel):
    """What to make. Every field has the default a notebook call gets; `build(...)` checks the values."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    prompt: str = ""
    model: str = DEFAULT_MODEL
    seconds: float | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    image: Any = None
    video: str | None = None
    motion_intensity: float | None = None
    provider: str | None = None
    max_cost: float | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt has {len(v)} characters (limit {MAX_PROMPT_CHARS})")
        return v

    @field_validator("seconds", "max_cost", "motion_intensity", mode="before")
    @classmethod
    def _a_number(cls, v: Any) -> Any:
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise ValueError("must be a number")  # not True, not "5": a notebook typo should not become 1 s
        return v

    @field_validator("seconds", "max_cost")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise ValueError("must be a positive number")
        return v

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v: str | None) -> str | None:
        if v is not None and not _RESOLUTION.match(v):
            raise ValueError("must look like '720p', '1080p' or '4k'")
        return v

    @field_validator("aspect_ratio")
    @classmethod
    def _aspect(cls, v: str | None) -> str | None:
        m = _ASPECT.match(v) if v is not None else None
        if v is not None and (m is None or not float(m.group(1)) > 0 or not float(m.group(2)) > 0):
            raise ValueError("must be width:height, like '16:9' or '9:16'")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a model")
        return v

    @field_validator("motion_intensity")
    @classmethod
    def _unit(cls, v: float | None) -> float | None:
        if v is not None and not 0 <= v <= 1:
            raise ValueError("must be between 0 and 1")
        return v

    @field_validator("video")
    @classmethod
    def _video(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("https://") or v.startswith("http://")):
            raise ValueError("must be an http(s) URL of the clip (the provider fetches it)")
        return v

    @classmethod
    def build(cls, prompt: Any = "", *, duration: Any = None, **fields: Any) -> VideoRequest:
        """A checked request from keyword arguments; `duration` is the old name of `seconds`."""
        if isinstance(prompt, VideoRequest):  # a whole request: the keyword defaults do not apply
            return prompt
        if duration is not None:
            if fields.get("seconds") is not None and fields["seconds"] != duration:
                raise InvalidRequestError("Give `seconds` or its old name `duration`, not both.", argument="duration",
                                          value=duration, hint=f"Use seconds={fields['seconds']!r} alone.")
            fields["seconds"] = duration
        try:
            return cls(prompt=prompt, **fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first.get("loc") else "request"
            value = fields.get(name, prompt if name == "prompt" else None)
            raise InvalidRequestError(f"`{name}` cannot be {value!r}: {first['msg']}.", argument=name, value=value,
                                      hint=_HINTS.get(name, "See `help(masuka_nb.video.VideoRequest)`.")) from None


_HINTS = {
    "seconds": "Leave it unset for the model's own length, or give a positive number of seconds.",
    "aspect_ratio": "Give width:height, e.g. aspect_ratio=\"16:9\" (or leave it unset for the model's own).",
    "resolution": "Give e.g. resolution=\"720p\" or \"1080p\" (or leave it unset for the model's own).",
    "max_cost": "Give a positive number of US dollars, or leave it unset.",
    "model": "See `masuka_nb.video.list_video_models()` for the model ids.",
    "motion_intensity": "Give a number from 0 (still) to 1 (lively), or leave it unset.",
    "video": "Give the clip as an https:// URL the provider can fetch.",
    "prompt": "Describe the clip in under 5000 characters.",
}
