"""Upscaling: plain resampling (`lanczos`, `bicubic`), `refine` (resample, then image-to-image with the same
model at a low strength, the classic "hires fix"), and `model` (an ESRGAN-family upscaler from a weights file
you give, loaded by spandrel through the device host).

`tile=` makes refine and model work tile by tile: overlapping tiles, blended with linear ramps where they
overlap, so memory stays bounded at any size and no seam shows. Every method returns a `GenerationResult`
(`images`, `paths`, `recipe`, `history_id`), saves by default like every function that writes files, and is
recorded in the history (kind "upscale"). Refine runs through the run pipeline as its tile-refine task.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb.config import settings
from masuka_nb.errors import DependencyMissingError, InvalidRequestError
from masuka_nb.host import device_host, torch_device
from masuka_nb.image.engine import default_engine
from masuka_nb.image.generation import GenerationResult, TextToImage
from masuka_nb.image.job import GenerationJob, PromptCache
from masuka_nb.image.metadata import RECIPE_KEY, read_png_metadata
from masuka_nb.image.pipeline import run as run_pipeline
from masuka_nb.image.pipeline import save_pngs
from masuka_nb.image.request import open_image
from masuka_nb.progress import ProgressEvent, ProgressReporter
from masuka_nb.storage import atomic_write_bytes, unique_path

__all__ = ["METHODS", "TileRefine", "tile_boxes", "tiled", "upscale"]

METHODS = ("lanczos", "bicubic", "refine", "model")
TASK = "upscale"  # the device host's task (and slot) for the upscaler network


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
    save: bool = True,
    progress: Any = None,
    cancel: Any = None,
) -> GenerationResult:
    """`image` (PIL, a path, or a `GenerationResult`) made `factor`× larger, as a `GenerationResult`.

    `refine` needs a model and a prompt; from a `GenerationResult` (or a MASUKA PNG) they come from its
    recipe, and so does the seed when `seed` is None (else a random one, recorded). `model` needs
    `weights=` (an ESRGAN / Real-ESRGAN / SwinIR ... `.pth` or `.safetensors` file). `tile` (pixels of the
    output, e.g. 512) bounds memory; `overlap` is how far neighbouring tiles share.
    """
    from PIL import Image

    t0 = time.perf_counter()
    recipe: dict[str, Any] = {}
    source_path = None
    if hasattr(image, "recipe") and hasattr(image, "images"):
        recipe, image = image.recipe, image.images[0]
    elif not isinstance(image, Image.Image):
        source_path = image
        image = open_image(image)
        meta = read_png_metadata(source_path) if str(source_path).lower().endswith(".png") else {}
        if RECIPE_KEY in meta:
            recipe = json.loads(meta[RECIPE_KEY])
    if method not in METHODS:
        raise InvalidRequestError(f"Unknown upscale method {method!r}.", argument="method", value=method,
                                  hint=f"Use one of: {', '.join(METHODS)}.")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1.0 <= factor <= 8.0:
        raise InvalidRequestError("`factor` must be a number from 1 to 8.", argument="factor", value=factor,
                                  hint="factor=2 doubles the width and height.")
    if not isinstance(save, bool):
        raise InvalidRequestError("`save` must be True or False.", argument="save", value=save,
                                  hint="save=False keeps the result in memory only.")
    _check_tiling(tile, overlap)
    multiple = 16
    w = max(multiple, round(image.width * factor / multiple) * multiple)
    h = max(multiple, round(image.height * factor / multiple) * multiple)
    about = {"method": method, "factor": factor, "tile": tile, "overlap": overlap if tile else None,
             "source_size": list(image.size), "size": [w, h], "source": str(source_path) if source_path else None}
    if method == "model":
        out = _model_upscale(image.convert("RGB"), (w, h), weights, tile, overlap, progress, cancel)
        return _finish(out, about, save, t0, recipe)
    resample = Image.Resampling.BICUBIC if method == "bicubic" else Image.Resampling.LANCZOS
    big = image.convert("RGB").resize((w, h), resample)
    if method != "refine":
        return _finish(big, about, save, t0, recipe)
    model = model or recipe.get("model")
    prompt = prompt or recipe.get("prompt")
    if not model or not prompt:
        raise InvalidRequestError("`refine` needs the model and prompt the image was made with.", argument="model",
                                  value=model, hint="Pass model= and prompt=, or a GenerationResult / MASUKA PNG.")
    seeds = recipe.get("seeds") or [None]
    engine = default_engine()
    job = GenerationJob(engine=engine, prompt=prompt, model_arg=model, progress=progress, cancel=cancel, save=save,
                        use_cache=False, prompt_cache=PromptCache(),
                        args=dict(negative_prompt=None, width=None, height=None, steps=steps or recipe.get("steps"),
                                  guidance=recipe.get("guidance"), seed=seed if seed is not None else seeds[0],
                                  num_images=1, image=big, strength=strength,
                                  loras=[(lr["source"], lr["weight"]) for lr in recipe.get("loras", [])]))
    return run_pipeline(TileRefine(engine, big=big, tile=tile, overlap=overlap, about=about), job)


class TileRefine(TextToImage):
    """Refine: image-to-image over the resampled image, tile by tile (one tile when `tile` is None), blended.
    The peak memory is one tile's, not the image's; the whole refine is one job and one history record."""

    kind = "upscale"
    stage = "upscale"
    noun = "the upscale"

    def __init__(self, engine: Any, *, big: Any, tile: int | None, overlap: int, about: dict[str, Any]) -> None:
        super().__init__(engine)
        self.big = big
        whole = not tile or (big.width <= tile and big.height <= tile)
        self.tile = max(big.width, big.height) if whole else tile
        self.overlap = overlap if not whole else 0
        self.boxes = tile_boxes(big.width, big.height, self.tile, self.overlap)
        self.about = {**about, "tiles": len(self.boxes)}

    def validate(self, job: GenerationJob) -> Any:
        left, top, right, bottom = self.boxes[0]
        job.args.update(image=self.big.crop(self.boxes[0]), width=right - left, height=bottom - top)
        return super().validate(job)

    def recipe(self, job: GenerationJob) -> dict[str, Any]:
        return {**super().recipe(job), "width": self.big.width, "height": self.big.height, "upscale": self.about}

    def steps(self, job: GenerationJob) -> int:
        return super().steps(job) * len(self.boxes)

    def run(self, job: GenerationJob, run_once: Callable[[GenerationJob], list[Any]]) -> list[Any]:
        first, per_tile, outer = job.request, super().steps(job), job.progress
        reporter = ProgressReporter(self.stage, per_tile * len(self.boxes), progress=outer)
        done = [0]

        def on_event(event: ProgressEvent) -> None:  # one bar over every tile's steps
            reporter.update(done[0] * per_tile + event.step, message=f"tile {done[0] + 1}/{len(self.boxes)}")

        def refine(piece: Any) -> Any:
            job.request = first.model_copy(update={"image": piece, "width": piece.width, "height": piece.height})
            out = run_once(job)[0]
            done[0] += 1
            return out

        job.progress = on_event if outer not in (None, False) else False
        try:
            return [tiled(self.big, refine, tile=self.tile, overlap=self.overlap)]
        finally:
            job.progress, job.request = outer, first

    def write(self, job: GenerationJob, outputs: list[Any]) -> list[Path]:
        return save_pngs(outputs, job.recipe, f"upscale-refine-{self.about['factor']:g}x") if job.save else []

    def history_extra(self, job: GenerationJob) -> dict[str, Any]:
        return {}


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


def _model_upscale(image: Any, size: tuple[int, int], weights: Any, tile: int | None, overlap: int,
                   progress: Any, cancel: Any) -> Any:
    """An ESRGAN-family network (spandrel loads the architecture from the weights' own keys)."""
    import numpy as np
    import torch
    from PIL import Image

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


def load_upscaler(weights: Any) -> tuple[Any, int, Any, Any]:
    """(network, scale, device, dtype) for an upscaler weights file, loaded through the device host (kept
    while upscaling goes on, evicted when another task claims the device)."""
    if weights is None:
        raise InvalidRequestError("method=\"model\" needs `weights=`: an upscaler weights file.", argument="weights",
                                  value=None, hint="e.g. weights=\"/content/drive/MyDrive/4x-UltraSharp.pth\" "
                                                   "(ESRGAN, Real-ESRGAN, SwinIR, ... as .pth or .safetensors).")
    path = Path(weights)
    if not path.is_file():
        raise InvalidRequestError(f"No upscaler weights at {path}.", argument="weights", value=str(path),
                                  hint="Give the path of a .pth or .safetensors upscaler file.")
    key = (TASK, str(path.resolve()), path.stat().st_mtime, torch_device())
    host = device_host()
    host.claim(TASK, slot=TASK, model=key[1])
    return host.load(key, lambda: _load_upscaler(path, key[3]), task=TASK, slot=TASK, model=key[1])


def _load_upscaler(path: Path, device_name: str) -> tuple[Any, int, Any, Any]:
    try:
        from spandrel import ImageModelDescriptor, ModelLoader
    except ImportError as exc:
        raise DependencyMissingError("The model upscaler needs spandrel (and torchvision).", argument="method",
                                     value="model", hint="pip install 'masuka-nb[upscale]' (spandrel); Colab has "
                                                         "torchvision.") from exc
    import torch

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
    device = torch.device(device_name)
    dtype = torch.float16 if device.type == "cuda" and desc.supports_half else torch.float32
    net = desc.model.to(device=device, dtype=dtype).eval()
    return net, int(desc.scale), device, dtype


def _finish(image: Any, about: dict[str, Any], save: bool, t0: float,
            source: dict[str, Any] | None = None) -> GenerationResult:
    """A resampled or network-upscaled image as a result: saved (by default) with its recipe, recorded.
    A MASUKA source's model, prompt and seed carry over, so the file's recipe (and its history record) says
    what the picture is; its size is the new one."""
    kept = {k: v for k, v in (source or {}).items()
            if k in ("model", "prompt", "negative_prompt", "steps", "guidance", "loras")}
    seeds = (source or {}).get("seeds")
    if isinstance(seeds, list) and seeds:
        kept["seed"] = seeds[0]
    recipe = {**kept, "kind": "upscale", "upscale": about, "width": image.width, "height": image.height,
              "seeds": []}
    image.info["masuka_recipe"] = json.dumps(recipe, sort_keys=True, default=str)
    paths = [_save_png(image, recipe)] if save else []
    if paths:
        image.info["masuka_path"] = str(paths[0])
    timings = {"seconds_total": time.perf_counter() - t0}
    rec = history.write("upscale", model=str(kept.get("model") or ""), prompt=kept.get("prompt") or "",
                        recipe=recipe, paths=paths, timings=timings)
    return GenerationResult([image], [], recipe, paths, timings, None, False, [], rec.id if rec else "")


def _save_png(image: Any, recipe: dict[str, Any]) -> Path:
    import io
    import math
    from datetime import datetime

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(RECIPE_KEY, json.dumps(recipe, sort_keys=True, default=str))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    folder = settings().outputs_dir / datetime.now().strftime("%Y-%m-%d")
    up = recipe["upscale"]
    return atomic_write_bytes(unique_path(folder, f"upscale-{up['method']}-{math.ceil(up['factor'])}x", ".png"),
                              buf.getvalue())
