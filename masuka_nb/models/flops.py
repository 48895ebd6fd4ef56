"""What one transformer forward costs, measured on the full-size model without a byte of weights.

    measure_tflops("qwen-image", width=1328, height=1328, text_tokens=96)   # TFLOP of one forward pass

The registry model is built at full size on the meta device (masuka_nb.models.real_configs) and run once under
`torch.utils.flop_counter.FlopCounterMode`, which counts every matmul and attention kernel from shapes alone
(2·M·N·K per matmul). `fit(model_id)` measures three token counts and solves a + b·T + c·T² (T = image + text
tokens), the `FlopsModel` the registry stores so that `plan()` can estimate seconds per step without torch.
tests/models/test_flops.py re-measures the registry's coefficients.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fit", "measure_tflops"]


def _inputs(spec: Any, model: Any, width: int, height: int, text_tokens: int) -> dict[str, Any]:
    import torch

    dt = torch.bfloat16
    cfg = model.config
    with torch.device("meta"):
        factor = spec.flops.image_tokens_factor if spec.flops else 1
        if spec.family == "flux":
            tok = (width // 16) * (height // 16) * factor
            return dict(hidden_states=torch.empty(1, tok, cfg.in_channels, dtype=dt),
                        encoder_hidden_states=torch.empty(1, text_tokens, cfg.joint_attention_dim, dtype=dt),
                        pooled_projections=torch.empty(1, cfg.pooled_projection_dim, dtype=dt),
                        timestep=torch.ones(1, dtype=dt),
                        guidance=torch.ones(1, dtype=dt) if cfg.guidance_embeds else None, img_ids=torch.zeros(tok, 3), txt_ids=torch.zeros(text_tokens, 3), return_dict=False)
        if spec.family == "flux2":
            tok = (width // 16) * (height // 16)
            return dict(hidden_states=torch.empty(1, tok, cfg.in_channels, dtype=dt),
                        encoder_hidden_states=torch.empty(1, text_tokens, cfg.joint_attention_dim, dtype=dt),
                        timestep=torch.ones(1, dtype=dt), img_ids=torch.zeros(1, tok, 4),
                        txt_ids=torch.zeros(1, text_tokens, 4), guidance=None, return_dict=False)
        if spec.family == "sd3":
            return dict(hidden_states=torch.empty(1, cfg.in_channels, height // 8, width // 8, dtype=dt),
                        encoder_hidden_states=torch.empty(1, text_tokens + 77, cfg.joint_attention_dim, dtype=dt),
                        pooled_projections=torch.empty(1, cfg.pooled_projection_dim, dtype=dt),
                        timestep=torch.ones(1, dtype=dt), return_dict=False)
        if spec.family == "zimage":
            return dict(x=[torch.empty(cfg.in_channels, 1, height // 8, width // 8, dtype=dt)],
                        t=torch.ones(1, dtype=dt), cap_feats=[torch.empty(text_tokens, cfg.cap_feat_dim, dtype=dt)],
                        return_dict=False)
        if spec.family == "qwenimage":
            h, w = height // 16, width // 16
            shapes = [[(1, h, w)] * factor]
            return dict(hidden_states=torch.empty(1, h * w * factor, cfg.in_channels, dtype=dt),
                        encoder_hidden_states=torch.empty(1, text_tokens, cfg.joint_attention_dim, dtype=dt),
                        encoder_hidden_states_mask=None, timestep=torch.ones(1, dtype=dt), img_shapes=shapes,
                        return_dict=False)
    raise ValueError(f"no FLOP measurement for the {spec.family} family")


def measure_tflops(model_id: str, *, width: int, height: int, text_tokens: int) -> float:
    """TFLOP of one forward of `model_id`'s transformer at `width`×`height` with `text_tokens` text tokens."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from masuka_nb.models.real_configs import build_component
    from masuka_nb.models.registry import get_model

    spec = get_model(model_id)
    model = build_component(spec.id, "transformer")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(**_inputs(spec, model, width, height, text_tokens))
    return counter.get_total_flops() / 1e12


def fit(model_id: str, *, text_tokens: int | None = None) -> tuple[float, float, float]:
    """(a, b, c) with TFLOP = a + b·T + c·T², from three measured token counts (512², 1024², 1536²)."""
    import numpy as np

    from masuka_nb.models.registry import get_model

    spec = get_model(model_id)
    flops = spec.flops
    text = text_tokens if text_tokens is not None else (flops.text_tokens if flops else spec.max_sequence_length)
    scale = flops.latent_scale if flops else 16
    factor = flops.image_tokens_factor if flops else 1
    rows, ys = [], []
    for side in (512, 1024, 1536):
        t = (side // scale) ** 2 * factor + text
        rows.append([1.0, t, t * t])
        ys.append(measure_tflops(spec.id, width=side, height=side, text_tokens=text))
    a, b, c = np.linalg.solve(np.array(rows), np.array(ys))
    return float(a), float(b), float(c)
