"""Transformer layer shapes per model, without loading any weights.

LoRA checks need to know, for every linear layer a LoRA may target, its input and output size.
For the real models the published transformer configs below are built on the `meta` device (no
memory, ≈0.1 s); the tiny models read the config saved in their own folder. Position-embedding
sizes are shrunk when building: they are buffers, not LoRA targets, and full-size ones cost seconds.
"""

from __future__ import annotations

import functools
import json

from masuka_nb.models.registry import get_model

__all__ = ["TRANSFORMER_CONFIGS", "linear_shapes"]

# Published `transformer/config.json` of each repo (black-forest-labs, stabilityai), LoRA-relevant keys.
_FLUX = dict(
    attention_head_dim=128,
    in_channels=64,
    joint_attention_dim=4096,
    num_attention_heads=24,
    num_layers=19,
    num_single_layers=38,
    patch_size=1,
    pooled_projection_dim=768,
    axes_dims_rope=[16, 56, 56],
)
_SD35_LARGE = dict(
    attention_head_dim=64,
    caption_projection_dim=2432,
    in_channels=16,
    joint_attention_dim=4096,
    num_attention_heads=38,
    num_layers=38,
    out_channels=16,
    patch_size=2,
    pooled_projection_dim=2048,
    qk_norm="rms_norm",
)
TRANSFORMER_CONFIGS: dict[str, dict] = {
    "flux1-dev": {**_FLUX, "guidance_embeds": True},
    "flux1-schnell": {**_FLUX, "guidance_embeds": False},
    "flux1-kontext-dev": {**_FLUX, "guidance_embeds": True},
    # Fill reads the masked image's latents and the packed mask as extra input channels (64 + 64 + 256).
    "flux1-fill-dev": {**_FLUX, "in_channels": 384, "out_channels": 64, "guidance_embeds": True},
    # FLUX.2 [klein] 4B: 5 double and 20 single blocks, 3072 wide; reads 3 Qwen3-4B layers (3 × 2560).
    "flux2-klein": dict(attention_head_dim=128, in_channels=128, joint_attention_dim=7680, num_attention_heads=24,
                        num_layers=5, num_single_layers=20, patch_size=1, axes_dims_rope=[32, 32, 32, 32],
                        timestep_guidance_channels=256, guidance_embeds=False),
    "sd35-large": _SD35_LARGE,
    "sd35-large-turbo": _SD35_LARGE,
    "sd35-medium": dict(
        attention_head_dim=64,
        caption_projection_dim=1536,
        dual_attention_layers=tuple(range(13)),
        in_channels=16,
        joint_attention_dim=4096,
        num_attention_heads=24,
        num_layers=24,
        out_channels=16,
        patch_size=2,
        pooled_projection_dim=2048,
        qk_norm="rms_norm",
    ),
}


def _config(model_id: str) -> dict:
    spec = get_model(model_id)
    if spec.tiny:
        from masuka_nb.models.tiny import ensure_tiny

        raw = json.loads((ensure_tiny(spec.id) / "transformer" / "config.json").read_text())
        return {k: v for k, v in raw.items() if not k.startswith("_")}
    return dict(TRANSFORMER_CONFIGS[spec.id])


@functools.lru_cache(maxsize=16)
def linear_shapes(model_id: str) -> dict[str, tuple[int, int]]:
    """`{module name: (in_features, out_features)}` for every Linear layer of the model's transformer."""
    import torch
    from accelerate import init_empty_weights

    spec = get_model(model_id)
    if spec.family in ("zimage", "qwenimage"):
        return _shapes_from_class(spec)
    config = _config(spec.id)
    if spec.family == "sd3":
        from diffusers import SD3Transformer2DModel as cls

        config.update(pos_embed_max_size=4, sample_size=4)
    elif spec.family == "flux2":
        from diffusers import Flux2Transformer2DModel as cls
    else:
        from diffusers import FluxTransformer2DModel as cls
    with init_empty_weights():
        module = cls(**config)
    return {
        name: (m.in_features, m.out_features)
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.Linear)
    }


def _shapes_from_class(spec) -> dict[str, tuple[int, int]]:
    """Z-Image / Qwen-Image: the real model on the meta device (masuka_nb.models.real_configs), or the tiny
    folder's own config built with the class it names."""
    import torch

    if spec.tiny:
        import diffusers
        from accelerate import init_empty_weights

        from masuka_nb.models.tiny import ensure_tiny

        raw = json.loads((ensure_tiny(spec.id) / "transformer" / "config.json").read_text())
        with init_empty_weights():
            module = getattr(diffusers, raw["_class_name"]).from_config(raw)
    else:
        from masuka_nb.models.real_configs import _meta_model

        module = _meta_model(spec.id, "transformer")
    return {name: (m.in_features, m.out_features) for name, m in module.named_modules()
            if isinstance(m, torch.nn.Linear)}
