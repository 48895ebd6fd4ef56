"""Local open-weight video on this machine's GPU: Wan text-to-video and image-to-video through diffusers.

    from masuka_nb.video.local import generate_local
    clip = generate_local("waves at night", model="wan2.1-t2v-1.3b")       # T4: fp16, NF4 T5, ≈81 frames
    clip.path, clip.recipe, clip.cost_label                                # an H.264 MP4, local, $0

The steps: validate against the model's published frames/size/fps, plan memory (the same planner
as images: it refuses a clip that will not fit and names a shorter or smaller one that does), load
(or reuse) the pipeline, run it with a per-step callback (progress, cancel), write the frames as
H.264 MP4 with imageio-ffmpeg (to a temporary file, renamed into place: never half a clip), record
the recipe in the history. `VideoGenerator().generate(..., model="wan2.1-t2v-1.3b")` arrives here.
Tiny twins (`tiny-wan`, `tiny-wan-i2v`) run the same path on a CPU; their clips are labelled noise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError, MasukaError, PlanDoesNotFitError
from masuka_nb.host import device_host
from masuka_nb.hosted.pricing import CostEstimate
from masuka_nb.image.engine import place as _place
from masuka_nb.image.job import GenerationJob
from masuka_nb.image.pipeline import Task, image_sha256
from masuka_nb.image.pipeline import run as run_pipeline
from masuka_nb.image.request import (
    MAX_GUIDANCE,
    MAX_STEPS,
    check_float,
    check_int,
    check_seed,
    open_image,
)
from masuka_nb.image.speed import apply_speed
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan
from masuka_nb.memory import plan as make_plan
from masuka_nb.models.registry import MODELS, get_model
from masuka_nb.models.tiny import TINY_LABEL
from masuka_nb.mp4 import Mp4Info, read_mp4, write_mp4
from masuka_nb.storage import safe_name, unique_path
from masuka_nb.video.result import VideoResult

__all__ = ["COST_LABEL", "LocalVideoResult", "Mp4Info", "VideoTask", "generate_local", "is_local_model", "read_mp4",
           "reproduce_local", "unload", "write_mp4"]

log = get_logger(__name__)

COST_LABEL = "local, $0"


@dataclass
class LocalVideoResult(VideoResult):
    """A clip made on this machine: a `VideoResult` (provider "local", cost 0) plus its recipe."""

    recipe: dict[str, Any] = field(default_factory=dict)
    num_frames: int = 0
    fps: int = 0
    width: int = 0
    height: int = 0
    plan: MemoryPlan | None = None
    cost_label: str = COST_LABEL


def is_local_model(model: str) -> bool:
    """True when `model` is a registry video model (run here), False for hosted ones."""
    try:
        return get_model(model).is_video if isinstance(model, str) and model.strip() else False
    except MasukaError:
        return model in MODELS


# ---- the request ----

@dataclass(frozen=True)
class VideoRequest:
    """A local clip, checked against the model's published frames, sizes and rates."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    guidance: float
    seed: int | None
    image: Any


