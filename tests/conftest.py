"""Shared fixtures: every test gets its own MASUKA home; tiny models are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No process-wide Hub offline variable: the suite runs as a user's machine without a hub does (the
# network unreachable, the variable unset), so MASUKA's own probe has to notice. Telemetry is off.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """One cache folder for the whole run, so each tiny model is built once."""
    return tmp_path_factory.mktemp("masuka-cache")


@pytest.fixture(autouse=True)
def masuka_home(tmp_path, tiny_cache, monkeypatch) -> Path:
    """Point MASUKA's home at a fresh temp folder and reset every override."""
    from masuka_nb.config import reset_configuration

    home = tmp_path / "masuka-home"
    for key in list(os.environ):
        if key.startswith("MASUKA_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MASUKA_HOME", str(home))
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(tiny_cache))
    monkeypatch.setenv("MASUKA_PROGRESS", "off")
    monkeypatch.setenv("MASUKA_DRIVE_ROOT", str(tmp_path / "no-drive"))
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    reset_configuration()
    _reset_hub_probe()
    yield home
    reset_configuration()
    _reset_hub_probe()


@pytest.fixture
def empty_device_host():
    """The process's device host, emptied before and after (other tests' models must not count here)."""
    from masuka_nb.host import device_host

    host = device_host()
    host.evict_all()
    yield host
    host.simulate(None)
    host.evict_all()


def _reset_hub_probe() -> None:
    from masuka_nb.models.embedded import reset_probe

    reset_probe()
