"""Loopback fakes of every hosted API MASUKA calls, each speaking its provider's contract.

    with FAKES["runway"](complete_after=0.5) as fake:
        os.environ["MASUKA_RUNWAY_BASE_URL"] = fake.base_url
        ...
        fake.counts["submit"]     # what the provider saw

`python -m masuka_nb.testing.fakes PROVIDER --port PORT [--key KEY]` serves one until stopped
(a simulator for running the video notebook offline; its clips are test patterns, not video).
"""

from __future__ import annotations

from masuka_nb.testing.fakes.base import FakeProvider
from masuka_nb.testing.fakes.cometapi import FakeCometAPI
from masuka_nb.testing.fakes.fal import FakeFal
from masuka_nb.testing.fakes.kling import FakeKling
from masuka_nb.testing.fakes.replicate import FakeReplicate
from masuka_nb.testing.fakes.runway import FakeRunway

__all__ = ["FAKES", "FakeCometAPI", "FakeFal", "FakeKling", "FakeProvider", "FakeReplicate", "FakeRunway", "start_fake"]

FAKES: dict[str, type[FakeProvider]] = {
    "cometapi": FakeCometAPI,
    "runway": FakeRunway,
    "kling": FakeKling,
    "fal": FakeFal,
    "replicate": FakeReplicate,
}


def start_fake(provider: str, **kwargs) -> FakeProvider:
    return FAKES[provider](**kwargs).start()
