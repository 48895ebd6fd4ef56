"""Image editing: FLUX.1 Kontext and Qwen-Image-Edit (instruction edits), FLUX.1 Fill (inpainting/outpainting with a
mask).

    import masuka_nb as mk
    night = mk.edit(photo, "make it night")                          # Kontext
    fixed = mk.edit(photo, "a red scarf", mask=scarf_mask)           # Fill: white in the mask is repainted
    again = mk.reproduce(night.paths[0])                             # the same pixels, from the PNG's recipe

Planned like generation (NF4 on a T4, the same engine, pipelines kept between calls, speed mode).
The input image (and mask) are kept under outputs/edits/inputs, named by their SHA-256, so a recipe
finds them again: `reproduce` replays an edit pixel for pixel on the same device. Without a CUDA GPU the
tiny twins (tiny-flux-kontext, tiny-flux-fill) run instead, and their outputs are labelled noise.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.errors import InvalidRequestError, MasukaError
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan

if TYPE_CHECKING:
    from masuka_nb.image.engine import ImageEngine
    from masuka_nb.image.generation import GenerationResult

__all__ = ["EDIT_MODELS", "edit", "reproduce_edit"]

log = get_logger(__name__)

# (real model, tiny twin) per kind of edit.
EDIT_MODELS = {"edit": ("flux1-kontext-dev", "tiny-flux-kontext"), "fill": ("flux1-fill-dev", "tiny-flux-fill")}
MAX_STEPS = 150


def edit(
    image: Any,
    instruction: str,
    *,
    model: str | None = None,
    mask: Any = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int | None = None,
    num_images: int = 1,
    plan: MemoryPlan | dict | None = None,
    progress: Any = None,
    cancel: Any = None,
    save: bool = True,
) -> GenerationResult:
    """Edit `image` as `instruction` says (Kontext), or repaint the white part of `mask` (Fill).

    `model` None picks flux1-kontext-dev (no mask) or flux1-fill-dev (a mask) on a CUDA GPU, and their
    tiny twins elsewhere. `image`: a path, a PIL image or a `GenerationResult` (its first image); `mask`: a
    path or a PIL image (the mask: white = change, black =
    keep; same size as the image). Returns a `GenerationResult` whose recipe `masuka_nb.reproduce`
    replays. Raises only `MasukaError`s; every call lands in the history (kind "edit").
    """
    from masuka_nb.image.engine import default_engine

    return run_edit(default_engine(), image, instruction, model=model, mask=mask, steps=steps, guidance=guidance,
                    seed=seed, num_images=num_images, plan=plan, progress=progress, cancel=cancel, save=save)


def reproduce_edit(recipe: dict[str, Any], *, save: bool = False, progress: Any = None,
                   cancel: Any = None) -> GenerationResult:
    """Run an edit recipe again (the input image and mask are found by their SHA-256)."""
    from masuka_nb.image.engine import default_engine

    try:
        image = _find_input(recipe, "image")
        mask = _find_input(recipe, "mask") if recipe.get("mask_sha256") else None
        seeds = [int(s) for s in recipe["seeds"]]
        return run_edit(default_engine(), image, recipe["prompt"], model=recipe["model"], mask=mask,
                        steps=recipe["steps"], guidance=recipe["guidance"], seed=seeds[0], num_images=len(seeds),
                        plan=recipe.get("plan_overrides") or None, progress=progress, cancel=cancel, save=save,
                        seeds=seeds)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"The edit recipe is incomplete or damaged ({type(exc).__name__}: {exc}).",
                                  argument="path_or_recipe", value=str(recipe)[:200],
                                  hint="Use a PNG or recipe written by masuka_nb.edit.") from exc


def run_edit(engine: ImageEngine, image: Any, instruction: Any, *, model: Any = None, mask: Any = None,
             steps: Any = None, guidance: Any = None, seed: Any = None, num_images: Any = 1, plan: Any = None,
             progress: Any = None, cancel: Any = None, save: bool = True,
             seeds: list[int] | None = None) -> GenerationResult:
    from masuka_nb.image.failures import translate

    t0 = time.perf_counter()
    state: dict[str, Any] = {"model": str(model or ""), "prompt": instruction}
    try:
        return _run(engine, state, t0, image, instruction, model=model, mask=mask, steps=steps, guidance=guidance,
                    seed=seed, num_images=num_images, plan=plan, progress=progress, cancel=cancel, save=save,
                    seeds=seeds)
    except (Exception, KeyboardInterrupt) as exc:
        err = translate(exc, model=state["model"], stage="edit", plan_label=getattr(state.get("plan"), "label", ""))
        _record(state, t0, error=err)
        if err is exc:
            raise
        raise err from exc


# ---- steps ----

def resolve_edit_model(model: str | None, *, has_mask: bool) -> tuple[str, str | None]:
    """(model id, note): None → Kontext or Fill (by the mask) on CUDA, their tiny twins elsewhere."""
    from masuka_nb.config import settings
    from masuka_nb.models.registry import get_model

    kind = "fill" if has_mask else "edit"
    if model is None or str(model).strip().lower() == "auto":
        from masuka_nb.runtime import detect

        real, tiny = EDIT_MODELS[kind]
        if settings().device != "cpu" and detect().has_gpu:
            return real, None
        return tiny, f"model auto: {tiny}, because this machine has no CUDA GPU (the output is noise, for testing)"
    if not isinstance(model, str):
        raise InvalidRequestError(f"`model` must be a model id, not {type(model).__name__}.", argument="model",
                                  value=model, hint="e.g. model=\"flux1-kontext-dev\" or \"flux1-fill-dev\".")
    spec = get_model(model)
    if spec.task not in ("edit", "fill"):
        raise InvalidRequestError(f"{spec.id} does not edit images.", argument="model", value=model,
                                  hint="Edit models: flux1-kontext-dev or qwen-image-edit (instructions), flux1-fill-dev (a "
                                       "mask).")
    if spec.task == "fill" and not has_mask:
        raise InvalidRequestError(f"{spec.id} repaints a masked region, and no `mask` was given.", argument="mask",
                                  value=None, hint="Pass mask=<white where to change>, or use flux1-kontext-dev.")
    if spec.task == "edit" and has_mask:
        raise InvalidRequestError(f"{spec.id} edits by instruction and takes no `mask`.", argument="mask",
                                  value="<mask>", hint="Drop the mask, or use flux1-fill-dev to repaint a region.")
    return spec.id, None


def _run(engine, state, t0, image, instruction, *, model, mask, steps, guidance, seed, num_images, plan, progress,
         cancel, save, seeds) -> GenerationResult:
    from masuka_nb.image.generation import GenerationResult
    from masuka_nb.models.registry import get_model
    from masuka_nb.progress import ProgressReporter

    if not isinstance(save, bool):
        raise InvalidRequestError("`save` must be True or False.", argument="save", value=save,
                                  hint="save=False keeps the images in memory only.")
    model_id, note = resolve_edit_model(model, has_mask=mask is not None)
    state["model"] = model_id
    spec = get_model(model_id)
    _check_processor_deps(spec)
    req = _check(spec, image=image, instruction=instruction, mask=mask, steps=steps, guidance=guidance, seed=seed,
                 num_images=num_images)
    if seeds is None:
        first = req["seed"] if req["seed"] is not None else secrets.randbelow(2**32 - req["num_images"])
        seeds = [(first + i) % 2**32 for i in range(req["num_images"])]
    mplan, overrides = _plan_for(spec, req, plan)
    state["plan"] = mplan
    recipe = _recipe(spec, req, seeds, mplan, overrides, note)
    state["recipe"] = recipe
    timings = {"validate": time.perf_counter() - t0}
    reporter = ProgressReporter("edit", req["steps"], progress=progress, cancel=cancel)
    reporter.check()
    t = time.perf_counter()
    images = _denoise(engine, spec, req, seeds, mplan, reporter, timings)
    timings["generate"] = time.perf_counter() - t - timings.get("load", 0.0)
    _keep_inputs(req, recipe)  # always (small PNGs): `reproduce(result)` needs them even with save=False
    paths = _save(images, recipe, req) if save else []
    timings["total"] = time.perf_counter() - t0
    rec = _record(state, t0, paths=paths, timings=timings)
    warnings = [note] if note else []
    return GenerationResult(images, seeds, recipe, paths, timings, mplan, False, warnings, rec.id if rec else "")


def _check_processor_deps(spec) -> None:
    """Qwen-Image-Edit's Qwen2VLProcessor cannot even be built without torchvision (transformers 5 checks its video
    processor's class, which needs it); Colab ships torchvision, a bare CPU machine may not."""
    import importlib.util

    if spec.family == "qwenimage" and importlib.util.find_spec("torchvision") is None:
        from masuka_nb.errors import DependencyMissingError

        raise DependencyMissingError(f"{spec.id} reads the input image with Qwen2VLProcessor, which needs torchvision.",
                                     argument="model", value=spec.id,
                                     hint="Install the torchvision that matches your torch (Colab ships it), or use "
                                          "flux1-kontext-dev.")


