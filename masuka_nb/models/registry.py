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

__all__ = ["MODELS", "TASKS", "ComponentSpec", "FlopsModel", "ModelSpec", "WeightFile", "get_model", "list_models"]


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
class WeightFile:
    """A published alternative weight file (a GGUF transformer) or repo (pre-quantized W4A4), with its real size
    as the Hub lists it, where that was read and when. `path` empty: `repo` is a whole diffusers repo."""

    repo: str
    path: str = ""
    bytes: int = 0
    source: str = ""  # public URL the size (and existence) was read from
    read: str = "2026-12"
    precision: str = ""  # W4A4: "int4" (Turing, Ampere, Ada) | "nvfp4" (Blackwell)
    note: str = ""

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.path}" if self.path else \
            f"https://huggingface.co/{self.repo}"


@dataclass(frozen=True)
class FlopsModel:
    """One transformer forward as a + b·T + c·T² TFLOP for T = image + text tokens, measured with
    torch.utils.flop_counter on the full-size model on the meta device (masuka_nb.models.flops; a test
    re-measures it). `latent_scale` pixels per image token a side; `text_tokens` what the pipeline feeds
    (padded to max_sequence_length or the prompt's own length); `image_tokens_factor` 2 when the input
    image's tokens ride along (edit models)."""

    a: float
    b: float
    c: float
    latent_scale: int = 16
    text_tokens: int = 512
    image_tokens_factor: int = 1

    def tflops(self, width: int, height: int) -> float:
        t = (width // self.latent_scale) * (height // self.latent_scale) * self.image_tokens_factor \
            + self.text_tokens
        return self.a + self.b * t + self.c * t * t


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
    # How the pipeline takes guidance: "guidance_scale" (FLUX, SD3, Z-Image) or "true_cfg_scale" (Qwen-Image,
    # whose guidance is real CFG and needs a negative prompt: `negative_default` is the model card's " ").
    min_steps: int = 1  # Qwen-Image's scheduler stretches its sigmas to shift_terminal: one step divides by zero
    guidance_arg: str = "guidance_scale"
    negative_default: str | None = None
    gguf: dict[str, WeightFile] = field(default_factory=dict)  # "gguf-q4" / "gguf-q8" -> a single-file transformer
    w4a4: tuple[WeightFile, ...] = ()  # Nunchaku Lite (SVDQuant W4A4) diffusers repos, by precision
    flops: FlopsModel | None = None
    sources: tuple[tuple[str, str], ...] = ()  # (fact, public URL · date read)

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

# Z-Image Turbo: 30-layer S3-DiT (6.15 B) + Qwen3-4B (as Qwen3Model) + FLUX.1's VAE
_ZIMAGE_DIT = ComponentSpec("transformer", "transformer", 6.1549, nf4_b=6.1539, largest_b=0.0393)
# Qwen-Image / Qwen-Image-Edit: 60-layer MMDiT (20.43 B) + Qwen2.5-VL-7B (8.29 B with its vision tower; the lm_head
# is skipped by NF4 and its 0.545 B embedding stays 16-bit) + the Wan-2.1-style 3D VAE
_QWEN_DIT = ComponentSpec("transformer", "transformer", 20.4304, nf4_b=20.4248, largest_b=0.0566)
_QWEN25_VL = ComponentSpec("text_encoder", "text_encoder", 8.2922, nf4_b=7.1998, largest_b=0.5450)
_QWEN_VAE = ComponentSpec("vae", "vae", 0.1269, largest_b=0.0040)
_ZIMAGE_URL = "https://huggingface.co/Tongyi-MAI/Z-Image-Turbo"
_QWEN_URL = "https://huggingface.co/Qwen/Qwen-Image"
_QWEN_EDIT_URL = "https://huggingface.co/Qwen/Qwen-Image-Edit"
_QWEN_SIZES = ((1328, 1328), (1664, 928), (928, 1664), (1472, 1104), (1104, 1472), (1584, 1056), (1056, 1584))
_QWEN_SOURCES = (
    ("20 B MMDiT, Qwen2.5-VL text encoder, Apache-2.0; 50 steps, true_cfg_scale 4.0, negative_prompt \" \", "
     "1328×1328 (1:1) and the aspect sizes listed", f"{_QWEN_URL} · 2026-12"),
    ("QwenImagePipeline since diffusers 0.35", "https://github.com/huggingface/diffusers/releases/tag/v0.35.0 · 2026-12"),
    ("GGUF Q4_K_M 13.07 GB, BF16 40.87 GB (HF tree API); Q8_0 ≈ 21.8 GB",
     "https://huggingface.co/api/models/city96/Qwen-Image-gguf/tree/main · 2026-12"),
)
_W4A4_NOTE = ("named by the lite-infer Nunchaku Lite conversion scripts and the diffusers Nunchaku blog "
              "(https://huggingface.co/blog/nunchaku-diffusers, 2026-07-23); its listing could not be read from here")

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
            flops=FlopsModel(0.01904, 1.291085e-02, 7.004160e-07, text_tokens=512),
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
            flops=FlopsModel(0.01278, 1.291085e-02, 7.004160e-07, text_tokens=256),
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
            flops=FlopsModel(0.39397, 5.451688e-03, 3.696640e-07, text_tokens=256),
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
            flops=FlopsModel(0.39397, 5.451688e-03, 3.696640e-07, text_tokens=256),
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
            flops=FlopsModel(0.03943, 1.586528e-03, 2.273280e-07, text_tokens=256),
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
            flops=FlopsModel(0.01904, 1.291085e-02, 7.004160e-07, text_tokens=512, image_tokens_factor=2),
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
            flops=FlopsModel(0.01803, 1.291282e-02, 7.004160e-07, text_tokens=512),
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
            flops=FlopsModel(0.02370, 6.135742e-03, 3.072000e-07, text_tokens=512),
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
            id="zimage-turbo",
            family="zimage",
            title="Z-Image Turbo",
            repo="Tongyi-MAI/Z-Image-Turbo",
            pipeline_class="ZImagePipeline",
            img2img_class="ZImageImg2ImgPipeline",
            # The card's 9 steps are 8 transformer forwards on diffusers ≤ 0.41 (the last sigma was 0); 0.42 takes
            # num_inference_steps=8 for the same 8 (Tongyi-MAI/Z-Image-Turbo discussion #158). 9 is right on both.
            default_steps=9,
            default_guidance=0.0,
            default_width=1024,
            default_height=1024,
            max_sequence_length=512,
            components=(_ZIMAGE_DIT, _QWEN3_4B, _VAE),
            licence="Apache-2.0",
            licence_url=_ZIMAGE_URL,
            description="Tongyi's 6B distilled model: 8 steps, no CFG, bilingual text; \"fits within 16 GB VRAM\".",
            min_diffusers="0.36",
            published_url=_ZIMAGE_URL,
            gguf={"gguf-q4": WeightFile("jayn7/Z-Image-Turbo-GGUF", "z_image_turbo-Q4_K_M.gguf", 4_980_000_000,
                                        "https://huggingface.co/jayn7/Z-Image-Turbo-GGUF/tree/main"),
                  "gguf-q8": WeightFile("vantagewithai/Z-Image-Turbo-GGUF", "z_image_turbo-Q8_0.gguf", 7_220_000_000,
                                        "https://huggingface.co/vantagewithai/Z-Image-Turbo-GGUF/blob/main/"
                                        "z_image_turbo-Q8_0.gguf")},
            w4a4=(WeightFile("lite-infer/z-image-turbo-nunchaku-lite-int4_r32-bnb4-text-encoder", precision="int4",
                             source="https://huggingface.co/lite-infer/"
                                    "z-image-turbo-nunchaku-lite-int4_r32-bnb4-text-encoder", note=_W4A4_NOTE),),
            flops=FlopsModel(0.00266, 1.131971e-02, 4.915200e-07, text_tokens=96),
            sources=(
                ("6 B, Apache-2.0, 8 NFEs, \"fits comfortably within 16G VRAM consumer devices\"", f"{_ZIMAGE_URL} · 2026-12"),
                ("num_inference_steps=9 (8 DiT forwards), guidance_scale=0.0; ZImagePipeline since diffusers 0.36",
                 "https://github.com/huggingface/diffusers/pull/12725 · 2026-12"),
                ("transformer config (axes_lens 1536/512/512), text_encoder Qwen3Model, VAE = FLUX.1's",
                 f"{_ZIMAGE_URL}/blob/main/model_index.json · 2026-12"),
                ("GGUF Q4_K_M 4.98 GB", "https://huggingface.co/jayn7/Z-Image-Turbo-GGUF/tree/main · 2026-12"),
                ("GGUF Q8_0 7.22 GB", "https://huggingface.co/vantagewithai/Z-Image-Turbo-GGUF · 2026-12"),
            ),
        ),
        ModelSpec(
            id="qwen-image",
            family="qwenimage",
            title="Qwen-Image",
            repo="Qwen/Qwen-Image",
            pipeline_class="QwenImagePipeline",
            img2img_class="QwenImageImg2ImgPipeline",
            default_steps=50,
            default_guidance=4.0,
            default_width=1328,
            default_height=1328,
            max_sequence_length=512,
            components=(_QWEN_DIT, _QWEN25_VL, _QWEN_VAE),
            max_size=1664,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            licence_url=_QWEN_URL,
            description="Alibaba's 20B MMDiT: the best open text rendering (English and Chinese), real CFG.",
            min_diffusers="0.35",
            sizes=_QWEN_SIZES,
            published_url=_QWEN_URL,
            min_steps=2,
            guidance_arg="true_cfg_scale",
            negative_default=" ",
            gguf={"gguf-q4": WeightFile("city96/Qwen-Image-gguf", "qwen-image-Q4_K_M.gguf", 13_070_000_000,
                                        "https://huggingface.co/api/models/city96/Qwen-Image-gguf/tree/main"),
                  "gguf-q8": WeightFile("city96/Qwen-Image-gguf", "qwen-image-Q8_0.gguf", 21_800_000_000,
                                        "https://huggingface.co/city96/Qwen-Image-gguf",
                                        note="size as third-party catalogs list it (≈21.8 GB)")},
            w4a4=(WeightFile("lite-infer/Qwen-Image-nunchaku-lite-nvfp4_r32-bnb4-text-encoder", precision="nvfp4",
                             source="https://huggingface.co/lite-infer/Qwen-Image-nunchaku-lite-nvfp4_r32-bnb4-text-encoder",
                             note=_W4A4_NOTE),),
            flops=FlopsModel(0.01569, 1.359033e-02, 7.372800e-07, text_tokens=96),
            sources=_QWEN_SOURCES,
        ),
        ModelSpec(
            id="qwen-image-edit",
            family="qwenimage",
            title="Qwen-Image-Edit",
            repo="Qwen/Qwen-Image-Edit",
            pipeline_class="QwenImageEditPipeline",
            img2img_class="QwenImageEditPipeline",
            default_steps=50,
            default_guidance=4.0,
            default_width=1024,
            default_height=1024,
            max_sequence_length=512,
            components=(_QWEN_DIT, _QWEN25_VL, _QWEN_VAE),
            max_size=1664,
            licence="Apache-2.0",
            licence_url=_QWEN_EDIT_URL,
            description="Qwen-Image's editing model: instructions, text edits, the input image read by Qwen2.5-VL.",
            task="edit",
            min_diffusers="0.35",
            published_url=_QWEN_EDIT_URL,
            min_steps=2,
            guidance_arg="true_cfg_scale",
            negative_default=" ",
            gguf={"gguf-q4": WeightFile("calcuis/qwen-image-edit-gguf", "qwen-image-edit-q4_k_s.gguf", 11_600_000_000,
                                        "https://huggingface.co/calcuis/qwen-image-edit-gguf/blob/main/"
                                        "qwen-image-edit-q4_k_s.gguf"),
                  "gguf-q8": WeightFile("calcuis/qwen-image-edit-gguf", "qwen-image-edit-q8_0.gguf", 21_800_000_000,
                                        "https://huggingface.co/calcuis/qwen-image-edit-gguf/blob/main/"
                                        "qwen-image-edit-q8_0.gguf")},
            flops=FlopsModel(0.01569, 1.359033e-02, 7.372800e-07, text_tokens=96, image_tokens_factor=2),
            sources=(
                ("Apache-2.0; true_cfg_scale 4.0, negative_prompt \" \", 50 steps; the input image is resized to "
                 "≈1 MP and read by both the VAE and Qwen2.5-VL", f"{_QWEN_EDIT_URL} · 2026-12"),
                ("QwenImageEditPipeline since diffusers 0.35",
                 "https://github.com/huggingface/diffusers/releases/tag/v0.35.0 · 2026-12"),
            ),
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
        ModelSpec(
            id="tiny-zimage",
            family="zimage",
            title="tiny-zimage (random weights, offline)",
            repo=None,
            pipeline_class="ZImagePipeline",
            img2img_class="ZImageImg2ImgPipeline",
            default_steps=4,
            default_guidance=0.0,
            default_width=64,
            default_height=64,
            max_sequence_length=64,
            components=_TINY_PARTS,
            min_size=32,
            max_size=512,
            licence="Apache-2.0",
            tiny=True,
            description="Z-Image-shaped model built in code: runs anywhere, outputs noise.",
            min_diffusers="0.36",
        ),
        ModelSpec(
            id="tiny-qwenimage",
            family="qwenimage",
            title="tiny-qwenimage (random weights, offline)",
            repo=None,
            pipeline_class="QwenImagePipeline",
            img2img_class="QwenImageImg2ImgPipeline",
            default_steps=4,
            default_guidance=4.0,
            default_width=64,
            default_height=64,
            max_sequence_length=64,
            components=_TINY_PARTS,
            min_size=32,
            max_size=512,
            supports_negative_prompt=True,
            licence="Apache-2.0",
            tiny=True,
            description="Qwen-Image-shaped model built in code: runs anywhere, outputs noise.",
            min_diffusers="0.35",
            min_steps=2,
            guidance_arg="true_cfg_scale",
            negative_default=" ",
        ),
        ModelSpec(
            id="tiny-qwenimage-edit",
            family="qwenimage",
            title="tiny-qwenimage-edit (random weights, offline)",
            repo=None,
            pipeline_class="QwenImageEditPipeline",
            img2img_class="QwenImageEditPipeline",
            default_steps=4,
            default_guidance=4.0,
            default_width=64,
            default_height=64,
            max_sequence_length=64,
            components=_TINY_PARTS,
            min_size=32,
            max_size=512,
            licence="Apache-2.0",
            tiny=True,
            description="Qwen-Image-Edit-shaped model built in code: edits run anywhere, outputs noise.",
            task="edit",
            min_diffusers="0.35",
            min_steps=2,
            guidance_arg="true_cfg_scale",
            negative_default=" ",
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
    "z-image-turbo": "zimage-turbo",
    "z-image": "zimage-turbo",
    "zimage": "zimage-turbo",
    "tongyi-mai/z-image-turbo": "zimage-turbo",
    "qwen/qwen-image": "qwen-image",
    "qwenimage": "qwen-image",
    "qwen/qwen-image-edit": "qwen-image-edit",
    "qwenimage-edit": "qwen-image-edit",
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
