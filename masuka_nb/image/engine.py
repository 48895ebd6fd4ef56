"""ImageEngine: the image room's view of the device host — a pipeline per (model, plan), kept between calls.

`ImageEngine.pipeline(model)` returns the loaded diffusers pipeline itself (power users, side-by-side
benchmarks); `load_count` counts the loads this engine asked for (tests and benchmarks read it). The
pipeline is owned by the device host (`masuka_nb.host`), which measures it, keeps it while the image
task goes on and evicts it when another task (video, training, ...) claims the device. Loading applies
the memory plan: the weights are read as `plan.loading` says (`masuka_nb.image.loading`: one component at
a time onto its home on GPU plans) in the plan's dtypes and NF4 (pre-quantized repo or BitsAndBytesConfig), a
GGUF single-file transformer or a W4A4 (Nunchaku Lite) repo;
then the VAE in fp32 when fp16 is risky, offload (model / group / group-to-disk), optional regional compile,
first-block cache and attention backend.
"""

from __future__ import annotations

import threading
from typing import Any

from masuka_nb.config import settings
from masuka_nb.host import Host, device_host
from masuka_nb.image.failures import translate
from masuka_nb.image.loading import nf4_config, nf4_kwargs
from masuka_nb.log import get_logger
from masuka_nb.memory import MemoryPlan
from masuka_nb.memory import plan as make_plan
from masuka_nb.models.registry import get_model
from masuka_nb.runtime import free_memory

__all__ = ["TASK", "ImageEngine", "default_engine", "nf4_config", "nf4_kwargs", "place"]

log = get_logger(__name__)

TASK = "image"  # the device host's task for generate, edit, fill and refine: they share the engine's slot


class ImageEngine:
    """Holds at most one loaded model (and its image-to-image twin, sharing the same weights) in its slot
    of the device host. `lock` serialises runs on it: LoRA state and the loaded pipeline are shared."""

    def __init__(self, *, attention_backend: str | None = None, host: Host | None = None) -> None:
        self.attention_backend = attention_backend
        self.load_count = 0
        self.host = host or device_host()
        self.slot = f"image-engine-{id(self):x}"
        self.lock = threading.RLock()

    # ---- public ----

    @property
    def loaded_model(self) -> str | None:
        held = self.host.in_slot(self.slot)
        return held[0][1] if held else None

    @property
    def loaded_plan(self) -> MemoryPlan | None:
        held = self.host.in_slot(self.slot)
        return held[0][2] if held else None

    def claim(self, model: str) -> None:
        """Make room on the device for `model` before planning it (see `masuka_nb.host`)."""
        self.host.claim(TASK, slot=self.slot, model=model)

    def key(self, model: str, plan: MemoryPlan) -> tuple:
        return (TASK, self.slot, model, _plan_key(plan))

    def pipeline(self, model: str, *, plan: MemoryPlan | None = None, img2img: bool = False,
                 progress: Any = None) -> Any:
        """The loaded diffusers pipeline for `model` (loading it, and unloading another, if needed)."""
        spec = get_model(model)
        with self.lock:
            if plan is None:
                self.claim(spec.id)
                plan = self.loaded_plan if self.loaded_model == spec.id else None
            chosen = plan or make_plan(spec.id)
            key = self.key(spec.id, chosen)
            pipe = self.host.get(key)
            if pipe is None:
                pipe = self.host.load(key, lambda: _load(spec, chosen, attention_backend=self.attention_backend,
                                                         progress=progress),
                                      task=TASK, slot=self.slot, model=spec.id, plan=chosen,
                                      need_gb=chosen.after_load_vram_gb if chosen.device == "cuda" else chosen.ram_gb)
                self.load_count += 1
            if not img2img:
                return pipe
            views = self.host.extras(key)
            if "img2img" not in views:
                import diffusers

                # from_pipe shares every component: no second copy of the weights, no load.
                views["img2img"] = getattr(diffusers, spec.img2img_class).from_pipe(pipe)
                views["img2img"].set_progress_bar_config(disable=True)
            return views["img2img"]

    def unload(self) -> None:
        """Drop the loaded pipeline and give its memory back (VRAM included)."""
        with self.lock:
            gone = self.host.evict_slot(self.slot)
            if gone:
                log.info("engine.unload", model=gone[0])

    def generate(self, prompt: str, **kwargs: Any):
        """`masuka_nb.generate` on this engine (same arguments)."""
        from masuka_nb.image.generation import run

        return run(self, prompt, **kwargs)


def _plan_key(plan: MemoryPlan) -> tuple:
    return (plan.device, plan.dtype, plan.vae_dtype, plan.text_encoder_dtype, plan.quantization,
            plan.quantized_components, plan.quantized_repo, plan.quantized_file, plan.offload, plan.free_text_encoders,
            plan.compile, plan.first_block_cache, plan.vae_tiling, plan.speed)