def _check(spec, *, image, instruction, mask, steps, guidance, seed, num_images) -> dict[str, Any]:
    def bad(arg: str, value: Any, why: str, hint: str) -> InvalidRequestError:
        return InvalidRequestError(f"`{arg}` {why} (got {value!r}).", argument=arg, value=value, hint=hint)

    if not isinstance(instruction, str) or not instruction.strip():
        raise bad("instruction", instruction, "must be a non-empty text", "e.g. \"make it night\".")
    im = _open(image, "image", mode="RGB")
    if im is None:
        raise bad("image", image, "is required", "Pass a path or a PIL image to edit.")
    mk = _open(mask, "mask", mode="L")
    if mk is not None and mk.size != im.size:
        raise bad("mask", f"{mk.width}×{mk.height}", f"must be the image's size ({im.width}×{im.height})",
                  "Draw the mask on the same image (white = repaint, black = keep).")
    w, h = (d - d % spec.size_multiple for d in im.size)
    if min(w, h) < spec.min_size or max(w, h) > spec.max_size:
        raise bad("image", f"{im.width}×{im.height}", f"must be {spec.min_size}–{spec.max_size} px a side",
                  "Resize it first (or upscale a small one).")
    if (w, h) != im.size:  # the latent grid needs multiples of 16: trim the last few pixels
        im = im.crop((0, 0, w, h))
        mk = mk.crop((0, 0, w, h)) if mk is not None else None
    s = spec.default_steps if steps is None else steps
    if isinstance(s, bool) or not isinstance(s, int) or not spec.min_steps <= s <= MAX_STEPS:
        raise bad("steps", s, f"must be a whole number in [{spec.min_steps}, {MAX_STEPS}]",
                  f"{spec.id}: {spec.default_steps}.")
    g = spec.default_guidance if guidance is None else guidance
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g <= 100:
        raise bad("guidance", g, "must be a number in [0, 100]", f"{spec.id}: {spec.default_guidance}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise bad("seed", seed, "must be a whole number in [0, 2³²)", "e.g. seed=42, or None for a random one.")
    if isinstance(num_images, bool) or not isinstance(num_images, int) or not 1 <= num_images <= 8:
        raise bad("num_images", num_images, "must be a whole number in [1, 8]", "e.g. num_images=2.")
    return {"instruction": instruction, "image": im, "mask": mk, "width": w, "height": h, "steps": s,
            "guidance": float(g), "seed": seed, "num_images": num_images}


def _open(value: Any, arg: str, *, mode: str) -> Any:
    if value is None:
        return None
    from PIL import Image, UnidentifiedImageError

    if arg == "image" and getattr(value, "images", None):  # a GenerationResult: "Edit" on any result
        value = value.images[0]
    if hasattr(value, "convert"):
        return value.convert(mode)
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise InvalidRequestError(f"The {arg} must be a PIL image or an image path, not {type(value).__name__}.",
                                  argument=arg, value=value, hint="Pass a PNG/JPEG path or a PIL image.")
    from masuka_nb.storage import open_local

    data = open_local(value, argument=arg)  # bounded; a FIFO or device is refused, never opened
    try:
        with Image.open(data) as im:
            return im.convert(mode)
    except (OSError, UnidentifiedImageError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"Could not read the {arg} {str(value)[:200]!r} ({type(exc).__name__}).",
                                  argument=arg, value=str(value)[:200], hint="Pass a PNG/JPEG path or a PIL image.") \
            from exc


def _plan_for(spec, req, plan) -> tuple[MemoryPlan, dict]:
    from masuka_nb.config import settings
    from masuka_nb.memory import plan as make_plan

    if isinstance(plan, MemoryPlan):
        if plan.model != spec.id:
            raise InvalidRequestError(f"The plan is for {plan.model}, not {spec.id}.", argument="plan",
                                      value=plan.label, hint=f"Make one with masuka_nb.plan(\"{spec.id}\").")
        return plan, {}
    if plan is not None and not isinstance(plan, dict):
        raise InvalidRequestError("`plan` must be a MemoryPlan, a dict of plan choices, or None.", argument="plan",
                                  value=plan, hint="e.g. plan={\"speed\": \"fast\"} or masuka_nb.plan(model).")
    overrides = dict(plan or {})
    allowed = {"gpu", "ram_gb", "dtype", "quantization", "offload", "free_text_encoders", "compile",
               "first_block_cache", "speed", "gguf"}
    unknown = set(overrides) - allowed
    if unknown:
        raise InvalidRequestError(f"Unknown plan choices: {', '.join(sorted(map(str, unknown)))}.", argument="plan",
                                  value=overrides, hint=f"Allowed: {', '.join(sorted(allowed))}.")
    overrides.setdefault("gpu", "cpu" if settings().device == "cpu" else None)
    mplan = make_plan(spec.id, width=req["width"], height=req["height"], num_images=req["num_images"], **overrides)
    return mplan, {k: v for k, v in overrides.items() if v is not None and k != "gpu"}


def _sha256(image: Any) -> str:
    h = hashlib.sha256(f"{image.size}{image.mode}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def _recipe(spec, req, seeds, mplan, overrides, note) -> dict[str, Any]:
    import diffusers

    from masuka_nb._version import __version__

    recipe: dict[str, Any] = {
        "kind": "edit",
        "task": spec.task,
        "model": spec.id,
        "revision": spec.revision if not spec.tiny else "tiny-builder",
        "prompt": req["instruction"],
        "negative_prompt": None,
        "width": req["width"],
        "height": req["height"],
        "steps": req["steps"],
        "guidance": req["guidance"],
        "seeds": list(seeds),
        "sampler": "Euler",
        "scheduler": spec.scheduler_label,
        "max_sequence_length": spec.max_sequence_length,
        "loras": [],
        "image_sha256": _sha256(req["image"]),
        "mask_sha256": _sha256(req["mask"]) if req["mask"] is not None else None,
        "device": mplan.device,
        "dtype": mplan.dtype,
        "vae_dtype": mplan.vae_dtype,
        "quantization": mplan.quantization,
        "plan": mplan.label,
        "plan_overrides": overrides,
        "speed": mplan.speed,
        "masuka_version": __version__,
        "diffusers_version": diffusers.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if spec.tiny:
        from masuka_nb.models.tiny import TINY_LABEL

        recipe["label"] = TINY_LABEL
    if note:
        recipe["auto_model"] = note
    return recipe


def _denoise(engine, spec, req, seeds, mplan, reporter, timings) -> list[Any]:
    import torch

    with engine._lock:
        before = engine.load_count
        t = time.perf_counter()
        pipe = engine.pipeline(spec.id, plan=mplan)
        if engine.load_count != before:
            timings["load"] = time.perf_counter() - t
        total = req["steps"]

        def on_step(p, step, timestep, kwargs):
            reporter.update(min(step + 1, total), message=f"step {step + 1}/{total}")
            reporter.check("the edit")
            return kwargs

        call: dict[str, Any] = dict(image=req["image"], width=req["width"], height=req["height"],
                                    num_inference_steps=total, num_images_per_prompt=req["num_images"],
                                    generator=[torch.Generator(device="cpu").manual_seed(s) for s in seeds],
                                    max_sequence_length=spec.max_sequence_length, callback_on_step_end=on_step,
                                    output_type="pil")
        call[spec.guidance_arg] = req["guidance"]  # Qwen-Image-Edit: true_cfg_scale, with the card's " " negative
        if spec.negative_default is not None:
            call["negative_prompt"] = spec.negative_default
        if spec.task == "fill":
            call["mask_image"] = req["mask"]
        elif spec.family == "flux":
            # Keep the caller's size: Kontext would otherwise snap it to one of its trained resolutions.
            call.update(max_area=req["width"] * req["height"], _auto_resize=False)
        with torch.inference_mode():
            if mplan.free_text_encoders and mplan.device == "cuda" and spec.family != "flux":
                # Qwen2.5-VL reads the input image too: the pipeline encodes it, the encoder visiting the GPU
                call["prompt"] = req["instruction"]
                with _visiting_gpu(pipe.text_encoder):
                    images = pipe(**call).images
            elif mplan.free_text_encoders and mplan.device == "cuda":
                call.update(_encode_on_gpu(pipe, spec, req))
                with _detached_text_encoders(pipe):
                    images = pipe(**call).images
            else:
                call["prompt"] = req["instruction"]
                images = pipe(**call).images
    reporter.done(f"{len(images)} image(s)")
    return list(images)


_ENCODERS = ("text_encoder", "text_encoder_2")


def _encode_on_gpu(pipe, spec, req) -> dict[str, Any]:
    """Encode the instruction with the text encoders visiting the GPU, then send them back to the CPU."""
    import torch

    encoders = [getattr(pipe, n) for n in _ENCODERS if getattr(pipe, n, None) is not None]
    for enc in encoders:
        enc.to("cuda")
    try:
        embeds, pooled, _ = pipe.encode_prompt(prompt=req["instruction"], prompt_2=None, device=torch.device("cuda"),
                                               num_images_per_prompt=req["num_images"],
                                               max_sequence_length=spec.max_sequence_length)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    finally:
        for enc in encoders:
            enc.to("cpu")
        torch.cuda.empty_cache()


class _visiting_gpu:
    """While the pipeline runs, `module` (parked in RAM) moves to the GPU for each of its forward calls and back
    right after, so it never shares the GPU with the transformer's activations."""

    def __init__(self, module) -> None:
        self.module, self.handles = module, []

    def __enter__(self):
        import torch

        def before(module, args, kwargs):
            module.to("cuda")
            moved = tuple(a.to("cuda") if isinstance(a, torch.Tensor) else a for a in args)
            return moved, {k: v.to("cuda") if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}

        def after(module, args, kwargs, output):
            module.to("cpu")
            torch.cuda.empty_cache()
            return output

        self.handles = [self.module.register_forward_pre_hook(before, with_kwargs=True),
                        self.module.register_forward_hook(after, with_kwargs=True)]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()
        return False


class _detached_text_encoders:
    """The pipeline picks its device from its modules: hide the CPU text encoders while it denoises."""

    def __init__(self, pipe) -> None:
        self.pipe, self.saved = pipe, {}

    def __enter__(self):
        for name in _ENCODERS:
            if getattr(self.pipe, name, None) is not None:
                self.saved[name] = getattr(self.pipe, name)
                setattr(self.pipe, name, None)
        return self

    def __exit__(self, *exc):
        for name, module in self.saved.items():
            setattr(self.pipe, name, module)
        return False


# ---- files ----

def _inputs_dir() -> Path:
    from masuka_nb.config import settings

    return settings().outputs_dir / "edits" / "inputs"


def _keep_inputs(req, recipe) -> None:
    """Keep the input image and mask (PNG, lossless) under their SHA-256, so the recipe can find them."""
    from masuka_nb.storage import atomic_open

    for key in ("image", "mask"):
        im = req[key]
        if im is None:
            continue
        path = _inputs_dir() / f"{recipe[f'{key}_sha256']}.png"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(path, "wb") as fh:
                im.save(fh, format="PNG")
        recipe[f"{key}_path"] = str(path)


def _find_input(recipe: dict[str, Any], key: str) -> Any:
    from PIL import Image

    sha = recipe[f"{key}_sha256"]
    for path in (recipe.get(f"{key}_path"), str(_inputs_dir() / f"{sha}.png")):
        if path and Path(path).is_file():
            with Image.open(path) as im:
                im = im.convert("L" if key == "mask" else "RGB")
            if _sha256(im) == sha:
                return im
    raise InvalidRequestError(f"The recipe's input {key} is not where it was.", argument="path_or_recipe",
                              value=recipe.get(f"{key}_path"),
                              hint=f"Call masuka_nb.edit(<the original {key}>, ...) with the recipe's settings.")


def _save(images, recipe, req) -> list[Path]:
    from masuka_nb.config import settings
    from masuka_nb.image.metadata import write_png
    from masuka_nb.storage import safe_name, unique_path

    folder = settings().outputs_dir / datetime.now().strftime("%Y-%m-%d")
    stamp = datetime.now().strftime("%H%M%S")
    stem = "edit-" + safe_name(req["instruction"], max_len=36)
    return [write_png(im, unique_path(folder, f"{stamp}-{stem}-{seed}", ".png"), recipe=recipe, index=i)
            for i, (im, seed) in enumerate(zip(images, recipe["seeds"]))]


def _record(state: dict[str, Any], t0: float, *, paths: list[Path] | None = None, timings: dict | None = None,
            error: MasukaError | None = None) -> Any:
    from masuka_nb.history import record_outcome

    return record_outcome("edit", state, t0, paths=paths, timings=timings, error=error)
