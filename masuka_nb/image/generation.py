"""`generate`: a validated request in, images with their recipe out, recorded in the history.

`generate` is a thin front door over the run pipeline (`masuka_nb.image.pipeline`) with the text-to-image
task below: the model is resolved (``auto`` → flux1-schnell with a CUDA GPU, tiny-flux without), the
request validated, LoRAs checked, the result cache asked first (the same recipe made before returns its
images), then the pipeline (image-to-image when `image` is given) runs with per-step progress, previews
and cancel; PNGs are saved with their recipe and the history records the call. Every failure is
translated once (`failures.translate`), recorded with its code, and raised as a `MasukaError`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError, ModelNotFoundError
from masuka_nb.image import cache
from masuka_nb.image.engine import default_engine
from masuka_nb.image.job import GenerationJob, PromptCache
from masuka_nb.image.lora import apply_loras, resolve_all
from masuka_nb.image.pipeline import Task, image_sha256, record, save_pngs
from masuka_nb.image.pipeline import run as run_pipeline
from masuka_nb.image.request import GenerationRequest
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan
from masuka_nb.models.registry import get_model
from masuka_nb.runtime import detect

if TYPE_CHECKING:
    from masuka_nb.image.engine import ImageEngine
    from masuka_nb.progress import CancelToken, ProgressCallback

__all__ = ["GenerationResult", "TextToImage", "generate", "resolve_model"]

log = get_logger(__name__)

# Recipe entries that describe how a prompt was made (style presets, a batch template), kept by `reproduce`.
CARRIED = ("presets", "template")


@dataclass
class GenerationResult:
    """Images and everything about how they were made. `recipe` is enough to make them again.

    `images` are always the outputs; `paths` the saved PNGs (empty with save=False); `history_id` the
    record; `timings` in the schema of `masuka_nb.history.TIMINGS` (`seconds_total`, `seconds_load`, ...)."""

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

    @property
    def path(self) -> Path | None:
        return self.paths[0] if self.paths else None

    def __getattr__(self, name: str) -> Any:
        # `upscale` returned a PIL image for some methods until this release: `.size`, `.save()`, `.info` on
        # the result still reach its image, with a warning, for one release.
        if name.startswith("_") or name in ("images", "recipe"):
            raise AttributeError(name)
        images = self.__dict__.get("images") or []
        if images and hasattr(images[0], name):
            warnings.warn(f"`result.{name}` is the image's: use `result.image.{name}` (upscale now returns a "
                          "GenerationResult, as every image function does).", DeprecationWarning, stacklevel=2)
            return getattr(images[0], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def elapsed_s(self) -> float:
        """Wall time of the call, in seconds."""
        return float(self.timings.get("seconds_total", 0.0))

    def _repr_html_(self) -> str:  # a notebook cell showing a result shows the images
        import base64
        import io
        from html import escape

        tags = []
        for im in self.images:
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            data = base64.b64encode(buf.getvalue()).decode()
            tags.append(f'<img src="data:image/png;base64,{data}" style="max-width:256px;margin:2px">')
        label = self.recipe.get("label", "")  # a recipe may come from a PNG someone sent: text, escaped
        return "".join(tags) + (f"<div><small>{escape(str(label))}</small></div>" if label else "")


def resolve_model(model: str | None, *, runtime: Any = None) -> tuple[str, str | None]:
    """(model id, note). None → settings().default_model; "auto" → flux1-schnell on CUDA, else tiny-flux.

    `runtime` (a `RuntimeInfo`) answers "is there a GPU" without `detect()` (which imports torch):
    the app passes `detect_quick()` and shows the note itself, so nothing is logged then."""
    if model is not None and not isinstance(model, str):
        raise InvalidRequestError(f"`model` must be a model id, not {type(model).__name__}.", argument="model",
                                  value=model, hint="e.g. model=\"flux1-schnell\"; `masuka_nb.list_models()`.")
    s = settings()
    name = s.default_model if model is None else model
    if name.strip().lower() != "auto":
        if model is not None:
            return get_model(name).id, None
        try:
            return get_model(name).id, None
        except ModelNotFoundError as exc:  # the setting names no model: say which setting
            raise ModelNotFoundError(f"The `default_model` setting names {name!r}, which is no model MASUKA runs.",
                                     argument="default_model", value=name,
                                     hint=f"masuka_nb.configure(default_model=...) with one of list_models(), or "
                                          f"\"auto\". {exc.hint}") from exc
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
    return run(default_engine(), prompt, model=model, negative_prompt=negative_prompt, width=width, height=height,
               steps=steps, guidance=guidance, seed=seed, num_images=num_images, loras=loras, image=image,
               strength=strength, plan=plan, progress=progress, cancel=cancel, save=save, previews=previews)


def run(engine: ImageEngine, prompt: Any, *, model: Any = None, negative_prompt: Any = None, width: Any = None,
        height: Any = None, steps: Any = None, guidance: Any = None, seed: Any = None, num_images: Any = 1,
        loras: Any = (), image: Any = None, strength: Any = None, plan: Any = None, progress: Any = None,
        cancel: Any = None, save: bool = True, previews: bool = False, use_cache: bool = True,
        seeds: list[int] | None = None, prompt_cache: PromptCache | None = None,
        recipe_extra: dict[str, Any] | None = None, record: bool = True, stage: str = "",
        prompts: list[str] | None = None) -> GenerationResult:
    """One text-to-image (or image-to-image) job on `engine`, through the run pipeline. `prompts` (a batch
    group): one prompt per image, in one pipeline call (`prompt` is then the first)."""
    job = GenerationJob(engine=engine, prompt=prompt, model_arg=model, plan_arg=plan, progress=progress,
                        cancel=cancel, previews=previews, save=save, use_cache=use_cache, prompt_cache=prompt_cache,
                        record=record, recipe_extra=recipe_extra, seeds=list(seeds or []), stage=stage,
                        args=dict(negative_prompt=negative_prompt, width=width, height=height, steps=steps,
                                  guidance=guidance, seed=seed, num_images=num_images, image=image,
                                  strength=strength, loras=loras, prompts=list(prompts) if prompts else None))
    return run_pipeline(TextToImage(engine), job)


class TextToImage(Task):
    """Text-to-image (and image-to-image with `image`), with LoRAs, previews and the result cache."""

    kind = "image"
    stage = "generate"
    noun = "the generation"
    hit = False  # answered from the result cache

    def resolve(self, job: GenerationJob) -> tuple[str, str | None]:
        return resolve_model(job.model_arg)

    def validate(self, job: GenerationJob) -> GenerationRequest:
        a = job.args
        req = GenerationRequest.build(job.spec, prompt=job.prompt, negative_prompt=a["negative_prompt"],
                                      width=a["width"], height=a["height"], steps=a["steps"],
                                      guidance=a["guidance"], seed=a["seed"], num_images=a["num_images"],
                                      image=a["image"], strength=a["strength"])
        if job.seeds and len(job.seeds) != req.num_images:
            raise InvalidRequestError(f"{len(job.seeds)} seeds for {req.num_images} images.", argument="seeds",
                                      value=job.seeds, hint="Give one seed per image.")
        prompts = a.get("prompts")
        if prompts is not None:
            if len(prompts) != req.num_images or not all(isinstance(p, str) and p.strip() for p in prompts):
                raise InvalidRequestError("`prompts` must hold one non-empty prompt per image.", argument="prompts",
                                          value=prompts, hint="A batch group: one prompt per seed.")
            job.use_cache = False  # the result cache keys one prompt per recipe
        job.loras = resolve_all(a["loras"], model=job.spec.id)
        return req

    def texts(self, job: GenerationJob) -> list[str]:
        return list(job.args.get("prompts") or [job.request.prompt] * job.request.num_images)

    def recipe(self, job: GenerationJob) -> dict[str, Any]:
        req = job.request
        out = {"loras": [lr.as_recipe() for lr in job.loras], "strength": req.strength,
               "image_sha256": image_sha256(req.image) if req.image is not None else None,
               "compute": self._compute(job)}
        if job.args.get("prompts"):
            out["prompts"] = list(job.args["prompts"])
        return out

    def _compute(self, job: GenerationJob) -> dict[str, Any]:
        return cache.compute_of(job.plan, attention_backend=getattr(self.engine, "attention_backend", None))

    def load(self, job: GenerationJob) -> Any:
        return self.engine.pipeline(job.spec.id, plan=job.plan, img2img=job.request.image is not None,
                                    progress=job.progress)

    def steps(self, job: GenerationJob) -> int:
        req = job.request
        return int(req.steps * req.strength) if req.image is not None else req.steps

    def before_call(self, job: GenerationJob, pipe: Any) -> None:
        apply_loras(pipe, job.loras)
        for text in dict.fromkeys(self.texts(job)):
            check_prompt_length(pipe, job.spec, job.request.model_copy(update={"prompt": text}))

    def call(self, job: GenerationJob, pipe: Any) -> dict[str, Any]:
        req = job.request
        call: dict[str, Any] = dict(width=req.width, height=req.height, num_images_per_prompt=req.num_images)
        if job.args.get("prompts"):  # several prompts, one image each (used when the text goes in as text)
            call.update(prompt=list(job.args["prompts"]), num_images_per_prompt=1)
            if req.negative_prompt:
                call["negative_prompt"] = [req.negative_prompt] * req.num_images
        if req.image is not None:
            call["image"] = req.image.resize((req.width, req.height))
            call["strength"] = req.strength
        return call

    def preview(self, job: GenerationJob, latents: Any) -> Any:
        return preview(latents, job.spec, job.request)

    def cached(self, job: GenerationJob) -> GenerationResult | None:
        if not job.use_cache:
            return None
        key = cache.recipe_key(job.recipe)
        hit = cache.lookup(key)
        if hit is None:
            return None
        images, paths = hit
        if job.save and not all(p.is_relative_to(settings().outputs_dir) for p in paths):
            paths = cache.store(key, images, save_pngs(images, job.recipe, job.request.prompt),
                                job.recipe)  # it was made with save=False
        job.timings["seconds_total"] = job.elapsed()
        self.hit = True
        rec = record(self, job, paths) if job.record else None
        log.info("generate.cache_hit", model=job.spec.id, key=key[:12])
        return GenerationResult(images, job.seeds, job.recipe, paths, job.timings, job.plan, True, job.warnings,
                                rec.id if rec else "")

    def history_extra(self, job: GenerationJob) -> dict[str, Any]:
        return {"cached": self.hit}

    def replanned(self, job: GenerationJob) -> None:
        job.recipe["plan"] = job.plan.label
        job.recipe["compute"] = self._compute(job)

    def write(self, job: GenerationJob, outputs: list[Any]) -> list[Path]:
        if job.args.get("prompts"):  # a batch group: each PNG carries its own prompt and seed
            if not job.save:
                return []
            common = {k: v for k, v in job.recipe.items() if k != "prompts"}
            return save_pngs(outputs, job.recipe, job.request.prompt,
                             each=[({**common, "prompt": text, "seeds": [seed]}, text)
                                   for text, seed in zip(job.args["prompts"], job.seeds)])
        paths = save_pngs(outputs, job.recipe, job.request.prompt) if job.save else []
        if job.use_cache:
            stored = cache.store(cache.recipe_key(job.recipe), outputs, paths, job.recipe)
            if not job.save:
                job.recipe["cache_paths"] = [str(p) for p in stored]
        return paths

    def result(self, job: GenerationJob, outputs: list[Any], paths: list[Path], history_id: str) -> GenerationResult:
        return GenerationResult(outputs, job.seeds, job.recipe, paths, job.timings, job.plan, False, job.warnings,
                                history_id)


def check_prompt_length(pipe: Any, spec: Any, req: Any) -> None:
    """Report the part of a prompt past the main text encoder's limit (it would be cut silently)."""
    tok = getattr(pipe, "tokenizer_2" if spec.family == "flux" else "tokenizer_3", None)
    if tok is None:
        return
    limit = spec.max_sequence_length
    if len(req.prompt.encode("utf-8")) + 2 <= limit:
        return  # every token covers at least one byte (byte fallback), so it cannot be past the limit
    ids = tok(req.prompt, add_special_tokens=True).input_ids
    if len(ids) <= limit:
        return
    kept = tok.decode(ids[: limit - 1], skip_special_tokens=True)
    cut = req.prompt[len(kept):] if req.prompt.startswith(kept) else tok.decode(ids[limit - 1:],
                                                                                  skip_special_tokens=True)
    raise InvalidRequestError(
        f"The prompt is {len(ids)} tokens; {spec.id} reads at most {limit}, so this part would be cut: {cut!r}.",
        argument="prompt", value=req.prompt,
        hint="Shorten the prompt (put what matters first), or split the idea across several images.",
        cut=cut,
    )


def preview(latents: Any, spec: Any, req: Any) -> Any:
    """A cheap low-resolution preview: the first three latent channels mapped to RGB (no VAE decode)."""
    if latents is None:
        return None
    import numpy as np
    from PIL import Image

    lat = latents[0].detach().float().cpu()
    if spec.family == "flux" and lat.ndim == 2:  # packed (tokens, channels·4): unpack 2×2 patches
        h, w = req.height // 16, req.width // 16
        lat = lat.reshape(h, w, -1, 2, 2).permute(2, 0, 3, 1, 4).reshape(-1, h * 2, w * 2)
    rgb = lat[:3].numpy()
    rgb = (rgb - rgb.min()) / (np.ptp(rgb) + 1e-6)
    return Image.fromarray((rgb.transpose(1, 2, 0) * 255).astype("uint8"))
