"""The Video tab against the real hosted-video engine and loopback fakes (real httpx, real sockets): a
short model list with prices, controls only where the model has them, every check before the price is
confirmed, $0 from the offline simulator, Resume, and a local clip stopped mid-run."""

from __future__ import annotations

import pytest

import masuka_nb as mk
from masuka_nb.history import query
from masuka_nb.hosted import pricing
from masuka_nb.testing import fakes
from masuka_nb.ui.helpers import visible_text

KEY = "sk-ui-canary-7f3a9c2e51"


@pytest.fixture
def comet(monkeypatch):
    """A loopback CometAPI standing in for the paid service: its clips keep their real price."""
    with fakes.FakeCometAPI(key=KEY, complete_after=0.2) as fake:
        monkeypatch.setenv("MASUKA_COMETAPI_BASE_URL", fake.base_url)
        monkeypatch.setenv("MASUKA_POLL_INTERVAL", "0.05")
        monkeypatch.setenv("COMETAPI_KEY", KEY)
        monkeypatch.delenv("RUNWAYML_API_SECRET", raising=False)  # the Runway fallback must never be reached
        yield fake


def _panel(**values):
    ui = mk.app(display=False, background=False)
    panel = ui.video
    panel.prompt.value = "a slow dolly shot through a neon market in the rain"
    panel.model.value = "veo-3.1-fast"
    for key, value in values.items():
        getattr(panel, key).value = value
    return ui, panel


def test_the_model_list_is_short_grouped_and_priced():
    _ui, panel = _panel()
    labels = [label for label, _ in panel.model.options]
    ids = [mid for _, mid in panel.model.options]
    assert not {"sora-2", "sora-2-pro", "sora-2-hd", "veo3-fast", "veo3-pro", "kling-3", "haiper-2"} & set(ids)
    # one entry per model (no aliases); the December 2026 catalog has 18 current ones
    titles = [label.split(" · ")[1] for label in labels]
    assert len(set(titles)) == len(titles) and len(ids) <= 18, titles
    assert ids[0].startswith(("tiny-wan", "wan"))  # free, on this machine, first
    # an offline test model says it makes noise; the provider is said once (not "fal · Kling … on fal")
    assert all("makes noise" in label for label, mid in panel.model.options if mid.startswith("tiny-"))
    assert not [label for label in labels if " on " + label.split(" · ")[0] + " " in label], labels
    hosted = [label for label in labels if not label.startswith("This machine")]
    assert all(" per " in label and "$" in label for label in hosted), hosted
    assert [label.split(" · ")[0] for label in hosted] == sorted((label.split(" · ")[0] for label in hosted),
                                                                key=str.lower)
    # retired models still work from code: only the list leaves them out
    assert mk.VideoGenerator().estimate("x", model="sora-2").model == "sora-2"


def test_controls_follow_the_model():
    _ui, panel = _panel()
    assert panel.duration.layout.display == "none" and "8 s clips" in panel.model_info.value  # Veo: 8 s only
    assert panel.motion.layout.display == "none"  # no motion control on Veo: none shown
    panel.model.value = "svd-1.1"
    assert panel.motion.layout.display == "" and "required" in panel.image.placeholder
    panel.model.value = "kling-v3"
    assert panel.duration.layout.display == "" and len(panel.duration.options) > 1
    panel.model.value = "tiny-wan"
    assert panel.steps.layout.display == "" and panel.max_cost.layout.display == "none"
    assert panel.image.layout.display == "none"  # text-to-video only
    panel.model.value = "tiny-wan-i2v"
    assert panel.image.layout.display == ""


def test_a_local_model_s_price_line_says_the_steps_it_will_run():
    _ui, panel = _panel(model="tiny-wan")
    assert "Free" in panel.cost_badge.value and f"· {panel.steps.value} steps" in panel.cost_badge.value
    panel.steps.value = 60  # what the user typed is what the line (and the run) says
    assert "· 60 steps" in panel.cost_badge.value
    panel.model.value = "veo-3.1-fast"
    assert "steps" not in panel.cost_badge.value  # a hosted clip is priced by its seconds


def test_a_paid_clip_asks_once_after_every_check_then_plays(comet, masuka_home, tmp_path):
    from PIL import Image

    ui, panel = _panel()
    ui.select("Video")
    est = panel.estimate_result
    assert f"${est.usd:.2f}" in panel.cost_badge.value and est.usd > 0
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 36), (200, 120, 40)).save(start)
    panel.image.value = str(start)
    assert panel.image_thumb.layout.display == "" and panel.image_thumb.value[:4] == b"\x89PNG"
    panel.image.value = ""
    panel.prompt.value = ""
    panel.generate_button.click()  # an empty prompt is said first, never after asking to pay
    assert "Type a prompt" in panel.form_notice.text and panel.confirm_button.layout.display == "none"
    panel.prompt.value = "waves at night, slow pan"
    panel.generate_button.click()
    assert panel.confirm_button.layout.display == "" and f"${est.usd:.2f}" in panel.confirm_html.value
    assert comet.counts["submit"] == 0  # nothing is sent before the yes
    panel.confirm_button.click()
    assert panel.last_error is None, panel.last_error
    result = panel.result
    assert result.path.is_file() and panel.player.value == result.path.read_bytes()
    assert panel.pane.kind == "video" and "veo-3.1-fast" in panel.pane.caption.value
    assert f"${est.usd:.2f}" in panel.pane.details.value and comet.counts["submit"] == 1
    assert len(panel.feed.runs) == 1 and "done" in panel.jobs_html.value
    rec = query(kind="video")[0]
    assert rec.status == "ok" and rec.extra["cost_usd"] == pytest.approx(est.usd)
    panel.generate_button.click()  # the same request, confirmed before, goes straight through
    assert comet.counts["submit"] == 2 and panel.confirm_button.layout.display == "none"
    assert KEY not in panel.jobs_html.value + panel.pane.details.value + panel.notice.html.value


