"""The models MASUKA runs locally, as data. Adding a model is adding an entry to `MODELS`.

Component sizes are measured from each component's published config at full size on the meta device
(`masuka_nb.models.real_configs`, with the config URLs); tests/test_registry.py rebuilds every component and
checks these numbers (counts within 2 %, the planner's bytes within 5 % of the loaders' own rules). The
memory planner turns them into bytes per dtype and NF4.
Defaults (steps, guidance, size, frames, sequence length) are the model authors' recommendations as
published on their model cards. `task` says which engine runs a model: "text-to-image" (generate),
"edit" / "fill" (masuka_nb.edit), "text-to-video" / "image-to-video" (masuka_nb.video.local).
`min_diffusers` is the first diffusers release with the pipeline class (Colab ships 0.39).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from masuka_nb.errors import InvalidRequestError, ModelNotFoundError

__all__ = ["MODELS", "TASKS", "ComponentSpec", "ModelSpec", "get_model", "list_models"]


@dataclass(frozen=True)
class ComponentSpec:
    """One pipeline component: its folder in the repo, its role and what its weights are made of (billions of
    elements). NF4 quantizes only `nf4_b`; the rest stays in the plan's dtype, except what the loader keeps in
    fp32 (transformers' `_keep_in_fp32_modules`, e.g. T5's `wo`, only under fp16; diffusers' under fp16 and bf16)."""

    name: str
    role: str  # "transformer" | "text_encoder" | "vae" | "image_encoder"
    params_b: float  # parameters + persistent buffers (what the checkpoint stores; tied weights once)
    nf4_b: float = 0.0  # Linear weights bitsandbytes turns into NF4 (not embeddings, norms, skipped/kept modules)
    fp32_b: float = 0.0  # kept in fp32 when the component loads in fp16
    fp32_bf16_b: float = 0.0  # kept in fp32 when it loads in bf16 (diffusers' keep-in-fp32 rule)
    largest_b: float = 0.0  # the biggest single tensor: what one loading step casts at once


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
    task: str = "text-to-image"  # | "edit" | "fill" | "text-to-video" | "image-to-video"
    min_diffusers: str = "0.32"
    supports_lora: bool = True
    # video only: the frame counts, rates and sizes the model was trained for
    default_frames: int = 0
    max_frames: int = 0
    frame_multiple: int = 4  # Wan: num_frames = 4·k + 1
    fps: int = 0
    sizes: tuple[tuple[int, int], ...] = ()  # (width, height) the authors publish
    published_url: str = ""  # where the defaults and sizes above were read

    @property
    def is_video(self) -> bool:
        return self.task.endswith("-to-video")

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

    @property
    def prompt_outputs(self) -> tuple[str | None, ...]:
        """What the pipeline's `encode_prompt` returns, in order, as the `__call__` keywords they go back in
        under (None: not passed back). Empty: the pipeline is always called with the text."""
        return PROMPT_OUTPUTS.get(self.family, ())


# Per family, the values `encode_prompt` returns, named as `__call__` takes them (diffusers' signatures:
# FluxPipeline → (prompt_embeds, pooled_prompt_embeds, text_ids); StableDiffusion3Pipeline → (prompt_embeds,
# negative_prompt_embeds, pooled_prompt_embeds, negative_pooled_prompt_embeds); Flux2KleinPipeline →
# (prompt_embeds, text_ids); WanPipeline → (prompt_embeds, negative_prompt_embeds)).
PROMPT_OUTPUTS: dict[str, tuple[str | None, ...]] = {
    "flux": ("prompt_embeds", "pooled_prompt_embeds", None),
    "sd3": ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"),
    "flux2": ("prompt_embeds", None),
    "wan": ("prompt_embeds", "negative_prompt_embeds"),
}


# Measured from masuka_nb.models.real_configs (meta device, 2026-12); tests/test_registry.py re-measures them.
_CLIP_L = ComponentSpec("text_encoder", "text_encoder", 0.1231, nf4_b=0.0849, largest_b=0.0379)
_T5_XXL = dict(role="text_encoder", params_b=4.7623, nf4_b=3.6239, fp32_b=1.0066, largest_b=0.1316)
_T5_FLUX = ComponentSpec("text_encoder_2", **_T5_XXL)
_VAE = ComponentSpec("vae", "vae", 0.0838, nf4_b=0.0021, largest_b=0.0024)
_SD3_TEXT = (
    ComponentSpec("text_encoder", "text_encoder", 0.1237, nf4_b=0.0849, largest_b=0.0379),
    ComponentSpec("text_encoder_2", "text_encoder", 0.6947, nf4_b=0.6291, largest_b=0.0632),
    ComponentSpec("text_encoder_3", **_T5_XXL),
)

# umt5-xxl encoder: its 1.05 B-element embedding is the largest tensor and stays 16-bit under NF4
_UMT5 = ComponentSpec("text_encoder", "text_encoder", 5.6809, nf4_b=3.6239, fp32_b=1.0066, largest_b=1.0501)
_WAN21_VAE = ComponentSpec("vae", "vae", 0.1269, largest_b=0.0040)
_WAN22_VAE = ComponentSpec("vae", "vae", 0.7047, largest_b=0.0283)  # Wan2.2 high-compression VAE (16×16×4)
_QWEN3_4B = ComponentSpec("text_encoder", "text_encoder", 4.0225, nf4_b=3.6333, largest_b=0.3890)  # tied lm_head
_FLUX2_VAE = ComponentSpec("vae", "vae", 0.0840, nf4_b=0.0021, largest_b=0.0024)
_FLUX1_DIT = dict(role="transformer", largest_b=0.0566)
# SD3.5 Large (and Turbo): 8.0566 B parameters + the 0.0897 B pos_embed buffer
_SD35_LARGE_DIT = ComponentSpec("transformer", "transformer", 8.1463, nf4_b=8.0537, largest_b=0.0897)
_WAN_LICENCE_URL = "https://huggingface.co/Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
_TINY_PARTS = (
    ComponentSpec("transformer", "transformer", 0.0001),
    ComponentSpec("text_encoder", "text_encoder", 0.00005),
    ComponentSpec("vae", "vae", 0.00005),
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
            components=(ComponentSpec("transformer", params_b=11.9014, nf4_b=11.8983, **_FLUX1_DIT), _T5_FLUX, _CLIP_L,
                        _VAE),
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
            components=(ComponentSpec("transformer", params_b=11.8912, nf4_b=11.8881, **_FLUX1_DIT), _T5_FLUX, _CLIP_L,
                        _VAE),
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
            components=(_SD35_LARGE_DIT, *_SD3_TEXT, _VAE),
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
            components=(_SD35_LARGE_DIT, *_SD3_TEXT, _VAE),
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
            components=(ComponentSpec("transformer", "transformer", 2.4697, nf4_b=2.2418, largest_b=0.2265),
                        *_SD3_TEXT, _VAE),  # 2.2432 B parameters + the 0.2265 B pos_embed buffer
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
        ModelSpec(
            id="flux1-kontext-dev",
            family="flux",
            title="FLUX.1 Kontext [dev]",
            repo="black-forest-labs/FLUX.1-Kontext-dev",
            pipeline_class="FluxKontextPipeline",
            img2img_class="FluxKontextPipeline",
            default_steps=28,
            default_guidance=2.5,
            default_width=1024,
            default_height=1024,
            max_sequence_length=512,
            components=(ComponentSpec("transformer", params_b=11.9014, nf4_b=11.8983, **_FLUX1_DIT), _T5_FLUX, _CLIP_L,
                        _VAE),
            uses_guidance_embedding=True,
            # No pre-quantized Kontext repo confirmed on the Hub (2026-12): NF4 is made while loading.
            gated=True,
            licence=_FLUX_DEV_LICENCE,
            licence_url="https://huggingface.co/black-forest-labs/FLUX.1-Kontext-dev",
            description="Instruction edits of an image (\"make it night\", \"same person, new pose\").",
            task="edit",
            min_diffusers="0.34",
            published_url="https://huggingface.co/black-forest-labs/FLUX.1-Kontext-dev",
        ),
        ModelSpec(
            id="flux1-fill-dev",
            family="flux",
            title="FLUX.1 Fill [dev]",
            repo="black-forest-labs/FLUX.1-Fill-dev",
            pipeline_class="FluxFillPipeline",
            img2img_class="FluxFillPipeline",
            default_steps=50,
            default_guidance=30.0,
            default_width=1024,
            default_height=1024,
            max_sequence_length=512,
            components=(ComponentSpec("transformer", params_b=11.9024, nf4_b=11.8993, **_FLUX1_DIT), _T5_FLUX, _CLIP_L,
                        _VAE),  # in_channels 384: latents + masked-image latents + mask
            uses_guidance_embedding=True,
            gated=True,
            licence=_FLUX_DEV_LICENCE,
            licence_url="https://huggingface.co/black-forest-labs/FLUX.1-Fill-dev",
            description="Inpainting and outpainting: white in the mask is repainted from the prompt.",
            task="fill",
            min_diffusers="0.32",
            published_url="https://huggingface.co/black-forest-labs/FLUX.1-Fill-dev",
        ),
        ModelSpec(
            id="flux2-klein",
            family="flux2",
            title="FLUX.2 [klein] 4B",
            repo="black-forest-labs/FLUX.2-klein-4B",
            pipeline_class="Flux2KleinPipeline",
            img2img_class="Flux2KleinPipeline",
            default_steps=4,
            default_guidance=1.0,
            default_width=1024,
            default_height=1024,
            max_sequence_length=512,
            components=(ComponentSpec("transformer", "transformer", 3.8755, nf4_b=3.8755, largest_b=0.0849), _QWEN3_4B,
                        _FLUX2_VAE),
            licence="Apache-2.0",
            licence_url="https://huggingface.co/black-forest-labs/FLUX.2-klein-4B",
            description="FLUX.2's small step-distilled model: 4 steps, Apache-2.0, fits ~13 GB.",
            min_diffusers="0.37",
            published_url="https://huggingface.co/black-forest-labs/FLUX.2-klein-4B",
        ),
        ModelSpec(
            id="wan2.1-t2v-1.3b",
            family="wan",
            title="Wan 2.1 text-to-video 1.3B",
            repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            pipeline_class="WanPipeline",
            img2img_class="WanPipeline",
            default_steps=50,
            default_guidance=5.0,
            default_width=832,
            default_height=480,
            max_sequence_length=512,
            # 1.419 B, not 1.3: the name rounds; its fp32-kept norms/time embedder are diffusers' `_keep_in_fp32_modules`
            components=(ComponentSpec("transformer", "transformer", 1.4190, nf4_b=1.4149, fp32_b=0.0031,
                                      fp32_bf16_b=0.0031, largest_b=0.0142), _UMT5, _WAN21_VAE),
            min_size=256,
            max_size=1280,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            licence_url=_WAN_LICENCE_URL,
            description="Text-to-video at 480p; ≈8.2 GB VRAM published; the free-T4 video model.",
            task="text-to-video",
            min_diffusers="0.33",
            default_frames=81,
            max_frames=81,
            fps=16,
            sizes=((832, 480), (480, 832)),
            scheduler_label="UniPC (flow matching)",
            published_url="https://github.com/Wan-Video/Wan2.1",
        ),
        ModelSpec(
            id="wan2.2-ti2v-5b",
            family="wan",
            title="Wan 2.2 text/image-to-video 5B",
            repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            pipeline_class="WanPipeline",
            img2img_class="WanImageToVideoPipeline",
            default_steps=50,
            default_guidance=5.0,
            default_width=1280,
            default_height=704,
            max_sequence_length=512,
            components=(ComponentSpec("transformer", "transformer", 4.9998, nf4_b=4.9866, fp32_b=0.0110,
                                      fp32_bf16_b=0.0110, largest_b=0.0566), _UMT5, _WAN22_VAE),
            min_size=256,
            max_size=1280,
            size_multiple=32,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            licence_url="https://huggingface.co/Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            description="720p text- or image-to-video at 24 fps; with offload on a T4.",
            task="image-to-video",
            min_diffusers="0.35",
            default_frames=121,
            max_frames=121,
            fps=24,
            sizes=((1280, 704), (704, 1280), (832, 480), (480, 832)),
            scheduler_label="UniPC (flow matching)",
            published_url="https://github.com/Wan-Video/Wan2.2",
        ),
        ModelSpec(
            id="tiny-flux-kontext",
            family="flux",
            title="tiny-flux-kontext (random weights, offline)",
            repo=None,
            pipeline_class="FluxKontextPipeline",
            img2img_class="FluxKontextPipeline",
            default_steps=4,
            default_guidance=2.5,
            default_width=64,
            default_height=64,
            max_sequence_length=128,
            components=_TINY_PARTS,
            min_size=32,
            max_size=512,
            uses_guidance_embedding=True,
            licence="Apache-2.0",
            tiny=True,
            description="FLUX Kontext-shaped model built in code: edits run anywhere, outputs noise.",
            task="edit",
            min_diffusers="0.34",
        ),
        ModelSpec(
            id="tiny-flux-fill",
            family="flux",
            title="tiny-flux-fill (random weights, offline)",
            repo=None,
            pipeline_class="FluxFillPipeline",
            img2img_class="FluxFillPipeline",
            default_steps=4,
            default_guidance=30.0,
            default_width=64,
            default_height=64,
            max_sequence_length=128,
            components=_TINY_PARTS,
            min_size=32,
            max_size=512,
            uses_guidance_embedding=True,
            licence="Apache-2.0",
            tiny=True,
            description="FLUX Fill-shaped model built in code: inpainting runs anywhere, outputs noise.",
            task="fill",
        ),
        ModelSpec(
            id="tiny-flux2-klein",
            family="flux2",
            title="tiny-flux2-klein (random weights, offline)",
            repo=None,
            pipeline_class="Flux2KleinPipeline",
            img2img_class="Flux2KleinPipeline",
            default_steps=4,
            default_guidance=1.0,
            default_width=64,
            default_height=64,
            max_sequence_length=64,
            components=_TINY_PARTS,
            min_size=32,
            max_size=512,
            licence="Apache-2.0",
            tiny=True,
            description="FLUX.2 [klein]-shaped model built in code: runs anywhere, outputs noise.",
            min_diffusers="0.37",
        ),
        ModelSpec(
            id="tiny-wan",
            family="wan",
            title="tiny-wan (random weights, offline)",
            repo=None,
            pipeline_class="WanPipeline",
            img2img_class="WanPipeline",  # text-to-video only (tiny-wan-i2v animates images)
            default_steps=3,
            default_guidance=5.0,
            default_width=32,
            default_height=32,
            max_sequence_length=32,
            components=_TINY_PARTS,
            min_size=16,
            max_size=128,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            tiny=True,
            description="Wan-shaped video model built in code: an MP4 of noise, anywhere.",
            task="text-to-video",
            min_diffusers="0.33",
            default_frames=9,
            max_frames=33,
            fps=8,
            sizes=((32, 32), (48, 32), (32, 48)),
        ),
        ModelSpec(
            id="tiny-wan-i2v",
            family="wan",
            title="tiny-wan-i2v (random weights, offline)",
            repo=None,
            pipeline_class="WanImageToVideoPipeline",
            img2img_class="WanImageToVideoPipeline",
            default_steps=3,
            default_guidance=5.0,
            default_width=32,
            default_height=32,
            max_sequence_length=32,
            components=_TINY_PARTS,
            min_size=16,
            max_size=128,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            tiny=True,
            description="Wan 2.2 TI2V-shaped image-to-video model built in code: an MP4 of noise.",
            task="image-to-video",
            min_diffusers="0.35",
            default_frames=9,
            max_frames=33,
            fps=8,
            sizes=((32, 32), (48, 32), (32, 48)),
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
    "flux-kontext": "flux1-kontext-dev",
    "flux.1-kontext-dev": "flux1-kontext-dev",
    "black-forest-labs/flux.1-kontext-dev": "flux1-kontext-dev",
    "flux-fill": "flux1-fill-dev",
    "flux.1-fill-dev": "flux1-fill-dev",
    "black-forest-labs/flux.1-fill-dev": "flux1-fill-dev",
    "flux2-klein-4b": "flux2-klein",
    "flux.2-klein-4b": "flux2-klein",
    "black-forest-labs/flux.2-klein-4b": "flux2-klein",
    "wan2.1": "wan2.1-t2v-1.3b",
    "wan-ai/wan2.1-t2v-1.3b-diffusers": "wan2.1-t2v-1.3b",
    "wan2.2-ti2v": "wan2.2-ti2v-5b",
    "wan-ai/wan2.2-ti2v-5b-diffusers": "wan2.2-ti2v-5b",
}

TASKS = ("text-to-image", "edit", "fill", "text-to-video", "image-to-video")


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


def list_models(*, include_tiny: bool = True, task: str | None = "text-to-image") -> list[ModelSpec]:
    """The registry's models for `task` (default: the text-to-image ones `generate` runs; None: all).

    Edit models ("edit", "fill") are for `masuka_nb.edit`; video ones ("text-to-video",
    "image-to-video") for `masuka_nb.video.local` and `VideoGenerator`."""
    if task is not None and task not in TASKS:
        raise InvalidRequestError(f"`task` cannot be {task!r}.", argument="task", value=task,
                                  hint=f"Use one of: {', '.join(TASKS)}, or None for every model.")
    return [m for m in MODELS.values() if (include_tiny or not m.tiny) and (task is None or m.task == task)]
