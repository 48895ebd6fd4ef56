"""Reading a pipeline's weights the way its memory plan says (`MemoryPlan.loading`), for images and video.

- ``"per-component"`` (GPU plans): each weighted component (transformer, text encoders, VAE) is read by
  itself, ``from_pretrained(subfolder=...)`` with low_cpu_mem_usage (memory-mapped safetensors, no random
  init), straight onto its home: the GPU (``device_map``; NF4 components are quantized there as they arrive)
  or RAM (the text encoders a plan frees, everything under model or group offload). Freed text encoders
  are read first and leave the GPU before the transformer is read, and memory is collected between
  components, so RAM peaks where the planner says (`masuka_nb.memory._loading_peak_gb`): the RAM-resident
  components plus the tensors being cast. The pipeline is then assembled around them (tokenizers, scheduler).
- ``"pipeline"`` (CPU plans): one ``Pipeline.from_pretrained`` into RAM, everything's home.

The transformer's weights can come from elsewhere than the model's repo, as the plan says: a GGUF plan
(``"gguf-q4"``/``"gguf-q8"``) reads it from its single file (`masuka_nb.image.gguf`: diffusers'
``from_single_file`` with ``GGUFQuantizationConfig``), a W4A4 plan from its Nunchaku Lite repo at
`quantized_path` (pre-quantized, like an NF4 plan's pre-quantized repo); the text encoders either puts in NF4
load as in any NF4 plan.

    pipe = load_pipeline(spec, plan, path=folder, quantized_path=nf4_folder)
    encoder = load_component(spec, plan, "text_encoder_2", path=folder)   # one component, as the plan has it

Only loading lives here; placement for offload and the VAE's precision wrapper stay with the engines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.log import get_logger

if TYPE_CHECKING:
    from masuka_nb.memory import MemoryPlan
    from masuka_nb.models.registry import ModelSpec

__all__ = ["component_dtype", "component_home", "component_order", "dtype_kwarg", "load_component",
           "load_pipeline", "nf4_config", "nf4_kwargs"]

log = get_logger(__name__)

GGUF_QUANTIZATIONS = ("gguf-q4", "gguf-q8")  # the transformer from a single GGUF file (masuka_nb.image.gguf)


def dtype_kwarg() -> str:
    """diffusers ≥ 0.42 takes `dtype` (and warns on `torch_dtype`); Colab's 0.39 knows only `torch_dtype`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401

        return "dtype"
    except ImportError:
        return "torch_dtype"


def nf4_kwargs(plan: MemoryPlan) -> dict[str, Any]:
    """The BitsAndBytesConfig arguments for a plan's NF4 components (bitsandbytes itself needs a GPU)."""
    import torch

    return {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
            "bnb_4bit_compute_dtype": getattr(torch, plan.dtype), "bnb_4bit_use_double_quant": False}


def nf4_config(plan: MemoryPlan) -> Any:
    """`diffusers.BitsAndBytesConfig` for a plan (constructing it needs the bitsandbytes package)."""
    from diffusers import BitsAndBytesConfig

    return BitsAndBytesConfig(**nf4_kwargs(plan))


def component_order(spec: ModelSpec, plan: MemoryPlan) -> list[str]:
    """The weighted components in the order they are read: the text encoders a plan frees first (they are
    parked in RAM before the transformer arrives), then the registry's order."""
    freed = plan.free_text_encoders
    return [c.name for c in sorted(spec.components, key=lambda c: not (freed and c.role == "text_encoder"))]


def component_home(spec: ModelSpec, plan: MemoryPlan, name: str) -> str:
    """Where component `name` lives once loaded: "cuda" or "cpu" (RAM)."""
    if plan.device != "cuda" or plan.offload != "none":
        return "cpu"  # CPU plans, and offload: the hooks bring each part to the GPU when it runs
    if plan.free_text_encoders and spec.component(name).role == "text_encoder":
        return "cpu"  # waits in RAM, visits the GPU only to encode
    return "cuda"


def component_dtype(spec: ModelSpec, plan: MemoryPlan, name: str) -> str:
    """The dtype component `name` is read in: an NF4 component computes in the plan's dtype; otherwise the
    VAE and text encoders take their own (an fp32 VAE under an fp16 plan)."""
    if name in plan.quantized_components:
        return plan.dtype
    role = spec.component(name).role
    return plan.vae_dtype if role == "vae" else plan.text_encoder_dtype if role == "text_encoder" else plan.dtype


