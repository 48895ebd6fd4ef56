"""Catalog, normalisation, cost and budget, fallback chains and the circuit breaker."""

from __future__ import annotations

import warnings

import pytest

import masuka_nb
from masuka_nb import jobs
from masuka_nb.errors import MasukaError
from masuka_nb.hosted.catalog import (
    catalog,
    nearest_aspect,
    nearest_duration,
    nearest_resolution,
    resolve_model,
)
from masuka_nb.video.generator import AdjustedRequestWarning, VideoGenerator


def quiet_generate(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VideoGenerator().generate(*args, **kw)


def test_every_route_has_a_dated_sourced_price():
    for mid, entry in catalog()["models"].items():
        for r in entry.get("routes", []):
            assert r["price"] and r["price_date"] and r["price_source"], (mid, r["provider"])
            # sources are public addresses, never paths inside this repository
            assert "https://" in r["price_source"] and "shared/" not in r["price_source"], (mid, r["provider"])
    _, routes, _ = resolve_model("veo3-pro")
    assert [r.provider for r in routes] == ["cometapi", "runway"]


def test_seed_ids_map_to_real_models():
    assert resolve_model("sora-2-hd")[0] == "sora-2-pro"
    assert resolve_model("runway-gen4")[0] == "gen4_turbo"
    mid, routes, prefer = resolve_model("veo3.1")
    assert mid == "veo-3.1" and prefer == "runway" and routes[0].provider == "runway"
    assert resolve_model("veo3-pro")[0] == "veo-3.1" and resolve_model("veo3-fast")[0] == "veo-3.1-fast"


def test_haiper_is_listed_unavailable_with_reason():
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="haiper-2")
    assert info.value.code == "PROVIDER_UNAVAILABLE" and "sold" in str(info.value)
    assert "unavailable" in masuka_nb.video.list_video_models()["haiper-2"]


def test_unknown_model_suggests():
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="sora2")
    assert info.value.code == "MODEL_NOT_FOUND" and "sora-2" in str(info.value)


def test_nearest_choices():
    assert nearest_duration(5, (4, 8, 12)) == 4
    assert nearest_duration(6, (4, 8)) == 8  # ties go to the longer clip
    assert nearest_resolution("1080p", ["720p"]) == "720p"
    assert nearest_resolution("1080p", ["720p", "1024p"]) == "1024p"
    assert nearest_resolution("480p", ["720p", "1080p"]) == "720p"
    assert nearest_aspect("16:10", ["16:9", "9:16", "1:1"]) == "16:9"


def test_estimate_tells_changes_and_sends_nothing(fakes):
    fake = fakes("cometapi")
    est = VideoGenerator().estimate("x", model="sora-2", seconds=5, resolution="1080p", motion_intensity=0.7)
    assert est.seconds == 4 and est.resolution == "720p" and est.usd == pytest.approx(0.40)
    assert any("duration 5 s → 4 s" in c for c in est.changes)
    assert any("1080p → 720p" in c for c in est.changes)
    assert any("motion_intensity=0.7 is ignored" in n for n in est.notes)
    assert est.price_date and "cometapi.com" in est.price_source
    assert sum(fake.counts.values()) == 0
    assert "≈ $0.40" in str(est)


def test_fallback_prices_are_listed(keys, monkeypatch):
    est = VideoGenerator().estimate("x", model="veo3-pro", seconds=8)
    assert est.provider == "cometapi" and est.alternatives[0][0] == "runway"
    assert not any("will be skipped" in n for n in est.notes)
    monkeypatch.delenv("COMETAPI_KEY")
    est = VideoGenerator().estimate("x", model="veo3-pro", seconds=8)
    assert any("no COMETAPI_KEY set" in n for n in est.notes)


def test_adjustment_is_warned_before_paying(fakes):
    fakes("cometapi")
    with pytest.warns(AdjustedRequestWarning, match="duration 5 s"):
        VideoGenerator().submit("a fox", model="sora-2", seconds=5, resolution="720p")


