"""LoRA checks, loading, stacking and unloading on the real tiny pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from image_lorafiles import FLUX_ATTN, write_peft_lora

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


def test_lora_from_an_https_style_url_is_downloaded_once_over_real_http(flux_lora, tmp_path):
    """A loopback HTTP server serves the file; the second use comes from the local cache."""
    import functools
    import http.server
    import threading

    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Handler, directory=str(flux_lora.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        import masuka_nb as mk

        mk.configure(offline=False)
        url = f"http://127.0.0.1:{server.server_address[1]}/pytorch_lora_weights.safetensors"
        info = validate_lora(url, model="tiny-flux")
        assert info.rank == 4 and info.path.is_relative_to(mk.settings().cache_dir)
        assert validate_lora(url, model="tiny-flux").sha256 == info.sha256
        assert len(hits) == 1
        with pytest.raises(ModelFilesMissingError):
            validate_lora(url.replace("pytorch_lora", "missing"), model="tiny-flux")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_sd3_lora_changes_tiny_sd3_and_unloads_exactly(sd3_lora):
    from masuka_nb.image.engine import ImageEngine

    engine = ImageEngine()
    base = _run(engine, "tiny-sd3")
    styled = _run(engine, "tiny-sd3", [(sd3_lora, 1.0)])
    assert np.abs(styled - base).max() > 0
    assert np.array_equal(_run(engine, "tiny-sd3"), base)


def test_incompatible_lora_fails_before_loading_and_is_recorded(flux_lora):
    import masuka_nb as mk
    from masuka_nb.image.engine import ImageEngine

    engine = ImageEngine()
    with pytest.raises(LoraIncompatibleError):
        engine.generate("a lamp", model="tiny-sd3", loras=[flux_lora], save=False, width=32, height=32, steps=1)
    assert engine.load_count == 0
    [rec] = mk.history.query(status="failed")
    assert rec.error["code"] == "LORA_INCOMPATIBLE"


def test_kohya_single_block_lora_with_foreign_dims_is_incompatible_not_a_crash(tmp_path):
    import torch
    from safetensors.torch import save_file

    prefix = "lora_unet_single_blocks_0_linear1"
    save_file({f"{prefix}.lora_down.weight": torch.randn(4, 32), f"{prefix}.lora_up.weight": torch.randn(224, 4),
               f"{prefix}.alpha": torch.tensor(4.0)}, str(tmp_path / "single.safetensors"))
    for model in ("tiny-flux", "flux1-dev"):
        with pytest.raises(LoraIncompatibleError) as err:
            validate_lora(tmp_path / "single.safetensors", model=model)
        assert model in str(err.value)

_MODULES = ["transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.proj_out", "proj_out", "x_embedder",
            "transformer_blocks.7.attn.to_k", "nonsense.layer", "text_encoder.text_model.encoder.layers.0.q_proj"]
_KINDS = [".lora_A.weight", ".lora_B.weight", ".lora.down.weight", ".lora.up.weight", ".alpha", ".weight"]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(st.sampled_from(_MODULES), st.sampled_from(_KINDS),
                                  st.lists(st.integers(1, 40), min_size=1, max_size=2)), min_size=1, max_size=6),
       model=st.sampled_from(["tiny-flux", "tiny-sd3"]))
def test_any_safetensors_file_is_a_lora_info_or_a_masuka_error(tmp_path_factory, entries, model):
    import torch
    from safetensors.torch import save_file

    state = {}
    for module, kind, shape in entries:
        prefix = "" if module.startswith("text_encoder") else "transformer."
        state[f"{prefix}{module}{kind}"] = torch.zeros(*shape)
    path = tmp_path_factory.mktemp("fuzz") / "x.safetensors"
    save_file(state, str(path))
    try:
        info = validate_lora(path, model=model)
    except MasukaError as err:
        assert err.code in ("INVALID_REQUEST", "LORA_INCOMPATIBLE")
    else:
        assert info.model == model and info.modules + info.text_encoder_modules > 0
