"""Loopback fakes of every hosted API MASUKA calls, each speaking its provider's contract.

    with FAKES["runway"](complete_after=0.5) as fake:
        os.environ["MASUKA_RUNWAY_BASE_URL"] = fake.base_url
        ...
        fake.counts["submit"]     # what the provider saw

`python -m masuka_nb.testing.fakes PROVIDER --port PORT [--key KEY]` serves one until stopped
(a simulator for running the video notebook offline; its clips are test patterns, not video).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from masuka_nb.testing.fakes.base import FakeProvider
from masuka_nb.testing.fakes.civitai import FakeCivitai
from masuka_nb.testing.fakes.cometapi import FakeCometAPI
from masuka_nb.testing.fakes.fal import FakeFal
from masuka_nb.testing.fakes.kling import FakeKling
from masuka_nb.testing.fakes.replicate import FakeReplicate
from masuka_nb.testing.fakes.runway import FakeRunway

__all__ = ["FAKES", "FakeCivitai", "FakeCometAPI", "FakeFal", "FakeKling", "FakeProvider", "FakeReplicate", "FakeRunway", "simulator",
           "start_fake"]

FAKES: dict[str, type[FakeProvider]] = {
    "cometapi": FakeCometAPI,
    "runway": FakeRunway,
    "kling": FakeKling,
    "fal": FakeFal,
    "replicate": FakeReplicate,
    "civitai": FakeCivitai,
}


def start_fake(provider: str, **kwargs) -> FakeProvider:
    return FAKES[provider](**kwargs).start()


KEY_ENV = {"cometapi": ("COMETAPI_KEY",), "runway": ("RUNWAYML_API_SECRET",), "fal": ("FAL_KEY",),
           "replicate": ("REPLICATE_API_TOKEN",), "kling": ("KLING_ACCESS_KEY", "KLING_SECRET_KEY"),
           "civitai": ("CIVITAI_API_TOKEN",)}


@contextlib.contextmanager
def simulator(*providers: str, complete_after: float = 3.0) -> Iterator[dict[str, FakeProvider]]:
    """Run the video notebook offline: start fakes in this process and point MASUKA at them.

    Sets ``MASUKA_<PROVIDER>_BASE_URL`` and, where no key is set, a placeholder key (the fakes accept
    any); everything is restored on exit. Results made this way carry a "SIMULATOR" note.

        with simulator() as fakes:
            VideoGenerator().generate("a fox")
    """
    from masuka_nb.hosted import pricing

    chosen = providers or tuple(FAKES)
    saved = {k: os.environ.get(k) for p in chosen for k in (f"MASUKA_{p.upper()}_BASE_URL", *KEY_ENV[p])}
    started: dict[str, FakeProvider] = {}
    try:
        for p in chosen:
            fake = FAKES[p](complete_after=complete_after).start()
            started[p] = fake
            os.environ[f"MASUKA_{p.upper()}_BASE_URL"] = fake.base_url
            pricing.register_simulator(fake.base_url)  # its clips are free: $0, outside spend and budgets
            for k in KEY_ENV[p]:
                os.environ.setdefault(k, f"simulator-{k.lower()}")
        yield started
    finally:
        for fake in started.values():
            pricing.register_simulator(fake.base_url, active=False)
            fake.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
