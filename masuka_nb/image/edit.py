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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError
from masuka_nb.image.engine import default_engine
from masuka_nb.image.generation import GenerationResult
from masuka_nb.image.job import GenerationJob
from masuka_nb.image.pipeline import Task, image_sha256, save_pngs
from masuka_nb.image.pipeline import run as run_pipeline
from masuka_nb.image.request import (
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_STEPS,
    check_float,
    check_int,
    check_seed,
    open_image,
)
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan
from masuka_nb.models.registry import get_model
from masuka_nb.runtime import detect
from masuka_nb.storage import atomic_open

if TYPE_CHECKING:
    from masuka_nb.image.engine import ImageEngine

__all__ = ["EDIT_MODELS", "edit", "reproduce_edit"]

log = get_logger(__name__)

# (real model, tiny twin) per kind of edit.
EDIT_MODELS = {"edit": ("flux1-kontext-dev", "tiny-flux-kontext"), "fill": ("flux1-fill-dev", "tiny-flux-fill")}


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
    return run_edit(default_engine(), image, instruction, model=model, mask=mask, steps=steps, guidance=guidance,
                    seed=seed, num_images=num_images, plan=plan, progress=progress, cancel=cancel, save=save)


def reproduce_edit(recipe: dict[str, Any], *, save: bool = True, progress: Any = None,
                   cancel: Any = None) -> GenerationResult:
    """Run an edit recipe again (the input image and mask are found by their SHA-256)."""
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
    """One edit (Kontext) or fill job on `engine`, through the run pipeline."""
    job = GenerationJob(engine=engine, prompt=instruction, model_arg=model, plan_arg=plan, progress=progress,
                        cancel=cancel, save=save, use_cache=False, seeds=list(seeds or []),
                        args=dict(image=image, mask=mask, steps=steps, guidance=guidance, seed=seed,
                                  num_images=num_images))
    return run_pipeline(EditTask(engine), job)


# ---- steps ----

def resolve_edit_model(model: str | None, *, has_mask: bool) -> tuple[str, str | None]:
    """(model id, note): None → Kontext or Fill (by the mask) on CUDA, their tiny twins elsewhere."""
    kind = "fill" if has_mask else "edit"
    if model is None or str(model).strip().lower() == "auto":
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
                                  hint="Edit models: flux1-kontext-dev or qwen-image-edit (instructions), "
                                       "flux1-fill-dev (a mask).")
    if spec.task == "fill" and not has_mask:
        raise InvalidRequestError(f"{spec.id} repaints a masked region, and no `mask` was given.", argument="mask",
                                  value=None, hint="Pass mask=<white where to change>, or use flux1-kontext-dev.")
    if spec.task == "edit" and has_mask:
        raise InvalidRequestError(f"{spec.id} edits by instruction and takes no `mask`.", argument="mask",
                                  value="<mask>", hint="Drop the mask, or use flux1-fill-dev to repaint a region.")
    return spec.id, None


@dataclass(frozen=True)
class EditRequest:
    """An edit, checked: the instruction, the input (and mask) trimmed to the latent grid, the settings."""

    prompt: str
    image: Any
    mask: Any
    width: int
    height: int
    steps: int
    guidance: float
    seed: int | None
    num_images: int
    negative_prompt: None = None


class EditTask(Task):
    """FLUX Kontext (an instruction) or FLUX Fill (a mask): the image engine's edit task."""

    kind = "edit"
    stage = "edit"
    noun = "the edit"

    def resolve(self, job: GenerationJob) -> tuple[str, str | None]:
        return resolve_edit_model(job.model_arg, has_mask=job.args["mask"] is not None)

    def validate(self, job: GenerationJob) -> EditRequest:
        _check_processor_deps(job.spec)
        return _check(job.spec, instruction=job.prompt, **job.args)

    def recipe(self, job: GenerationJob) -> dict[str, Any]:
        req = job.request
        return {"task": job.spec.task, "loras": [], "image_sha256": image_sha256(req.image),
                "mask_sha256": image_sha256(req.mask) if req.mask is not None else None}

    def call(self, job: GenerationJob, pipe: Any) -> dict[str, Any]:
        req = job.request
        call: dict[str, Any] = dict(image=req.image, width=req.width, height=req.height,
                                    num_images_per_prompt=req.num_images)
        if job.spec.task == "fill":
            call["mask_image"] = req.mask
        elif job.spec.family == "flux":
            # Keep the caller's size: Kontext would otherwise snap it to one of its trained resolutions.
            call.update(max_area=req.width * req.height, _auto_resize=False)
        return call

    def write(self, job: GenerationJob, outputs: list[Any]) -> list[Path]:
        _keep_inputs(job.request, job.recipe)  # always (small PNGs): `reproduce(result)` needs them, saved or not
        return save_pngs(outputs, job.recipe, "edit-" + job.request.prompt) if job.save else []

    def history_extra(self, job: GenerationJob) -> dict[str, Any]:
        return {}

    def result(self, job: GenerationJob, outputs: list[Any], paths: list[Path], history_id: str) -> GenerationResult:
        return GenerationResult(outputs, job.seeds, job.recipe, paths, job.timings, job.plan, False, job.warnings,
                                history_id)


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


def _check(spec, *, image, instruction, mask, steps, guidance, seed, num_images) -> EditRequest:
    def bad(arg: str, value: Any, why: str, hint: str) -> InvalidRequestError:
        return InvalidRequestError(f"`{arg}` {why} (got {value!r}).", argument=arg, value=value, hint=hint)

    if not isinstance(instruction, str) or not instruction.strip():
        raise bad("instruction", instruction, "must be a non-empty text", "e.g. \"make it night\".")
    if image is None:
        raise bad("image", image, "is required", "Pass a path or a PIL image to edit.")
    im = open_image(image, argument="image", mode="RGB")
    mk = open_image(mask, argument="mask", mode="L") if mask is not None else None
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
    s = check_int("steps", spec.default_steps if steps is None else steps, spec.min_steps, MAX_STEPS)
    g = check_float("guidance", spec.default_guidance if guidance is None else guidance, 0.0, MAX_GUIDANCE)
    n = check_int("num_images", num_images, 1, MAX_IMAGES)
    return EditRequest(instruction, im, mk, w, h, s, g, check_seed(seed), n)


# ---- files ----

def _inputs_dir() -> Path:
    return settings().outputs_dir / "edits" / "inputs"


def _keep_inputs(req, recipe) -> None:
    """Keep the input image and mask (PNG, lossless) under their SHA-256, so the recipe can find them."""
    for key in ("image", "mask"):
        im = getattr(req, key)
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
            if image_sha256(im) == sha:
                return im
    raise InvalidRequestError(f"The recipe's input {key} is not where it was.", argument="path_or_recipe",
                              value=recipe.get(f"{key}_path"),
                              hint=f"Call masuka_nb.edit(<the original {key}>, ...) with the recipe's settings.")
