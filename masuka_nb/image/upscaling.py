"""Upscaling: plain resampling (`lanczos`, `bicubic`), `refine` (resample, then image-to-image with the same
model at a low strength, the classic "hires fix"), and `model` (an ESRGAN-family upscaler from a weights file
you give, loaded by spandrel).

`tile=` makes refine and model work tile by tile: overlapping tiles, blended with linear ramps where they
overlap, so memory stays bounded at any size and no seam shows. Every method records its recipe: in the
result's `recipe` (refine), in `image.info["masuka_recipe"]` (a PIL result), and in the history when saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.errors import DependencyMissingError, InvalidRequestError

__all__ = ["METHODS", "UpscaleResult", "tile_boxes", "tiled", "upscale", "upscale_file"]

METHODS = ("lanczos", "bicubic", "refine", "model")


def upscale(
    image: Any,
    *,
    factor: float = 2.0,
    method: str = "lanczos",
    model: str | None = None,
    prompt: str | None = None,
    strength: float = 0.3,
    steps: int | None = None,
    seed: int | None = None,
    tile: int | None = None,
    overlap: int = 64,
    weights: str | Path | None = None,
    save: bool = False,
    progress: Any = None,
    cancel: Any = None,
) -> Any:
    """`image` (PIL, a path, or a `GenerationResult`) made `factor`× larger.

    `refine` needs a model and a prompt; from a `GenerationResult` (or a MASUKA PNG) they come from its
    recipe. `model` needs `weights=` (an ESRGAN / Real-ESRGAN / SwinIR ... `.pth` or `.safetensors` file).
    `tile` (pixels of the output, e.g. 512) bounds memory; `overlap` is how far neighbouring tiles share.
    Returns a `GenerationResult` for refine, a PIL image otherwise.
    """
    from PIL import Image

    from masuka_nb.image.request import _open_image

    recipe: dict[str, Any] = {}
    source_path = None
    if hasattr(image, "recipe") and hasattr(image, "images"):
        recipe, image = image.recipe, image.images[0]
    elif not isinstance(image, Image.Image):
        from masuka_nb.image.metadata import RECIPE_KEY, read_png_metadata

        source_path = image
        image = _open_image(image)
        meta = read_png_metadata(source_path) if str(source_path).lower().endswith(".png") else {}
        if RECIPE_KEY in meta:
            recipe = json.loads(meta[RECIPE_KEY])
    if method not in METHODS:
        raise InvalidRequestError(f"Unknown upscale method {method!r}.", argument="method", value=method,
                                  hint=f"Use one of: {', '.join(METHODS)}.")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1.0 <= factor <= 8.0:
        raise InvalidRequestError("`factor` must be a number from 1 to 8.", argument="factor", value=factor,
                                  hint="factor=2 doubles the width and height.")
    _check_tiling(tile, overlap)
    multiple = 16
    w = max(multiple, round(image.width * factor / multiple) * multiple)
    h = max(multiple, round(image.height * factor / multiple) * multiple)
    about = {"method": method, "factor": factor, "tile": tile, "overlap": overlap if tile else None,
             "source_size": list(image.size), "size": [w, h], "source": str(source_path) if source_path else None}
    if method == "model":
        return _finish(_model_upscale(image.convert("RGB"), (w, h), weights, tile, overlap, progress, cancel),
                       about, save)
    resample = Image.Resampling.BICUBIC if method == "bicubic" else Image.Resampling.LANCZOS
    big = image.convert("RGB").resize((w, h), resample)
    if method != "refine":
        return _finish(big, about, save)
    model = model or recipe.get("model")
    prompt = prompt or recipe.get("prompt")
    if not model or not prompt:
        raise InvalidRequestError("`refine` needs the model and prompt the image was made with.", argument="model",
                                  value=model, hint="Pass model= and prompt=, or a GenerationResult / MASUKA PNG.")
    seeds = recipe.get("seeds") or [None]
    args = dict(model=model, strength=strength, steps=steps or recipe.get("steps"), guidance=recipe.get("guidance"),
                seed=seed if seed is not None else seeds[0],
                loras=[(lr["source"], lr["weight"]) for lr in recipe.get("loras", [])], progress=progress,
                cancel=cancel)
    if not tile or (w <= tile and h <= tile):
        from masuka_nb.image.engine import default_engine
        from masuka_nb.image.generation import run

        return run(default_engine(), prompt, image=big, width=w, height=h, save=save,
                   recipe_extra={"upscale": {**about, "tiles": 1}}, **args)
    return _tiled_refine(big, prompt, args, tile, overlap, about, save)


# ---- tiles ----

def tile_boxes(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) boxes of at most `tile` pixels covering the image, neighbours sharing
    `overlap` pixels; the last row and column are moved back to end at the edge (never a thin sliver)."""
    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        stride = tile - overlap
        out = [*range(0, size - tile, stride), size - tile]
        return sorted(set(out))

    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)]


