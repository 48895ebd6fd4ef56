"""Comparing LoRAs: the same prompts × seeds across LoRAs and weights, as one labelled grid.

Rows are (LoRA, weight) pairs (plus the base model without a LoRA), columns are prompt × seed, so
a difference between two cells in a column is the LoRA's doing alone. The grid is saved under
`outputs_dir/comparisons/` and recorded in the history (kind "comparison").

Images come from the image engine (`masuka_nb.generate`): one pipeline stays loaded for the whole
grid, adapters are swapped between rows, and each cell is the engine's own recipe (reproducible). The grid
itself is `masuka_nb.grid` (a "lora" row axis × a prompt·seed column axis), recorded once with its image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.creative.grids import SheetOutputs, grid
from masuka_nb.errors import InvalidRequestError, ModelFilesMissingError
from masuka_nb.image.grid import make_grid  # also re-exported: it used to live here
from masuka_nb.image.lora import METADATA_NAME
from masuka_nb.image.lora import resolve_lora as resolve_file
from masuka_nb.log import get_logger
from masuka_nb.models.embedded import use_embedded_models
from masuka_nb.models.registry import get_model
from masuka_nb.progress import CancelToken, ProgressCallback
from masuka_nb.storage import read_json_guarded

__all__ = ["Cell", "Comparison", "compare", "make_grid", "resolve_lora"]

log = get_logger(__name__)


@dataclass
class Cell:
    lora: str | None
    weight: float
    prompt: str
    seed: int
    image: Any


@dataclass
class Comparison(SheetOutputs):
    """The comparison grid (`grid`, a PIL image), its cells; `images` the cells' images (the outputs)."""

    grid: Any  # PIL image
    cells: list[Cell] = field(default_factory=list)
    path: Path | None = None
    model: str = ""
    elapsed_s: float = 0.0
    history_id: str = ""

    def cell(self, lora: str | None, weight: float, prompt: str, seed: int) -> Cell:
        for c in self.cells:
            if c.lora == lora and c.weight == weight and c.prompt == prompt and c.seed == seed:
                return c
        raise KeyError((lora, weight, prompt, seed))

    def _repr_png_(self) -> bytes:  # shows inline in a notebook
        buf = io.BytesIO()
        self.grid.save(buf, format="PNG")
        return buf.getvalue()


def resolve_lora(source: str | Path) -> tuple[Path, str, dict[str, Any]]:
    """(weights file, display name, masuka_lora.json or {}) for any LoRA source `generate(loras=...)` takes.

    The file comes from the one resolver the image engine uses (`masuka_nb.image.lora.resolve_lora`: files,
    folders, library names, Hub repos, URLs, Civitai ids/AIRs/URLs), so compare and generate agree."""
    if isinstance(source, bool) or not isinstance(source, (str, os.PathLike)) or not str(source).strip():
        raise InvalidRequestError(f"A LoRA to compare must be a path or a library name, not {type(source).__name__}.",
                                  argument="loras", value=source, hint="e.g. loras=[\"my-style\"]")
    try:
        file = resolve_file(str(source))
    except ModelFilesMissingError as exc:
        raise InvalidRequestError(f"No LoRA found at {source}.", argument="loras", value=str(source),
                                  hint=exc.hint or "Pass a .safetensors file, a LoRA folder, a library name or a "
                                  "Civitai id.") from exc
    meta = read_json_guarded(file.parent / METADATA_NAME, default={}, expect=dict)  # damaged: quarantined
    name = meta.get("name")
    return file, name if isinstance(name, str) and name else file.stem, meta