def _check(spec: Any, *, prompt: Any, negative_prompt: Any, width: Any, height: Any, num_frames: Any, fps: Any,
           steps: Any, guidance: Any, seed: Any, image: Any) -> VideoRequest:
    def bad(arg: str, value: Any, why: str, hint: str) -> InvalidRequestError:
        return InvalidRequestError(f"`{arg}` {why} (got {value!r}).", argument=arg, value=value, hint=hint)

    if not isinstance(prompt, str) or not prompt.strip():
        raise bad("prompt", prompt, "must be a non-empty text", "e.g. \"waves at night, slow pan\"")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise bad("negative_prompt", negative_prompt, "must be text or None", "e.g. \"blurry, static\"")
    w = spec.default_width if width is None else width
    h = spec.default_height if height is None else height
    for arg, v in (("width", w), ("height", h)):
        if isinstance(v, bool) or not isinstance(v, int) or not spec.min_size <= v <= spec.max_size \
                or v % spec.size_multiple:
            raise bad(arg, v, f"must be a multiple of {spec.size_multiple} in [{spec.min_size}, {spec.max_size}]",
                      "Published sizes: " + ", ".join(f"{a}×{b}" for a, b in spec.sizes) + ".")
    n = spec.default_frames if num_frames is None else num_frames
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > spec.max_frames or (n - 1) % spec.frame_multiple:
        raise bad("num_frames", n, f"must be {spec.frame_multiple}·k + 1 and at most {spec.max_frames}",
                  f"e.g. num_frames={spec.default_frames} ({spec.default_frames / spec.fps:.1f} s at {spec.fps} fps).")
    f = check_int("fps", spec.fps if fps is None else fps, 1, 60)
    s = check_int("steps", spec.default_steps if steps is None else steps, 1, MAX_STEPS)
    g = check_float("guidance", spec.default_guidance if guidance is None else guidance, 0.0, MAX_GUIDANCE)
    if image is not None:
        image = open_image(image)
        if _i2v_class(spec) is None:
            raise bad("image", "<image>", f"is not used by {spec.id} (text-to-video only)",
                      "Use wan2.2-ti2v-5b (or tiny-wan-i2v offline) for image-to-video.")
        image = image.resize((w, h))
    elif spec.pipeline_class == "WanImageToVideoPipeline":
        raise bad("image", None, f"is required: {spec.id} animates an image", "Pass image=<path or PIL image>.")
    return VideoRequest(prompt, negative_prompt or None, w, h, n, f, s, g, check_seed(seed), image)


def _i2v_class(spec: Any) -> str | None:
    if spec.pipeline_class == "WanImageToVideoPipeline":
        return spec.pipeline_class
    return spec.img2img_class if spec.img2img_class != spec.pipeline_class else None


# ---- the run ----

def generate_local(prompt: str, *, model: str = "wan2.1-t2v-1.3b", image: Any = None,
                   negative_prompt: str | None = None, width: int | None = None, height: int | None = None,
                   num_frames: int | None = None, fps: int | None = None, steps: int | None = None,
                   guidance: float | None = None, seed: int | None = None, plan: MemoryPlan | dict | None = None,
                   progress: Any = None, cancel: Any = None, save: bool = True) -> LocalVideoResult:
    """Make a clip of `prompt` (animating `image` when given) with a local Wan model.

    Defaults (size, frames, fps, steps, guidance) are the model's published ones; `num_frames` is
    4·k + 1. `plan` is a `MemoryPlan` or a dict of `masuka_nb.plan` choices (e.g. {"speed": "fast"}).
    Raises only `MasukaError`s; every call lands in the history (kind "video", provider "local").
    `save=False` writes the clip to the local cache instead of the outputs folder (a clip needs a file to play).
    """
    job = GenerationJob(engine=None, prompt=prompt, model_arg=model, plan_arg=plan, progress=progress,
                        cancel=cancel, save=save, use_cache=False,
                        args=dict(image=image, negative_prompt=negative_prompt, width=width, height=height,
                                  num_frames=num_frames, fps=fps, steps=steps, guidance=guidance, seed=seed))
    return run_pipeline(VideoTask(), job)


