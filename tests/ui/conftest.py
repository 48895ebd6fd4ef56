"""Fixtures for the app's tests: real panels, real engines (tiny models, loopback fakes), no mocks."""

from __future__ import annotations

import pytest

ipywidgets = pytest.importorskip("ipywidgets")


@pytest.fixture
def widgets_major() -> int:
    return int(ipywidgets.__version__.split(".")[0])
