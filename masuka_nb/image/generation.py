"""`generate`: a validated request in, images with their recipe out, recorded in the history.

The steps, in order: resolve the model (``auto`` → flux1-schnell with a CUDA GPU, tiny-flux without),
validate the request, plan memory, check LoRAs, build the recipe, answer from the result cache when
the recipe was made before, otherwise load (or reuse) the pipeline, run it with a per-step callback
(progress, preview, cancel), save PNGs atomically with their recipe, record the history. Every failure
is translated once (`failures.translate`), recorded with its code, and raised as a `MasukaError`.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError, StorageError
from masuka_nb.image.job import GenerationJob, PromptCache
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan

if TYPE_CHECKING:
    from masuka_nb.image.engine import ImageEngine
    from masuka_nb.progress import CancelToken, ProgressCallback

__all__ = ["GenerationResult", "generate", "resolve_model"]

log = get_logger(__name__)

# Recipe entries that describe how a prompt was made (style presets, a batch template), kept by `reproduce`.
CARRIED = ("presets", "template")


@dataclass
class GenerationResult:
    """Images and everything about how they were made. `recipe` is enough to make them again."""

    images: list[Any]
    seeds: list[int]
    recipe: dict[str, Any]
    paths: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    plan: MemoryPlan | None = None
    cached: bool = False
    warnings: list[str] = field(default_factory=list)
    history_id: str = ""

    @property
    def image(self) -> Any:
        return self.images[0]

    def _repr_html_(self) -> str:  # a notebook cell showing a result shows the images
        import base64
        import io

        tags = []
        for im in self.images:
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            data = base64.b64encode(buf.getvalue()).decode()
            tags.append(f'<img src="data:image/png;base64,{data}" style="max-width:256px;margin:2px">')
        from html import escape

        label = self.recipe.get("label", "")  # a recipe may come from a PNG someone sent: text, escaped
        return "".join(tags) + (f"<div><small>{escape(str(label))}</small></div>" if label else "")


def resolve_model(model: str | None, *, runtime: Any = None) -> tuple[str, str | None]:
    """(model id, note). None → settings().default_model; "auto" → flux1-schnell on CUDA, else tiny-flux.

    `runtime` (a `RuntimeInfo`) answers "is there a GPU" without `detect()` (which imports torch):
    the app passes `detect_quick()` and shows the note itself, so nothing is logged then."""
    from masuka_nb.config import settings
    from masuka_nb.models.registry import get_model

    if model is not None and not isinstance(model, str):
        raise InvalidRequestError(f"`model` must be a model id, not {type(model).__name__}.", argument="model",
                                  value=model, hint="e.g. model=\"flux1-schnell\"; `masuka_nb.list_models()`.")
    s = settings()
    name = s.default_model if model is None else model
    if name.strip().lower() != "auto":
        return get_model(name).id, None
    from masuka_nb.runtime import detect

    info = runtime if runtime is not None else detect()
    if s.device != "cpu" and info.has_gpu:
        return "flux1-schnell", "model auto: flux1-schnell (a CUDA GPU is present)"
    note = "model auto: tiny-flux, because this machine has no CUDA GPU (the output is noise, for testing)"
    if runtime is None:
        log.info("generate.auto_model", model="tiny-flux", reason="no CUDA GPU")  # the recipe says so too
    return "tiny-flux", note


def generate(
    prompt: str,
    *,
    model: str | None = None,
    negative_prompt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int | None = None,
    num_images: int = 1,
    loras: Any = (),
    image: Any = None,
    strength: float | None = None,
    plan: MemoryPlan | dict | None = None,
    progress: ProgressCallback | bool | None = None,
    cancel: CancelToken | None = None,
    save: bool = True,
    previews: bool = False,
) -> GenerationResult:
    """Make `num_images` images of `prompt` (image-to-image when `image` is given).

    Defaults come from the model's registry entry. `seed` None picks a random seed (recorded); image
    i uses seed + i. `loras` items: a path, a LoRA library name, a Hub repo id or an https URL,
    optionally `(source, weight)`. `plan` overrides the memory plan (a `MemoryPlan`, or a dict of
    `masuka_nb.plan` keywords such as ``{"offload": "model"}``). `previews=True` adds a small preview
    image to each progress event. Raises only `MasukaError`s; every call lands in the history.
    """
    from masuka_nb.image.engine import default_engine

    return run(default_engine(), prompt, model=model, negative_prompt=negative_prompt, width=width, height=height,
               steps=steps, guidance=guidance, seed=seed, num_images=num_images, loras=loras, image=image,
               strength=strength, plan=plan, progress=progress, cancel=cancel, save=save, previews=previews)


def _image_sha256(image: Any) -> str:
    h = hashlib.sha256(f"{image.size}{image.mode}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


# ---- the run ----

def run(engine: ImageEngine, prompt: Any, *, model: Any = None, negative_prompt: Any = None, width: Any = None,
        height: Any = None, steps: Any = None, guidance: Any = None, seed: Any = None, num_images: Any = 1,
        loras: Any = (), image: Any = None, strength: Any = None, plan: Any = None, progress: Any = None,
        cancel: Any = None, save: bool = True, previews: bool = False, use_cache: bool = True,
        seeds: list[int] | None = None, plan_overrides: dict | None = None,
        prompt_cache: PromptCache | None = None, recipe_extra: dict[str, Any] | None = None,
        record: bool = True) -> GenerationResult:
    """One generation on `engine`: prepare the job (validate, plan, recipe), then execute it."""
    job = GenerationJob(engine=engine, prompt=prompt, model=model if isinstance(model, str) else "",
                        progress=progress, cancel=cancel, previews=previews, save=save, use_cache=use_cache,
                        prompt_cache=prompt_cache, record=record)
    try:
        prepare(job, model=model, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
                guidance=guidance, seed=seed, num_images=num_images, loras=loras, image=image, strength=strength,
                plan=plan if plan is not None else plan_overrides, seeds=seeds, recipe_extra=recipe_extra)
        return execute(job)
    except (Exception, KeyboardInterrupt) as exc:
        err = fail(job, exc, model=str(model))
        if err is exc:
            raise
        raise err from exc


def fail(job: GenerationJob, exc: BaseException, *, model: str = "") -> MasukaError:
    """`exc` as a MasukaError, recorded in the history as this job's failure (or cancellation)."""
    from masuka_nb.image.failures import translate

    err = translate(exc, model=job.model or model, stage="generation",
                    plan_label=getattr(job.plan, "label", ""))
    if job.record:
        _record_failure(job, err)
    return err