def reproduce_local(recipe: dict[str, Any] | LocalVideoResult | str, *, image: Any = None, progress: Any = None,
                    cancel: Any = None) -> LocalVideoResult:
    """Make a local clip again from its recipe (a dict, a result, or a history id): same frames on the same
    device. Image-to-video recipes need the same `image` (checked against the recipe's SHA-256)."""
    if isinstance(recipe, LocalVideoResult):
        recipe = recipe.recipe
    elif isinstance(recipe, str):
        found = [r for r in history.query(kind="video") if r.id == recipe]
        if not found:
            raise InvalidRequestError(f"No video with history id {recipe!r}.", argument="recipe", value=recipe,
                                      hint="masuka_nb.history.query(kind=\"video\") lists them.")
        recipe = found[0].recipe
    if not isinstance(recipe, dict) or recipe.get("kind") != "video" or recipe.get("provider") != "local":
        raise InvalidRequestError("`recipe` must be a local video recipe.", argument="recipe", value=str(recipe)[:200],
                                  hint="Use LocalVideoResult.recipe or a history id of a local clip.")
    wanted = recipe.get("image_sha256")
    given = image_sha256(open_image(image).resize((recipe["width"], recipe["height"]))) if image is not None else None
    if wanted and given != wanted:
        raise InvalidRequestError("This image-to-video recipe needs its original image.", argument="image",
                                  value=None if image is None else str(image)[:200],
                                  hint="Pass image=<the image the clip was made from>.")
    try:
        return generate_local(recipe["prompt"], model=recipe["model"], image=image,
                              negative_prompt=recipe.get("negative_prompt"), width=recipe["width"],
                              height=recipe["height"], num_frames=recipe["num_frames"], fps=recipe["fps"],
                              steps=recipe["steps"], guidance=recipe["guidance"],
                              seed=recipe["seeds"][0] if recipe.get("seeds") else recipe["seed"],
                              plan=recipe.get("plan_overrides") or None, progress=progress, cancel=cancel)
    except KeyError as exc:
        raise InvalidRequestError(f"The recipe lacks {exc}.", argument="recipe", value=str(recipe)[:200],
                                  hint="Use a recipe written by generate_local.") from exc


class VideoTask(Task):
    """Text-to-video and image-to-video with a local Wan model: the run pipeline's video task. Its pipeline
    sits in the device host's "video" slot, kept between calls until another task claims the device."""

    kind = "video"
    stage = "video"
    noun = "the video"
    output = "frames"

    def __init__(self) -> None:
        super().__init__(engine=None)

    def resolve(self, job: GenerationJob) -> tuple[str, str | None]:
        spec = get_model(job.model_arg)
        if not spec.is_video:
            raise InvalidRequestError(f"{spec.id} is not a video model.", argument="model", value=job.model_arg,
                                      hint="Local video models: wan2.1-t2v-1.3b, wan2.2-ti2v-5b (tiny-wan offline).")
        return spec.id, None

    def validate(self, job: GenerationJob) -> VideoRequest:
        return _check(job.spec, prompt=job.prompt, **job.args)

    def count(self, job: GenerationJob) -> int:
        return 1

    def plan_size(self, job: GenerationJob) -> dict[str, Any]:
        req = job.request
        return {"width": req.width, "height": req.height, "num_frames": req.num_frames}

    def recipe(self, job: GenerationJob) -> dict[str, Any]:
        req = job.request
        recipe = {"seed": job.seeds[0], "num_frames": req.num_frames, "fps": req.fps,
                  "image_sha256": image_sha256(req.image) if req.image is not None else None,
                  "provider": "local", "cost_usd": 0.0, "cost": COST_LABEL, "codec": "h264"}
        if job.spec.tiny:
            recipe["label"] = TINY_LABEL.replace("a real image", "a real video")
        return recipe

    # the device host's "video" slot
    @property
    def lock(self) -> Any:
        return _lock

    def claim(self, job: GenerationJob) -> None:
        device_host().claim(TASK, slot=TASK, model=job.spec.id)

    def load(self, job: GenerationJob) -> Any:
        return _pipeline(job.spec, job.plan, i2v=job.request.image is not None)

    def loads(self) -> int:
        return _loads[0]

    def unload(self) -> None:
        unload()

    def call(self, job: GenerationJob, pipe: Any) -> dict[str, Any]:
        req = job.request
        call: dict[str, Any] = dict(height=req.height, width=req.width, num_frames=req.num_frames)
        if req.image is not None:
            call["image"] = req.image
        return call

    def write(self, job: GenerationJob, frames: list[Any]) -> list[Path]:
        if job.cancel is not None:  # a cancel during the last step stops before the clip is written
            job.cancel.raise_if_cancelled("the clip")
        path = _target(job)
        write_mp4(frames, path, fps=job.request.fps)
        thumb = path.with_suffix(".png")
        frames[0].save(thumb)
        return [path, thumb]

    def history_extra(self, job: GenerationJob) -> dict[str, Any]:
        return {"provider": "local", "cost_usd": 0.0, "cost": COST_LABEL}

    def result(self, job: GenerationJob, frames: list[Any], paths: list[Path], history_id: str) -> LocalVideoResult:
        req, spec = job.request, job.spec
        notes = [COST_LABEL] + ([job.recipe["label"]] if "label" in job.recipe else [])
        return LocalVideoResult(path=paths[0], provider="local", model=spec.id,
                                duration_s=round(req.num_frames / req.fps, 3), cost=0.0, timings=job.timings,
                                provider_model=spec.repo or spec.id, thumbnail=paths[1], notes=notes,
                                recipe=job.recipe, num_frames=len(frames), fps=req.fps, width=req.width,
                                height=req.height, plan=job.plan, history_id=history_id, paths=list(paths))


