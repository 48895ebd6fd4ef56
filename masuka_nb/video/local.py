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

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb.errors import (
    InvalidRequestError,
    MasukaError,
    PlanDoesNotFitError,
)
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan
from masuka_nb.mp4 import Mp4Info, read_mp4, write_mp4
from masuka_nb.video.result import VideoResult

__all__ = ["COST_LABEL", "LocalVideoResult", "Mp4Info", "generate_local", "is_local_model", "read_mp4", "reproduce_local", "unload",
           "write_mp4"]

log = get_logger(__name__)

COST_LABEL = "local, $0"
MAX_STEPS = 150


@dataclass
class LocalVideoResult(VideoResult):
    """A clip made on this machine: a `VideoResult` (provider "local", cost 0) plus its recipe."""

    recipe: dict[str, Any] = field(default_factory=dict)
    num_frames: int = 0
    fps: int = 0
    width: int = 0
    height: int = 0
    plan: MemoryPlan | None = None
    history_id: str = ""
    cost_label: str = COST_LABEL


def is_local_model(model: str) -> bool:
    """True when `model` is a registry video model (run here), False for hosted ones."""
    from masuka_nb.models.registry import MODELS, get_model

    try:
        return get_model(model).is_video if isinstance(model, str) and model.strip() else False
    except MasukaError:
        return model in MODELS


# ---- the request ----

@dataclass(frozen=True)
class _Request:
    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    num_frames: int
    fps: int
    steps: int
    guidance: float
    seed: int
    image: Any


def _check(spec: Any, *, prompt: Any, negative_prompt: Any, width: Any, height: Any, num_frames: Any, fps: Any,
           steps: Any, guidance: Any, seed: Any, image: Any) -> _Request:
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
    f = spec.fps if fps is None else fps
    if isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= 60:
        raise bad("fps", f, "must be a whole number of frames per second in [1, 60]",
                  f"{spec.id} was trained for {spec.fps} fps.")
    s = spec.default_steps if steps is None else steps
    if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_STEPS:
        raise bad("steps", s, f"must be a whole number in [1, {MAX_STEPS}]", f"{spec.id}: {spec.default_steps}.")
    g = spec.default_guidance if guidance is None else guidance
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g <= 30:
        raise bad("guidance", g, "must be a number in [0, 30]", f"{spec.id}: {spec.default_guidance}.")
    if seed is None:
        seed = secrets.randbelow(2**32)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise bad("seed", seed, "must be a whole number in [0, 2³²)", "e.g. seed=42, or None for a random one.")
    if image is not None:
        image = _open_image(image)
        if _i2v_class(spec) is None:
            raise bad("image", "<image>", f"is not used by {spec.id} (text-to-video only)",
                      "Use wan2.2-ti2v-5b (or tiny-wan-i2v offline) for image-to-video.")
        image = image.resize((w, h))
    elif spec.pipeline_class == "WanImageToVideoPipeline":
        raise bad("image", None, f"is required: {spec.id} animates an image", "Pass image=<path or PIL image>.")
    return _Request(prompt, negative_prompt or None, w, h, n, f, s, float(g), int(seed), image)


def _open_image(image: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if hasattr(image, "convert"):
        return image.convert("RGB")
    try:
        with Image.open(image) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"Could not read the image {str(image)[:200]!r} ({type(exc).__name__}).",
                                  argument="image", value=str(image)[:200],
                                  hint="Pass a PNG/JPEG path or a PIL image.") from exc


def _i2v_class(spec: Any) -> str | None:
    if spec.pipeline_class == "WanImageToVideoPipeline":
        return spec.pipeline_class
    return spec.img2img_class if spec.img2img_class != spec.pipeline_class else None


