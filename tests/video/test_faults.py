"""Every fault the fakes can inject, against every provider, through VideoGenerator over real sockets.

Each test checks the error code, what the provider saw (how many submits: nothing paid twice) and
what MASUKA kept (job record, history, file): nothing lost.
"""

from __future__ import annotations

import warnings

import pytest
from video_helpers import VIDEO_ROUTES

from masuka_nb import history, jobs
from masuka_nb.errors import MasukaError
from masuka_nb.video.generator import VideoGenerator

PROVIDERS = list(VIDEO_ROUTES)


def run(provider, image, **kw):
    model, needs_image = VIDEO_ROUTES[provider]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VideoGenerator().generate("a red fox in fresh snow", model=model, provider=provider,
                                         image=image if needs_image else None, duration=5, **kw)


def fail(provider, image, code):
    with pytest.raises(MasukaError) as info:
        run(provider, image)
    assert info.value.code == code, str(info.value)
    return info.value


def only_record():
    records = jobs.list()
    assert len(records) == 1
    return records[0].record


def assert_complete(result, fake):
    assert result.path.read_bytes() == fake.video
    rec = only_record()
    assert rec.state == "completed" and rec.paths["video"] == str(result.path)
    assert fake.counts["submit"] == 1 and len(fake.jobs) == 1
    [h] = history.query(kind="video")
    assert h.status == "ok" and str(result.path) in h.paths


@pytest.mark.parametrize("provider", PROVIDERS)
def test_happy_path_downloads_records_and_costs(provider, fakes, image):
    fake = fakes(provider)
    result = run(provider, image)
    assert_complete(result, fake)
    assert result.provider == provider and result.cost and result.cost > 0
    assert result.thumbnail is not None and result.thumbnail.exists()
    assert not list(result.path.parent.glob("*.part"))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [401, 403])