_default: ImageEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> ImageEngine:
    """The engine `masuka_nb.generate` uses (one per process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ImageEngine()
        return _default


# ---- loading ----

def _load(spec: Any, plan: MemoryPlan, *, attention_backend: str | None, progress: Any) -> Any:
    from masuka_nb.image.loading import load_pipeline

    log.info("engine.load", model=spec.id, plan=plan.label, loading=plan.loading)
    _quiet_loading()
    try:
        quantized_path = None
        if spec.tiny:
            from masuka_nb.models.tiny import ensure_tiny

            path = ensure_tiny(spec.id)
        else:
            from masuka_nb.hub import download_plan, locate_model

            dplan = download_plan(spec, plan=plan)
            path = locate_model(spec, dplan, progress=progress)
            if plan.quantization in ("nf4", "w4a4") and plan.quantized_repo and dplan.extra:
                quantized_path = locate_model(spec, dplan.extra[0], progress=progress)
        # One component at a time onto its home (GPU plans), or one pipeline read (CPU plans): as planned.
        pipe = load_pipeline(spec, plan, path=path, quantized_path=quantized_path)
        _place(pipe, plan)
        if attention_backend:
            pipe.transformer.set_attention_backend(attention_backend)
        from masuka_nb.image.speed import apply_speed

        apply_speed(pipe, plan)  # speed mode: first-block cache, regional compile (image/speed.py)
        if plan.vae_tiling:
            pipe.vae.enable_tiling()
        if plan.device == "cuda":
            pipe.vae.enable_slicing()  # a batch decodes one image at a time: lower peak, same pixels
        pipe.set_progress_bar_config(disable=True)
        return pipe
    except (Exception, KeyboardInterrupt) as exc:
        free_memory()
        raise translate(exc, model=spec.id, stage="loading", plan_label=plan.label) from exc


def _quiet_loading() -> None:
    """With MASUKA_PROGRESS=off, the libraries' own loading bars go too (the log says what loads)."""
    if settings().progress == "off":
        import diffusers.utils.logging as dl
        import transformers.utils.logging as tl

        dl.disable_progress_bar()
        tl.disable_progress_bar()


def place(pipe: Any, plan: MemoryPlan) -> None:
    """Put a loaded pipeline where its plan says: the VAE's precision, the text encoders' dtype and home, and
    the device or offload hooks. Image and local video pipelines are placed by the same rules; per-component
    loading already put each part at its home, so the moves below change nothing then (they do for
    "pipeline" loading)."""
    _place(pipe, plan)


def _place(pipe: Any, plan: MemoryPlan) -> None:
    import torch

    if plan.vae_dtype != plan.dtype:
        _vae_in(pipe.vae, getattr(torch, plan.vae_dtype))
    if plan.text_encoder_dtype != plan.dtype:
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
            enc = getattr(pipe, name, None)
            if enc is not None and name not in plan.quantized_components:
                enc.to(getattr(torch, plan.text_encoder_dtype))
    if plan.device != "cuda":
        pipe.to(plan.device)  # "cpu", or "mps" (Apple's GPU: planned like the CPU, whose memory it shares)
        return
    if plan.offload == "none" and plan.free_text_encoders:
        # Text encoders wait in RAM and visit the GPU only to encode (generation._encode_then_free).
        for name, module in pipe.components.items():
            if isinstance(module, torch.nn.Module) and not name.startswith("text_encoder"):
                module.to("cuda")
    elif plan.offload == "none":
        pipe.to("cuda")
    elif plan.offload == "model":
        pipe.enable_model_cpu_offload()
    else:
        from masuka_nb.config import settings

        extra = {}
        if plan.offload == "group-to-disk":
            folder = settings().cache_dir / "offload" / plan.model
            folder.mkdir(parents=True, exist_ok=True)
            extra["offload_to_disk_path"] = str(folder)
        pipe.enable_group_offload(onload_device=torch.device("cuda"), offload_device=torch.device("cpu"),
                                  offload_type="block_level", num_blocks_per_group=1, use_stream=True, **extra)


def _vae_in(vae: Any, dtype: Any) -> None:
    """Run the VAE in `dtype` (fp32 under an fp16 transformer): cast what goes in, keep the rest as is."""
    vae.to(dtype)
    decode, encode = vae.decode, vae.encode

    def decode_as(z, *args, **kwargs):
        return decode(z.to(dtype), *args, **kwargs)

    def encode_as(x, *args, **kwargs):
        return encode(x.to(dtype), *args, **kwargs)

    vae.decode, vae.encode = decode_as, encode_as
