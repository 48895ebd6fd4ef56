"""Civitai as a source: the loopback simulator answers a third-party client (`civitai` from PyPI) as the service
would, and MASUKA's client fetches LoRAs by id, AIR, URL and hash through the one downloader into the library,
with the token only where it belongs and clear errors for login-only, early-access, tampered and oversized files."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from image_lorafiles import FLUX_ATTN, write_peft_lora

import masuka_nb as mk
from masuka_nb.errors import DownloadError, InvalidRequestError, ModelFilesMissingError, ProviderAuthError
from masuka_nb.hosted.civitai import CivitaiClient, fetch_lora, parse_civitai_source
from masuka_nb.testing.fakes.civitai import FakeCivitai

TOKEN = "civitai-token-1d2c3b4a"


@pytest.fixture
def lora_bytes(tmp_path) -> bytes:
    return write_peft_lora(tmp_path / "served" / "pixel.safetensors", FLUX_ATTN, seed=5).read_bytes()


@pytest.fixture
def civitai(monkeypatch, lora_bytes):
    with FakeCivitai(key=TOKEN, member_key="member-token") as fake:
        monkeypatch.setenv("MASUKA_CIVITAI_BASE_URL", fake.url)
        monkeypatch.delenv("CIVITAI_API_TOKEN", raising=False)
        mk.reset_configuration()
        fake.pixel = fake.add_version(model_name="Pixel Fox Style", version_name="v2", file_name="pixelFox_v2.safetensors",
                                      data=lora_bytes, base_model="Flux.1 D", trained_words=["pxlfox", "pixel art"])
        yield fake


def test_the_simulator_answers_the_civitai_package_as_the_service_would(civitai):
    """`civitai` 1.0.0 (PyPI) calls https://civitai.com/api/v1 with requests; pointed at the simulator it reads
    versions, by-hash, models and the model list with its own accessors."""
    models = pytest.importorskip("civitai.models", reason="dev extra: civitai")
    base = f"{civitai.url}/api/v1"
    v = civitai.pixel
    try:
        orig = models.CIVITAI_BASE_URL
        models.CIVITAI_BASE_URL = base
        version = models.get_by_modelVersion(v.version_id)
        assert (version.id, version.modelId, version.name, version.baseModel) == (v.version_id, v.model_id, "v2",
                                                                                   "Flux.1 D")
        assert version.trainedWords == ["pxlfox", "pixel art"]
        assert version.files[0]["hashes"]["SHA256"] == v.hashes["SHA256"]
        assert version.downloadUrl == f"{civitai.url}/api/download/models/{v.version_id}"
        assert models.get_by_hash(v.hashes["AutoV3"].lower()).id == v.version_id
        model = models.get_model(v.model_id)
        assert (model.name, model.type, model.creator_username) == ("Pixel Fox Style", "LORA", "masuka-test")
        assert [mv.id for mv in model.modelVersions] == [v.version_id]
        page = models.get(limit=1, types="LORA", query="pixel")
        assert page.currentPage == 1 and page.pageSize == 1 and [m.id for m in page.items] == [v.model_id]
    finally:
        models.CIVITAI_BASE_URL = orig


@pytest.mark.parametrize("form", ["civitai:{v}", "urn:air:flux1:lora:civitai:{m}@{v}", "air:flux1:lora:civitai:{m}@{v}",
                                  "https://civitai.com/models/{m}/pixel-fox?modelVersionId={v}",
                                  "https://civitai.com/api/download/models/{v}"])
def test_every_source_form_names_the_same_version(civitai, form):
    v = civitai.pixel
    ref = parse_civitai_source(form.format(m=v.model_id, v=v.version_id))
    assert ref.version_id == v.version_id
    assert parse_civitai_source("owner/repo") is None and parse_civitai_source("https://example.com/models/1") is None


def test_a_lora_lands_in_the_library_with_its_pages_facts_and_the_token_stays_home(civitai, monkeypatch, caplog):
    monkeypatch.setenv("CIVITAI_API_TOKEN", TOKEN)  # Colab Secrets' stand-in: the environment variable
    v = civitai.pixel
    caplog.set_level(logging.DEBUG)
    path = fetch_lora(f"https://civitai.com/models/{v.model_id}?modelVersionId={v.version_id}")
    assert path.read_bytes() == v.data and path.name == "pixelFox_v2.safetensors"
    meta = json.loads((path.parent / "masuka_lora.json").read_text())
    assert (meta["title"], meta["base_model"], meta["trigger_word"]) == ("Pixel Fox Style", "flux1-dev", "pxlfox")
    assert meta["civitai"]["air"] == v.air and meta["civitai"]["sha256"] == v.hashes["SHA256"].lower()
    api_calls = [(p, auth) for p, auth in civitai.auth_seen if p.startswith("/api/")]
    assert api_calls and all(auth for _, auth in api_calls)  # the token went to Civitai's API…
    assert civitai.cdn_auth_seen == [False]  # …and never to the CDN the download redirects to
    assert TOKEN not in caplog.text
    again = fetch_lora(f"civitai:{v.version_id}")  # from the library: no second download
    assert again == path and civitai.cdn_auth_seen == [False]
    mk.configure(offline=True)
    assert fetch_lora(v.air) == path


def test_login_only_and_early_access_files_give_clear_errors(civitai, lora_bytes):
    locked = civitai.add_version(model_name="Locked", file_name="locked.safetensors", data=lora_bytes + b"",
                                 login_required=True)
    early = civitai.add_version(model_name="Early", file_name="early.safetensors", data=lora_bytes,
                                early_access_until=datetime.now(timezone.utc) + timedelta(days=3))
    with pytest.raises(ProviderAuthError) as err:
        fetch_lora(f"civitai:{locked.version_id}")
    assert "requires a Civitai login" in err.value.message and "CIVITAI_API_TOKEN" in err.value.hint
    with pytest.raises(ProviderAuthError) as err:
        fetch_lora(f"civitai:{locked.version_id}", client=CivitaiClient(token="wrong-token"))
    assert err.value.details["status"] == 401 and "wrong-token" not in str(err.value)
    assert fetch_lora(f"civitai:{locked.version_id}", client=CivitaiClient(token=TOKEN)).is_file()
    with pytest.raises(ProviderAuthError) as err:
        fetch_lora(f"civitai:{early.version_id}", client=CivitaiClient(token=TOKEN))
    assert err.value.code == "CIVITAI_EARLY_ACCESS" and "Early Access until" in err.value.message
    assert fetch_lora(f"civitai:{early.version_id}", client=CivitaiClient(token="member-token")).is_file()


def test_rate_limits_are_waited_out_and_bad_files_never_land(civitai):
    v = civitai.pixel
    civitai.inject("get", status=429, headers={"Retry-After": "0"}, times=2)
    assert CivitaiClient().version(v.version_id).id == v.version_id
    assert civitai.counts["get"] == 3
    civitai.inject("download", status=200, body=b"not the file at all", headers={})
    with pytest.raises(DownloadError, match="SHA-256"):
        fetch_lora(f"civitai:{v.version_id}")
    assert not list(mk.settings().loras_dir.rglob("*.safetensors*"))  # neither the file nor a .part is kept
    with pytest.raises(InvalidRequestError, match="above the limit"):
        fetch_lora(f"civitai:{v.version_id}", max_bytes=100)
    with pytest.raises(mk.errors.ModelNotFoundError):
        fetch_lora("civitai:999")
    mk.configure(offline=True)
    with pytest.raises(ModelFilesMissingError, match="offline"):
        fetch_lora(f"civitai:{v.version_id}")


def test_generate_and_compare_take_civitai_sources_through_one_resolver(civitai):
    v = civitai.pixel
    small = dict(model="tiny-flux", seed=3, width=32, height=32, steps=2, save=False)
    base = mk.generate("a fox", **small)
    styled = mk.generate("a fox", loras=[(f"civitai:{v.version_id}", 1.0)], **small)
    assert styled.recipe["loras"][0]["sha256"] == v.hashes["SHA256"].lower()
    assert np.abs(np.asarray(styled.image, float) - np.asarray(base.image, float)).mean() > 0
    grid = mk.lora.compare([v.air], prompts=["a fox"], seeds=[3], model="tiny-flux", width=32, height=32, steps=2,
                           save=False, progress=False)
    assert [c.lora for c in grid.cells] == [None, "Pixel-Fox-Style"]
    from masuka_nb.ui.helpers import parse_loras

    assert parse_loras(f"civitai:{v.version_id}\n{v.air} @ 0.5") == [(f"civitai:{v.version_id}", 1.0), (v.air, 0.5)]
