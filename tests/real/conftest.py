"""The real models' road: a local Hub on loopback serving real-layout twins, huggingface_hub pointed at it."""

from __future__ import annotations

import pytest

from masuka_nb.testing.hub import LocalHub, pointed_at

TOKEN = "hf_masuka_test_token"


@pytest.fixture(scope="session")
def local_hub():
    with LocalHub() as hub:
        hub.grant(TOKEN)
        yield hub


@pytest.fixture
def on_local_hub(local_hub, tmp_path, monkeypatch):
    """This test's huggingface_hub talks to the local Hub (with a token accepted for the gated repos)."""
    from masuka_nb.models.embedded import reset_probe

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    reset_probe()
    with pointed_at(local_hub.url, cache=tmp_path / "hf-cache"):
        yield local_hub
    reset_probe()
