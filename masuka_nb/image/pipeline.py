"""The one run pipeline every local model goes through: validate → plan → load → run → write → record.

A unit of work is a `GenerationJob` (the context object: request, seeds, plan, recipe, timings, warnings)
and a `Task` (what differs between text-to-image, edit, fill, text/image-to-video and tile refine: how a
request is checked, what the pipeline is called with, what is written and what the result is). The steps:

1. validate — the model is resolved (`Task.resolve`), the device host makes room for it (other tasks'
   models leave), the request is checked against the model's limits (`Task.validate`), seeds are picked
   (`pick_seeds`: random unless given, always recorded);
2. plan — `plan_for`: the memory plan for this machine as it is now (what stays resident is subtracted),
   or the caller's `MemoryPlan` / dict of plan choices;
3. load — through the device host (`Task.load`), timed as `seconds_load` when a load really happened;
4. run — the pipeline call with a per-step callback (progress, previews, cancel); prompts are encoded once
   (and the text encoders leave the GPU first when the plan frees them); after an out-of-memory, everything
   is freed and the run is tried once more on the next lighter plan (`run_with_fallback`);
5. write — PNGs with their recipe, or an MP4 (`Task.write`), never half a file;
6. record — one history record through `history.write` (failures and cancellations too), with the one
   timing schema (`seconds_total`, `seconds_validate`, `seconds_load`, `seconds_run`, `seconds_save`).

Per-model differences are data on the `ModelSpec` (pipeline classes, sizes, `prompt_outputs` for what
`encode_prompt` returns); per-task differences live in the task classes (generation, edit, video.local,
upscaling), each a few small methods.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb._version import __version__
from masuka_nb.config import settings
from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError, OutOfMemoryError, StorageError
from masuka_nb.image.failures import is_out_of_memory, translate
from masuka_nb.image.job import GenerationJob
from masuka_nb.image.metadata import write_png
from masuka_nb.image.request import MAX_GUIDANCE, MAX_IMAGES, MAX_SEED, MAX_STEPS, check_seed, open_image
from masuka_nb.image.speed import denoisers
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan, lighter_plan
from masuka_nb.memory import plan as make_plan
from masuka_nb.models.registry import ModelSpec, get_model
from masuka_nb.models.tiny import BUILDER_VERSION, TINY_LABEL
from masuka_nb.progress import ProgressReporter, stop_between_blocks
from masuka_nb.quiet import quiet_third_party
from masuka_nb.runtime import free_memory
from masuka_nb.storage import safe_name, unique_path

__all__ = ["MAX_GUIDANCE", "MAX_IMAGES", "MAX_SEED", "MAX_STEPS", "PLAN_CHOICES", "Task", "base_recipe",
           "check_seed", "encode_prompt", "image_sha256", "open_image", "pick_seeds", "plan_for", "run", "save_pngs"]

log = get_logger(__name__)

PLAN_CHOICES = frozenset({"gpu", "ram_gb", "dtype", "quantization", "offload", "free_text_encoders", "compile",
                          "first_block_cache", "speed", "gguf"})


# ---- small shared rules ----

def pick_seeds(seed: int | None, count: int) -> list[int]:
    """`count` seeds from `seed` (image i uses seed + i); None picks a random first seed. Always recorded."""
    first = seed if seed is not None else secrets.randbelow(MAX_SEED + 1 - count)
    return [(first + i) % (MAX_SEED + 1) for i in range(count)]


def image_sha256(image: Any) -> str:
    """The identity of an image's pixels (size, mode and bytes): how a recipe finds its input again."""
    h = hashlib.sha256(f"{image.size}{image.mode}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def plan_for(spec: ModelSpec, plan: Any, *, width: int, height: int, num_images: int = 1,
             num_frames: int | None = None, allowed: frozenset[str] = PLAN_CHOICES) -> tuple[MemoryPlan, dict]:
    """(memory plan, the caller's choices as recorded). `plan`: a `MemoryPlan` for `spec`, a dict of
    `masuka_nb.plan` keywords, or None for the best plan on this machine as it is now."""
    if isinstance(plan, MemoryPlan):
        if plan.model != spec.id:
            raise InvalidRequestError(f"The plan is for {plan.model}, not {spec.id}.", argument="plan",
                                      value=plan.label, hint=f"Make one with masuka_nb.plan(\"{spec.id}\").")
        return plan, {}
    if plan is not None and not isinstance(plan, dict):
        raise InvalidRequestError("`plan` must be a MemoryPlan, a dict of plan choices, or None.", argument="plan",
                                  value=plan, hint="e.g. plan={\"offload\": \"model\"} or masuka_nb.plan(model).")
    overrides = dict(plan or {})
    unknown = set(overrides) - allowed
    if unknown:
        raise InvalidRequestError(f"Unknown plan choices: {', '.join(sorted(map(str, unknown)))}.", argument="plan",
                                  value=overrides, hint=f"Allowed: {', '.join(sorted(allowed))}.")
    size: dict[str, Any] = {"width": width, "height": height, "num_images": num_images}
    if spec.is_video:
        size["num_frames"] = num_frames
    mplan = make_plan(spec.id, **size, **overrides)
    return mplan, {k: v for k, v in overrides.items() if v is not None and k != "gpu"}


