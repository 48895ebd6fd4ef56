"""The HTTP layer on its own: Retry-After forms, backoff caps, error envelopes, breaker states, redaction."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from masuka_nb.config import HttpTiming
from masuka_nb.hosted.http import CircuitBreaker, error_from_response, parse_retry_after
from masuka_nb.secrets import register_secret


def test_retry_after_forms():
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"openai-poll-after-ms": "1500"}) == 1.5
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after({"Retry-After": date}, now=now) <= 31
    assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_is_jittered_and_capped():
    timing = HttpTiming(backoff=1.0, backoff_max=4.0)
    delays = [timing.delay(n) for n in range(10) for _ in range(20)]
    assert max(delays) <= 4.0 and min(delays) >= 0.0
    assert len({round(d, 6) for d in delays}) > 50  # jitter spreads clients apart


def response(status, body=None, headers=None, text=None):
    req = httpx.Request("POST", "https://api.example/v1/x")
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=req)
    return httpx.Response(status, json=body, headers=headers, request=req)


@pytest.mark.parametrize("status,body,headers,code", [
    (401, {"error": {"message": "Invalid token (request id: abc123)", "type": "comet_api_error", "code": ""}}, {}, "PROVIDER_AUTH"),
    (400, {"error": "Invalid parameter 'promptText'"}, {}, "INVALID_REQUEST"),
    (429, {"detail": "Request was throttled. Your rate limit resets in ~30s."}, {"Retry-After": "30"}, "PROVIDER_RATE_LIMITED"),
    (422, {"detail": [{"loc": ["body", "prompt"], "msg": "flagged", "type": "content_policy_violation"}]}, {}, "PROVIDER_REJECTED_CONTENT"),
    (500, {"error": {"message": "bad model", "type": "comet_api_error", "code": "invalid_request"}}, {}, "INVALID_REQUEST"),
    (524, {"error": {"message": "timeout", "type": "comet_api_error", "code": ""}}, {}, "PROVIDER_UNAVAILABLE"),
    (404, {"title": "Not found", "detail": "The specified training destination does not exist", "status": 404}, {}, "PROVIDER_UNAVAILABLE"),
    (410, {"detail": "gone"}, {}, "JOB_EXPIRED"),
])
def test_error_envelopes(status, body, headers, code):
    err = error_from_response("prov", response(status, body, headers), op="submit")
    assert err.code == code
    assert err.details["status"] == status and err.details["provider"] == "prov"


def test_reason_and_request_id_are_kept():
    err = error_from_response("cometapi", response(401, {"error": {"message": "Invalid token (request id: r-42)",
                                                                    "type": "comet_api_error", "code": ""}}))
    assert "Invalid token" in str(err) and err.details["request_id"] == "r-42"
    err = error_from_response("fal", response(503, {"detail": "busy"}, {"x-fal-request-id": "fal-9"}))
    assert err.details["request_id"] == "fal-9" and "(request id fal-9)" in str(err)


def test_html_answer_points_at_the_base_url():
    err = error_from_response("cometapi", response(301, text="<html>moved</html>", headers={"content-type": "text/html"}))
    assert err.code == "PROVIDER_BAD_RESPONSE" and "base URL" in str(err)


def test_poll_and_download_statuses():
    assert error_from_response("p", response(404, {"detail": "x"}), op="poll").code == "JOB_NOT_FOUND"
    assert error_from_response("p", response(403, text="<Error>expired</Error>"), op="download").code == "JOB_EXPIRED"


def test_secret_in_a_provider_reply_is_redacted():
    key = "sk-live-abcdefghijklmnop"
    register_secret(key)
    err = error_from_response("p", response(400, {"error": f"bad key {key}"}))
    assert key not in str(err) and key not in repr(err.to_dict()) and "***" in str(err)


class FakeClock:
    """A monotonic clock the test moves by hand: breaker timing without sleeps (robust on a loaded machine)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_breaker_states():
    clock = FakeClock()
    b = CircuitBreaker("x", threshold=2, cooldown=30.0, clock=clock)
    assert b.allow()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    clock.advance(29.9)
    assert b.state == "open" and not b.allow()
    clock.advance(0.2)
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()
    assert b.state == "open"
    clock.advance(30.0)
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_download_of_a_complete_part_file_is_not_fetched_again(tmp_path):
    from masuka_nb.hosted.http import ProviderClient
    from masuka_nb.testing.fakes import FakeRunway

    with FakeRunway() as fake:
        job = fake.new_job("video", {})
        part = tmp_path / "clip.mp4.part"
        part.write_bytes(fake.video)
        with ProviderClient("runway", fake.base_url) as client:
            result = client.download(fake.download_url(job), part)
        assert result.bytes == len(fake.video) and part.read_bytes() == fake.video
        assert fake.ranges == [f"bytes={len(fake.video)}-"]


def test_download_restarts_when_the_server_ignores_range(tmp_path):
    from masuka_nb.hosted.http import ProviderClient
    from masuka_nb.testing.fakes import FakeRunway

    with FakeRunway() as fake:
        job = fake.new_job("video", {})
        part = tmp_path / "clip.mp4.part"
        part.write_bytes(b"stale bytes from another file")
        fake.inject("download", status=200, body=fake.video, headers={"Content-Type": "video/mp4"})
        with ProviderClient("runway", fake.base_url) as client:
            client.download(fake.download_url(job), part)
        assert part.read_bytes() == fake.video


def test_mp4_check_and_first_frame(tmp_path):
    from masuka_nb.testing.media import tiny_mp4
    from masuka_nb.video.media import first_frame, is_mp4

    data = tiny_mp4(frames=3, width=48, height=32)
    good, cut, other = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    good.write_bytes(data)
    cut.write_bytes(data[:-7])
    other.write_bytes(b"<html>not a video</html>")
    assert is_mp4(good) and not is_mp4(cut) and not is_mp4(other)
    frame = first_frame(good)
    assert frame is not None and frame.size == (48, 32)


def test_keys_go_only_to_the_provider_host(tmp_path):
    from masuka_nb.hosted.http import ProviderClient
    from masuka_nb.testing.fakes import FakeRunway

    with FakeRunway() as fake:
        job = fake.new_job("video", {})
        cdn_url = fake.download_url(job).replace("127.0.0.1", "localhost")  # same server, another host name
        with ProviderClient("runway", fake.base_url, headers={"Authorization": "Bearer sk-host-only-123456"}) as client:
            client.send("GET", f"/v1/tasks/{job.id}", op="poll")
            client.download(cdn_url, tmp_path / "v.part")
        assert fake.auth_seen == [(f"/v1/tasks/{job.id}", True), (f"/cdn/{job.id}/video.mp4", False)]
