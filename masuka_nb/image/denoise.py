"""Running a validated request through the loaded pipeline: one attempt, and once more on a lighter plan
after an out-of-memory; per-step progress, previews and cancel; prompts encoded once per batch (and the
text encoders moved off the GPU first when the plan says so); prompts past the encoder's limit reported.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from masuka_nb.errors import InvalidRequestError, OutOfMemoryError
from masuka_nb.log import get_logger

if TYPE_CHECKING:
    from masuka_nb.image.job import GenerationJob

__all__ = ["run_with_fallback"]

log = get_logger(__name__)


def run_with_fallback(job: GenerationJob) -> tuple[list[Any], bool]:
    """Run once; after an out-of-memory, free everything and run once more on the next lighter plan.

    Returns the images and whether the fallback was taken (`job.plan` is then the lighter plan).
    """
    from masuka_nb.image.failures import is_out_of_memory, translate
    from masuka_nb.memory import lighter_plan
    from masuka_nb.runtime import free_memory

    spec, mplan, engine = job.spec, job.plan, job.engine
    try:
        return _denoise(job), False
    except (Exception, KeyboardInterrupt) as exc:
        if not is_out_of_memory(exc):
            raise
        err = translate(exc, model=spec.id, stage="generation", plan_label=mplan.label)
        engine.unload()
        free_memory()
        if job.prompt_cache is not None:
            job.prompt_cache.clear()  # its tensors live on the device that just ran out
        lighter = lighter_plan(mplan)
        if lighter is None:
            raise err from exc
        msg = f"Out of memory with {mplan.label}; falling back once to {lighter.label}."
        log.warning("generate.oom_fallback", model=spec.id, old=mplan.label, new=lighter.label)
        job.warnings.append(msg)
        job.recipe["fallback"] = msg
    job.plan = lighter
    try:
        images = _denoise(job)
    except (Exception, KeyboardInterrupt) as exc:
        if is_out_of_memory(exc):
            engine.unload()
            raise OutOfMemoryError(f"{spec.id} ran out of memory even with the lighter plan {lighter.label}.",
                                   argument="plan", value=lighter.label,
                                   hint="Use a smaller size or fewer images per call.") from exc
        raise
    return images, True


def _denoise(job: GenerationJob) -> list[Any]:
    from masuka_nb.progress import ProgressReporter

    reporter = ProgressReporter(job.stage, job.request.steps, progress=job.progress, cancel=job.cancel)
    reporter.check()
    # One generation at a time per engine: LoRA state and the loaded pipeline are shared.
    with job.engine._lock:
        return _denoise_locked(job, reporter)


def _denoise_locked(job: GenerationJob, reporter: Any) -> list[Any]:
    import torch

    from masuka_nb.image.lora import apply_loras

    engine, spec, req, mplan = job.engine, job.spec, job.request, job.plan
    before = engine.load_count
    t = time.perf_counter()
    pipe = engine.pipeline(spec.id, plan=mplan, img2img=req.image is not None, progress=job.progress)
    if engine.load_count != before:
        job.timings["load"] = time.perf_counter() - t
    apply_loras(pipe, job.loras)
    _check_prompt_length(pipe, spec, req)
    # CPU generators on every device and plan: the same seed gives the same starting noise everywhere.
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in job.seeds]
    total = int(req.steps * req.strength) if req.image is not None else req.steps

    def on_step(p, step, timestep, kwargs):
        reporter.total = total
        preview = _preview(kwargs.get("latents"), spec, req) if job.previews else None
        reporter.update(min(step + 1, total), message=f"step {step + 1}/{total}", preview=preview)
        reporter.check("the generation")
        return kwargs

    call: dict[str, Any] = dict(prompt=req.prompt, width=req.width, height=req.height,
                                num_inference_steps=req.steps, num_images_per_prompt=req.num_images,
                                generator=generators, max_sequence_length=spec.max_sequence_length,
                                callback_on_step_end=on_step, output_type="pil")
    call[spec.guidance_arg] = req.guidance  # Qwen-Image: true_cfg_scale (registry data)
    negative = req.negative_prompt or spec.negative_default  # Qwen-Image's CFG needs one: the card's " "
    if negative:
        call["negative_prompt"] = negative
    if req.image is not None:
        call["image"] = req.image.resize((req.width, req.height))
        call["strength"] = req.strength
    from masuka_nb.quiet import quiet_third_party

    with torch.inference_mode(), quiet_third_party(bars=False):  # CLIP's truncation notices
        if mplan.free_text_encoders:
            _use_embeds(call, _cached(job, lambda: _encode_then_free(pipe, spec, req, mplan)))
            with _without_text_encoders(pipe):
                images = pipe(**call).images
        else:
            if job.prompt_cache is not None:
                _use_embeds(call, _cached(job, lambda: _encode(pipe, spec, req, pipe._execution_device)))
            images = pipe(**call).images
    reporter.done(f"{len(images)} image(s)")
    return list(images)


def _use_embeds(call: dict[str, Any], embeds: dict[str, Any]) -> None:
    """Call the pipeline on precomputed embeddings instead of text. They already hold one copy per image,
    and a pipeline given embeddings takes their batch as the prompt count, so it must not repeat them."""
    for key in ("prompt", "negative_prompt"):
        call.pop(key, None)
    call.update(embeds)
    call["num_images_per_prompt"] = 1


def _cached(job: GenerationJob, encode: Any) -> dict[str, Any]:
    """The prompt's embeddings from the job's prompt cache, encoding them on a miss (or with no cache)."""
    if job.prompt_cache is None:
        return encode()
    req = job.request
    key = (job.spec.id, req.prompt, req.negative_prompt, req.num_images, req.guidance > 1.0,
           tuple((lr["source"], lr["weight"]) for lr in job.recipe.get("loras", [])))
    found = job.prompt_cache.get(key)
    if found is None:
        found = encode()
        job.prompt_cache.put(key, found)
    return found


_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


def _encode_then_free(pipe, spec, req, mplan) -> dict[str, Any]:
    """Encode the prompt with the text encoders on the GPU, then move them off it before denoising.

    The transformer then never shares VRAM with T5 (≈9.5 GB in bf16): the plan's free-text-encoders step.
    """
    import torch

    device = torch.device("cuda" if mplan.device == "cuda" else "cpu")
    encoders = [getattr(pipe, n) for n in _ENCODERS if getattr(pipe, n, None) is not None]
    for enc in encoders:
        enc.to(device)
    try:
        return _encode(pipe, spec, req, device)
    finally:
        if device.type == "cuda":
            for enc in encoders:
                enc.to("cpu")
            torch.cuda.empty_cache()


def _encode(pipe, spec, req, device) -> dict[str, Any]:
    """The pipeline's own `encode_prompt`, as the keyword arguments its `__call__` takes instead of text."""
    if spec.family in ("zimage", "qwenimage"):
        return _encode_single_stream(pipe, spec, req, device)
    if spec.family == "flux2":  # FLUX.2 [klein]: one Qwen3 encoder, no pooled embedding (issue 12)
        embeds, _ = pipe.encode_prompt(prompt=req.prompt, device=device, num_images_per_prompt=req.num_images,
                                       max_sequence_length=spec.max_sequence_length)
        return {"prompt_embeds": embeds}
    if spec.family == "flux":
        embeds, pooled, _ = pipe.encode_prompt(prompt=req.prompt, prompt_2=None, device=device,
                                               num_images_per_prompt=req.num_images,
                                               max_sequence_length=spec.max_sequence_length)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    cfg = req.guidance > 1.0
    embeds, neg, pooled, neg_pooled = pipe.encode_prompt(
        prompt=req.prompt, prompt_2=None, prompt_3=None, device=device, num_images_per_prompt=req.num_images,
        do_classifier_free_guidance=cfg, negative_prompt=req.negative_prompt,
        max_sequence_length=spec.max_sequence_length)
    out = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
    if cfg:
        out.update(negative_prompt_embeds=neg, negative_pooled_prompt_embeds=neg_pooled)
    return out