def test_submit_auth_refusal(provider, status, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", status=status)
    err = fail(provider, image, "PROVIDER_AUTH")
    assert err.details["status"] == status
    assert fake.counts["submit"] == 1 and not fake.jobs
    assert only_record().state == "failed"
    assert history.query(kind="video", status="failed")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_key_is_auth_error(provider, fakes, image, monkeypatch):
    fakes(provider)
    from video_helpers import KEY_NAMES

    monkeypatch.setenv(KEY_NAMES[provider][-1], "sk-wrong-key-000000")
    fail(provider, image, "PROVIDER_AUTH")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_404_is_unavailable_and_not_retried(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", status=404)
    fail(provider, image, "PROVIDER_UNAVAILABLE")
    assert fake.counts["submit"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_poll_404_becomes_job_not_found_after_grace(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("status", status=404, times=1000)
    fail(provider, image, "JOB_NOT_FOUND")
    assert fake.counts["submit"] == 1
    assert only_record().state == "failed"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_content_policy(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", status=422)
    err = fail(provider, image, "PROVIDER_REJECTED_CONTENT")
    assert err.argument == "prompt"
    assert fake.counts["submit"] == 1 and not fake.jobs


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("outcome,code", [("policy", "PROVIDER_REJECTED_CONTENT"), ("fail", "JOB_FAILED")])
def test_job_fails_at_provider(provider, outcome, code, fakes, image):
    fake = fakes(provider)
    fake.inject("outcome", action=outcome)
    fail(provider, image, code)
    rec = only_record()
    assert rec.state == "failed" and rec.error["code"] == code
    assert rec.cost_usd == 0.0
    assert fake.counts["submit"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("headers", [{"retry-after-ms": "20"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, {}],
                         ids=["retry-after-ms", "retry-after-past-date", "no-header"])
def test_submit_429_is_retried(provider, headers, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", status=429, headers=headers, times=2)
    result = run(provider, image)
    assert fake.counts["submit"] == 3 and len(fake.jobs) == 1
    assert result.path.read_bytes() == fake.video


def test_retry_after_seconds_is_honoured(fakes, image):
    fake = fakes("replicate")
    fake.inject("submit", status=429, headers={"Retry-After": "1"})
    result = run("replicate", image)
    assert result.path.exists() and fake.counts["submit"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_429_persistent_is_rate_limited(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", status=429, times=100)
    fail(provider, image, "PROVIDER_RATE_LIMITED")
    assert not fake.jobs


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_poll_5xx_is_retried(provider, status, fakes, image):
    fake = fakes(provider)
    fake.inject("status", status=status, times=2)
    assert_complete(run(provider, image), fake)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_503_persistent_is_unavailable(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", status=503, times=100)
    fail(provider, image, "PROVIDER_UNAVAILABLE")
    assert not fake.jobs and only_record().state == "failed"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_gateway_error_is_never_repeated(provider, fakes, image):
    """A 502 may hide an accepted job: never ask again (fal: only when it came from fal's app, not its proxy)."""
    fake = fakes(provider)
    fake.inject("submit", status=502)
    if provider == "fal":  # no x-fal-request-id: fal's proxy answered, the app never saw it
        result = run(provider, image)
        assert result.path.read_bytes() == fake.video
        assert fake.counts["submit"] == 2 and len(fake.jobs) == 1
        return
    err = fail(provider, image, "PROVIDER_UNAVAILABLE")
    assert err.details.get("maybe_accepted") is True
    assert fake.counts["submit"] == 1
    assert only_record().state == "needs_attention"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_slow_poll_is_retried(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("status", action="slow", delay=1.0)
    assert_complete(run(provider, image), fake)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_slow_submit_times_out_without_resubmitting(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", action="slow", delay=1.0)
    err = fail(provider, image, "PROVIDER_TIMEOUT")
    assert err.details["maybe_accepted"] is True
    assert fake.counts["submit"] == 1 and len(fake.jobs) == 1  # the provider did take it
    rec = only_record()
    assert rec.state == "needs_attention" and rec.error["code"] == "PROVIDER_TIMEOUT"
    assert jobs.resume_all() == []  # an unknown job is never resubmitted
    assert fake.counts["submit"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_reset_on_poll_is_retried(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("status", action="reset", times=2)
    assert_complete(run(provider, image), fake)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_reset_on_submit_is_not_repeated(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", action="reset")
    err = fail(provider, image, "PROVIDER_UNAVAILABLE")
    assert err.details["maybe_accepted"] is True
    assert fake.counts["submit"] == 1 and only_record().state == "needs_attention"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_json_on_poll_is_retried(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("status", action="malformed", times=2)
    assert_complete(run(provider, image), fake)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_malformed_json_on_submit_is_bad_response(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", action="malformed")
    fail(provider, image, "PROVIDER_BAD_RESPONSE")
    assert fake.counts["submit"] == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_html_redirect_is_bad_response(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("submit", action="html")
    err = fail(provider, image, "PROVIDER_BAD_RESPONSE")
    assert "base URL" in str(err)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_truncated_download_resumes_with_range(provider, fakes, image):
    from masuka_nb.testing.media import tiny_mp4

    fake = fakes(provider, video=tiny_mp4(frames=4, pad_to=300_000))
    fake.inject("download", action="truncate")
    result = run(provider, image)
    assert result.path.read_bytes() == fake.video
    assert any(r.startswith("bytes=") and r != "bytes=0-" for r in fake.ranges)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_expired_result_url(provider, fakes, image):
    fake = fakes(provider)
    fake.inject("download", action="expire")
    fail(provider, image, "JOB_EXPIRED")
    rec = only_record()
    assert rec.state == "expired" and rec.provider_job_id in fake.jobs
    assert fake.counts["submit"] == 1


@pytest.mark.parametrize("provider", ["runway", "fal", "replicate"])
def test_cancel_reaches_the_provider(provider, fakes, image):
    fake = fakes(provider, complete_after=30)
    model, needs_image = VIDEO_ROUTES[provider]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        job = VideoGenerator().submit("a fox", model=model, provider=provider, image=image if needs_image else None)
    job.cancel()
    assert fake.counts["cancel"] == 1
    assert all(j.cancelled for j in fake.jobs.values())
    assert jobs.get(job.id).state == "cancelled"
    assert history.query(kind="video", status="cancelled")


def test_openai_poll_after_ms_paces_polling(fakes):
    fake = fakes("cometapi", complete_after=0.6, poll_after_ms=200)
    run("cometapi", None)
    assert fake.counts["status"] <= 6  # 0.6 s at the provider's 200 ms pace, not our 20 ms one


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status,code", [(429, "PROVIDER_RATE_LIMITED"), (503, "PROVIDER_UNAVAILABLE")])
def test_outage_while_polling_keeps_the_job_resumable(provider, status, code, fakes, image):
    fake = fakes(provider)
    fake.inject("status", status=status, times=100)
    fail(provider, image, code)
    rec = only_record()
    assert rec.state in ("submitted", "running") and rec.provider_job_id
    fake.clear_faults()
    [job] = jobs.resume_all()
    assert job.state == "completed" and job.result().path.read_bytes() == fake.video
    assert fake.counts["submit"] == 1