def prepare(job: GenerationJob, *, model: Any = None, negative_prompt: Any = None, width: Any = None,
            height: Any = None, steps: Any = None, guidance: Any = None, seed: Any = None, num_images: Any = 1,
            loras: Any = (), image: Any = None, strength: Any = None, plan: Any = None,
            seeds: list[int] | None = None, recipe_extra: dict[str, Any] | None = None) -> GenerationJob:
    """Fill `job` from loose arguments: resolve the model, validate, pick seeds, plan memory, build the recipe."""
    from masuka_nb.config import settings
    from masuka_nb.image.lora import resolve_all
    from masuka_nb.image.request import GenerationRequest
    from masuka_nb.models.registry import get_model

    if not isinstance(job.save, bool):
        raise InvalidRequestError("`save` must be True or False.", argument="save", value=job.save,
                                  hint="save=False keeps the images in memory only.")
    model_id, note = resolve_model(model)
    job.model = model_id
    job.spec = spec = get_model(model_id)
    job.request = req = GenerationRequest.build(spec, prompt=job.prompt, negative_prompt=negative_prompt,
                                                width=width, height=height, steps=steps, guidance=guidance,
                                                seed=seed, num_images=num_images, image=image, strength=strength)
    if seeds is None:
        first = req.seed if req.seed is not None else secrets.randbelow(2**32 - req.num_images)
        seeds = [(first + i) % 2**32 for i in range(req.num_images)]
    job.seeds = list(seeds)
    current = settings()
    job.plan, job.plan_overrides = _plan_for(spec, req, plan, current)
    job.loras = resolve_all(loras, model=spec.id)
    job.warnings = [note] if note else []
    job.recipe = _recipe(spec, req, job.seeds, job.loras, job.plan, job.plan_overrides, note)
    job.recipe["compute"] = _compute(job)
    if recipe_extra:
        job.recipe.update(recipe_extra)
    job.use_cache = job.use_cache and current.result_cache
    job.timings["validate"] = job.elapsed()
    return job


