"""The real models' road: a local Hub on loopback serving real-layout twins, huggingface_hub pointed at it."""

from __future__ import annotations

import shutil

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
    cache = tmp_path / "hf-cache"
    with pointed_at(local_hub.url, cache=cache):
        yield local_hub
    reset_probe()
    shutil.rmtree(cache, ignore_errors=True)  # pytest keeps tmp folders for three runs: not GBs of weights


@pytest.fixture(scope="session")
def road_homes(tmp_path_factory):
    """MASUKA homes holding one model's downloads at a time (tests/real/road.py: Homes)."""
    from tests.real.road import Homes

    homes = Homes(tmp_path_factory.mktemp("road"))
    yield homes
    homes.release()


def pytest_collection_modifyitems(config, items):
    """The road's tests run model by model (its plans, downloads, encoders, steps, training, in that order),
    so each model's downloads are made once and deleted before the next model's begin."""
    from tests.real.road import REAL

    def model_of(item) -> str | None:
        params = getattr(getattr(item, "callspec", None), "params", {})
        case = params.get("case")
        return (getattr(case, "model", None) or params.get("model") or params.get("base")
                or (params.get("bases") or [None])[0])

    road = [i for i in items if "test_real_road" in i.nodeid.split("::")[0] or "test_real_train" in i.nodeid]
    if not road:
        return
    order = {id(item): n for n, item in enumerate(items)}
    first = min(order[id(i)] for i in road)
    rank = {m: n for n, m in enumerate(REAL)}
    road.sort(key=lambda i: (rank.get(model_of(i), -1), order[id(i)]))
    rest = [i for i in items if id(i) not in {id(r) for r in road}]
    items[:] = rest[:first] + road + rest[first:]
