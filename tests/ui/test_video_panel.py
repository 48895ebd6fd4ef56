"""The Video tab against the real hosted-video engine and a loopback CometAPI fake (real httpx, real sockets)."""

from __future__ import annotations

import pytest

import masuka_nb as mk
from masuka_nb.history import query
from masuka_nb.testing import fakes

KEY = "sk-ui-canary-7f3a9c2e51"


@pytest.fixture
def comet(monkeypatch):
    with fakes.FakeCometAPI(key=KEY, complete_after=0.2) as fake:
        monkeypatch.setenv("MASUKA_COMETAPI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MASUKA_POLL_INTERVAL", "0.05")
        monkeypatch.setenv("COMETAPI_KEY", KEY)
        # the Runway fallback must never be reached in these tests: no key, no base URL
        monkeypatch.delenv("RUNWAYML_API_SECRET", raising=False)
        yield fake


def _panel(**values):
    ui = mk.app(display=False)
    panel = ui.video
    panel.prompt.value = "a slow dolly shot through a neon market in the rain"
    panel.model.value = "veo3-fast"
    for key, value in values.items():
        getattr(panel, key).value = value
    return ui, panel


def test_estimate_then_generate_plays_the_clip_and_records_it(comet):
    ui, panel = _panel()
    # Veo on CometAPI makes 8 s clips: the form offers only that, so nothing changes behind the user's back
    assert [v for _, v in panel.duration.options] == [8]
    assert f"${panel.estimate_result.usd:.2f}" in panel.cost_badge.value  # the cost in sight before any click
    panel.estimate_button.click()
    assert panel.last_error is None, panel.last_error
    est = panel.estimate_result
    assert est.seconds == 8 and est.usd > 0
    assert "CHANGED" not in panel.cost.value and f"{est.usd:.2f}" in panel.cost.value
    assert comet.counts["submit"] == 0  # an estimate sends nothing

    panel.generate_button.click()
    assert panel.last_error is None, panel.last_error
    result = panel.result
    assert result.path.is_file() and panel.player.value == result.path.read_bytes()
    assert panel.player.layout.display == "" and "cometapi" in panel.result_info.value
    assert "SIMULATOR" in panel.result_info.value  # the engine's notes, shown in the tab
    assert comet.counts["submit"] == 1
    assert panel.progress.events and panel.progress.bar.value == 1000
    assert "completed" in panel.jobs_html.value
    rec = query(kind="video")[0]
    assert rec.status == "ok" and rec.extra["cost_usd"] == pytest.approx(est.usd)
    ui.select("History")  # the clip is in the history, with its thumbnail and a player
    assert ui.history.records[0].kind == "video"
    ui.history.select(ui.history.records[0])
    assert ui.history.player.value == result.path.read_bytes() and ui.history.player.layout.display == ""
    ui.dashboard.refresh_button.click()
    assert f"${est.usd:.2f}" in ui.dashboard.stats_html.value
    assert KEY not in panel.jobs_html.value + panel.result_info.value + panel.notice.value


def test_missing_key_and_budget_errors_are_shown_before_anything_is_paid(comet, monkeypatch):
    _ui, panel = _panel(max_cost=0.5)
    panel.generate_button.click()
    assert panel.last_error.code == "BUDGET_EXCEEDED" and panel.last_error.hint
    assert 'data-code="BUDGET_EXCEEDED"' in panel.notice.value
    monkeypatch.delenv("COMETAPI_KEY")
    panel.max_cost.value = 0
    panel.generate_button.click()
    assert panel.last_error.code == "SECRET_MISSING", panel.last_error
    assert "Secrets" in panel.notice.value  # the hint says where to add the key
    assert comet.counts["submit"] == 0


def test_content_policy_rejection_is_reported_with_the_providers_reason(comet):
    comet.inject("outcome", action="policy")
    _ui, panel = _panel()
    panel.generate_button.click()
    assert panel.last_error is not None and panel.last_error.code.startswith(("PROVIDER_REJECTED", "JOB_FAILED"))
    assert panel.result is None and panel.progress.bar.bar_style == "warning"


def test_resume_button_finishes_a_job_submitted_before_a_restart(comet):
    job = mk.VideoGenerator().submit("waves at night", model="veo3-fast", duration=8)
    assert not job.done
    ui, panel = _panel()  # a new app, as after a kernel restart
    assert job.id not in panel.jobs_html.value  # building the app reads no job store (it starts light)
    ui.select("Video")
    assert job.id in panel.jobs_html.value and "$" in panel.cost_badge.value  # opening the tab fills both
    panel.resume_button.click()
    assert panel.last_error is None, panel.last_error
    assert "1 of 1 resumed job finished" in panel.notice.text
    assert panel.player.value[:12] and comet.counts["submit"] == 1  # resumed, never resubmitted
    panel.resume_button.click()
    assert panel.notice.text == "No unfinished jobs."