def execute(job: GenerationJob) -> GenerationResult:
    """Run a prepared job: answer from the result cache, or denoise; save the PNGs; record the history."""
    from masuka_nb.config import settings
    from masuka_nb.image import cache
    from masuka_nb.image.denoise import run_with_fallback

    spec, req, recipe, timings = job.spec, job.request, job.recipe, job.timings
    key = cache.recipe_key(recipe) if job.use_cache else ""
    if job.use_cache:
        hit = cache.lookup(key)
        if hit is not None:
            images, paths = hit
            if job.save and not all(p.is_relative_to(settings().outputs_dir) for p in paths):
                paths = cache.store(key, images, _save(images, recipe, req), recipe)  # was made with save=False
            timings["total"] = job.elapsed()
            rec = _record_ok(spec, recipe, paths, timings, job.plan, cached=True,
                             warnings=job.warnings) if job.record else None
            log.info("generate.cache_hit", model=spec.id, key=key[:12])
            return GenerationResult(images, job.seeds, recipe, paths, timings, job.plan, True, job.warnings,
                                    rec.id if rec else "")

    t = time.perf_counter()
    images, fallback = run_with_fallback(job)
    timings["generate"] = time.perf_counter() - t - timings.get("load", 0.0)
    if fallback:
        # Made under the lighter plan: recorded, and cached, as what it is.
        recipe["plan"] = job.plan.label
        recipe["compute"] = _compute(job)
        key = cache.recipe_key(recipe) if job.use_cache else ""
    t = time.perf_counter()
    paths = _save(images, recipe, req) if job.save else []
    if job.use_cache:
        paths_for_cache = cache.store(key, images, paths, recipe)
        if not job.save:
            recipe["cache_paths"] = [str(p) for p in paths_for_cache]
    timings["save"] = time.perf_counter() - t
    timings["total"] = job.elapsed()
    t = time.perf_counter()
    rec = _record_ok(spec, recipe, paths, timings, job.plan, cached=False, warnings=job.warnings) if job.record else None
    timings = {**timings, "history": time.perf_counter() - t}  # the stored record cannot hold its own write time
    return GenerationResult(images, job.seeds, recipe, paths, timings, job.plan, False, job.warnings,
                            rec.id if rec else "")


def _plan_for(spec, req, plan, current) -> tuple[MemoryPlan, dict]:
    from masuka_nb.memory import plan as make_plan

    if isinstance(plan, MemoryPlan):
        if plan.model != spec.id:
            raise InvalidRequestError(f"The plan is for {plan.model}, not {spec.id}.", argument="plan",
                                      value=plan.label, hint=f"Make one with masuka_nb.plan(\"{spec.id}\").")
        return plan, {}
    if plan is not None and not isinstance(plan, dict):
        raise InvalidRequestError("`plan` must be a MemoryPlan, a dict of plan choices, or None.", argument="plan",
                                  value=plan, hint="e.g. plan={\"offload\": \"model\"} or masuka_nb.plan(model).")
    overrides = dict(plan or {})
    allowed = {"gpu", "ram_gb", "dtype", "quantization", "offload", "free_text_encoders", "compile", "first_block_cache",
               "speed", "gguf"}
    unknown = set(overrides) - allowed
    if unknown:
        raise InvalidRequestError(f"Unknown plan choices: {', '.join(sorted(map(str, unknown)))}.", argument="plan",
                                  value=overrides, hint=f"Allowed: {', '.join(sorted(allowed))}.")
    overrides.setdefault("gpu", "cpu" if current.device == "cpu" else None)
    mplan = make_plan(spec.id, width=req.width, height=req.height, num_images=req.num_images, **overrides)
    return mplan, {k: v for k, v in overrides.items() if v is not None and k != "gpu"}