def tiled(image: Any, fn: Callable[[Any], Any], *, tile: int, overlap: int, scale: int = 1,
          on_tile: Callable[[int, int], None] | None = None) -> Any:
    """`fn` applied tile by tile to `image` (each result `scale`× the tile), blended into one image.

    Where tiles overlap, each one's weight ramps linearly from its edge inwards, so the result moves
    smoothly from one tile's pixels to the next one's: a tile's own drift (a brighter or warmer tile)
    fades out over the overlap instead of stopping at a seam.
    """
    import numpy as np
    from PIL import Image

    boxes = tile_boxes(image.width, image.height, tile, overlap)
    W, H = image.width * scale, image.height * scale
    acc = np.zeros((H, W, 3), dtype=np.float64)
    weight = np.zeros((H, W, 1), dtype=np.float64)
    for k, (left, top, right, bottom) in enumerate(boxes):
        out = fn(image.crop((left, top, right, bottom)))
        tw, th = (right - left) * scale, (bottom - top) * scale
        if out.size != (tw, th):
            out = out.resize((tw, th), Image.Resampling.LANCZOS)
        ramp = _ramp(tw, th, overlap * scale, left > 0, top > 0, right < image.width, bottom < image.height)
        x0, y0 = left * scale, top * scale
        acc[y0:y0 + th, x0:x0 + tw] += np.asarray(out.convert("RGB"), dtype=np.float64) * ramp
        weight[y0:y0 + th, x0:x0 + tw] += ramp
        if on_tile is not None:
            on_tile(k + 1, len(boxes))
    pixels = acc / np.maximum(weight, 1e-8)
    return Image.fromarray(np.clip(pixels.round(), 0, 255).astype(np.uint8))


