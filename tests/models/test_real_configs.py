"""The real configs build the real models: exact counts at full size (meta device), real widths when cut."""

from __future__ import annotations

import pytest

from masuka_nb.models.real_configs import (
    REAL_CONFIGS,
    build_component,
    real_components,
    real_config,
    tensor_count,
)
from masuka_nb.models.registry import MODELS

# Parameter counts (billions) measured from these configs and published in ../shared/reference/real-models.md;
# they agree with the model cards' rounded figures (FLUX.1 12 B, T5-XXL 4.7 B, SD3.5 Large 8.1 B, ...).
PUBLISHED_B = {
    ("flux1-dev", "transformer"): 11.9014, ("flux1-schnell", "transformer"): 11.8912,
    ("flux1-fill-dev", "transformer"): 11.9024, ("flux1-dev", "text_encoder_2"): 4.7623,
    ("flux1-dev", "text_encoder"): 0.1231, ("sd35-large", "text_encoder"): 0.1237,
    ("sd35-large", "text_encoder_2"): 0.6947, ("flux1-dev", "vae"): 0.0838,
    ("sd35-large", "transformer"): 8.0566, ("sd35-medium", "transformer"): 2.2432,
    ("flux2-klein", "transformer"): 3.8755, ("flux2-klein", "text_encoder"): 4.0225, ("flux2-klein", "vae"): 0.0840,
    ("wan2.1-t2v-1.3b", "transformer"): 1.4190, ("wan2.1-t2v-1.3b", "text_encoder"): 5.6809,
    ("wan2.1-t2v-1.3b", "vae"): 0.1269, ("wan2.2-ti2v-5b", "vae"): 0.7047,
    ("wan2.2-ti2v-5b", "transformer"): 4.9998,
    # 2026 models: Z-Image "6.15 B" (its card says 6 B), Qwen-Image "20 B" MMDiT, Qwen2.5-VL "7 B" (8.29 B with the
    # vision tower the edit pipeline uses), the Wan-2.1-style VAE
    ("zimage-turbo", "transformer"): 6.1549, ("zimage-turbo", "text_encoder"): 4.0225,
    ("qwen-image", "transformer"): 20.4304, ("qwen-image", "text_encoder"): 8.2922, ("qwen-image", "vae"): 0.1269,
}


def test_every_real_registry_model_has_every_component():
    for spec in MODELS.values():
        if spec.tiny:
            assert real_components(spec.id) == ()
            continue
        assert set(real_components(spec.id)) == {c.name for c in spec.components}, spec.id
        for comp in spec.components:
            rc = real_config(spec.id, comp.name)
            assert rc.source.startswith("https://"), rc


@pytest.mark.parametrize("key", sorted(PUBLISHED_B))
def test_full_size_counts_match_the_published_ones(key):
    model = build_component(*key)  # meta device: no memory
    assert next(model.parameters()).is_meta
    assert tensor_count(model).parameters / 1e9 == pytest.approx(PUBLISHED_B[key], abs=1e-4)


def test_sd3_pos_embed_is_a_saved_buffer():
    medium = tensor_count(build_component("sd35-medium", "transformer"))
    assert medium.buffers / 1e9 == pytest.approx(0.2265, abs=1e-4)


@pytest.mark.parametrize("key", [("flux1-fill-dev", "transformer"), ("sd35-medium", "transformer"),
                                 ("wan2.2-ti2v-5b", "vae"), ("flux2-klein", "text_encoder"),
                                 ("flux1-dev", "text_encoder_2"), ("zimage-turbo", "transformer"),
                                 ("qwen-image", "text_encoder")])
def test_a_depth_cut_keeps_every_real_width(key):
    full = dict(build_component(*key).state_dict())
    cut = build_component(*key, depth=1)
    cut_sd = dict(cut.state_dict())
    assert len(cut_sd) < len(full)
    for name, tensor in cut_sd.items():  # every tensor of the twin exists in the real model, same shape
        shapes = {tuple(full[n].shape) for n in _same_role(name, full)}
        assert tuple(tensor.shape) in shapes, name


def _same_role(name: str, full: dict) -> list[str]:
    """`name` in the real model, or the same tensor of the real model's last block: SD3's last block is
    context-only, so a cut model's last block is shaped like it."""
    import re

    if name in full and not re.search(r"blocks\.\d+\.", name):
        return [name]
    pattern = r"blocks\.\d+\.".join(re.escape(part) for part in re.split(r"blocks\.\d+\.", name))
    return [n for n in full if re.fullmatch(pattern, n)]


def test_depth_cut_trims_sd35_mediums_dual_attention_layers():
    cfg = real_config("sd35-medium", "transformer").with_depth(2)
    assert cfg["num_layers"] == 2 and cfg["dual_attention_layers"] == (0, 1)
    assert real_config("sd35-medium", "transformer").config["dual_attention_layers"] == tuple(range(13))


def test_a_twin_runs_on_the_cpu_in_the_dtype_asked():
    import torch

    vae = build_component("flux1-dev", "vae", depth=1, device="cpu", dtype=torch.float32)
    assert next(vae.parameters()).dtype == torch.float32 and not vae.training
    with torch.no_grad():
        out = vae.decode(torch.zeros(1, 16, 4, 4)).sample
    assert out.shape == (1, 3, 32, 32)
    assert torch.get_default_dtype() == torch.float32  # the builder restores the default dtype


def test_unknown_component_and_bad_depth_say_what_exists():
    with pytest.raises(KeyError, match="text_encoder_2"):
        real_config("flux1-dev", "text_encoder_9")
    with pytest.raises(ValueError, match="depth"):
        real_config("flux1-dev", "transformer").with_depth(0)
    assert len(REAL_CONFIGS) == sum(len(real_components(m)) for m in MODELS)