def _index(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def load_component(spec: ModelSpec, plan: MemoryPlan, name: str, *, path: str | Path,
                   quantized_path: str | Path | None = None) -> Any:
    """Read component `name` by itself, as `plan` has it: its dtype, NF4 (from the pre-quantized repo at
    `quantized_path` when the plan names one, else quantized while loading), straight onto its home."""
    import torch

    from masuka_nb.quiet import quiet_third_party

    with quiet_third_party():  # importing them can print third-party notices (bitsandbytes' kernels)
        import diffusers
        import transformers

    if name == "transformer" and plan.quantization in GGUF_QUANTIZATIONS:
        return _gguf_transformer(spec, plan, path=path)
    quantized = name in plan.quantized_components and plan.quantization in ("nf4", "w4a4", *GGUF_QUANTIZATIONS)
    prequantized = quantized and quantized_path is not None
    if plan.quantization == "w4a4" and quantized and not prequantized:
        # W4A4 weights are made by SVDQuant's calibration, never while loading: they come only from their repo.
        raise FileNotFoundError(f"a W4A4 plan for {spec.id} needs its Nunchaku Lite repo ({plan.quantized_repo})")
    folder = Path(quantized_path) if prequantized else Path(path)
    entry = _index(folder).get(name) or _index(Path(path)).get(name)
    if not entry or not entry[0]:
        raise FileNotFoundError(f"{folder} has no {name} in its model_index.json")
    library, class_name = entry[0], entry[1]
    is_diffusers = library == "diffusers"
    module = diffusers if is_diffusers else transformers
    kwargs: dict[str, Any] = {(dtype_kwarg() if is_diffusers else "dtype"): getattr(torch, component_dtype(
        spec, plan, name))}
    if is_diffusers:
        kwargs["low_cpu_mem_usage"] = True  # transformers 5 always reads this way
    home = component_home(spec, plan, name)
    if quantized and not prequantized:
        # No pre-quantized weights: bitsandbytes quantizes each tensor as it arrives (on the GPU it places).
        kwargs["quantization_config"] = module.BitsAndBytesConfig(**nf4_kwargs(plan))
    elif home == "cuda" and not quantized:
        kwargs["device_map"] = "cuda"  # tensor by tensor onto the GPU: the whole component never sits in RAM
    with quiet_third_party():  # its loading bars and notices; MASUKA's one bar covers the task
        loaded = getattr(module, class_name).from_pretrained(str(folder), subfolder=name, **kwargs)
    if quantized and home == "cpu" and plan.device == "cuda":
        loaded.to("cpu")  # quantized on the GPU, then parked in RAM before the next component arrives
    return loaded


def _gguf_transformer(spec: ModelSpec, plan: MemoryPlan, *, path: str | Path) -> Any:
    """A GGUF plan's transformer from its single file, then at its home (GGUF weights stay quantized there)."""
    import torch

    from masuka_nb.image.gguf import load_gguf_transformer
    from masuka_nb.quiet import quiet_third_party

    with quiet_third_party():
        transformer = load_gguf_transformer(plan, path=path, dtype=getattr(torch, plan.dtype))
    home = component_home(spec, plan, "transformer")
    return transformer.to(home) if home == "cuda" else transformer


def load_pipeline(spec: ModelSpec, plan: MemoryPlan, *, path: str | Path,
                  quantized_path: str | Path | None = None) -> Any:
    """`spec`'s pipeline from `path` (and NF4 components from `quantized_path`), loaded as `plan.loading` says."""
    import diffusers
    import torch

    from masuka_nb.quiet import quiet_third_party
    from masuka_nb.runtime import free_memory

    with quiet_third_party():  # the first pipeline access imports transformers, with its notices
        cls = getattr(diffusers, spec.pipeline_class)
    kwargs: dict[str, Any] = {dtype_kwarg(): getattr(torch, plan.dtype)}
    if plan.loading == "per-component":
        for name in component_order(spec, plan):
            kwargs[name] = load_component(spec, plan, name, path=path, quantized_path=quantized_path)
            log.info("load.component", model=spec.id, component=name, home=component_home(spec, plan, name))
            free_memory()  # what reading it left behind goes before the next component arrives
    else:
        kwargs.update(_whole_pipeline_quantization(spec, plan, path, quantized_path))
    with quiet_third_party():
        return cls.from_pretrained(str(path), **kwargs)  # with components given, only tokenizers and scheduler


def _whole_pipeline_quantization(spec: ModelSpec, plan: MemoryPlan, path: str | Path,
                                 quantized_path: str | Path | None) -> dict[str, Any]:
    """"pipeline" loading of a quantized plan: the pre-quantized components (NF4, W4A4) and a GGUF plan's
    transformer, then one quantization config for what is quantized while loading."""
    if plan.quantization not in ("nf4", "w4a4", *GGUF_QUANTIZATIONS):
        return {}
    out: dict[str, Any] = {}
    rest = list(plan.quantized_components)
    if plan.quantization in GGUF_QUANTIZATIONS:
        out["transformer"] = load_component(spec, plan, "transformer", path=path)
        rest.remove("transformer")
    if quantized_path is not None or plan.quantization == "w4a4":
        out.update({name: load_component(spec, plan, name, path=path, quantized_path=quantized_path)
                    for name in rest})
    elif rest:
        from diffusers import PipelineQuantizationConfig

        out["quantization_config"] = PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit", quant_kwargs=nf4_kwargs(plan), components_to_quantize=rest)
    return out