def _encode_single_stream(pipe, spec, req, device) -> dict[str, Any]:
    """Z-Image (a list of variable-length embeddings per prompt) and Qwen-Image (embeddings and their mask); the
    negative side only when the model runs classifier-free guidance (Z-Image above 0, Qwen-Image above 1)."""
    from masuka_nb.memory import cfg_passes

    n = req.num_images
    cfg = cfg_passes(spec, req.guidance) > 1
    negative = req.negative_prompt or spec.negative_default or ""
    if spec.family == "zimage":
        pos, neg = pipe.encode_prompt(prompt=req.prompt, device=device, do_classifier_free_guidance=cfg,
                                      negative_prompt=negative if cfg else None,
                                      max_sequence_length=spec.max_sequence_length)
        out: dict[str, Any] = {"prompt_embeds": [e for e in pos for _ in range(n)]}
        if cfg:
            out["negative_prompt_embeds"] = [e for e in neg for _ in range(n)]
        return out
    embeds, mask = pipe.encode_prompt(prompt=req.prompt, device=device, num_images_per_prompt=n,
                                      max_sequence_length=spec.max_sequence_length)
    out = {"prompt_embeds": embeds, "prompt_embeds_mask": _mask(embeds, mask)}
    if cfg:
        neg, neg_mask = pipe.encode_prompt(prompt=negative, device=device, num_images_per_prompt=n,
                                           max_sequence_length=spec.max_sequence_length)
        out.update(negative_prompt_embeds=neg, negative_prompt_embeds_mask=_mask(neg, neg_mask))
    return out


def _mask(embeds, mask):
    """encode_prompt drops an all-ones mask (None); given back explicitly, the pipeline does not warn about it."""
    import torch

    return mask if mask is not None else torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)


class _without_text_encoders:
    """Detach the text encoders while the pipeline runs on precomputed embeddings, so it picks its
    execution device from the modules that are on the GPU (the first component would be a CPU encoder)."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.saved: dict[str, Any] = {}

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


def _check_prompt_length(pipe, spec, req) -> None:
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


def _preview(latents, spec, req) -> Any:
    """A cheap low-resolution preview: the first three latent channels mapped to RGB (no VAE decode)."""
    if latents is None:
        return None
    import numpy as np
    from PIL import Image

    lat = latents[0].detach().float().cpu()
    if lat.ndim == 2:  # packed (tokens, channels·4), FLUX / FLUX.2 / Qwen-Image: unpack 2×2 patches
        h, w = req.height // 16, req.width // 16
        lat = lat.reshape(h, w, -1, 2, 2).permute(2, 0, 3, 1, 4).reshape(-1, h * 2, w * 2)
    rgb = lat[:3].numpy()
    rgb = (rgb - rgb.min()) / (np.ptp(rgb) + 1e-6)
    return Image.fromarray((rgb.transpose(1, 2, 0) * 255).astype("uint8"))