def base_recipe(job: GenerationJob) -> dict[str, Any]:
    """The recipe fields every local task records (the task adds its own): enough to make it again."""
    import diffusers

    spec, req, mplan = job.spec, job.request, job.plan
    recipe: dict[str, Any] = {
        "kind": job.task.kind,
        "model": spec.id,
        "revision": spec.revision if not spec.tiny else f"tiny-builder-v{BUILDER_VERSION}",
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "width": req.width,
        "height": req.height,
        "steps": req.steps,
        "guidance": req.guidance,
        "seeds": list(job.seeds),
        "sampler": "Euler",
        "scheduler": spec.scheduler_label,
        "max_sequence_length": spec.max_sequence_length,
        "device": mplan.device,
        "dtype": mplan.dtype,
        "vae_dtype": mplan.vae_dtype,
        "quantization": mplan.quantization,
        "plan": mplan.label,
        "plan_overrides": job.plan_overrides,
        "speed": mplan.speed,
        "masuka_version": __version__,
        "diffusers_version": diffusers.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if spec.tiny:
        recipe["label"] = TINY_LABEL
    if job.note:
        recipe["auto_model"] = job.note
    return recipe


# ---- the task ----

class Task:
    """What one kind of local work does at each step of the pipeline. Subclasses set the names and
    override the methods that differ; the defaults are the image engine's (text-to-image, edit, fill)."""

    kind = "image"  # the history kind and the recipe's "kind"
    stage = "generate"  # the progress stage
    noun = "the generation"  # what a cancelled run says it stopped
    output = "images"  # "images" or "frames": what the pipeline call returns

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    # 1. validate
    def resolve(self, job: GenerationJob) -> tuple[str, str | None]:
        """(model id, a note when the model was chosen for the user)."""
        raise NotImplementedError

    def validate(self, job: GenerationJob) -> Any:
        """The checked request (prompt, negative_prompt, width, height, steps, guidance, seed, count...)."""
        raise NotImplementedError

    def count(self, job: GenerationJob) -> int:
        """How many outputs (seeds) the request makes."""
        return job.request.num_images

    # 2. plan
    def plan_size(self, job: GenerationJob) -> dict[str, Any]:
        req = job.request
        return {"width": req.width, "height": req.height, "num_images": self.count(job)}

    def recipe(self, job: GenerationJob) -> dict[str, Any]:
        """The task's own recipe fields, over `base_recipe`."""
        return {}

    # 3. load (the device host owns what is loaded: the engine is this task's view of it)
    @property
    def lock(self) -> Any:
        return self.engine.lock

    def claim(self, job: GenerationJob) -> None:
        self.engine.claim(job.spec.id)

    def load(self, job: GenerationJob) -> Any:
        return self.engine.pipeline(job.spec.id, plan=job.plan, progress=job.progress)

    def loads(self) -> int:
        return self.engine.load_count

    def unload(self) -> None:
        self.engine.unload()

    # 4. run
    def steps(self, job: GenerationJob) -> int:
        """Denoising steps the pipeline will really run (image-to-image runs fewer)."""
        return job.request.steps

    def run(self, job: GenerationJob, run_once: Any) -> list[Any]:
        """The outputs: one pipeline call (`run_once(job)`); a tiled task calls it once per tile."""
        return run_once(job)

    def before_call(self, job: GenerationJob, pipe: Any) -> None:
        """Last checks and settings on the loaded pipeline (LoRAs, prompt length)."""

    def call(self, job: GenerationJob, pipe: Any) -> dict[str, Any]:
        """The task's own pipeline arguments (the pipeline adds steps, guidance, seeds, callback, prompt)."""
        raise NotImplementedError

    def texts(self, job: GenerationJob) -> list[str]:
        """The prompt of each output, in order (a batch group has several prompts in one call)."""
        return [job.request.prompt] * self.count(job)

    def preview(self, job: GenerationJob, latents: Any) -> Any:
        return None

    # 5. write
    def cached(self, job: GenerationJob) -> Any:
        """A result made before for the same recipe, or None (only text-to-image keeps a result cache)."""
        return None

    def replanned(self, job: GenerationJob) -> None:
        """The run fell back to `job.plan` (lighter): the recipe says what really ran."""
        job.recipe["plan"] = job.plan.label

    def write(self, job: GenerationJob, outputs: list[Any]) -> list[Path]:
        raise NotImplementedError

    # 6. record
    def history_extra(self, job: GenerationJob) -> dict[str, Any]:
        return {"cached": False}

    def result(self, job: GenerationJob, outputs: list[Any], paths: list[Path], history_id: str) -> Any:
        raise NotImplementedError


# ---- the steps ----

def run(task: Task, job: GenerationJob) -> Any:
    """Validate, plan, load, run, write and record `job`; any failure is recorded and raised as a
    `MasukaError` (KeyboardInterrupt, Colab's stop button, as `CancelledError`)."""
    job.task = task
    try:
        prepare(task, job)
        return execute(task, job)
    except (Exception, KeyboardInterrupt) as exc:
        err = fail(task, job, exc)
        if err is exc:
            raise
        raise err from exc


def prepare(task: Task, job: GenerationJob) -> GenerationJob:
    """Steps 1 and 2: the model, the checked request, the seeds, the memory plan and the recipe."""
    job.task = task
    if not isinstance(job.save, bool):
        raise InvalidRequestError("`save` must be True or False.", argument="save", value=job.save,
                                  hint="save=False keeps the result in memory only.")
    model_id, job.note = task.resolve(job)
    job.model = model_id
    job.spec = get_model(model_id)
    if job.note:
        job.warnings.append(job.note)
    task.claim(job)  # before planning: the plan sees the memory this task will really have
    job.request = task.validate(job)
    if not job.seeds:
        job.seeds = pick_seeds(job.request.seed, task.count(job))
    job.plan, job.plan_overrides = plan_for(job.spec, job.plan_arg, **task.plan_size(job))
    job.recipe = {**base_recipe(job), **task.recipe(job), **(job.recipe_extra or {})}
    job.use_cache = job.use_cache and settings().result_cache
    job.timings["seconds_validate"] = job.elapsed()
    return job


def execute(task: Task, job: GenerationJob) -> Any:
    """Steps 3 to 6 for a prepared job."""
    hit = task.cached(job)
    if hit is not None:
        return hit
    job.timings.setdefault("seconds_load", 0.0)  # always said: 0 when the model was already loaded
    t = time.perf_counter()
    outputs, fallback = run_with_fallback(task, job)
    job.timings["seconds_run"] = time.perf_counter() - t - job.timings.get("seconds_load", 0.0)
    if fallback:
        task.replanned(job)  # made under the lighter plan: recorded as what it is
    t = time.perf_counter()
    paths = task.write(job, outputs)
    job.timings["seconds_save"] = time.perf_counter() - t
    job.timings["seconds_total"] = job.elapsed()
    t = time.perf_counter()
    rec = record(task, job, paths) if job.record else None
    job.timings["seconds_history"] = time.perf_counter() - t  # the record cannot hold its own write time
    return task.result(job, outputs, paths, rec.id if rec else "")


def record(task: Task, job: GenerationJob, paths: list[Path], *, error: MasukaError | None = None) -> Any:
    """The job's history record (ok, failed or cancelled), through the one history writer."""
    return history.write(task.kind, model=job.model, prompt=job.prompt, recipe=job.recipe, paths=paths,
                         timings=job.timings, plan=job.plan, error=error,
                         extra=task.history_extra(job) if error is None else None,
                         warnings=job.warnings if error is None else None)


def fail(task: Task, job: GenerationJob, exc: BaseException) -> MasukaError:
    """`exc` as a MasukaError, recorded in the history as this job's failure (or cancellation)."""
    err = translate(exc, model=job.model or str(job.model_arg or ""), stage=task.noun.removeprefix("the "),
                    plan_label=getattr(job.plan, "label", ""))
    if job.record:
        job.timings = {"seconds_total": job.elapsed()}
        record(task, job, [], error=err)
    return err


def run_with_fallback(task: Task, job: GenerationJob) -> tuple[list[Any], bool]:
    """Run once; after an out-of-memory, free everything and run once more on the next lighter plan.

    Returns the outputs and whether the fallback was taken (`job.plan` is then the lighter plan)."""
    spec, mplan = job.spec, job.plan
    try:
        return task.run(job, lambda j: _run_once(task, j)), False
    except (Exception, KeyboardInterrupt) as exc:
        if not is_out_of_memory(exc):
            raise
        err = translate(exc, model=spec.id, stage=task.noun.removeprefix("the "), plan_label=mplan.label)
        task.unload()  # a half-run pipeline would keep the memory the lighter plan needs
        free_memory()
        if job.prompt_cache is not None:
            job.prompt_cache.clear()  # its tensors live on the device that just ran out
        lighter = lighter_plan(mplan)
        if lighter is None:
            raise err from exc
        msg = f"Out of memory with {mplan.label}; falling back once to {lighter.label}."
        log.warning("run.oom_fallback", model=spec.id, old=mplan.label, new=lighter.label)
        job.warnings.append(msg)
        job.recipe["fallback"] = msg
    job.plan = lighter
    try:
        return task.run(job, lambda j: _run_once(task, j)), True
    except (Exception, KeyboardInterrupt) as exc:
        if is_out_of_memory(exc):
            task.unload()
            raise OutOfMemoryError(f"{spec.id} ran out of memory even with the lighter plan {lighter.label}.",
                                   argument="plan", value=lighter.label,
                                   hint="Use a smaller size, fewer images or fewer frames per call.") from exc
        raise


def _run_once(task: Task, job: GenerationJob) -> list[Any]:
    import torch

    total = task.steps(job)
    reporter = ProgressReporter(job.stage or task.stage, total, progress=job.progress, cancel=job.cancel)
    reporter.check()
    with task.lock:  # one run at a time per engine: the loaded pipeline (and its LoRA state) is shared
        before = task.loads()
        t = time.perf_counter()
        pipe = task.load(job)
        if task.loads() != before:
            job.timings["seconds_load"] = time.perf_counter() - t
        task.before_call(job, pipe)

        def on_step(p, step, timestep, kwargs):
            preview = task.preview(job, kwargs.get("latents")) if job.previews else None
            reporter.update(min(step + 1, total), message=f"step {step + 1}/{total}", preview=preview)
            reporter.check(task.noun)
            return kwargs

        req = job.request
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in job.seeds]
        # CPU generators on every device and plan: the same seed gives the same starting noise everywhere.
        call: dict[str, Any] = dict(num_inference_steps=req.steps,
                                    generator=generators if len(generators) > 1 else generators[0],
                                    max_sequence_length=job.spec.max_sequence_length, callback_on_step_end=on_step,
                                    output_type="pil", prompt=req.prompt)
        call[job.spec.guidance_arg] = req.guidance  # Qwen-Image: true_cfg_scale (registry data)
        negative = req.negative_prompt or job.spec.negative_default  # Qwen-Image's CFG needs one: the card's " "
        if negative:
            call["negative_prompt"] = negative
        call.update(task.call(job, pipe))
        # Quiet: CLIP's truncation notices. Stop acts inside a step too, between the denoisers' blocks (a FLUX
        # step on a T4 takes seconds, a block tens of milliseconds).
        with torch.inference_mode(), quiet_third_party(bars=False), \
                stop_between_blocks(denoisers(pipe), job.cancel, task.noun):
            embeds = _prompt_embeddings(task, job, pipe)
            if embeds is None:
                with _visiting_gpu(pipe, job.spec, job.plan):
                    out = pipe(**call)
            else:
                for key in ("prompt", "negative_prompt"):
                    call.pop(key, None)
                # Embeddings already hold one copy per output; the pipeline must not repeat them.
                call.update(embeds)
                call.pop("num_images_per_prompt", None)
                with _without_text_encoders(pipe, job.spec, active=job.plan.free_text_encoders):
                    out = pipe(**call)
    outputs = list(out.frames[0]) if task.output == "frames" else list(out.images)
    reporter.done(f"{len(outputs)} {task.output}")
    return outputs


