"""The image models MASUKA knows, as data. Adding a model is adding an entry to `MODELS`.

Component parameter counts come from ../shared/reference/memory.md (published figures); the memory
planner turns them into bytes per dtype. Defaults (steps, guidance, size, sequence length) are the
model authors' recommendations as published on their model cards.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from masuka_nb.errors import ModelNotFoundError

__all__ = ["MODELS", "ComponentSpec", "ModelSpec", "get_model", "list_models"]


@dataclass(frozen=True)
class ComponentSpec:
    """One pipeline component: its folder in the repo, its role and its size in billions of parameters."""

    name: str
    role: str  # "transformer" | "text_encoder" | "vae"
    params_b: float
    # transformers keeps T5's `wo` layers in fp32 when loading in fp16: extra GB on top of 2 bytes/param.
    fp16_extra_gb: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # "flux" | "sd3"
    title: str
    repo: str | None  # None: built locally (tiny models)
    pipeline_class: str
    img2img_class: str
    default_steps: int
    default_guidance: float
    default_width: int
    default_height: int
    max_sequence_length: int
    components: tuple[ComponentSpec, ...]
    min_size: int = 256
    max_size: int = 2048
    size_multiple: int = 16
    revision: str = "main"
    supports_negative_prompt: bool = False
    uses_guidance_embedding: bool = False  # FLUX.1-dev: guidance is an input, not CFG
    quantized_repos: dict[str, str] = field(default_factory=dict)  # "nf4" -> pre-quantized diffusers repo
    gated: bool = False
    licence: str = ""
    licence_url: str = ""
    tiny: bool = False
    scheduler_label: str = "Euler (flow matching)"
    description: str = ""

    @property
    def params_b(self) -> float:
        return sum(c.params_b for c in self.components)

    def component(self, name: str) -> ComponentSpec:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    @property
    def text_encoders(self) -> tuple[ComponentSpec, ...]:
        return tuple(c for c in self.components if c.role == "text_encoder")


_CLIP_L = ComponentSpec("text_encoder", "text_encoder", 0.123)
_T5_FLUX = ComponentSpec("text_encoder_2", "text_encoder", 4.76, fp16_extra_gb=2.0)
_VAE = ComponentSpec("vae", "vae", 0.084)
_SD3_TEXT = (
    _CLIP_L,
    ComponentSpec("text_encoder_2", "text_encoder", 0.695),
    ComponentSpec("text_encoder_3", "text_encoder", 4.76, fp16_extra_gb=2.0),
)

_FLUX_DEV_LICENCE = "FLUX.1 [dev] Non-Commercial License"
_SD35_LICENCE = "Stability AI Community License"

MODELS: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        ModelSpec(
            id="flux1-dev",
            family="flux",
            title="FLUX.1 [dev]",
            repo="black-forest-labs/FLUX.1-dev",
            pipeline_class="FluxPipeline",
            img2img_class="FluxImg2ImgPipeline",
            default_steps=28,
            default_guidance=3.5,
            default_width=1024,
            default_height=1024,
            max_sequence_length=512,
            components=(ComponentSpec("transformer", "transformer", 11.90), _T5_FLUX, _CLIP_L, _VAE),
            uses_guidance_embedding=True,
            quantized_repos={"nf4": "diffusers/FLUX.1-dev-bnb-4bit"},
            gated=True,
            licence=_FLUX_DEV_LICENCE,
            licence_url="https://huggingface.co/black-forest-labs/FLUX.1-dev",
            description="Best open FLUX quality; guidance-distilled, 20–50 steps.",
        ),
        ModelSpec(
            id="flux1-schnell",
            family="flux",
            title="FLUX.1 [schnell]",
            repo="black-forest-labs/FLUX.1-schnell",
            pipeline_class="FluxPipeline",
            img2img_class="FluxImg2ImgPipeline",
            default_steps=4,
            default_guidance=0.0,
            default_width=1024,
            default_height=1024,
            max_sequence_length=256,
            components=(ComponentSpec("transformer", "transformer", 11.89), _T5_FLUX, _CLIP_L, _VAE),
            licence="Apache-2.0",
            licence_url="https://huggingface.co/black-forest-labs/FLUX.1-schnell",
            description="Timestep-distilled FLUX: 1–4 steps, Apache-2.0.",
        ),
        ModelSpec(
            id="sd35-large",
            family="sd3",
            title="Stable Diffusion 3.5 Large",
            repo="stabilityai/stable-diffusion-3.5-large",
            pipeline_class="StableDiffusion3Pipeline",
            img2img_class="StableDiffusion3Img2ImgPipeline",
            default_steps=28,
            default_guidance=3.5,
            default_width=1024,
            default_height=1024,
            max_sequence_length=256,
            components=(ComponentSpec("transformer", "transformer", 8.06), *_SD3_TEXT, _VAE),
            supports_negative_prompt=True,
            gated=True,
            licence=_SD35_LICENCE,
            licence_url="https://huggingface.co/stabilityai/stable-diffusion-3.5-large",
            description="8B MMDiT; strong prompt following, negative prompts.",
        ),
        ModelSpec(
            id="sd35-large-turbo",
            family="sd3",
            title="Stable Diffusion 3.5 Large Turbo",
            repo="stabilityai/stable-diffusion-3.5-large-turbo",
            pipeline_class="StableDiffusion3Pipeline",
            img2img_class="StableDiffusion3Img2ImgPipeline",
            default_steps=4,
            default_guidance=0.0,
            default_width=1024,
            default_height=1024,
            max_sequence_length=256,
            components=(ComponentSpec("transformer", "transformer", 8.06), *_SD3_TEXT, _VAE),
            # With guidance 0 there is no unconditional pass, so a negative prompt has no effect.
            supports_negative_prompt=False,
            gated=True,
            licence=_SD35_LICENCE,
            licence_url="https://huggingface.co/stabilityai/stable-diffusion-3.5-large-turbo",
            description="Distilled SD3.5 Large: 4 steps, no CFG.",
        ),
        ModelSpec(
            id="sd35-medium",
            family="sd3",
            title="Stable Diffusion 3.5 Medium",
            repo="stabilityai/stable-diffusion-3.5-medium",
            pipeline_class="StableDiffusion3Pipeline",
            img2img_class="StableDiffusion3Img2ImgPipeline",
            default_steps=40,
            default_guidance=4.5,
            default_width=1024,
            default_height=1024,
            max_sequence_length=256,
            components=(ComponentSpec("transformer", "transformer", 2.47), *_SD3_TEXT, _VAE),
            max_size=1440,
            supports_negative_prompt=True,
            gated=True,
            licence=_SD35_LICENCE,
            licence_url="https://huggingface.co/stabilityai/stable-diffusion-3.5-medium",
            description="2.5B MMDiT-X; fits a T4 in fp16.",
        ),
        ModelSpec(
            id="tiny-flux",
            family="flux",
            title="tiny-flux (random weights, offline)",
            repo=None,
            pipeline_class="FluxPipeline",
            img2img_class="FluxImg2ImgPipeline",
            default_steps=4,
            default_guidance=3.5,
            default_width=64,
            default_height=64,
            max_sequence_length=128,
            components=(
                ComponentSpec("transformer", "transformer", 0.0001),
                ComponentSpec("text_encoder_2", "text_encoder", 0.00005),
                ComponentSpec("text_encoder", "text_encoder", 0.00005),
                ComponentSpec("vae", "vae", 0.00005),
            ),
            min_size=32,
            max_size=512,
            uses_guidance_embedding=True,
            licence="Apache-2.0",
            tiny=True,
            description="A few-MB FLUX-shaped model built in code: runs anywhere, outputs noise.",
        ),
        ModelSpec(
            id="tiny-sd3",
            family="sd3",
            title="tiny-sd3 (random weights, offline)",
            repo=None,
            pipeline_class="StableDiffusion3Pipeline",
            img2img_class="StableDiffusion3Img2ImgPipeline",
            default_steps=4,
            default_guidance=5.0,
            default_width=64,
            default_height=64,
            max_sequence_length=128,
            components=(
                ComponentSpec("transformer", "transformer", 0.0001),
                ComponentSpec("text_encoder", "text_encoder", 0.00005),
                ComponentSpec("text_encoder_2", "text_encoder", 0.00005),
                ComponentSpec("text_encoder_3", "text_encoder", 0.00005),
                ComponentSpec("vae", "vae", 0.00005),
            ),
            min_size=32,
            max_size=512,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            tiny=True,
            description="A few-MB SD3-shaped model built in code: runs anywhere, outputs noise.",
        ),
    )
}

# Names people type that mean one of ours.
ALIASES = {
    "flux-dev": "flux1-dev",
    "flux.1-dev": "flux1-dev",
    "black-forest-labs/flux.1-dev": "flux1-dev",
    "flux-schnell": "flux1-schnell",
    "flux.1-schnell": "flux1-schnell",
    "black-forest-labs/flux.1-schnell": "flux1-schnell",
    "sd3.5-large": "sd35-large",
    "sd3.5-medium": "sd35-medium",
    "sd3.5-large-turbo": "sd35-large-turbo",
    "stabilityai/stable-diffusion-3.5-large": "sd35-large",
    "stabilityai/stable-diffusion-3.5-medium": "sd35-medium",
    "stabilityai/stable-diffusion-3.5-large-turbo": "sd35-large-turbo",
}


def get_model(model_id: str) -> ModelSpec:
    """The registry entry for `model_id` (an id, or a common alias such as a Hub repo id)."""
    if isinstance(model_id, ModelSpec):
        return model_id
    key = str(model_id).strip().lower()
    key = ALIASES.get(key, key)
    if key in MODELS:
        return MODELS[key]
    close = difflib.get_close_matches(key, list(MODELS) + list(ALIASES), n=3, cutoff=0.5)
    close = list(dict.fromkeys(ALIASES.get(c, c) for c in close))
    maybe = f" Closest: {', '.join(close)}." if close else ""
    raise ModelNotFoundError(
        f"No model with id `{model_id}`.{maybe}",
        argument="model",
        value=model_id,
        hint="Known models: " + ", ".join(MODELS) + " (`masuka_nb.list_models()` describes them).",
        closest=close,
    )


def list_models(*, include_tiny: bool = True) -> list[ModelSpec]:
    return [m for m in MODELS.values() if include_tiny or not m.tiny]