def _image_sha256(image: Any) -> str:
    h = hashlib.sha256(f"{image.size}{image.mode}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


# ---- the run ----

def generate_local(
    prompt: str,
    *,
    model: str = "wan2.1-t2v-1.3b",
    image: Any = None,
    negative_prompt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    num_frames: int | None = None,
    fps: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int | None = None,
    plan: MemoryPlan | dict | None = None,
    progress: Any = None,
    cancel: Any = None,
) -> LocalVideoResult:
    """Make a clip of `prompt` (animating `image` when given) with a local Wan model.

    Defaults (size, frames, fps, steps, guidance) are the model's published ones; `num_frames` is
    4·k + 1. `plan` is a `MemoryPlan` or a dict of `masuka_nb.plan` choices (e.g. {"speed": "fast"}).
    Raises only `MasukaError`s; every call lands in the history (kind "video", provider "local").
    """
    from masuka_nb.image.failures import translate

    t0 = time.perf_counter()
    state: dict[str, Any] = {"model": str(model), "prompt": prompt}
    try:
        return _run(state, t0, prompt, model=model, image=image, negative_prompt=negative_prompt, width=width,
                    height=height, num_frames=num_frames, fps=fps, steps=steps, guidance=guidance, seed=seed,
                    plan=plan, progress=progress, cancel=cancel)
    except (Exception, KeyboardInterrupt) as exc:
        from masuka_nb.image.failures import is_out_of_memory

        if is_out_of_memory(exc):
            unload()  # a half-run pipeline would keep the VRAM the next, smaller, clip needs
        err = translate(exc, model=state["model"], stage="video", plan_label=getattr(state.get("plan"), "label", ""))
        _record(state, t0, error=err)
        if err is exc:
            raise
        raise err from exc


def reproduce_local(recipe: dict[str, Any] | LocalVideoResult | str, *, image: Any = None, progress: Any = None,
                    cancel: Any = None) -> LocalVideoResult:
    """Make a local clip again from its recipe (a dict, a result, or a history id): same frames on the same
    device. Image-to-video recipes need the same `image` (checked against the recipe's SHA-256)."""
    from masuka_nb import history

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
    given = _image_sha256(_open_image(image).resize((recipe["width"], recipe["height"]))) if image is not None else None
    if wanted and given != wanted:
        raise InvalidRequestError("This image-to-video recipe needs its original image.", argument="image",
                                  value=None if image is None else str(image)[:200],
                                  hint="Pass image=<the image the clip was made from>.")
    try:
        return generate_local(recipe["prompt"], model=recipe["model"], image=image,
                              negative_prompt=recipe.get("negative_prompt"), width=recipe["width"],
                              height=recipe["height"], num_frames=recipe["num_frames"], fps=recipe["fps"],
                              steps=recipe["steps"], guidance=recipe["guidance"], seed=recipe["seed"],
                              plan=recipe.get("plan_overrides") or None, progress=progress, cancel=cancel)
    except KeyError as exc:
        raise InvalidRequestError(f"The recipe lacks {exc}.", argument="recipe", value=str(recipe)[:200],
                                  hint="Use a recipe written by generate_local.") from exc


def _run(state, t0, prompt, *, model, image, negative_prompt, width, height, num_frames, fps, steps, guidance,
         seed, plan, progress, cancel) -> LocalVideoResult:
    from masuka_nb.models.registry import get_model
    from masuka_nb.progress import ProgressReporter

    spec = get_model(model)
    state["model"] = spec.id
    if not spec.is_video:
        raise InvalidRequestError(f"{spec.id} is not a video model.", argument="model", value=model,
                                  hint="Local video models: wan2.1-t2v-1.3b, wan2.2-ti2v-5b (tiny-wan offline).")
    req = _check(spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
                 num_frames=num_frames, fps=fps, steps=steps, guidance=guidance, seed=seed, image=image)
    mplan, overrides = _plan_for(spec, req, plan)
    state["plan"] = mplan
    recipe = _recipe(spec, req, mplan, overrides)
    state["recipe"] = recipe
    reporter = ProgressReporter("video", req.steps, progress=progress, cancel=cancel)
    reporter.check()
    timings: dict[str, float] = {"validate": time.perf_counter() - t0}
    t = time.perf_counter()
    frames = _denoise(spec, req, mplan, reporter, timings)
    timings["generate"] = time.perf_counter() - t - timings.get("load", 0.0)
    reporter.check("the clip")
    t = time.perf_counter()
    path = _target(req)
    write_mp4(frames, path, fps=req.fps)
    thumb = path.with_suffix(".png")
    frames[0].save(thumb)
    timings["save"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    reporter.done(f"{len(frames)} frames → {path.name}")
    rec = _record(state, t0, paths=[path, thumb], timings=timings)
    notes = [COST_LABEL] + ([recipe["label"]] if "label" in recipe else [])
    return LocalVideoResult(path=path, provider="local", model=spec.id, seconds=round(req.num_frames / req.fps),
                            cost=0.0, timings=timings, provider_model=spec.repo or spec.id, thumbnail=thumb,
                            notes=notes, recipe=recipe, num_frames=len(frames), fps=req.fps, width=req.width,
                            height=req.height, plan=mplan, history_id=rec.id if rec else "")


def _plan_for(spec: Any, req: _Request, plan: Any) -> tuple[MemoryPlan, dict]:
    from masuka_nb.config import settings
    from masuka_nb.memory import plan as make_plan

    if isinstance(plan, MemoryPlan):
        if plan.model != spec.id:
            raise InvalidRequestError(f"The plan is for {plan.model}, not {spec.id}.", argument="plan",
                                      value=plan.label, hint=f"Make one with masuka_nb.plan(\"{spec.id}\").")
        return plan, {}
    if plan is not None and not isinstance(plan, dict):
        raise InvalidRequestError("`plan` must be a MemoryPlan, a dict of plan choices, or None.", argument="plan",
                                  value=plan, hint="e.g. plan={\"offload\": \"model\"} or {\"speed\": \"fast\"}.")
    overrides = dict(plan or {})
    allowed = {"gpu", "ram_gb", "dtype", "quantization", "offload", "free_text_encoders", "speed",
               "first_block_cache"}
    unknown = set(overrides) - allowed
    if unknown:
        raise InvalidRequestError(f"Unknown plan choices: {', '.join(sorted(map(str, unknown)))}.", argument="plan",
                                  value=overrides, hint=f"Allowed: {', '.join(sorted(allowed))}.")
    overrides.setdefault("gpu", "cpu" if settings().device == "cpu" else None)
    mplan = make_plan(spec.id, width=req.width, height=req.height, num_frames=req.num_frames, **overrides)
    return mplan, {k: v for k, v in overrides.items() if v is not None and k != "gpu"}


def _recipe(spec: Any, req: _Request, mplan: MemoryPlan, overrides: dict) -> dict[str, Any]:
    import diffusers

    from masuka_nb._version import __version__

    recipe: dict[str, Any] = {
        "kind": "video",
        "model": spec.id,
        "revision": spec.revision if not spec.tiny else f"tiny-builder-v{_tiny_version()}",
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "width": req.width,
        "height": req.height,
        "num_frames": req.num_frames,
        "fps": req.fps,
        "steps": req.steps,
        "guidance": req.guidance,
        "seed": req.seed,
        "image_sha256": _image_sha256(req.image) if req.image is not None else None,
        "scheduler": spec.scheduler_label,
        "device": mplan.device,
        "dtype": mplan.dtype,
        "quantization": mplan.quantization,
        "plan": mplan.label,
        "plan_overrides": overrides,
        "speed": mplan.speed,
        "provider": "local",
        "cost_usd": 0.0,
        "cost": COST_LABEL,
        "codec": "h264",
        "masuka_version": __version__,
        "diffusers_version": diffusers.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if spec.tiny:
        from masuka_nb.models.tiny import TINY_LABEL

        recipe["label"] = TINY_LABEL.replace("a real image", "a real video")
    return recipe


def _tiny_version() -> int:
    from masuka_nb.models.tiny import BUILDER_VERSION

    return BUILDER_VERSION


def _denoise(spec: Any, req: _Request, mplan: MemoryPlan, reporter: Any, timings: dict) -> list[Any]:
    import torch

    with _lock:
        t = time.perf_counter()
        before = _state["loads"]
        pipe = _pipeline(spec, mplan, i2v=req.image is not None)
        if _state["loads"] != before:
            timings["load"] = time.perf_counter() - t

        def on_step(p, step, timestep, kwargs):
            reporter.update(step + 1, message=f"step {step + 1}/{req.steps}")
            reporter.check("the video")
            return kwargs

        call: dict[str, Any] = dict(height=req.height, width=req.width, num_frames=req.num_frames,
                                    num_inference_steps=req.steps, guidance_scale=req.guidance,
                                    generator=torch.Generator(device="cpu").manual_seed(req.seed),
                                    max_sequence_length=spec.max_sequence_length, callback_on_step_end=on_step,
                                    output_type="pil")
        if req.image is not None:
            call["image"] = req.image
        with torch.inference_mode():
            call.update(_prompt_inputs(pipe, req, mplan, spec.max_sequence_length))
            if "prompt_embeds" in call:
                # The pipeline picks its device from its modules: hide the text encoder waiting on the CPU.
                encoder, pipe.text_encoder = pipe.text_encoder, None
                try:
                    frames = pipe(**call).frames[0]
                finally:
                    pipe.text_encoder = encoder
            else:
                frames = pipe(**call).frames[0]
    return list(frames)


def _prompt_inputs(pipe: Any, req: _Request, mplan: MemoryPlan, max_sequence_length: int) -> dict[str, Any]:
    """The prompt, or (when the plan frees the text encoder) its embeddings, encoded before the
    transformer needs the VRAM, with the encoder moved back to the CPU."""
    if not mplan.free_text_encoders or mplan.device != "cuda":
        return {"prompt": req.prompt, "negative_prompt": req.negative_prompt}
    import torch

    enc = pipe.text_encoder
    if mplan.offload == "none":
        enc.to("cuda")
    try:
        embeds, negative = pipe.encode_prompt(prompt=req.prompt, negative_prompt=req.negative_prompt,
                                              do_classifier_free_guidance=req.guidance > 1.0,
                                              num_videos_per_prompt=1, device=torch.device("cuda"),
                                              max_sequence_length=max_sequence_length)
    finally:
        if mplan.offload == "none":
            enc.to("cpu")
            torch.cuda.empty_cache()
    out = {"prompt_embeds": embeds}
    if negative is not None:
        out["negative_prompt_embeds"] = negative
    return out


# ---- loading (one Wan pipeline kept between calls) ----

_lock = threading.RLock()
_state: dict[str, Any] = {"key": None, "pipe": None, "i2v": None, "loads": 0}


def unload() -> None:
    """Drop the loaded video pipeline and give its memory back."""
    from masuka_nb.runtime import free_memory

    with _lock:
        if _state["pipe"] is not None:
            _state.update(key=None, pipe=None, i2v=None)
            free_memory()


def _pipeline(spec: Any, mplan: MemoryPlan, *, i2v: bool) -> Any:
    import diffusers

    key = (spec.id, mplan.device, mplan.dtype, mplan.quantization, mplan.offload, mplan.free_text_encoders,
           mplan.first_block_cache, mplan.compile)
    if _state["key"] != key:
        unload()
        _state.update(pipe=_load(spec, mplan), key=key, i2v=None)
        _state["loads"] += 1
    pipe = _state["pipe"]
    cls = _i2v_class(spec)
    if not i2v or cls is None or type(pipe).__name__ == cls:
        return pipe
    if _state["i2v"] is None:
        _state["i2v"] = getattr(diffusers, cls).from_pipe(pipe)  # shares every component: no second load
        _state["i2v"].set_progress_bar_config(disable=True)
    return _state["i2v"]


def _load(spec: Any, mplan: MemoryPlan) -> Any:
    import diffusers
    import torch

    from masuka_nb.image.speed import apply_speed

    log.info("video.load", model=spec.id, plan=mplan.label)
    dtype = getattr(torch, mplan.dtype)
    kwargs: dict[str, Any] = {_dtype_kwarg(): dtype}
    if spec.tiny:
        from masuka_nb.models.tiny import ensure_tiny

        path = ensure_tiny(spec.id)
    else:
        from masuka_nb.hub import download_plan, locate_model

        path = locate_model(spec, download_plan(spec, plan=mplan))
        if mplan.quantization == "nf4":
            from diffusers import PipelineQuantizationConfig

            kwargs["quantization_config"] = PipelineQuantizationConfig(
                quant_backend="bitsandbytes_4bit", components_to_quantize=list(mplan.quantized_components),
                quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype})
    pipe = getattr(diffusers, spec.pipeline_class).from_pretrained(str(path), **kwargs)
    if mplan.vae_dtype != mplan.dtype:
        pipe.vae.to(getattr(torch, mplan.vae_dtype))  # Wan casts latents to the VAE's dtype itself
    _place(pipe, mplan)
    apply_speed(pipe, mplan)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _dtype_kwarg() -> str:
    """diffusers ≥ 0.42 takes `dtype` (and warns on `torch_dtype`); Colab's 0.39 knows only `torch_dtype`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401

        return "dtype"
    except ImportError:
        return "torch_dtype"


def _place(pipe: Any, mplan: MemoryPlan) -> None:
    import torch

    if mplan.device != "cuda":
        pipe.to("cpu")
    elif mplan.offload == "model":
        pipe.enable_model_cpu_offload()
    elif mplan.offload in ("group", "group-to-disk"):
        from masuka_nb.config import settings

        extra = {}
        if mplan.offload == "group-to-disk":
            folder = settings().cache_dir / "offload" / mplan.model
            folder.mkdir(parents=True, exist_ok=True)
            extra["offload_to_disk_path"] = str(folder)
        pipe.enable_group_offload(onload_device=torch.device("cuda"), offload_device=torch.device("cpu"),
                                  offload_type="block_level", num_blocks_per_group=1, use_stream=True, **extra)
    else:
        for name, module in pipe.components.items():
            if isinstance(module, torch.nn.Module) and not (mplan.free_text_encoders and name == "text_encoder"):
                module.to("cuda")


def _target(req: _Request) -> Path:
    from masuka_nb.config import settings
    from masuka_nb.storage import safe_name, unique_path

    folder = settings().outputs_dir / "videos"
    stem = f"{datetime.now().strftime('%Y-%m-%d-%H%M%S')}-{safe_name(req.prompt, max_len=40)}-{req.seed}"
    return unique_path(folder, stem, ".mp4")


def _record(state: dict[str, Any], t0: float, *, paths: list[Path] | None = None, timings: dict | None = None,
            error: MasukaError | None = None) -> Any:
    from masuka_nb.history import record_outcome

    return record_outcome("video", state, t0, paths=paths, timings=timings, error=error, extra={"provider": "local", "cost_usd": 0.0, "cost": COST_LABEL})


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
    from masuka_nb.config import settings
    from masuka_nb.hosted.pricing import CostEstimate
    from masuka_nb.memory import plan as make_plan
    from masuka_nb.models.registry import get_model

    spec = get_model(model)
    shape = _shape(spec, duration=duration, resolution=resolution, aspect_ratio=aspect_ratio)
    try:
        plan_note = make_plan(spec.id, gpu="cpu" if settings().device == "cpu" else None, width=shape.width,
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
                             cancel: Any = None, seed: int | None = None,
                             steps: int | None = None) -> LocalVideoResult:
    """`VideoGenerator().generate(..., model=<a local model>)`: seconds and "480p" become frames and a size;
    `steps` (the model's own by default) trades time for quality."""
    from masuka_nb.models.registry import get_model

    spec = get_model(model)
    shape = _shape(spec, duration=duration, resolution=resolution, aspect_ratio=aspect_ratio)
    result = generate_local(prompt, model=spec.id, image=image, width=shape.width, height=shape.height,
                            num_frames=shape.num_frames, seed=seed, steps=steps, progress=progress, cancel=cancel)
    result.notes.extend(shape.changes)
    return result