def _recipe(spec, req, seeds, resolved, mplan, overrides, note) -> dict[str, Any]:
    import diffusers

    from masuka_nb._version import __version__

    recipe: dict[str, Any] = {
        "model": spec.id,
        "revision": spec.revision if not spec.tiny else f"tiny-builder-v{_tiny_version()}",
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "width": req.width,
        "height": req.height,
        "steps": req.steps,
        "guidance": req.guidance,
        "seeds": list(seeds),
        "sampler": "Euler",
        "scheduler": spec.scheduler_label,
        "max_sequence_length": spec.max_sequence_length,
        "loras": [lr.as_recipe() for lr in resolved],
        "strength": req.strength,
        "image_sha256": _image_sha256(req.image) if req.image is not None else None,
        "device": mplan.device,
        "dtype": mplan.dtype,
        "vae_dtype": mplan.vae_dtype,
        "quantization": mplan.quantization,
        "plan": mplan.label,
        "plan_overrides": overrides,
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


def _compute(job: GenerationJob) -> dict[str, Any]:
    from masuka_nb.image.cache import compute_of

    return compute_of(job.plan, attention_backend=getattr(job.engine, "attention_backend", None))


def _tiny_version() -> int:
    from masuka_nb.models.tiny import BUILDER_VERSION

    return BUILDER_VERSION


def _save(images, recipe, req) -> list[Path]:
    from masuka_nb.config import settings
    from masuka_nb.image.metadata import write_png
    from masuka_nb.storage import safe_name, unique_path

    folder = settings().outputs_dir / datetime.now().strftime("%Y-%m-%d")
    stamp = datetime.now().strftime("%H%M%S")
    stem = safe_name(req.prompt, max_len=40)
    paths: list[Path] = []
    try:
        for i, (im, seed) in enumerate(zip(images, recipe["seeds"])):
            path = unique_path(folder, f"{stamp}-{stem}-{seed}", ".png")
            paths.append(write_png(im, path, recipe=recipe, index=i))
    except StorageError as exc:  # a full or read-only disk: say which images did reach it
        said = (f"{len(paths)} of {len(images)} images were saved: {', '.join(str(p) for p in paths)}."
                if paths else "No image of this generation was saved; nothing half-written was left.")
        raise type(exc)(f"{exc.message} {said}", argument=exc.argument, value=exc.value, hint=exc.hint,
                        saved=said, errno=exc.details.get("errno")) from exc
    return paths


def _record_ok(spec, recipe, paths, timings, mplan, *, cached: bool, warnings: list[str]):
    """The success record; a history that cannot be written is a warning on the result, never a failure
    (the images are made and saved)."""
    from masuka_nb import history

    try:
        return history.record(history.HistoryRecord(
            kind="image", status="ok", model=spec.id, prompt=recipe["prompt"], recipe=recipe,
            paths=[str(p) for p in paths], timings=timings, plan=mplan.as_dict(),
            extra={"cached": cached},
        ))
    except MasukaError as exc:
        where = f" The images are saved: {', '.join(str(p) for p in paths)}." if paths else ""
        warnings.append(f"The history could not be updated ({exc.code}: {exc.message}).{where}")
        log.warning("history.record_failed", error=str(exc))
        return None


def _record_failure(job: GenerationJob, err: MasukaError) -> None:
    from masuka_nb import history

    status = "cancelled" if isinstance(err, CancelledError) else "failed"
    try:
        history.record(history.HistoryRecord(
            kind="image", status=status, model=str(job.model or ""),
            prompt=job.prompt if isinstance(job.prompt, str) else repr(job.prompt)[:200],
            recipe=job.recipe or {}, timings={"total": job.elapsed()},
            plan=job.plan.as_dict() if isinstance(job.plan, MemoryPlan) else None, error=err.to_dict(),
        ))
    except MasukaError as exc:  # a full disk must not hide the original error
        log.warning("history.record_failed", error=str(exc))