# ---- prompts: encoded once, the text encoders off the GPU while denoising when the plan says so ----

def encode_prompt(pipe: Any, spec: ModelSpec, *, prompt: Any, negative_prompt: str | None, count: int,
                  guidance: float, device: Any) -> dict[str, Any]:
    """The pipeline's own `encode_prompt`, as the keyword arguments its `__call__` takes instead of text.

    What `encode_prompt` accepts is read from its signature; what it returns is named by the model's
    `prompt_outputs` (registry data), so a new family is a registry entry, not new code here."""
    params = inspect.signature(pipe.encode_prompt).parameters
    cfg = guidance > 1.0
    offered = {"prompt": prompt, "prompt_2": None, "prompt_3": None, "device": device,
               "negative_prompt": negative_prompt, "num_images_per_prompt": count, "num_videos_per_prompt": count,
               "do_classifier_free_guidance": cfg, "max_sequence_length": spec.max_sequence_length}
    out = pipe.encode_prompt(**{k: v for k, v in offered.items() if k in params})
    out = out if isinstance(out, tuple) else (out,)
    return {name: value for name, value in zip(spec.prompt_outputs, out)
            if name and value is not None and (cfg or not name.startswith("negative_"))}


def _prompt_embeddings(task: Task, job: GenerationJob, pipe: Any) -> dict[str, Any] | None:
    """Embeddings to call the pipeline with (one row per output), or None to let it encode the text itself.

    Each distinct prompt is encoded once (with a `PromptCache`, once per batch or grid), with the text
    encoders on the GPU only while encoding when the plan frees them."""
    import torch

    mplan, spec, req = job.plan, job.spec, job.request
    texts = task.texts(job)
    if not spec.prompt_outputs or not hasattr(pipe, "encode_prompt"):
        return None
    if not (mplan.free_text_encoders or job.prompt_cache is not None or len(set(texts)) > 1):
        return None
    loras = tuple((lr["source"], lr["weight"]) for lr in job.recipe.get("loras", []))
    keys = {t: (spec.id, t, req.negative_prompt, req.guidance > 1.0, loras) for t in texts}
    found: dict[str, dict[str, Any]] = {}
    for text in texts:  # looked up per output: `hits` counts the outputs whose prompt was encoded before
        hit = job.prompt_cache.get(keys[text]) if job.prompt_cache is not None else None
        if hit is not None:
            found.setdefault(text, hit)
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    if missing:
        with _encoders_ready(pipe, spec, mplan) as device:
            fresh = _encode_each(pipe, spec, missing, negative_prompt=req.negative_prompt, guidance=req.guidance,
                                 device=device)
        for text in missing:
            found[text] = fresh[text]
            if job.prompt_cache is not None:
                job.prompt_cache.put(keys[text], found[text])
    first = found[texts[0]]
    if len(texts) == 1:
        return first
    return {name: torch.cat([found[t][name] for t in texts]) for name in first}