def compare(
    loras: Sequence[str | Path],
    prompts: Sequence[str],
    seeds: Sequence[int],
    weights: Sequence[float] = (1.0,),
    *,
    model: str | None = None,
    include_base: bool = True,
    steps: int | None = None,
    width: int | None = None,
    height: int | None = None,
    guidance: float | None = None,
    save: bool = True,
    progress: ProgressCallback | bool | None = None,
    cancel: CancelToken | None = None,
) -> Comparison:
    """Render prompts × seeds for each LoRA at each weight (and the base model), as one grid."""
    def listed(name: str, value: Any, kinds: tuple[type, ...], example: str) -> list[Any]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(
                isinstance(v, kinds) and not isinstance(v, bool) for v in value):
            raise InvalidRequestError(f"`{name}` must be a list.", argument=name, value=value, hint=f"e.g. {name}={example}")
        return list(value)

    prompts = listed("prompts", [prompts] if isinstance(prompts, str) else prompts, (str,), "['mk on a sofa']")
    seeds = listed("seeds", [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds, (int,),
                   "[1, 2]")
    weights = listed("weights", weights, (int, float), "(0.8, 1.0)")
    if not all(-4 <= w <= 4 for w in weights) or not weights:
        raise InvalidRequestError("`weights` must be numbers from -4 to 4.", argument="weights", value=weights,
                                  hint="e.g. weights=(0.8, 1.0)")
    if not isinstance(include_base, bool):
        raise InvalidRequestError("`include_base` must be True or False.", argument="include_base", value=include_base)
    if not prompts or not seeds:
        raise InvalidRequestError("`prompts` and `seeds` must each hold at least one value.", argument="prompts",
                                  value=list(prompts), hint="For example prompts=['mycat on a sofa'], seeds=[1, 2].")
    if isinstance(loras, (str, Path)):
        loras = [loras]
    if not isinstance(loras, (list, tuple)) or not loras:
        raise InvalidRequestError("`loras` must be a LoRA (path or library name) or a list of them.", argument="loras",
                                  value=loras, hint="e.g. loras=[\"my-style\"]")
    resolved = [resolve_lora(src) for src in loras]
    chosen = model is not None
    if model is None:
        named = next((m.get("base_model") for _, _, m in resolved if m.get("base_model")), None)
        chosen = named is not None
        model = named or "flux1-dev"
    spec = get_model(model)
    if not chosen and not spec.tiny and use_embedded_models(engine="compare"):
        log.info("compare.tiny_fallback", model=spec.id)
        spec = get_model("tiny-flux")
    steps = steps or spec.default_steps
    width = width or spec.default_width
    height = height or spec.default_height
    guidance = spec.default_guidance if guidance is None else guidance
    rows: list[tuple[str | None, str | None, float]] = [(None, None, 0.0)] if include_base else []
    rows += [(str(f), n, float(w)) for f, n, _ in resolved for w in weights]
    if not rows:
        raise InvalidRequestError("Nothing to compare: no LoRA given and include_base=False.", argument="loras",
                                  value=[], hint="Pass at least one LoRA, or include_base=True.")
    # One grid: rows are (LoRA, weight), columns prompt × seed; the grid is the one history record.
    columns = [{"prompt": p, "seed": int(s)} for p in prompts for s in seeds]
    out = grid(" | ".join(prompts), model=spec.id, width=width, height=height, steps=steps, guidance=guidance,
               x=("params", columns, [f"{c['prompt'][:24]} · {c['seed']}" for c in columns]),
               y=("lora", [None if f is None else (f, w) for f, _, w in rows],
                  ["base" if f is None else f"{n} x{w:g}" for f, n, w in rows]),
               save=save, record=save, kind="comparison", min_cell=0, progress=progress, cancel=cancel,
               recipe_extra={"loras": [n for _, n, _ in resolved], "prompts": list(prompts),
                             "seeds": [int(s) for s in seeds], "weights": [float(w) for w in weights]})
    names = {f: n for f, n, _ in rows}
    cells = [Cell(names[c.y[0]] if c.y else None, float(c.y[1]) if c.y else 0.0, c.x["prompt"], c.x["seed"],
                  c.image) for c in out.cells]
    return Comparison(grid=out.sheet, cells=cells, path=out.path, model=spec.id, elapsed_s=out.elapsed_s,
                      history_id=out.history_id)
