"""`VideoResult`: a finished clip, hosted or local (both engines return it; neither imports the other)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["VideoResult"]


@dataclass
class VideoResult:
    """A finished clip: where it is, who made it, what it cost, how long it is and how long it took.

    `duration_s` is the clip's length; `elapsed_s` the wall time of the call (`timings["seconds_total"]`);
    `paths` every file written (the clip first); `history_id` its history record."""

    path: Path
    provider: str
    model: str
    duration_s: float
    cost: float | None
    timings: dict[str, float] = field(default_factory=dict)
    provider_model: str = ""
    thumbnail: Path | None = None
    job_id: str = ""
    notes: list[str] = field(default_factory=list)
    history_id: str = ""
    paths: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.paths and self.path:
            self.paths = [Path(self.path)] + ([Path(self.thumbnail)] if self.thumbnail else [])

    @property
    def elapsed_s(self) -> float:
        """Wall time of the call, in seconds."""
        return float(self.timings.get("seconds_total", self.timings.get("total_s", 0.0)))

    @property
    def seconds(self) -> float:
        """The clip's length: `duration_s` (this name goes in the next release)."""
        warnings.warn("VideoResult.seconds is now `duration_s` (the clip's length); `elapsed_s` is the wall time.",
                      DeprecationWarning, stacklevel=2)
        return self.duration_s

    def _repr_html_(self) -> str:  # a player in the notebook
        from html import escape

        # a file name and a model id are text: `"` or `<` in them must not end the attribute or open a tag
        return (f'<video src="{escape(str(self.path), quote=True)}" controls width="480"></video><br>'
                f'{escape(str(self.model))} via {escape(str(self.provider))}')
