"""What each real-layout twin is built from (masuka_nb.testing.twins.twin_config), without building it."""

from __future__ import annotations

import inspect

import pytest

from masuka_nb.models.real_configs import REAL_CONFIGS, real_config
from masuka_nb.testing.twins import DEPTH, NARROWED, TWINS, twin_component_key, twin_config


@pytest.mark.parametrize("key", sorted(k for k in REAL_CONFIGS if k not in NARROWED))
def test_every_other_twin_is_the_real_config_cut_in_depth(key):
    assert twin_config(*key) == real_config(*key).with_depth(DEPTH)


def test_klein_qwen3_twin_has_every_hidden_state_its_pipeline_reads_at_the_real_widths():
    import diffusers

    pipeline = getattr(diffusers, TWINS["flux2-klein"].pipeline)
    read = inspect.signature(pipeline.__call__).parameters["text_encoder_out_layers"].default
    real = real_config("flux2-klein", "text_encoder").config
    cfg = twin_config("flux2-klein", "text_encoder")
    # The last state read is a layer's raw output (hidden_states[-1] is the final, normed one), as in the
    # real 36-layer model; no more layers than that, and never more than the real model has.
    assert cfg["num_hidden_layers"] == max(read) + 1 <= real["num_hidden_layers"]
    assert twin_config("flux2-klein", "text_encoder", depth=40)["num_hidden_layers"] == real["num_hidden_layers"]
    for width in ("hidden_size", "vocab_size", "head_dim", "max_position_embeddings", "rope_parameters",
                  "tie_word_embeddings", "rms_norm_eps"):
        assert cfg[width] == real[width], width
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (1, 1)
    assert cfg["intermediate_size"] < real["intermediate_size"]


def test_zimage_qwen3_twin_keeps_the_hidden_state_its_pipeline_reads():
    """ZImagePipeline encodes with `hidden_states[-2]`: in the real 36-layer Qwen3 the input of the last layer
    (state 35). A one-layer cut would hand it the bare embeddings; the narrow twin keeps all 36 layers."""
    import diffusers

    assert "hidden_states[-2]" in inspect.getsource(getattr(diffusers, TWINS["zimage-turbo"].pipeline))
    real = real_config("zimage-turbo", "text_encoder").config
    cfg = twin_config("zimage-turbo", "text_encoder")
    assert cfg["num_hidden_layers"] == real["num_hidden_layers"] == 36
    for width in ("hidden_size", "vocab_size", "head_dim", "tie_word_embeddings"):
        assert cfg[width] == real[width], width
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]) == (1, 1, 128)


def test_klein_qwen3_twin_tensors_keep_every_shape_the_pipeline_sees():
    """Built on the meta device: the embedding (tied head) and every norm the hidden states pass through
    are the real model's shapes; only the projections inside each layer are narrower."""
    import torch
    from accelerate import init_empty_weights

    from masuka_nb.models.real_configs import build_component
    from masuka_nb.testing.twins import _build

    with init_empty_weights():
        twin = dict(_build("flux2-klein", "text_encoder", DEPTH).state_dict())
    full = {k: tuple(v.shape) for k, v in build_component("flux2-klein", "text_encoder").state_dict().items()}
    assert set(twin) <= set(full)
    same = [k for k in twin if "embed" in k or k.endswith(("norm.weight", "lm_head.weight"))]
    assert same and all(tuple(twin[k].shape) == full[k] for k in same)
    narrow = [k for k in twin if k not in same]
    assert narrow and all(torch.Size(full[k]).numel() > twin[k].numel() for k in narrow)


def test_the_klein_text_encoders_cache_key_is_its_twins_config():
    """A cache built from the plain depth cut (before the twin kept 28 narrow layers) is not found under the
    new key: the key hashes the config the twin is built from, so a stale cache is rebuilt, not reused."""
    from masuka_nb.testing.twins import BUILDER_VERSION, _digest

    rc = real_config("flux2-klein", "text_encoder")
    plain = _digest([BUILDER_VERSION, rc.library, rc.class_name, rc.with_depth(DEPTH), DEPTH])
    assert twin_component_key("flux2-klein", "text_encoder") != plain
    vae = real_config("flux2-klein", "vae")  # the other components keep their keys (and their caches)
    assert twin_component_key("flux2-klein", "vae") == _digest([BUILDER_VERSION, vae.library, vae.class_name,
                                                                vae.with_depth(DEPTH), DEPTH])