# ---- loading (one Wan pipeline in the device host's "video" slot) ----

TASK = "video"
_lock = threading.RLock()
_loads = [0]


def unload() -> None:
    """Drop the loaded video pipeline and give its memory back."""
    device_host().evict_slot(TASK)


def _pipeline(spec: Any, mplan: MemoryPlan, *, i2v: bool) -> Any:
    import diffusers

    key = (TASK, spec.id, mplan.device, mplan.dtype, mplan.quantization, mplan.offload, mplan.free_text_encoders,
           mplan.first_block_cache, mplan.compile)
    host = device_host()
    pipe = host.get(key)
    if pipe is None:
        pipe = host.load(key, lambda: _load(spec, mplan), task=TASK, slot=TASK, model=spec.id, plan=mplan,
                         need_gb=mplan.after_load_vram_gb if mplan.device == "cuda" else mplan.ram_gb)
        _loads[0] += 1
    cls = _i2v_class(spec)
    if not i2v or cls is None or type(pipe).__name__ == cls:
        return pipe
    views = host.extras(key)
    if "i2v" not in views:
        views["i2v"] = getattr(diffusers, cls).from_pipe(pipe)  # shares every component: no second load
        views["i2v"].set_progress_bar_config(disable=True)
    return views["i2v"]


def _load(spec: Any, mplan: MemoryPlan) -> Any:
    import torch

    from masuka_nb.image.loading import load_pipeline

    log.info("video.load", model=spec.id, plan=mplan.label, loading=mplan.loading)
    if spec.tiny:
        from masuka_nb.models.tiny import ensure_tiny

        path = ensure_tiny(spec.id)
    else:
        from masuka_nb.hub import download_plan, locate_model

        path = locate_model(spec, download_plan(spec, plan=mplan))
    # One component at a time onto its home (GPU plans: the UMT5 encoder a plan frees stays in RAM, NF4
    # quantized as it arrives), or one pipeline read (CPU plans), as the planner counted it.
    pipe = load_pipeline(spec, mplan, path=path)
    if mplan.vae_dtype != mplan.dtype:
        pipe.vae.to(getattr(torch, mplan.vae_dtype))  # Wan casts latents to the VAE's dtype itself
    _place(pipe, mplan)
    apply_speed(pipe, mplan)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _target(job: GenerationJob) -> Path:
    req = job.request
    folder = settings().outputs_dir / "videos" if job.save else settings().cache_dir / "videos"
    stem = f"{datetime.now().strftime('%Y-%m-%d-%H%M%S')}-{safe_name(req.prompt, max_len=40)}-{job.seeds[0]}"
    return unique_path(folder, stem, ".mp4")


# ---- the VideoGenerator front door (hosted and local video share one entry point) ----

@dataclass(frozen=True)
class _Shape:
    width: int
    height: int
    num_frames: int
    changes: tuple[str, ...]


