"""LoRA checks, loading, stacking and unloading on the real tiny pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from lorafiles import FLUX_ATTN, write_peft_lora

from masuka_nb.errors import InvalidRequestError, LoraIncompatibleError, MasukaError, ModelFilesMissingError
from masuka_nb.image.lora import LoraSpec, normalise_loras, validate_lora


def test_peft_lora_folder_is_detected(flux_lora):
    info = validate_lora(flux_lora.parent, model="tiny-flux")
    assert (info.format, info.family, info.model, info.rank) == ("peft", "flux", "tiny-flux", 4)
    assert info.modules == len(FLUX_ATTN)
    assert len(info.sha256) == 64


def test_kohya_double_block_lora_is_converted_and_fits(kohya_lora):
    info = validate_lora(kohya_lora, model="tiny-flux")
    assert info.format == "kohya"
    assert info.modules == 3  # fused qkv becomes to_q, to_k, to_v


def test_library_name_resolves_with_metadata(library_lora):
    info = validate_lora(library_lora, model="tiny-flux")
    assert info.trigger_word == "mystyle"
    assert info.base_model == "tiny-flux"


def test_flux_lora_on_sd3_names_both_models(flux_lora):
    with pytest.raises(LoraIncompatibleError) as err:
        validate_lora(flux_lora, model="tiny-sd3")
    text = str(err.value)
    assert "tiny-sd3" in text and "tiny-flux" in text
    assert err.value.code == "LORA_INCOMPATIBLE"


def test_sd3_lora_on_flux_names_both_models(sd3_lora):
    assert validate_lora(sd3_lora, model="tiny-sd3").family == "sd3"
    with pytest.raises(LoraIncompatibleError) as err:
        validate_lora(sd3_lora, model="tiny-flux")
    assert "tiny-sd3" in str(err.value) and "tiny-flux" in str(err.value)


def test_tiny_lora_does_not_fit_real_flux(flux_lora):
    with pytest.raises(LoraIncompatibleError) as err:
        validate_lora(flux_lora, model="flux1-dev")
    assert "flux1-dev" in str(err.value) and "tiny-flux" in str(err.value)


def test_full_size_flux_lora_fits_flux_dev_not_sd35(tmp_path):
    shapes = {"transformer_blocks.0.attn.to_q": (3072, 3072), "single_transformer_blocks.3.proj_out": (15360, 3072)}
    path = write_peft_lora(tmp_path / "big.safetensors", list(shapes), shapes=shapes, rank=2)
    assert validate_lora(path, model="flux1-dev").modules == 2
    with pytest.raises(LoraIncompatibleError) as err:
        validate_lora(path, model="sd35-large")
    assert "sd35-large" in str(err.value) and "flux1" in str(err.value)


def test_not_a_lora_and_missing_sources(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(InvalidRequestError):
        validate_lora(tmp_path / "model.safetensors", model="tiny-flux")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidRequestError):
        validate_lora(tmp_path / "garbage.safetensors", model="tiny-flux")
    with pytest.raises(ModelFilesMissingError):
        validate_lora(tmp_path / "nowhere", model="tiny-flux")
    with pytest.raises(MasukaError) as err:  # offline: a Hub repo id cannot be fetched
        validate_lora("someone/some-lora", model="tiny-flux")
    assert err.value.code == "MODEL_FILES_MISSING"


def test_normalise_accepts_the_documented_shapes():
    specs = normalise_loras(["a", ("b", 0.5), LoraSpec("c", 0.7), {"source": "d", "weight": 2}])
    assert [(s.source, s.weight) for s in specs] == [("a", 1.0), ("b", 0.5), ("c", 0.7), ("d", 2.0)]
    assert normalise_loras(("x", 0.3)) == [LoraSpec("x", 0.3)]
    for bad in ([("a", "heavy")], [("a", 9.0)], [3], [""]):
        with pytest.raises(InvalidRequestError):
            normalise_loras(bad)


def _run(engine, model, loras=()):
    res = engine.generate("a lantern", model=model, seed=5, steps=2, width=32, height=32, loras=loras,
                          save=False)
    return np.asarray(res.images[0], dtype=np.int16)


def test_load_stack_unload_restores_base_exactly(flux_lora, flux_lora_b, kohya_lora):
    from masuka_nb.image.engine import ImageEngine

    engine = ImageEngine()
    base = _run(engine, "tiny-flux")
    one = _run(engine, "tiny-flux", [flux_lora])
    stacked = _run(engine, "tiny-flux", [(flux_lora, 1.0), (flux_lora_b, 0.8)])
    kohya = _run(engine, "tiny-flux", [kohya_lora])
    assert np.abs(one - base).max() > 0
    assert np.abs(stacked - one).max() > 0
    assert np.abs(kohya - base).max() > 0
    assert np.array_equal(_run(engine, "tiny-flux"), base)  # unloaded: exactly the base output again
    assert np.array_equal(_run(engine, "tiny-flux", [flux_lora]), one)  # reloaded: same as before
    assert engine.load_count == 1


def test_weight_zero_matches_base_and_weights_change_output(flux_lora):
    from masuka_nb.image.engine import ImageEngine

    engine = ImageEngine()
    base = _run(engine, "tiny-flux")
    assert np.abs(_run(engine, "tiny-flux", [(flux_lora, 0.0)]) - base).max() <= 1
    half = _run(engine, "tiny-flux", [(flux_lora, 0.5)])
    full = _run(engine, "tiny-flux", [(flux_lora, 1.0)])
    assert np.abs(half - full).max() > 0
