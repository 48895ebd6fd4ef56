"""`VideoResult`: a finished clip, hosted or local (both engines return it; neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["VideoResult"]


@dataclass
class VideoResult:
    """A finished clip: where it is, who made it, what it cost, how long it took."""

    path: Path
    provider: str
    model: str
    seconds: int
    cost: float | None
    timings: dict[str, float] = field(default_factory=dict)
    provider_model: str = ""
    thumbnail: Path | None = None
    job_id: str = ""
    notes: list[str] = field(default_factory=list)

    def _repr_html_(self) -> str:  # a player in the notebook
        from html import escape

        # a file name and a model id are text: `"` or `<` in them must not end the attribute or open a tag
        return (f'<video src="{escape(str(self.path), quote=True)}" controls width="480"></video><br>'
                f'{escape(str(self.model))} via {escape(str(self.provider))}')