def _encode_each(pipe: Any, spec: ModelSpec, texts: list[str], *, negative_prompt: str | None, guidance: float,
                 device: Any) -> dict[str, dict[str, Any]]:
    """text → its embeddings (one row each). The distinct prompts of a batch group go through the text encoders
    in one call: one forward of each encoder instead of one per prompt, so a large encoder (T5-XXL) streams its
    weights once per group. The prompts are padded to the model's fixed length, so each row is what encoding it
    alone gives, up to the float rounding of a larger matmul (bit-identical for tiny-flux, -klein and -wan on a
    CPU; within 5e-7 for tiny-sd3). One prompt at a time when an output does not come back one row per prompt."""
    if len(texts) > 1:
        out = encode_prompt(pipe, spec, prompt=list(texts), negative_prompt=negative_prompt, count=1,
                            guidance=guidance, device=device)
        if out and all(getattr(v, "shape", (None,))[:1] == (len(texts),) for v in out.values()):
            return {t: {name: value[i:i + 1] for name, value in out.items()} for i, t in enumerate(texts)}
    return {t: encode_prompt(pipe, spec, prompt=t, negative_prompt=negative_prompt, count=1, guidance=guidance,
                             device=device) for t in texts}


@contextlib.contextmanager
def _encoders_ready(pipe: Any, spec: ModelSpec, mplan: MemoryPlan):
    """The device to encode on. When the plan frees the text encoders they visit the GPU only for this block:
    the transformer never shares VRAM with T5 (≈9.5 GB in bf16). Model offload moves them itself."""
    import torch

    if not mplan.free_text_encoders:
        yield pipe._execution_device
        return
    device = torch.device(mplan.device)
    move = mplan.device == "cuda" and mplan.offload != "model"
    encoders = [getattr(pipe, c.name) for c in spec.text_encoders if getattr(pipe, c.name, None) is not None]
    if move:
        for enc in encoders:
            enc.to(device)
    try:
        yield device
    finally:
        if move:
            for enc in encoders:
                enc.to("cpu")
            torch.cuda.empty_cache()


