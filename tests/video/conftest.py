"""Fakes on loopback, short timings and canary keys for the hosted-API tests."""

from __future__ import annotations

import pytest
from video_helpers import FAST, KEY_NAMES

from masuka_nb.testing.canary import make_canary
from masuka_nb.testing.fakes import FAKES


@pytest.fixture(autouse=True)
def fast_http(monkeypatch):
    import masuka_nb
    from masuka_nb.hosted import pricing as cost
    from masuka_nb.hosted.http import reset_breakers

    masuka_nb.configure(**FAST)
    reset_breakers()
    cost.reset_session()
    yield
    reset_breakers()
    cost.reset_session()


@pytest.fixture
def keys(monkeypatch) -> dict[str, str]:
    """A fresh canary key per provider (Kling: access and secret), set in the environment."""
    out = {}
    for provider, names in KEY_NAMES.items():
        for name in names:
            out[name] = make_canary(f"sk-{provider}")
            monkeypatch.setenv(name, out[name])
    return out


@pytest.fixture
def fakes(keys, monkeypatch):
    """`fakes("runway", complete_after=0.1)` starts that fake (accepting only the canary key) and points MASUKA at it."""
    started = []

    def start(provider: str, **kwargs):
        names = KEY_NAMES[provider]
        key = ":".join(keys[n] for n in names)
        fake = FAKES[provider](key=key, **{"complete_after": 0.1, **kwargs}).start()
        monkeypatch.setenv(f"MASUKA_{provider.upper()}_BASE_URL", fake.base_url)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def image():
    from PIL import Image

    return Image.new("RGB", (640, 360), (200, 120, 40))