def _shape(spec: Any, *, duration: float, resolution: str | None, aspect_ratio: str | None) -> _Shape:
    """A hosted-style request (seconds, "480p", "16:9") as the model's own frames and published size."""
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
        raise InvalidRequestError(f"`duration` must be a positive number of seconds (got {duration!r}).",
                                  argument="duration", value=duration, hint="e.g. duration=5")
    changes = []
    frames = round(duration * spec.fps) // spec.frame_multiple * spec.frame_multiple + 1
    if frames > spec.max_frames:
        frames = spec.max_frames
        changes.append(f"duration {duration:g} s → {frames / spec.fps:.1f} s ({frames} frames, the model's most)")
    portrait = bool(aspect_ratio) and str(aspect_ratio).strip() in ("9:16", "3:4", "2:3")
    sizes = [s for s in spec.sizes if (s[0] < s[1]) == portrait] or list(spec.sizes)
    wanted = int(str(resolution or "").lower().rstrip("p") or 0) if str(resolution or "").lower().rstrip("p").isdigit() \
        else 0
    by_short_side = sorted(sizes, key=lambda s: min(s))
    pick = [s for s in by_short_side if min(s) <= wanted] if wanted else by_short_side[:1]
    w, h = (pick[-1] if pick else by_short_side[0])
    if wanted and min(w, h) != wanted:
        changes.append(f"resolution {resolution} → {w}×{h} (the sizes {spec.id} was trained for)")
    return _Shape(w, h, frames, tuple(changes))


def estimate_local(model: str, *, duration: float = 5, resolution: str | None = None, image: Any = None,
                   aspect_ratio: str | None = None) -> Any:
    """A `CostEstimate` for a local model: $0, with the memory plan it would run under in its notes."""
    spec = get_model(model)
    shape = _shape(spec, duration=duration, resolution=resolution, aspect_ratio=aspect_ratio)
    try:
        plan_note = make_plan(spec.id, width=shape.width,
                              height=shape.height, num_frames=shape.num_frames).label
    except PlanDoesNotFitError as exc:  # an estimate says so instead of refusing
        plan_note = f"does not fit this machine; nearest plan that fits: {exc.details.get('nearest')}"
    return CostEstimate(model=spec.id, provider="local", provider_model=spec.repo or spec.id,
                        seconds=round(shape.num_frames / spec.fps), resolution=f"{shape.width}x{shape.height}",
                        aspect_ratio=f"{shape.width}:{shape.height}", usd=0.0,
                        price_date=datetime.now(timezone.utc).date().isoformat(),
                        price_source="runs on this machine (" + COST_LABEL + ")", changes=list(shape.changes),
                        notes=[plan_note, f"licence: {spec.licence}"])


def generate_from_front_door(prompt: str, *, model: str, duration: float = 5, resolution: str | None = None,
                             image: Any = None, aspect_ratio: str | None = None, progress: Any = None,
                             cancel: Any = None, seed: int | None = None, steps: int | None = None,
                             strict: bool = False) -> LocalVideoResult:
    """`VideoGenerator().generate(..., model=<a local model>)`: seconds and "480p" become frames and a size;
    `steps` (the model's own by default) trades time for quality. A change to fit the model is said in the
    result's notes, or refused when `strict`."""
    spec = get_model(model)
    shape = _shape(spec, duration=duration, resolution=resolution, aspect_ratio=aspect_ratio)
    if strict and shape.changes:
        raise InvalidRequestError(f"{spec.id} cannot make this clip as asked: {'; '.join(shape.changes)}.",
                                  argument="duration", value=duration,
                                  hint="Ask for what the model makes (see VideoGenerator().estimate), or turn "
                                       "strict off to accept the nearest clip.")
    result = generate_local(prompt, model=spec.id, image=image, width=shape.width, height=shape.height,
                            num_frames=shape.num_frames, seed=seed, steps=steps, progress=progress, cancel=cancel)
    result.notes.extend(shape.changes)
    return result