def test_strict_refuses_a_changed_request(fakes):
    fake = fakes("cometapi")
    with pytest.raises(MasukaError) as info:
        VideoGenerator(strict=True).generate("a fox", model="veo-3.1-fast", seconds=5)
    assert info.value.code == "INVALID_REQUEST" and sum(fake.counts.values()) == 0
    masuka_nb.configure(strict=True)
    with pytest.raises(MasukaError):
        VideoGenerator().generate("a fox", model="veo-3.1-fast", resolution="720p")
    result = VideoGenerator().generate("a fox", model="veo-3.1-fast", seconds=8, resolution="1080p")
    assert result.seconds == 8


def test_image_only_route_needs_an_image():
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="gen4_turbo")
    assert info.value.code == "INVALID_REQUEST" and "takes image to video, not text to video" in str(info.value)


def test_max_cost_refuses_before_anything_is_sent(fakes):
    fake = fakes("cometapi")
    with pytest.raises(MasukaError) as info:
        VideoGenerator().generate("a fox", model="sora-2-pro", seconds=12, resolution="1024p", max_cost=1.0)
    assert info.value.code == "BUDGET_EXCEEDED" and info.value.argument == "max_cost"
    assert sum(fake.counts.values()) == 0 and jobs.list() == []


def test_session_budget(fakes):
    fake = fakes("cometapi")
    masuka_nb.configure(budget_usd=0.5)
    quiet_generate("a fox", model="sora-2", seconds=4)
    with pytest.raises(MasukaError) as info:
        quiet_generate("a fox", model="sora-2", seconds=4)
    assert info.value.code == "BUDGET_EXCEEDED" and info.value.argument == "budget_usd"
    assert fake.counts["submit"] == 1


def test_failed_job_is_refunded(fakes):
    from masuka_nb.hosted import pricing as cost

    fake = fakes("cometapi")
    fake.inject("outcome", action="fail")
    with pytest.raises(MasukaError):
        quiet_generate("a fox", model="sora-2", seconds=4)
    assert cost.session_spent() == 0.0
    quiet_generate("a fox", model="sora-2", seconds=4)
    assert cost.session_spent() == pytest.approx(0.40)


def test_fallback_while_nothing_was_accepted(fakes):
    comet, runway = fakes("cometapi"), fakes("runway")
    comet.inject("submit", status=503, times=100)
    result = quiet_generate("a fox", model="veo3-pro", seconds=8)
    assert result.provider == "runway" and result.path.read_bytes() == runway.video
    assert not comet.jobs and runway.counts["submit"] == 1
    rec = jobs.get(result.job_id).record
    assert rec.attempts[0]["provider"] == "cometapi" and rec.attempts[0]["error"] == "PROVIDER_UNAVAILABLE"


def test_missing_key_falls_back(fakes, monkeypatch):
    fakes("cometapi")
    runway = fakes("runway")
    monkeypatch.delenv("COMETAPI_KEY")
    result = quiet_generate("a fox", model="veo3-pro", seconds=8)
    assert result.provider == "runway" and runway.counts["submit"] == 1


@pytest.mark.parametrize("fault", [{"status": 422}, {"action": "reset"}], ids=["content-policy", "maybe-accepted"])
def test_no_fallback_after_policy_refusal_or_possible_acceptance(fault, fakes):
    comet, runway = fakes("cometapi"), fakes("runway")
    comet.inject("submit", **fault)
    with pytest.raises(MasukaError):
        quiet_generate("a fox", model="veo3-pro", seconds=8)
    assert runway.counts["submit"] == 0 and comet.counts["submit"] == 1


def test_circuit_breaker_opens_then_probes(fakes):
    from masuka_nb.hosted.http import breaker_for

    masuka_nb.configure(breaker_threshold=3, breaker_cooldown=30)
    now = [1000.0]
    breaker_for("cometapi").clock = lambda: now[0]  # the cooldown passes when the test says so
    comet, runway = fakes("cometapi"), fakes("runway")
    comet.inject("submit", status=503, times=4)
    gen = VideoGenerator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert gen.submit("a fox", model="veo3-pro", seconds=8).provider == "runway"
        assert breaker_for("cometapi").state == "open"
        seen = comet.counts["submit"]
        assert gen.submit("a fox", model="veo3-pro", seconds=8).provider == "runway"
    assert comet.counts["submit"] == seen  # skipped while open
    assert runway.counts["submit"] == 2
    now[0] += 30.1
    result = quiet_generate("a fox", model="veo3-pro", seconds=8)  # one probe; comet is healthy again
    assert result.provider == "cometapi" and breaker_for("cometapi").state == "closed"


