"""LoRA files written in each format for the tiny models (helpers for the image tests)."""

from __future__ import annotations

from pathlib import Path

FLUX_ATTN = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v",
             "transformer_blocks.0.attn.to_out.0", "single_transformer_blocks.0.attn.to_q"]
SD3_LAYERS = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_v",
              "transformer_blocks.0.norm1_context.linear", "proj_out"]
SD3_SHAPES = {"transformer_blocks.0.norm1_context.linear": (32, 64), "proj_out": (32, 4)}


def write_peft_lora(path: Path, modules: list[str], *, rank: int = 4, seed: int = 0,
                    shapes: dict[str, tuple[int, int]] | None = None, scale: float = 0.5) -> Path:
    """A diffusers/PEFT LoRA file (`transformer.<module>.lora_A.weight` …) with non-zero weights."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for module in modules:
        fan_in, fan_out = (shapes or {}).get(module, (32, 32))
        state[f"transformer.{module}.lora_A.weight"] = torch.randn(rank, fan_in, generator=gen) * scale
        state[f"transformer.{module}.lora_B.weight"] = torch.randn(fan_out, rank, generator=gen) * scale
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def write_kohya_lora(path: Path, *, rank: int = 4, seed: int = 1) -> Path:
    """A kohya-format FLUX LoRA on the double block's image attention (qkv fused, as kohya stores it)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    prefix = "lora_unet_double_blocks_0_img_attn_qkv"
    state = {
        f"{prefix}.lora_down.weight": torch.randn(rank, 32, generator=gen) * 0.5,
        f"{prefix}.lora_up.weight": torch.randn(96, rank, generator=gen) * 0.5,
        f"{prefix}.alpha": torch.tensor(float(rank)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


