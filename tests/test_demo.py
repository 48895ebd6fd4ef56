"""`python -m masuka_nb demo`: what the README says it does (two prompts × two seeds, tiny-flux on a CPU),
and a second run says its images came from the result cache instead of passing them off as new."""

from __future__ import annotations

import pytest

from masuka_nb.__main__ import main


@pytest.mark.slow
def test_demo_makes_four_images_then_says_cached(capsys, masuka_home):
    assert main(["demo", "--steps", "1"]) == 0
    first = capsys.readouterr().out
    assert "model auto: tiny-flux" in first
    assert first.count(".png") == 4 and "4 image(s) generated" in first and "cached" not in first
    assert len(list((masuka_home / "outputs").rglob("*.png"))) == 4

    assert main(["demo", "--steps", "1"]) == 0
    second = capsys.readouterr().out
    assert second.count("(cached:") == 4
    assert "0 image(s) generated, 4 answered from the result cache" in second