def _ramp(w: int, h: int, overlap: int, left: bool, top: bool, right: bool, bottom: bool) -> Any:
    import numpy as np

    def axis(n: int, start: bool, end: bool) -> Any:
        r = np.ones(n)
        span = min(overlap, n // 2)
        if span > 0:
            edge = (np.arange(span) + 0.5) / span
            if start:
                r[:span] = np.minimum(r[:span], edge)
            if end:
                r[n - span:] = np.minimum(r[n - span:], edge[::-1])
        return r

    return (axis(h, top, bottom)[:, None] * axis(w, left, right)[None, :])[..., None]


def _check_tiling(tile: Any, overlap: Any) -> None:
    if tile is None:
        return
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 64 or tile % 16:
        raise InvalidRequestError("`tile` must be a multiple of 16, at least 64 (or None for one piece).",
                                  argument="tile", value=tile, hint="e.g. tile=512")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= tile // 2:
        raise InvalidRequestError(f"`overlap` must be a whole number from 0 to {tile // 2} (half a tile).",
                                  argument="overlap", value=overlap, hint="e.g. overlap=64")


def _tiled_refine(big: Any, prompt: str, args: dict[str, Any], tile: int, overlap: int, about: dict[str, Any],
                  save: bool) -> Any:
    """Image-to-image on each tile (the same seed and prompt), blended: the peak is one tile's, not the image's."""
    from masuka_nb.image.engine import default_engine
    from masuka_nb.image.generation import GenerationResult, run
    from masuka_nb.image.job import PromptCache
    from masuka_nb.progress import ProgressReporter

    progress, cancel = args.pop("progress"), args.pop("cancel")
    boxes = tile_boxes(big.width, big.height, tile, overlap)
    reporter = ProgressReporter("upscale", len(boxes), progress=progress, cancel=cancel)
    cache = PromptCache()
    last: dict[str, Any] = {}

    def refine(piece: Any) -> Any:
        reporter.check("the upscale")
        res = run(default_engine(), prompt, image=piece, width=piece.width, height=piece.height, save=False,
                  record=False, use_cache=False, progress=False, cancel=cancel, prompt_cache=cache, **args)
        last["result"] = res
        return res.images[0]

    out = tiled(big, refine, tile=tile, overlap=overlap, on_tile=lambda k, n: reporter.update(k))
    res = last["result"]
    recipe = {**res.recipe, "width": big.width, "height": big.height, "upscale": {**about, "tiles": len(boxes)}}
    paths = [_save_png(out, recipe)] if save else []
    rec_id = _record(recipe, paths) if save else ""
    reporter.done(f"{len(boxes)} tile(s)")
    return GenerationResult([out], res.seeds, recipe, paths, {}, res.plan, False, res.warnings, rec_id)


def _model_upscale(image: Any, size: tuple[int, int], weights: Any, tile: int | None, overlap: int,
                   progress: Any, cancel: Any) -> Any:
    """An ESRGAN-family network (spandrel loads the architecture from the weights' own keys)."""
    import numpy as np
    import torch
    from PIL import Image

    from masuka_nb.progress import ProgressReporter

    net, scale, device, dtype = load_upscaler(weights)

    def run_net(piece: Any) -> Any:
        reporter.check("the upscale")
        x = torch.from_numpy(np.asarray(piece, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        with torch.inference_mode():
            y = net(x.to(device=device, dtype=dtype)).float().clamp(0, 1)
        arr = (y[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        return Image.fromarray(arr)

    in_tile = None if not tile else max(16, tile // scale)
    n = len(tile_boxes(image.width, image.height, in_tile, overlap // scale)) if in_tile else 1
    reporter = ProgressReporter("upscale", n, progress=progress, cancel=cancel)
    if in_tile:
        out = tiled(image, run_net, tile=in_tile, overlap=min(overlap // scale, in_tile // 2), scale=scale,
                    on_tile=lambda k, total: reporter.update(k))
    else:
        out = run_net(image)
    reporter.done()
    return out if out.size == size else out.resize(size, Image.Resampling.LANCZOS)


_UPSCALERS: dict[tuple[str, float], tuple[Any, int, Any, Any]] = {}


def load_upscaler(weights: Any) -> tuple[Any, int, Any, Any]:
    """(network, scale, device, dtype) for an upscaler weights file, loaded once per file version."""
    if weights is None:
        raise InvalidRequestError("method=\"model\" needs `weights=`: an upscaler weights file.", argument="weights",
                                  value=None, hint="e.g. weights=\"/content/drive/MyDrive/4x-UltraSharp.pth\" "
                                                   "(ESRGAN, Real-ESRGAN, SwinIR, ... as .pth or .safetensors).")
    path = Path(weights)
    if not path.is_file():
        raise InvalidRequestError(f"No upscaler weights at {path}.", argument="weights", value=str(path),
                                  hint="Give the path of a .pth or .safetensors upscaler file.")
    key = (str(path.resolve()), path.stat().st_mtime)
    if key in _UPSCALERS:
        return _UPSCALERS[key]
    try:
        from spandrel import ImageModelDescriptor, ModelLoader
    except ImportError as exc:
        raise DependencyMissingError("The model upscaler needs spandrel (and torchvision).", argument="method",
                                     value="model", hint="pip install 'masuka-nb[upscale]' (spandrel); Colab has "
                                                         "torchvision.") from exc
    import torch

    from masuka_nb.config import settings

    try:
        desc = ModelLoader().load_from_file(str(path))
    except Exception as exc:  # spandrel raises plain errors for files it does not recognise
        raise InvalidRequestError(f"{path.name} is not an upscaler spandrel can load ({type(exc).__name__}: "
                                  f"{str(exc)[:160]}).", argument="weights", value=str(path),
                                  hint="Use an ESRGAN-family file (see https://github.com/chaiNNer-org/spandrel)."
                                  ) from exc
    if not isinstance(desc, ImageModelDescriptor):
        raise InvalidRequestError(f"{path.name} is an inpainting/restoration model, not an upscaler.",
                                  argument="weights", value=str(path), hint="Use a super-resolution model file.")
    cuda = settings().device != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda and desc.supports_half else torch.float32
    net = desc.model.to(device=device, dtype=dtype).eval()
    _UPSCALERS.clear()  # one upscaler in memory at a time
    _UPSCALERS[key] = (net, int(desc.scale), device, dtype)
    return _UPSCALERS[key]


def _finish(image: Any, about: dict[str, Any], save: bool) -> Any:
    recipe = {"upscale": about, "width": image.width, "height": image.height}
    image.info["masuka_recipe"] = json.dumps(recipe, sort_keys=True, default=str)
    if save:
        path = _save_png(image, recipe)
        _record(recipe, [path])
        image.info["masuka_path"] = str(path)
    return image


def _save_png(image: Any, recipe: dict[str, Any]) -> Path:
    import io
    from datetime import datetime

    from PIL.PngImagePlugin import PngInfo

    from masuka_nb.config import settings
    from masuka_nb.image.metadata import RECIPE_KEY
    from masuka_nb.storage import atomic_write_bytes, unique_path

    info = PngInfo()
    info.add_text(RECIPE_KEY, json.dumps(recipe, sort_keys=True, default=str))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    folder = settings().outputs_dir / datetime.now().strftime("%Y-%m-%d")
    up = recipe["upscale"]
    return atomic_write_bytes(unique_path(folder, f"upscale-{up['method']}-{math.ceil(up['factor'])}x", ".png"),
                              buf.getvalue())


def _record(recipe: dict[str, Any], paths: list[Path]) -> str:
    from masuka_nb import history

    rec = history.record(history.HistoryRecord(kind="upscale", status="ok", model=str(recipe.get("model", "")),
                                               prompt=str(recipe.get("prompt", "")), recipe=recipe,
                                               paths=[str(p) for p in paths]))
    return rec.id


@dataclass
class UpscaleResult:
    """An upscale saved as its own file with its own history record (so it can be shown, deleted and
    reused like any other output). `recipe` is the source's recipe with the new size and how it was made."""

    image: Any
    path: Path
    history_id: str
    recipe: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def upscale_file(source: str | Path, *, factor: float = 2.0, method: str = "lanczos", progress: Any = None,
                 cancel: Any = None) -> UpscaleResult:
    """Upscale the image file `source`, save the result as a new PNG in the outputs and record it in the
    history with the source's recipe (model, prompt, seed) plus its own size: one file, one record."""
    from masuka_nb.image.metadata import RECIPE_KEY, read_png_metadata

    meta = read_png_metadata(source) if str(source).lower().endswith(".png") else {}
    base = json.loads(meta[RECIPE_KEY]) if RECIPE_KEY in meta else {}
    out = upscale(source, factor=factor, method=method, save=False, progress=progress, cancel=cancel)
    image = out.images[0] if hasattr(out, "images") else out
    about = (out.recipe if hasattr(out, "recipe") else json.loads(image.info.get("masuka_recipe", "{}")))["upscale"]
    recipe = {**{k: v for k, v in base.items() if k not in ("seeds", "upscale")}, "seed": (base.get("seeds") or
              [base.get("seed")])[0], "width": image.width, "height": image.height,
              "upscale": {**about, "source": str(source)}}
    path = _save_png(image, recipe)
    return UpscaleResult(image, Path(path), _record(recipe, [path]), recipe, str(source))
