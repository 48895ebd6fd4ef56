"""X/Y/Z grids: one prompt, up to three request fields varied, one labelled image (the comparison view).

    g = mk.grid("a lighthouse", x=("steps", [2, 4, 8]), y=("guidance", [2.5, 3.5]), seed=1)
    g = mk.grid("a fox", x=("model", ["flux1-schnell", "sd35-medium"]))             # model comparison
    g = mk.grid("a red car", x=("prompt_sr", ["red", "blue", "green"]))            # A1111 search/replace
    g.image; g.cell(x=4, y=3.5).image; g.path

Fields: steps, guidance, seed, width, height, size (`"768x512"`), model, negative_prompt, preset
(names or None), lora (a LoRA source, `(source, weight)` or None), lora_weight (scales every LoRA given
in `loras=`), prompt_sr (the first value is searched in the prompt, each value replaces it in turn),
prompt (whole prompts), params (each value a dict of several fields at once, e.g. {"prompt": ..., "seed": 2}).
An axis may carry its own labels as a third item: `x=("params", [...], ["sofa · 1", "snow · 1"])`.

The grid is one history record (kind "grid") holding the grid image and every cell's recipe, and is
saved under `outputs_dir/grids/`. Cells of one model run together, so each model loads once.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb.config import settings
from masuka_nb.creative.presets import _weighted, apply
from masuka_nb.creative.runner import BatchEstimate, per_image_seconds
from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError
from masuka_nb.image.engine import default_engine
from masuka_nb.image.generation import resolve_model, run
from masuka_nb.image.grid import make_grid
from masuka_nb.image.job import PromptCache
from masuka_nb.image.lora import normalise_loras
from masuka_nb.image.metadata import RECIPE_KEY
from masuka_nb.image.pipeline import pick_seeds
from masuka_nb.image.request import GenerationRequest, check_seed
from masuka_nb.log import get_logger
from masuka_nb.models.registry import get_model
from masuka_nb.progress import ProgressReporter
from masuka_nb.storage import atomic_write_bytes, unique_path

__all__ = ["FIELDS", "GridCell", "GridResult", "estimate_grid", "grid"]

log = get_logger(__name__)

FIELDS = ("steps", "guidance", "seed", "width", "height", "size", "model", "negative_prompt", "preset", "lora",
          "lora_weight", "prompt_sr", "prompt", "params")
MAX_CELLS = 400


@dataclass
class GridCell:
    x: Any
    y: Any
    z: Any
    image: Any
    recipe: dict[str, Any]


class SheetOutputs:
    """What a result made of labelled cells says the same way everywhere: `images` are the cells' images (the
    outputs), `paths` the saved sheet, `elapsed_s` the wall time (`seconds` is its old name)."""

    cells: list[Any]
    path: Path | None
    elapsed_s: float

    @property
    def images(self) -> list[Any]:
        return [c.image for c in self.cells]

    @property
    def paths(self) -> list[Path]:
        return [self.path] if self.path else []

    @property
    def seconds(self) -> float:
        warnings.warn(f"{type(self).__name__}.seconds is now `elapsed_s`.", DeprecationWarning, stacklevel=2)
        return self.elapsed_s


@dataclass
class GridResult(SheetOutputs):
    """The labelled grid and everything in it.

    `images` are the outputs (every cell's image, in cell order), as in every result; `sheet` is the labelled
    grid (Z sheets stacked), `sheets` one labelled sheet per Z value; `paths` the saved grid PNG."""

    sheet: Any
    cells: list[GridCell]
    axes: dict[str, tuple[str, list[Any]]]
    sheets: list[Any] = field(default_factory=list)
    labels: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None
    history_id: str = ""
    elapsed_s: float = 0.0

    @property
    def image(self) -> Any:
        """The labelled grid: `sheet` (this name goes in the next release)."""
        warnings.warn("GridResult.image is now `sheet` (`images` are the cells' images).", DeprecationWarning,
                      stacklevel=2)
        return self.sheet

    def cell(self, *, x: Any = None, y: Any = None, z: Any = None) -> GridCell:
        for c in self.cells:
            if c.x == x and c.y == y and c.z == z:
                return c
        raise KeyError((x, y, z))

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.sheet.save(buf, format="PNG")
        return buf.getvalue()


Axis = tuple[str, Sequence[Any]]


def grid(
    prompt: str,
    *,
    x: Axis = ("steps", (2, 4)),
    y: Axis | None = None,
    z: Axis | None = None,
    model: str | None = None,
    seed: int | None = None,
    negative_prompt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    loras: Any = (),
    presets: Sequence[Any] = (),
    save: bool = True,
    record: bool = True,
    kind: str = "grid",
    recipe_extra: dict[str, Any] | None = None,
    min_cell: int = 128,
    progress: Any = None,
    cancel: Any = None,
    engine: Any = None,
) -> GridResult:
    """Render `prompt` once per combination of the X (columns), Y (rows) and Z (sheets) values."""
    t0 = time.perf_counter()
    # The rule everywhere: a random seed unless one is given; it is recorded (every cell's recipe, the grid's).
    seed = pick_seeds(check_seed(seed), 1)[0]
    base = {"model": model, "seed": seed, "negative_prompt": negative_prompt, "width": width, "height": height,
            "steps": steps, "guidance": guidance, "loras": loras, "presets": presets, "prompt": prompt}
    axes, labels, (xs, ys, zs), calls = _calls(prompt, base, x=x, y=y, z=z)  # every cell checked first
    order = sorted(range(len(calls)), key=lambda i: str(calls[i][1]["model"]))  # each model loads once
    engine = engine or default_engine()
    reporter = ProgressReporter(kind, len(calls), progress=progress, cancel=cancel)
    cache = PromptCache()
    results: dict[int, Any] = {}
    try:
        for done, i in enumerate(order):
            reporter.check("the grid")
            call = dict(calls[i][1])
            preset_extra = call.pop("preset_recipe")
            res = run(engine, call.pop("prompt"), save=False, record=False, progress=False, cancel=cancel,
                      prompt_cache=cache, recipe_extra={"presets": preset_extra} if preset_extra else None,
                      num_images=1, **call)
            results[i] = res
            reporter.update(done + 1, message=f"cell {done + 1}/{len(calls)}")
    except (Exception, KeyboardInterrupt) as exc:
        if record:
            _record_failure(kind, prompt, axes, exc, time.perf_counter() - t0)
        raise
    cells = [GridCell(c[0], c[1], c[2], results[i].images[0], results[i].recipe) for i, (c, _) in enumerate(calls)]
    sheets = _sheets(cells, labels, xs, ys, zs, min_cell)
    image = sheets[0] if len(sheets) == 1 else _stack(sheets, labels["z"])
    out = GridResult(image, cells, {k: (v[0], list(v[1])) for k, v in axes.items()}, sheets, labels,
                     elapsed_s=time.perf_counter() - t0)
    if save or record:
        _save(out, prompt=prompt, base=base, kind=kind, save=save, record=record, extra=recipe_extra or {})
    reporter.done(f"{len(cells)} cell(s)")
    return out


def estimate_grid(prompt: str, *, x: Axis = ("steps", (2, 4)), y: Axis | None = None, z: Axis | None = None,
                  model: str | None = None, seed: int = 0, negative_prompt: str | None = None,
                  width: int | None = None, height: int | None = None, steps: int | None = None,
                  guidance: float | None = None, loras: Any = (), presets: Sequence[Any] = ()) -> Any:
    """Every check `grid` makes (prompt, axes, each cell's settings), then how long it would take: a
    `BatchEstimate` summed over the cells, each from comparable past runs where there are some."""
    base = {"model": model, "seed": seed, "negative_prompt": negative_prompt, "width": width, "height": height,
            "steps": steps, "guidance": guidance, "loras": loras, "presets": presets, "prompt": prompt}
    *_, calls = _calls(prompt, base, x=x, y=y, z=z)
    total, bases = 0.0, set()
    for _combo, call in calls:
        spec = get_model(call["model"])
        seconds, basis = per_image_seconds(spec.id, width=call.get("width") or spec.default_width,
                                           height=call.get("height") or spec.default_height,
                                           steps=call.get("steps") or spec.default_steps)
        total += seconds
        bases.add(basis)
    basis = "history" if bases == {"history"} else "guess" if bases == {"guess"} else "rough"
    return BatchEstimate(len(calls), total, total / max(1, len(calls)), basis)


def _calls(prompt: str, base: dict[str, Any], *, x: Any, y: Any, z: Any) -> tuple[Any, Any, Any, list[Any]]:
    """The checked axes, their labels, their values and each cell's generate() arguments."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("The grid's prompt is empty.", argument="prompt", value=prompt,
                                  hint="e.g. grid(\"a lighthouse\", x=(\"steps\", [2, 4]))")
    axes = {name: _axis(name, ax) for name, ax in (("x", x), ("y", y), ("z", z)) if ax is not None}
    labels = {name: _labels(name, ax, axes[name]) for name, ax in (("x", x), ("y", y), ("z", z)) if ax is not None}
    used = [a[0] for a in axes.values()]
    if len(set(used)) != len(used):
        raise InvalidRequestError("Two axes vary the same field.", argument="y", value=used,
                                  hint="Give each axis its own field.")
    xs, ys, zs = (axes[k][1] if k in axes else [None] for k in ("x", "y", "z"))
    combos = [(xv, yv, zv) for zv in zs for yv in ys for xv in xs]
    if len(combos) > MAX_CELLS:
        raise InvalidRequestError(f"The grid has {len(combos)} cells (limit {MAX_CELLS}).", argument="x",
                                  value=len(combos), hint="Use fewer values per axis.")
    calls = [(combo, _cell_call(base, axes, combo)) for combo in combos]
    for combo, call in calls:  # every cell's settings checked now: nothing is estimated that would then fail
        _check_cell(call, axes, combo)
    return axes, labels, (xs, ys, zs), calls


def _check_cell(call: dict[str, Any], axes: dict[str, tuple[str, list[Any]]], combo: tuple) -> None:
    """The cell's settings as the image engine will check them; a value an axis set is named by its axis."""
    try:
        GenerationRequest.build(get_model(call["model"]), prompt=call["prompt"],
                                negative_prompt=call["negative_prompt"], width=call["width"],
                                height=call["height"], steps=call["steps"], guidance=call["guidance"],
                                seed=call["seed"])
    except InvalidRequestError as exc:
        for name, (fieldname, _values) in axes.items():
            if exc.argument == fieldname or (fieldname == "size" and exc.argument in ("width", "height")):
                value = combo[("x", "y", "z").index(name)]
                raise InvalidRequestError(f"{name.upper()} axis, {fieldname} {value}: {exc.message}", argument=name,
                                          value=value, hint=exc.hint) from None
        raise


def _labels(name: str, axis: Any, parsed: tuple[str, list[Any]]) -> list[str]:
    if len(axis) == 3:
        given = [str(t) for t in axis[2]]
        if len(given) != len(parsed[1]):
            raise InvalidRequestError(f"Axis `{name}` has {len(parsed[1])} values but {len(given)} labels.",
                                      argument=name, value=given, hint="Give one label per value.")
        return given
    return [_label(parsed[0], v) for v in parsed[1]]


def _axis(name: str, axis: Any) -> tuple[str, list[Any]]:
    if not (isinstance(axis, (tuple, list)) and len(axis) in (2, 3) and isinstance(axis[0], str)):
        raise InvalidRequestError(f"Axis `{name}` must be a (field, values) pair.", argument=name, value=axis,
                                  hint=f"e.g. {name}=(\"steps\", [2, 4, 8])")
    fieldname, values = axis[0], axis[1]
    if fieldname not in FIELDS:
        raise InvalidRequestError(f"Unknown grid field {fieldname!r} on axis `{name}`.", argument=name,
                                  value=fieldname, hint=f"Fields: {', '.join(FIELDS)}.")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InvalidRequestError(f"The values of axis `{name}` must be a list.", argument=name, value=values,
                                  hint=f"e.g. {name}=(\"{fieldname}\", [..., ...])")
    values = list(values)
    if not values:
        raise InvalidRequestError(f"Axis `{name}` ({fieldname}) has no values.", argument=name, value=axis,
                                  hint="Give at least one value, or leave the axis out.")
    if fieldname == "prompt_sr" and len(values) < 2:
        raise InvalidRequestError("`prompt_sr` needs the searched text and at least one replacement.",
                                  argument=name, value=values, hint="e.g. (\"prompt_sr\", [\"red\", \"blue\"])")
    return fieldname, values


def _cell_call(base: dict[str, Any], axes: dict[str, tuple[str, list[Any]]], combo: tuple) -> dict[str, Any]:
    """The generate() arguments of one cell: the base settings with each axis' value applied."""
    call = dict(base)
    call["loras"] = [(s.source, s.weight) for s in normalise_loras(base["loras"])]
    _weighted(base["presets"])  # checked here: a bad `presets` is an InvalidRequestError, not a TypeError
    presets = base["presets"] or ()
    call["presets"] = list(presets) if not isinstance(presets, (str, dict)) else [presets]
    for (name, (fieldname, _values)), value in zip(sorted(axes.items()), [combo[("x", "y", "z").index(k)]
                                                                       for k in sorted(axes)]):
        if fieldname == "size":
            call["width"], call["height"] = _size(value, name)
        elif fieldname == "prompt_sr":
            search = axes[name][1][0]
            if search not in base["prompt"]:
                raise InvalidRequestError(f"`prompt_sr` searches for {search!r}, which is not in the prompt.",
                                          argument=name, value=search, hint="The first value must occur in it.")
            call["prompt"] = call["prompt"].replace(search, str(value))
        elif fieldname == "preset":
            call["presets"] = call["presets"] + ([value] if value else [])
        elif fieldname == "lora":
            call["loras"] = call["loras"] + ([(s.source, s.weight) for s in normalise_loras(value)] if value else [])
        elif fieldname == "params":
            if not isinstance(value, dict) or set(value) - (set(FIELDS) - {"params", "size", "prompt_sr"}):
                raise InvalidRequestError("Each `params` value is a dict of grid fields.", argument=name,
                                          value=value, hint="e.g. {\"prompt\": \"a cat\", \"seed\": 2}")
            call.update(value)
        elif fieldname == "lora_weight":
            if not base["loras"]:
                raise InvalidRequestError("A `lora_weight` axis needs `loras=` to scale.", argument=name,
                                          value=value, hint="e.g. grid(..., loras=[\"my-style\"], x=(\"lora_weight\", "
                                                            "[0.5, 1.0]))")
            call["loras"] = [(src, float(value) * w) for src, w in call["loras"]]
        else:
            call[fieldname] = value
    spec = get_model(resolve_model(call["model"])[0])
    styled = apply(call["prompt"], call.pop("presets"), negative_prompt=call["negative_prompt"],
                   supports_negative=spec.supports_negative_prompt)
    call["prompt"], call["negative_prompt"] = styled.prompt, styled.negative_prompt
    for key, value in styled.settings.items():
        if call.get(key) is None:
            call[key] = value
    call["loras"] = call["loras"] + list(styled.loras)
    call["model"] = spec.id
    call["preset_recipe"] = styled.recipe
    return call


def _size(value: Any, axis: str) -> tuple[int, int]:
    if isinstance(value, str) and "x" in value.lower():
        w, _, h = value.lower().partition("x")
        if w.strip().isdigit() and h.strip().isdigit():
            return int(w), int(h)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise InvalidRequestError(f"A size is \"WIDTHxHEIGHT\" or (width, height), not {value!r}.", argument=axis,
                              value=value, hint="e.g. (\"size\", [\"512x512\", \"768x512\"])")


def _label(fieldname: str, value: Any) -> str:
    if value is None:
        return f"{fieldname}: none"
    if isinstance(value, (tuple, list)) and fieldname == "lora":
        return f"lora: {Path(str(value[0])).stem} x{value[1]:g}"
    if fieldname == "lora":
        return f"lora: {Path(str(value)).stem}"
    if fieldname == "prompt_sr":
        return str(value)
    if fieldname == "preset" and not isinstance(value, str):
        return f"preset: {getattr(value, 'name', value)}"
    return f"{fieldname}: {value:g}" if isinstance(value, float) else f"{fieldname}: {value}"


def _sheets(cells, labels, xs, ys, zs, min_cell) -> list[Any]:
    sheets = []
    for zv in zs:
        rows = [[c.image for c in cells if c.z == zv and c.y == yv] for yv in ys]
        col_labels = labels["x"]
        row_labels = labels.get("y")
        # Cells of different sizes (a size axis) are fitted into the largest one, keeping their aspect ratio.
        size = (max(c.image.width for c in cells), max(c.image.height for c in cells))
        sheets.append(make_grid(rows, col_labels=col_labels, row_labels=row_labels, cell_size=size,
                                min_cell=min_cell))
    return sheets


def _stack(sheets: list[Any], labels: list[str]) -> Any:
    w = max(s.width for s in sheets)
    h = max(s.height for s in sheets)
    return make_grid(sheets, cols=len(sheets), cell_size=(w, h), col_labels=labels, font_size=max(14, h // 40))


def _save(out: GridResult, *, prompt: str, base: dict[str, Any], kind: str, save: bool, record: bool,
          extra: dict[str, Any]) -> None:
    recipe = {"kind": kind, "prompt": prompt, "axes": {k: [v[0], [_jsonable(x) for x in v[1]]]
                                                          for k, v in out.axes.items()},
              "model": out.cells[0].recipe.get("model"),
              "base": {k: _jsonable(v) for k, v in base.items() if k != "prompt"},
              "labels": out.labels,
              "cells": [{"x": _jsonable(c.x), "y": _jsonable(c.y), "z": _jsonable(c.z), "recipe": c.recipe}
                        for c in out.cells], **extra}
    if save:
        folder = settings().outputs_dir / ("comparisons" if kind == "comparison" else "grids")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out.path = _write_png(out.sheet, unique_path(folder, f"{kind}-{stamp}", ".png"), recipe)
    if record:
        rec = history.write(kind, model=str(recipe["model"]), prompt=prompt, recipe=recipe,
                            paths=[out.path] if out.path else [], timings={"seconds_total": out.elapsed_s},
                            extra={"cells": len(out.cells)})
        out.history_id = rec.id if rec else ""


def _write_png(image: Any, path: Path, recipe: dict[str, Any]) -> Path:
    """The grid PNG with its JSON recipe (axes and every cell's recipe) in the same text chunk as images."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(RECIPE_KEY, json.dumps(recipe, sort_keys=True, default=str))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(path, buf.getvalue())


def _record_failure(kind: str, prompt: str, axes: dict, exc: BaseException, seconds: float) -> None:
    status = "cancelled" if isinstance(exc, (CancelledError, KeyboardInterrupt)) else "failed"
    err = exc.to_dict() if isinstance(exc, MasukaError) else {"code": type(exc).__name__, "message": str(exc)}
    history.write(kind, status=status, prompt=prompt, timings={"seconds_total": seconds}, error=err,
                  recipe={"axes": {k: [v[0], [_jsonable(x) for x in v[1]]] for k, v in axes.items()}})


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        if hasattr(value, "as_dict"):
            return value.as_dict()
        return str(value)