def test_budget_and_missing_key_are_said_before_anything_is_offered_for_payment(comet, monkeypatch):
    _ui, panel = _panel(max_cost=0.5)
    panel.generate_button.click()
    assert panel.last_error.code == "BUDGET_EXCEEDED" and panel.confirm_button.layout.display == "none"
    assert "BUDGET" not in visible_text(panel.form_notice.html.value) and "Use the default" in panel.form_notice.buttons
    monkeypatch.delenv("COMETAPI_KEY")
    panel.max_cost.value = 0
    panel.generate_button.click()
    assert panel.last_error.code == "SECRET_MISSING", panel.last_error
    assert "Settings" in visible_text(panel.form_notice.html.value) and comet.counts["submit"] == 0
    panel.form_notice.buttons["Add the key in Settings"].click()
    assert _ui.tabs.selected_index == 5


def test_the_offline_simulator_is_free_everywhere(masuka_home, monkeypatch):
    monkeypatch.setenv("MASUKA_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("RUNWAYML_API_SECRET", raising=False)
    pricing.reset_session()
    with fakes.simulator("cometapi", complete_after=0.2) as sims:
        ui, panel = _panel()
        ui.select("Video")
        assert "<b>$0</b>" in panel.cost_badge.value and "simulator" in panel.cost_badge.value
        panel.generate_button.click()  # free: no confirm-and-pay
        assert panel.last_error is None, panel.last_error
        assert sims["cometapi"].counts["submit"] == 1 and panel.confirm_button.layout.display == "none"
        assert "free" in panel.pane.caption.value and "$0 (offline simulator)" in panel.pane.details.value
        assert "$1" not in panel.pane.caption.value + panel.jobs_html.value
        # the caption and notice say the length of the clip received (the simulator sends a 1 s clip
        # whatever was asked), and what was asked for beside it
        asked = panel.duration.value
        assert asked >= 4 and " · 1 s · " in panel.pane.caption.value, panel.pane.caption.value
        assert f" · {asked} s" not in panel.pane.caption.value
        assert "Clip ready: 1 s from" in panel.notice.text and f"you asked for {asked} s" in panel.notice.text
        assert f"1 s (asked for {asked} s)" in panel.pane.details.value
        assert query(kind="video")[0].extra["cost_usd"] == 0.0 and pricing.session_spent() == 0.0
        ui.select("Dashboard")
        assert "$0.00" in ui.dashboard.stats_html.value


def test_a_rejected_prompt_is_reported_in_words(comet):
    comet.inject("outcome", action="policy")
    _ui, panel = _panel()
    panel.generate_button.click()
    panel.confirm_button.click()
    assert panel.last_error is not None and panel.last_error.code.startswith(("PROVIDER_REJECTED", "JOB_FAILED"))
    assert panel.result is None and panel.progress.bar.bar_style == "warning"
    assert "PROVIDER_" not in visible_text(panel.notice.html.value)


def test_resume_button_finishes_a_job_submitted_before_a_restart(comet):
    job = mk.VideoGenerator().submit("waves at night", model="veo3-fast", duration=8)
    assert not job.done
    ui, panel = _panel()  # a new app, as after a kernel restart
    assert panel.jobs_html.value == ""  # building the app reads no job store (it starts light)
    ui.select("Video")
    assert "veo-3.1-fast" in panel.jobs_html.value and "$" in panel.cost_badge.value
    panel.resume_button.click()
    assert panel.last_error is None, panel.last_error
    assert "1 of 1 resumed job finished" in panel.notice.text
    assert panel.player.value[:12] and comet.counts["submit"] == 1  # resumed, never resubmitted
    panel.resume_button.click()
    assert panel.notice.text == "No unfinished jobs."


def test_a_local_clip_stops_mid_run_on_the_worker(masuka_home):
    ui = mk.app(display=False, background=True)
    panel = ui.video
    panel.model.value = "tiny-wan"
    panel.prompt.value = "waves"
    panel.steps.value = 40

    def click_stop(change):
        if change["new"] > 0 and panel.stop_button.layout.display == "":
            panel.stop_button.click()

    panel.progress.bar.observe(click_stop, names="value")
    panel.generate_button.click()
    panel.wait(300)
    run = ui.runner.history[-1]
    assert run.state == "stopped", (run.state, panel.last_error)
    assert "Stopped after" in panel.notice.text and panel.result is None


def test_a_clips_length_is_read_from_its_file():
    from masuka_nb.testing.media import tiny_mp4
    from masuka_nb.ui.video import clip_seconds

    assert clip_seconds(tiny_mp4(frames=8, fps=8)) == 1.0
    assert clip_seconds(tiny_mp4(frames=20, fps=8)) == 2.5
    assert clip_seconds(b"not a clip") is None