def test_provider_filter(fakes):
    fakes("runway")
    result = quiet_generate("a fox", model="veo3-pro", provider="runway", seconds=6)
    assert result.provider == "runway" and result.seconds == 6
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="gen4.5", provider="cometapi")
    assert info.value.code == "INVALID_REQUEST"


def test_sora_image_reference_is_sent_at_the_clip_size(fakes, image):
    fake = fakes("cometapi")
    result = quiet_generate("a fox", model="sora-2", image=image, seconds=4, aspect_ratio="9:16")
    assert result.path.exists() and fake.counts["submit"] == 1  # the fake refuses a reference of another size


@pytest.mark.parametrize("shape", ["plain", "wrapped"])
def test_runway_through_cometapi_parses_both_shapes(shape, fakes, image):
    fake = fakes("cometapi", runway_shape=shape, task_not_exist_for=0.1)
    result = quiet_generate("a fox", model="gen4_turbo", provider="cometapi", image=image)
    assert result.path.read_bytes() == fake.video


def test_image_url_is_passed_through(fakes):
    fake = fakes("runway")
    quiet_generate("a fox", model="gen4_turbo", provider="runway", image="https://example.com/cat.jpg")
    [job] = fake.jobs.values()
    assert job.input["promptImage"] == "https://example.com/cat.jpg"


def test_large_local_image_fits_the_data_uri_limit(fakes, tmp_path):
    import numpy as np
    from PIL import Image

    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2400, 3200, 3), dtype=np.uint8))
    path = tmp_path / "big.png"
    noisy.save(path)
    assert path.stat().st_size > 5 * 1024 * 1024
    fake = fakes("runway")
    quiet_generate("a fox", model="gen4_turbo", provider="runway", image=path)
    [job] = fake.jobs.values()
    assert job.input["promptImage"].startswith("data:image/jpeg;base64,")
    assert len(job.input["promptImage"]) <= 5 * 1024 * 1024 * 4 // 3


def test_fal_generic_app_runner(fakes):
    from masuka_nb.hosted.providers.fal import run_app

    fake = fakes("fal")
    out = run_app("fal-ai/flux-lora", {"prompt": "a fox", "num_images": 1})
    assert out["echo"]["prompt"] == "a fox"
    [rec] = [j.record for j in jobs.list()]
    assert rec.kind == "app" and rec.state == "completed" and fake.counts["submit"] == 1


def test_simulator_results_are_labelled_and_progress_is_reported(fakes):
    from masuka_nb.progress import collect_events

    fakes("runway")
    events, sink = collect_events()
    result = quiet_generate("a fox", model="gen4.5", provider="runway", progress=sink)
    assert any(n.startswith("SIMULATOR") for n in result.notes)
    stages = [e.stage for e in events]
    assert stages[0] == "submit" and any(s.startswith("download") for s in stages)
    assert events[-1].fraction == 1.0


def test_veo_first_and_last_frame(fakes, image):
    from PIL import Image

    fake = fakes("cometapi")
    last = Image.new("RGB", (640, 360), (10, 10, 10))
    result = quiet_generate("a fox", model="veo3-fast", image=(image, last), seconds=8)
    [job] = fake.jobs.values()
    assert job.input["references"] == 2 and result.provider == "cometapi"
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="gen4_turbo", image=(image, last))
    assert info.value.code == "INVALID_REQUEST" and "last frame" in str(info.value)


def test_missing_keys_for_every_route_are_all_named(monkeypatch):
    for name in ("COMETAPI_KEY", "RUNWAYML_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MasukaError) as info:
        quiet_generate("waves", model="veo3-pro", seconds=8)
    err = info.value
    assert err.code == "SECRET_MISSING"
    assert "COMETAPI_KEY (cometapi)" in str(err) and "RUNWAYML_API_SECRET (runway)" in str(err)
    records = jobs.list()
    assert records and all(j.state == "failed" for j in records)  # nothing was sent, nothing is pending
