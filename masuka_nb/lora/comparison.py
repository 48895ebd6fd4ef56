"""Comparing LoRAs: the same prompts × seeds across LoRAs and weights, as one labelled grid.

Rows are (LoRA, weight) pairs (plus the base model without a LoRA), columns are prompt × seed, so
a difference between two cells in a column is the LoRA's doing alone. The grid is saved under
`outputs_dir/comparisons/` and recorded in the history (kind "comparison").

Images come from the image engine (`masuka_nb.generate`): one pipeline stays loaded for the whole
grid, adapters are swapped between rows, and each cell is the engine's own recipe (reproducible).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb.errors import InvalidRequestError
from masuka_nb.image.grid import make_grid  # also re-exported: it used to live here
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter

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
class Comparison:
    grid: Any  # PIL image
    cells: list[Cell] = field(default_factory=list)
    path: Path | None = None
    model: str = ""
    seconds: float = 0.0

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
    """(weights file, display name, masuka_lora.json or {}) for a file, a folder or a library name."""
    from masuka_nb.config import settings
    from masuka_nb.lora.export import PEFT_FILE

    path = Path(source)
    if not path.exists():
        path = settings().loras_dir / str(source)
    if path.is_dir():
        folder, file = path, path / PEFT_FILE
    else:
        folder, file = path.parent, path
    if not file.is_file():
        raise InvalidRequestError(f"No LoRA found at {source}.", argument="loras", value=str(source),
                                  hint="Pass a .safetensors file, a LoRA folder, or a name in the LoRA library.")
    meta_path = folder / "masuka_lora.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return file, meta.get("name") or file.stem, meta


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
    if not prompts or not seeds:
        raise InvalidRequestError("`prompts` and `seeds` must each hold at least one value.", argument="prompts",
                                  value=list(prompts), hint="For example prompts=['mycat on a sofa'], seeds=[1, 2].")
    if isinstance(loras, (str, Path)):
        loras = [loras]
    resolved = [resolve_lora(src) for src in loras]
    chosen = model is not None
    if model is None:
        named = next((m.get("base_model") for _, _, m in resolved if m.get("base_model")), None)
        chosen = named is not None
        model = named or "flux1-dev"
    from masuka_nb.models.embedded import use_embedded_models
    from masuka_nb.models.registry import get_model

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
    total = len(rows) * len(prompts) * len(seeds)
    reporter = ProgressReporter("compare", total, progress=progress, cancel=cancel)
    start = time.perf_counter()
    from masuka_nb.image import generate

    cells: list[Cell] = []
    grid_rows: list[list[Any]] = []
    done = 0
    for file, label, weight in rows:
        row_images = []
        for prompt in prompts:
            for seed in seeds:
                reporter.check("the comparison")
                # The image engine keeps one pipeline loaded and swaps adapters between rows.
                result = generate(prompt, model=spec.id, width=width, height=height, steps=steps, guidance=guidance,
                                  seed=int(seed), loras=[(file, weight)] if file else (), save=False,
                                  progress=False, cancel=cancel)
                image = result.images[0]
                cells.append(Cell(label, weight if file else 0.0, prompt, int(seed), image))
                row_images.append(image)
                done += 1
                reporter.update(done)
        grid_rows.append(row_images)
    row_labels = ["base" if f is None else f"{n} x{w:g}" for f, n, w in rows]
    col_labels = [f"{p[:24]} · {s}" for p in prompts for s in seeds]
    grid = make_grid(grid_rows, row_labels=row_labels, col_labels=col_labels)
    result = Comparison(grid=grid, cells=cells, model=spec.id, seconds=time.perf_counter() - start)
    if save:
        result.path = _save(result, loras=[n for _, n, _ in resolved], prompts=list(prompts), seeds=list(seeds),
                            weights=list(weights))
    return result


def _save(result: Comparison, **recipe: Any) -> Path:
    from masuka_nb.config import settings
    from masuka_nb.history import HistoryRecord, record
    from masuka_nb.storage import atomic_write_bytes

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    path = settings().outputs_dir / "comparisons" / f"compare-{stamp}.png"
    atomic_write_bytes(path, result._repr_png_())
    record(HistoryRecord(kind="comparison", status="ok", model=result.model, prompt=" | ".join(recipe["prompts"]),
                         recipe={**recipe, "model": result.model}, paths=[str(path)],
                         timings={"compare_s": round(result.seconds, 3)}))
    return path
