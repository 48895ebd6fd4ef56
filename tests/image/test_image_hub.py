"""Planned downloads against a recorded FLUX.1-dev listing, the session/persistent copies, and hub errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import masuka_nb as mk
from masuka_nb.errors import GatedModelError, MasukaError, ModelFilesMissingError, ModelNotFoundError
from masuka_nb.hub import MARKER, download_plan, hub_error, load_listing, locate_model
from masuka_nb.models.registry import get_model

LISTING = Path(__file__).resolve().parents[1] / "data" / "flux1-dev.files.json"


@pytest.fixture
def listing():
    return load_listing(LISTING)


def test_bf16_plan_fetches_the_diffusers_folders_only(listing):
    plan = download_plan("flux1-dev", plan=mk.plan("flux1-dev", gpu="a100-80"), listing=listing)
    paths = {f.path for f in plan.files}
    assert "flux1-dev.safetensors" not in paths and "ae.safetensors" not in paths
    assert "dev_grid.jpg" not in paths and "README.md" not in paths
    assert "transformer/diffusion_pytorch_model-00003-of-00003.safetensors" in paths
    assert {"model_index.json", "tokenizer_2/spiece.model", "vae/diffusion_pytorch_model.safetensors"} <= paths
    whole = sum(f.size for f in listing)
    assert plan.total_bytes / whole <= 0.6
    assert 33e9 < plan.total_bytes < 35e9


def test_nf4_plan_takes_quantized_components_from_their_own_repo(listing):
    plan = download_plan("flux1-dev", plan=mk.plan("flux1-dev", gpu="t4"), listing=listing)
    paths = {f.path for f in plan.files}
    assert not any(p.startswith(("transformer/", "text_encoder_2/")) for p in paths)
    assert plan.total_bytes < 1e9  # CLIP, VAE, tokenizers, configs
    # the quantized T5 comes from the other repo, its tokenizer from this one (without it transformers
    # builds a ~100-entry default T5 tokenizer and every prompt becomes unknown tokens)
    assert {"tokenizer_2/spiece.model", "tokenizer_2/tokenizer.json", "tokenizer/vocab.json"} <= paths
    [extra] = plan.extra
    assert extra.repo == "diffusers/FLUX.1-dev-bnb-4bit"
    assert "transformer/*.safetensors" in extra.allow_patterns and "text_encoder_2/*.json" in extra.allow_patterns
    assert "GB" in repr(plan)


def test_nf4_plan_without_a_prequantized_repo_downloads_what_it_quantizes(listing):
    """BitsAndBytesConfig quantizes while loading, so the 16-bit weights of the quantized components are
    needed; before, they were dropped and loading failed with "no file named model.safetensors"."""
    import dataclasses

    nf4 = dataclasses.replace(mk.plan("flux1-dev", gpu="t4"), quantized_repo=None)
    plan = download_plan("flux1-dev", plan=nf4, listing=listing)
    paths = {f.path for f in plan.files}
    assert not plan.extra
    assert "transformer/diffusion_pytorch_model-00003-of-00003.safetensors" in paths
    assert "text_encoder_2/model-00002-of-00002.safetensors" in paths and "tokenizer_2/spiece.model" in paths
    assert "flux1-dev.safetensors" not in paths


def test_tiny_models_need_no_download():
    assert download_plan("tiny-flux").total_bytes == 0


def _fake_repo(folder: Path, dplan) -> None:
    for f in ("model_index.json", "vae/config.json", "transformer/x.safetensors", "flux1-dev.safetensors"):
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_text("{}")
    (folder / MARKER).write_text(json.dumps({"repo": dplan.repo, "allow": list(dplan.allow_patterns)}))


def test_persistent_copy_is_copied_to_the_session_then_preferred(listing, tmp_path, monkeypatch):
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(tmp_path / "session-cache"))  # not the shared tiny cache
    spec = get_model("flux1-dev")
    dplan = download_plan(spec, plan=mk.plan("flux1-dev", gpu="a100-80"), listing=listing)
    persistent = mk.settings().models_dir / "black-forest-labs--FLUX.1-dev" / "main"
    _fake_repo(persistent, dplan)
    local = locate_model(spec, dplan)
    assert local.is_relative_to(mk.settings().cache_dir) and (local / "vae" / "config.json").is_file()
    assert not (local / "flux1-dev.safetensors").exists()  # only what the plan selects is copied
    assert locate_model(spec, dplan) == local


def test_offline_without_files_is_a_clear_error(listing):
    spec = get_model("flux1-schnell")
    dplan = download_plan(spec, plan=mk.plan("flux1-schnell", gpu="h100"), listing=listing)
    with pytest.raises(ModelFilesMissingError) as err:
        locate_model(spec, dplan)
    assert "offline" in str(err.value)


def test_generate_with_a_real_model_offline_fails_cleanly_and_is_recorded():
    with pytest.raises(MasukaError) as err:
        mk.generate("a castle", model="flux1-dev", plan={"gpu": "h100"}, width=256, height=256, steps=1)
    assert err.value.code == "MODEL_FILES_MISSING"
    [rec] = mk.history.query(status="failed")
    assert rec.error["code"] == "MODEL_FILES_MISSING" and rec.model == "flux1-dev"


def test_hub_errors_map_to_masuka_errors():
    import httpx
    from huggingface_hub import errors as hf

    response = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co/x"))
    gated = hub_error(hf.GatedRepoError("gated", response=response), repo="black-forest-labs/FLUX.1-dev")
    assert isinstance(gated, GatedModelError) and gated.code == "GATED_MODEL"
    assert "https://huggingface.co/black-forest-labs/FLUX.1-dev" in gated.hint and "HF_TOKEN" in gated.hint
    missing = hub_error(hf.LocalEntryNotFoundError("not cached"), repo="stabilityai/stable-diffusion-3.5-large")
    assert isinstance(missing, ModelFilesMissingError) and "sd35-large" in str(missing)
    response = httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co/x"))
    nf = hub_error(hf.RepositoryNotFoundError("nope", response=response), repo="me/none")
    assert isinstance(nf, ModelNotFoundError)
    assert hub_error(ConnectionError("down"), repo="me/none").code == "PROVIDER_UNAVAILABLE"


def test_out_of_memory_maps_to_its_code():
    import torch

    from masuka_nb.image.failures import translate

    err = translate(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), model="flux1-dev",
                    stage="generation", plan_label="flux1-dev on t4: float16")
    assert err.code == "OUT_OF_MEMORY" and "smaller size" in err.hint
    cpu = translate(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
                    model="tiny-flux", stage="generation")
    assert cpu.code == "OUT_OF_MEMORY"
    assert translate(KeyboardInterrupt(), model="tiny-flux", stage="generation").code == "CANCELLED"
    assert translate(ValueError("odd"), model="tiny-flux", stage="generation").code == "GENERATION_FAILED"
