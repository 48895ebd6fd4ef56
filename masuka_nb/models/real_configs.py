"""The real models' component configs, as data, and a builder that makes any of them at any depth.

No model hub is reachable in tests, but each registry model's components are public configs. This room holds
them (each with the public URL it was read from) and builds the diffusers / transformers class from them:

    build_component(model_id, component, *, depth=None, device="meta", dtype=torch.bfloat16) -> torch.nn.Module

- ``depth=None``: full size. On ``device="meta"`` that costs nothing and gives exact parameter counts and
  tensor shapes (the memory planner's tests and ``benchmarks/bench_planner_real.py`` use it).
- ``depth=n``: real widths, only the repeated layers cut to at most ``n`` (transformer blocks, text-encoder
  layers, VAE resnets per level; see ``DEPTH_KEYS``). Tensors keep their real shapes, so a state dict saved
  from it loads wherever the real one does. That is how real-layout twins are made.
- ``device="cuda"`` materialises random weights directly on the GPU in ``dtype`` (no fp32 detour).

The API is small on purpose and stays stable (other rooms build on it): ``REAL_CONFIGS``, ``RealConfig``,
``real_config``, ``real_components``, ``build_component``, ``tensor_count``, and ``loaded_weights`` (what a
component weighs once loaded in a dtype, NF4 or not, by the loaders' own rules: the memory planner's tests
and benchmark check the planner against it). Everything else is private.

Limits a caller must know: FLUX.2 [klein]'s pipeline reads the Qwen3 hidden states 9, 18 and 27 (its
``text_encoder_out_layers``), so a Qwen3 cut below 28 layers needs those indices passed lower. SD3.5
Medium's ``dual_attention_layers`` are cut with the depth. Configs were read in December 2026 from the repos'
``config.json`` files and diffusers' conversion scripts (the URLs below); re-check them when a hub is
reachable.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEPTH_KEYS", "REAL_CONFIGS", "LoadedWeights", "RealConfig", "build_component", "loaded_weights",
           "real_components", "real_config", "tensor_count"]

_HF = "https://huggingface.co"


@dataclass(frozen=True)
class RealConfig:
    """One component of one real model: its class, the config it is built from, and where that was read."""

    model: str  # registry id
    component: str  # the pipeline folder (transformer, text_encoder_2, vae, ...)
    library: str  # "diffusers" | "transformers"
    class_name: str  # e.g. "FluxTransformer2DModel", "T5EncoderModel"
    config: Mapping[str, Any]
    source: str  # public URL of the config.json (or the conversion script) it was read from
    config_class: str = ""  # transformers only: the config class (T5Config, ...)
    notes: str = ""

    def with_depth(self, depth: int | None) -> dict[str, Any]:
        """The config kwargs with the repeated layers cut to at most `depth` (None: as published)."""
        cfg = copy.deepcopy(dict(self.config))
        if depth is None:
            return cfg
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int or None, not {depth!r}")
        for key in DEPTH_KEYS[self.class_name]:
            *path, leaf = key.split(".")
            holder = cfg
            for part in path:
                holder = holder.get(part, {})
            if leaf in holder:
                holder[leaf] = min(int(holder[leaf]), depth)
        vision = cfg.get("vision_config")
        if isinstance(vision, dict) and "fullatt_block_indexes" in vision:  # Qwen2.5-VL: only blocks that exist
            vision["fullatt_block_indexes"] = [i for i in vision["fullatt_block_indexes"] if i < vision["depth"]]
        if "dual_attention_layers" in cfg:  # SD3.5 Medium: only layers that still exist
            cfg["dual_attention_layers"] = tuple(i for i in cfg["dual_attention_layers"] if i < cfg["num_layers"])
        return cfg


# Which config keys count repeated layers (the depth cut touches only these; every width stays real).
DEPTH_KEYS: dict[str, tuple[str, ...]] = {
    "FluxTransformer2DModel": ("num_layers", "num_single_layers"),
    "Flux2Transformer2DModel": ("num_layers", "num_single_layers"),
    "SD3Transformer2DModel": ("num_layers",),
    "WanTransformer3DModel": ("num_layers",),
    "T5EncoderModel": ("num_layers",),
    "UMT5EncoderModel": ("num_layers",),
    "CLIPTextModel": ("num_hidden_layers",),
    "CLIPTextModelWithProjection": ("num_hidden_layers",),
    "Qwen3ForCausalLM": ("num_hidden_layers",),
    "Qwen3Model": ("num_hidden_layers",),
    "ZImageTransformer2DModel": ("n_layers", "n_refiner_layers"),
    "QwenImageTransformer2DModel": ("num_layers",),
    # nested configs: the language model's layers and the vision tower's blocks
    "Qwen2_5_VLForConditionalGeneration": ("text_config.num_hidden_layers", "vision_config.depth"),
    "AutoencoderKLQwenImage": ("num_res_blocks",),
    "AutoencoderKL": ("layers_per_block",),
    "AutoencoderKLFlux2": ("layers_per_block",),
    "AutoencoderKLWan": ("num_res_blocks",),
}

# ---- the components (values that differ from nothing: every config is spelled out in full) ----

_FLUX1 = dict(patch_size=1, in_channels=64, out_channels=None, num_layers=19, num_single_layers=38,
              attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
              guidance_embeds=True, axes_dims_rope=(16, 56, 56))
_FLUX1_VAE = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  layers_per_block=2, act_fn="silu", norm_num_groups=32, sample_size=1024,
                  scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
                  mid_block_add_attention=True, force_upcast=True)
_SD3_VAE = {**_FLUX1_VAE, "scaling_factor": 1.5305, "shift_factor": 0.0609}
_CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
               layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1)
_CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
               num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280,
               layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1)
_T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_decoder_layers=24,
               num_heads=64, relative_attention_num_buckets=32, relative_attention_max_distance=128,
               feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True,
               layer_norm_epsilon=1e-6, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
               decoder_start_token_id=0)
_UMT5_XXL = {**_T5_XXL, "vocab_size": 256384, "scalable_attention": True}
_SD35_LARGE = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64,
                   num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                   pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192, dual_attention_layers=(),
                   qk_norm="rms_norm")
_SD35_MEDIUM = {**_SD35_LARGE, "num_layers": 24, "num_attention_heads": 24, "caption_projection_dim": 1536,
                "pos_embed_max_size": 384, "dual_attention_layers": tuple(range(13))}
_KLEIN = dict(patch_size=1, in_channels=128, out_channels=None, num_layers=5, num_single_layers=20,
              attention_head_dim=128, num_attention_heads=24, joint_attention_dim=7680,
              timestep_guidance_channels=256, mlp_ratio=3.0, axes_dims_rope=(32, 32, 32, 32), rope_theta=2000,
              eps=1e-6, guidance_embeds=False)
_QWEN3_4B = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
                 max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, attention_bias=False,
                 use_sliding_window=False, max_window_layers=36, bos_token_id=151643, eos_token_id=151645)
_FLUX2_VAE = dict(in_channels=3, out_channels=3, latent_channels=32, block_out_channels=(128, 256, 512, 512),
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  layers_per_block=2, act_fn="silu", norm_num_groups=32, sample_size=1024, use_quant_conv=True,
                  use_post_quant_conv=True, mid_block_add_attention=True, batch_norm_eps=1e-4,
                  batch_norm_momentum=0.1, patch_size=(2, 2))
_WAN21 = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
              out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
              rope_max_seq_len=1024)
_WAN22 = {**_WAN21, "num_attention_heads": 24, "in_channels": 48, "out_channels": 48, "ffn_dim": 14336}
_WAN21_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                  temperal_downsample=[False, True, True], dropout=0.0,
                  latents_mean=[-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
                  latents_std=[2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916])
_WAN22_VAE = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                  attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True,
                  in_channels=12, out_channels=12, patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16,
                  latents_mean=[-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
                                -0.1382, 0.0542, 0.2813, 0.0891, 0.157, -0.0098, 0.0375, -0.1825,
                                -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
                                -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.123,
                                -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.052, 0.3748,
                                0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667],
                  latents_std=[0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.499, 0.4818, 0.5013,
                               0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
                               0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
                               0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
                               0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
                               0.3971, 1.06, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744])

# Z-Image Turbo (https://huggingface.co/Tongyi-MAI/Z-Image-Turbo, read 2026-12): diffusers' class defaults with
# the published rope lengths; its text encoder is Qwen3-4B loaded as Qwen3Model (model_index.json), its VAE FLUX.1's.
_ZIMAGE = dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30, n_refiner_layers=2,
               n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560, rope_theta=256.0,
               t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512])
# Qwen-Image (https://huggingface.co/Qwen/Qwen-Image, read 2026-12): a 60-layer MMDiT, 24 heads × 128, reading
# Qwen2.5-VL-7B's 3584-wide hidden states. Qwen-Image-Edit's transformer has the same config.
_QWEN_IMAGE = dict(patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
                   num_attention_heads=24, joint_attention_dim=3584, guidance_embeds=False, axes_dims_rope=(16, 56, 56))
# Qwen2.5-VL-7B-Instruct, the Qwen-Image text encoder (https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/
# config.json, the same as Qwen-Image's text_encoder/config.json): 28 layers × 3584, GQA 28/4, untied lm_head, and a
# 32-block 1280-wide vision tower (the edit pipeline feeds it the input image).
_QWEN25_VL_7B = dict(
    text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=128000,
                     rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False, sliding_window=32768,
                     max_window_layers=28, bos_token_id=151643, eos_token_id=151645,
                     rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}),
    vision_config=dict(depth=32, hidden_act="silu", hidden_size=1280, intermediate_size=3420, num_heads=16,
                       in_chans=3, out_hidden_size=3584, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                       window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2),
    image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
    tie_word_embeddings=False)
# Qwen-Image's VAE (AutoencoderKLQwenImage: Wan 2.1's causal 3D VAE, 16 latent channels), class defaults
_QWEN_VAE = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0,
                 latents_mean=_WAN21_VAE["latents_mean"], latents_std=_WAN21_VAE["latents_std"])


def _src(repo: str, folder: str) -> str:
    return f"{_HF}/{repo}/blob/main/{folder}/config.json"


def _flux1(model: str, repo: str, transformer: dict[str, Any], note: str = "") -> list[RealConfig]:
    return [
        RealConfig(model, "transformer", "diffusers", "FluxTransformer2DModel", transformer,
                   _src(repo, "transformer"), notes=note),
        RealConfig(model, "text_encoder", "transformers", "CLIPTextModel", _CLIP_L, _src(repo, "text_encoder"),
                   "CLIPTextConfig", "CLIP ViT-L/14 text tower"),
        RealConfig(model, "text_encoder_2", "transformers", "T5EncoderModel", _T5_XXL, _src(repo, "text_encoder_2"),
                   "T5Config", "T5 v1.1 XXL encoder"),
        RealConfig(model, "vae", "diffusers", "AutoencoderKL", _FLUX1_VAE, _src(repo, "vae")),
    ]


def _sd35(model: str, repo: str, transformer: dict[str, Any]) -> list[RealConfig]:
    return [
        RealConfig(model, "transformer", "diffusers", "SD3Transformer2DModel", transformer, _src(repo, "transformer"),
                   notes="MMDiT(-X); its pos_embed is a persistent buffer saved with the weights"),
        RealConfig(model, "text_encoder", "transformers", "CLIPTextModelWithProjection", _CLIP_L,
                   _src(repo, "text_encoder"), "CLIPTextConfig", "CLIP ViT-L/14 text tower with projection"),
        RealConfig(model, "text_encoder_2", "transformers", "CLIPTextModelWithProjection", _CLIP_G,
                   _src(repo, "text_encoder_2"), "CLIPTextConfig", "OpenCLIP bigG/14 text tower with projection"),
        RealConfig(model, "text_encoder_3", "transformers", "T5EncoderModel", _T5_XXL, _src(repo, "text_encoder_3"),
                   "T5Config", "T5 v1.1 XXL encoder"),
        RealConfig(model, "vae", "diffusers", "AutoencoderKL", _SD3_VAE, _src(repo, "vae")),
    ]


def _wan(model: str, repo: str, transformer: dict[str, Any], vae: dict[str, Any]) -> list[RealConfig]:
    return [
        RealConfig(model, "transformer", "diffusers", "WanTransformer3DModel", transformer, _src(repo, "transformer")),
        RealConfig(model, "text_encoder", "transformers", "UMT5EncoderModel", _UMT5_XXL, _src(repo, "text_encoder"),
                   "UMT5Config", "umt5-xxl encoder (google/umt5-xxl)"),
        RealConfig(model, "vae", "diffusers", "AutoencoderKLWan", vae, _src(repo, "vae")),
    ]


_FLUX_DEV = "black-forest-labs/FLUX.1-dev"
_ALL: list[RealConfig] = [
    *_flux1("flux1-dev", _FLUX_DEV, _FLUX1),
    *_flux1("flux1-schnell", "black-forest-labs/FLUX.1-schnell", {**_FLUX1, "guidance_embeds": False},
            "no guidance embedder (timestep-distilled)"),
    *_flux1("flux1-kontext-dev", "black-forest-labs/FLUX.1-Kontext-dev", _FLUX1),
    *_flux1("flux1-fill-dev", "black-forest-labs/FLUX.1-Fill-dev", {**_FLUX1, "in_channels": 384, "out_channels": 64},
            "reads packed latents (64) + masked-image latents (64) + the packed 8×8 mask (256)"),
    *_sd35("sd35-large", "stabilityai/stable-diffusion-3.5-large", _SD35_LARGE),
    *_sd35("sd35-large-turbo", "stabilityai/stable-diffusion-3.5-large-turbo", _SD35_LARGE),
    *_sd35("sd35-medium", "stabilityai/stable-diffusion-3.5-medium", _SD35_MEDIUM),
    RealConfig("flux2-klein", "transformer", "diffusers", "Flux2Transformer2DModel", _KLEIN,
               _src("black-forest-labs/FLUX.2-klein-4B", "transformer"),
               notes="also https://github.com/huggingface/diffusers/blob/main/scripts/convert_flux2_to_diffusers.py"),
    RealConfig("flux2-klein", "text_encoder", "transformers", "Qwen3ForCausalLM", _QWEN3_4B,
               _src("black-forest-labs/FLUX.2-klein-4B", "text_encoder"), "Qwen3Config",
               "Qwen3-4B (https://huggingface.co/Qwen/Qwen3-4B/blob/main/config.json); tied lm_head"),
    RealConfig("flux2-klein", "vae", "diffusers", "AutoencoderKLFlux2", _FLUX2_VAE,
               _src("black-forest-labs/FLUX.2-klein-4B", "vae")),
    *_wan("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", _WAN21, _WAN21_VAE),
    RealConfig("zimage-turbo", "transformer", "diffusers", "ZImageTransformer2DModel", _ZIMAGE,
               _src("Tongyi-MAI/Z-Image-Turbo", "transformer"),
               notes="S3-DiT: 30 single-stream layers + 2 noise and 2 context refiners, 3840 wide"),
    RealConfig("zimage-turbo", "text_encoder", "transformers", "Qwen3Model", _QWEN3_4B,
               _src("Tongyi-MAI/Z-Image-Turbo", "text_encoder"), "Qwen3Config",
               "Qwen3-4B without its tied lm_head (model_index.json names Qwen3Model); reads hidden_states[-2]"),
    RealConfig("zimage-turbo", "vae", "diffusers", "AutoencoderKL", _FLUX1_VAE, _src("Tongyi-MAI/Z-Image-Turbo", "vae"),
               notes="FLUX.1's 16-channel VAE"),
    *[rc for model, repo in (("qwen-image", "Qwen/Qwen-Image"), ("qwen-image-edit", "Qwen/Qwen-Image-Edit"))
      for rc in (
          RealConfig(model, "transformer", "diffusers", "QwenImageTransformer2DModel", _QWEN_IMAGE,
                     _src(repo, "transformer"), notes="60-layer MMDiT, 20.4 B parameters"),
          RealConfig(model, "text_encoder", "transformers", "Qwen2_5_VLForConditionalGeneration", _QWEN25_VL_7B,
                     _src(repo, "text_encoder"), "Qwen2_5_VLConfig",
                     "Qwen2.5-VL-7B-Instruct: 152,064 × 3584 embedding and an untied lm_head (1.09 GB each in bf16)"),
          RealConfig(model, "vae", "diffusers", "AutoencoderKLQwenImage", _QWEN_VAE, _src(repo, "vae")))],
    *_wan("wan2.2-ti2v-5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", _WAN22, _WAN22_VAE),
]

REAL_CONFIGS: dict[tuple[str, str], RealConfig] = {(c.model, c.component): c for c in _ALL}


def real_components(model_id: str) -> tuple[str, ...]:
    """The component folders of `model_id` that have a real config here (empty for tiny models)."""
    return tuple(c.component for c in _ALL if c.model == model_id)


def real_config(model_id: str, component: str) -> RealConfig:
    """The real config of one component; KeyError (naming what exists) when there is none."""
    try:
        return REAL_CONFIGS[(model_id, component)]
    except KeyError:
        known = real_components(model_id)
        raise KeyError(f"no real config for {model_id}/{component}; "
                       + (f"{model_id} has: {', '.join(known)}" if known else f"{model_id} has none")) from None


@contextlib.contextmanager
def _default_dtype(dtype: Any) -> Iterator[None]:
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def build_component(model_id: str, component: str, *, depth: int | None = None, device: Any = "meta",
                    dtype: Any = None, config: dict[str, Any] | None = None) -> Any:
    """`model_id`'s `component` (a diffusers ModelMixin or a transformers PreTrainedModel) built from its real
    config, cut to `depth` repeated layers (None: full size), with random weights created directly on `device`
    in `dtype` (default torch.bfloat16). In eval mode. Nothing is downloaded. `config`: the config kwargs to
    build from instead (a twin cut another way than in depth), for the same classes."""
    import torch

    rc = real_config(model_id, component)
    dtype = torch.bfloat16 if dtype is None else dtype
    cfg = rc.with_depth(depth) if config is None else config
    with _default_dtype(dtype), torch.device(device):
        if rc.library == "diffusers":
            import diffusers

            model = getattr(diffusers, rc.class_name)(**cfg)
        else:
            import transformers

            config = getattr(transformers, rc.config_class)(**cfg)
            model = getattr(transformers, rc.class_name)(config)
    return model.eval()


@dataclass(frozen=True)
class TensorCount:
    """What a component stores: parameters and the persistent buffers saved beside them."""

    parameters: int
    buffers: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.buffers


def tensor_count(model: Any) -> TensorCount:
    """Parameters plus persistent buffers of a built model (tied weights counted once)."""
    seen: set[int] = set()
    params = 0
    for p in model.parameters():  # parameters() already yields a tied tensor once
        if id(p) not in seen:
            seen.add(id(p))
            params += p.numel()
    persistent = 0
    for name, buf in model.named_buffers():
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        if leaf not in getattr(module, "_non_persistent_buffers_set", set()):
            persistent += buf.numel()
    return TensorCount(params, persistent)


# ---- what a component weighs once loaded, by the libraries' own rules ----

NF4_BLOCKSIZE = 64  # bitsandbytes' 4-bit blocksize: one fp32 absmax per 64 weights (no double quantization)


@dataclass(frozen=True)
class LoadedWeights:
    """What a component holds once loaded in `dtype` (NF4 or not): parameter counts by storage, and bytes."""

    dtype: str
    nf4: bool
    nf4_params: int  # Linear weights bitsandbytes stores in 4 bit
    fp32_params: int  # kept in fp32 by the library's keep-in-fp32 rule
    other_params: int  # everything else, in `dtype` (embeddings, norms, biases, unquantized Linears, buffers)
    largest_tensor: int  # elements of the biggest single tensor (what one load step casts at once)
    bytes: int

    @property
    def gib(self) -> float:
        return self.bytes / 1024**3


def loaded_weights(model_id: str, component: str, *, dtype: str = "bfloat16", nf4: bool = False) -> LoadedWeights:
    """Bytes of `component` loaded in `dtype`, quantized to NF4 or not, from the full-size model on the meta
    device and the rules the loaders themselves apply (never from the memory planner's numbers):

    - transformers: `HfQuantizer.get_modules_to_not_convert` (tied and output heads, `_keep_in_fp32_modules`),
      `should_convert_module` and bitsandbytes' replacement of exact `nn.Linear` modules; `_get_dtype_plan`
      (keep-in-fp32 modules go to fp32 only under fp16).
    - diffusers: the class's `_keep_in_fp32_modules` are neither quantized nor cast (fp32 under any 16-bit
      dtype), as in `diffusers.quantizers.bitsandbytes` and `model_loading_utils.load_model_dict_into_meta`.
    - an NF4 weight of n elements costs ⌈n/2⌉ bytes plus one fp32 absmax per 64 elements and bitsandbytes'
      16-entry fp32 code table per tensor.
    """
    import math

    import torch

    rc = real_config(model_id, component)
    torch_dtype = getattr(torch, dtype)
    model = _meta_model(model_id, component)
    quantized, fp32 = (_transformers_rules if rc.library == "transformers" else _diffusers_rules)(model, torch_dtype)
    nf4_params = fp32_params = other = largest = 0
    nbytes = 0
    per = 4 if torch_dtype == torch.float32 else 2
    for name, tensor in _named_tensors(model):
        n = tensor.numel()
        largest = max(largest, n)
        module, _, leaf = name.rpartition(".")
        if nf4 and leaf == "weight" and module in quantized:
            nf4_params += n
            nbytes += math.ceil(n / 2) + 4 * math.ceil(n / NF4_BLOCKSIZE) + 16 * 4
        elif torch_dtype != torch.float32 and fp32(name):
            fp32_params += n
            nbytes += 4 * n
        else:
            other += n
            nbytes += per * n
    return LoadedWeights(dtype, nf4, nf4_params, fp32_params, other, largest, nbytes)


@functools.lru_cache(maxsize=64)
def _meta_model(model_id: str, component: str) -> Any:
    """The full-size model on the meta device (no storage: cheap to keep), built once per component."""
    return build_component(model_id, component)


def _named_tensors(model: Any) -> Iterator[tuple[str, Any]]:
    """Parameters (tied ones once) and persistent buffers: what a checkpoint stores."""
    yield from model.named_parameters()
    for name, buf in model.named_buffers():
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        if leaf not in getattr(module, "_non_persistent_buffers_set", set()):
            yield name, buf


def _transformers_rules(model: Any, torch_dtype: Any) -> tuple[set[str], Any]:
    import torch
    from transformers.core_model_loading import build_glob_alternation
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    keep = sorted(model._keep_in_fp32_modules or [])
    skip = HfQuantizer.get_modules_to_not_convert(model, None, keep)
    quantized = {name for name, module in model.named_modules()
                 if type(module) is torch.nn.Linear and should_convert_module(name, skip)}
    plan = model._get_dtype_plan(torch_dtype)
    pattern = build_glob_alternation(list(plan))[0] if plan else None
    return quantized, (lambda name: bool(pattern and pattern.search(name) and plan))


def _diffusers_rules(model: Any, torch_dtype: Any) -> tuple[set[str], Any]:
    import torch

    keep = list(type(model)._keep_in_fp32_modules or [])
    quantized = {name for name, module in model.named_modules()
                 if isinstance(module, torch.nn.Linear) and name.rpartition(".")[2] not in keep
                 and not any(f"{k}." in name or k == name for k in keep)}
    return quantized, (lambda name: any(k in name.split(".") for k in keep))