@contextlib.contextmanager
def _visiting_gpu(pipe: Any, spec: ModelSpec, mplan: MemoryPlan):
    """A pipeline that encodes its own prompt (Z-Image, Qwen-Image: no `prompt_outputs`; Qwen-Image-Edit also
    reads the input image) under a plan that frees the text encoders: each encoder, parked in RAM, moves to the
    GPU for its forward call and back right after, so it never shares the GPU with the transformer's activations."""
    import torch

    if not (mplan.free_text_encoders and mplan.device == "cuda" and mplan.offload != "model"):
        yield
        return

    def before(module, args, kwargs):
        module.to("cuda")
        moved = tuple(a.to("cuda") if isinstance(a, torch.Tensor) else a for a in args)
        return moved, {k: v.to("cuda") if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}

    def after(module, args, kwargs, output):
        module.to("cpu")
        torch.cuda.empty_cache()
        return output

    handles = []
    for c in spec.text_encoders:
        enc = getattr(pipe, c.name, None)
        if enc is not None:
            handles += [enc.register_forward_pre_hook(before, with_kwargs=True),
                        enc.register_forward_hook(after, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _without_text_encoders(pipe: Any, spec: ModelSpec, *, active: bool):
    """Detach the text encoders while the pipeline runs on precomputed embeddings, so it picks its execution
    device from the modules on the GPU (the first component would be an encoder waiting on the CPU)."""
    saved = {c.name: getattr(pipe, c.name) for c in spec.text_encoders
             if active and getattr(pipe, c.name, None) is not None}
    for name in saved:
        setattr(pipe, name, None)
    try:
        yield
    finally:
        for name, module in saved.items():
            setattr(pipe, name, module)


# ---- writing ----

def save_pngs(images: list[Any], recipe: dict[str, Any], stem: str, *,
              each: list[tuple[dict[str, Any], str]] | None = None) -> list[Path]:
    """Each image as `outputs/<date>/<time>-<stem>-<seed>.png`, with its recipe, written atomically.

    `each` (a batch group: several prompts in one call): image i's own (recipe, stem), its recipe holding its
    one prompt and seed; the group is still written as one save (one folder, one time stamp, one error)."""
    folder = settings().outputs_dir / datetime.now().strftime("%Y-%m-%d")
    stamp = datetime.now().strftime("%H%M%S")
    # (image, its recipe, its index in that recipe, its file stem): one file per seed the recipe(s) hold
    todo = ([(im, rec, 0, own) for im, (rec, own) in zip(images, each)] if each is not None else
            [(im, recipe, i, stem) for i, (im, _) in enumerate(zip(images, recipe["seeds"]))])
    paths: list[Path] = []
    try:
        for im, rec, index, own in todo:
            name = f"{stamp}-{safe_name(own, max_len=40)}-{rec['seeds'][index]}"
            paths.append(write_png(im, unique_path(folder, name, ".png"), recipe=rec, index=index))
    except StorageError as exc:  # a full or read-only disk: say which images did reach it
        said = (f"{len(paths)} of {len(images)} images were saved: {', '.join(str(p) for p in paths)}."
                if paths else "No image of this generation was saved; nothing half-written was left.")
        raise type(exc)(f"{exc.message} {said}", argument=exc.argument, value=exc.value, hint=exc.hint,
                        saved=said, errno=exc.details.get("errno")) from exc
    return paths


def cancelled(err: BaseException) -> bool:
    return isinstance(err, (CancelledError, KeyboardInterrupt))
