"""Every endpoint MASUKA calls answers with the provider's full documented object, checked field by field.

The objects are transcribed in `masuka_nb.testing.fakes.contracts` from each public API reference (named
there with its date). The fakes are driven over real HTTP, in every state a client sees.
"""

from __future__ import annotations

import io
import time
import zipfile

import httpx
import pytest
from video_helpers import KEY_NAMES

from masuka_nb.testing.fakes.contracts import CONTRACTS, check
from masuka_nb.testing.fakes.replicate import TRAINER, TRAINER_VERSION


def _ok(name: str, body) -> None:
    assert check(name, body) == [], (name, body)


def test_every_contract_names_its_public_reference_and_date():
    for name, spec in CONTRACTS.items():
        assert spec["reference"].startswith("https://") and spec["checked"].startswith("2026-"), name


def test_the_checker_catches_a_missing_field_and_a_wrong_type():
    assert check("runway.task", {"id": "x", "status": "PENDING"}) == ["runway.task: missing `createdAt`"]
    assert "documented" in check("replicate.account", {"type": "user", "username": 3, "name": "n", "github_url": None})[0]
    assert check("runway.task", {"id": "x", "createdAt": "t", "status": "SUCCEEDED"})  # output missing


def _states(fetch, until: str, key=lambda b: b.get("status")) -> list:
    seen, end = [], time.monotonic() + 10
    while time.monotonic() < end:
        body = fetch()
        seen.append(body)
        if key(body) == until:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"never reached {until}: {seen[-1]}")


def test_replicate_answers_its_full_objects(fakes, keys):
    fake = fakes("replicate", complete_after=0.3)
    h = {"Authorization": f"Bearer {keys['REPLICATE_API_TOKEN']}"}
    base = fake.base_url
    _ok("replicate.account", httpx.get(f"{base}/v1/account", headers=h).json())
    _ok("replicate.model", httpx.get(f"{base}/v1/models/{TRAINER}", headers=h).json())
    created = httpx.post(f"{base}/v1/models", headers=h, json={"owner": "me", "name": "lora", "visibility": "private",
                                                                 "hardware": "cpu"})
    assert created.status_code == 201
    _ok("replicate.model", created.json())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.png", b"x")
    up = httpx.post(f"{base}/v1/files", headers=h, files={"content": ("set.zip", buf.getvalue(), "application/zip")})
    assert up.status_code == 201
    _ok("replicate.file", up.json())
    pred = httpx.post(f"{base}/v1/models/kwaivgi/kling-v2.1/predictions", headers=h, json={"input": {"prompt": "x"}})
    assert pred.status_code == 201
    for body in [pred.json(), *_states(lambda: httpx.get(f"{base}/v1/predictions/{pred.json()['id']}", headers=h).json(),
                                      "succeeded")]:
        _ok("replicate.prediction", body)
    train = httpx.post(f"{base}/v1/models/{TRAINER}/versions/{TRAINER_VERSION}/trainings", headers=h,
                       json={"destination": "me/lora", "input": {"input_images": up.json()["urls"]["get"]}})
    if train.status_code == 201:  # the fake checks the zip's images; the object is what matters here
        _ok("replicate.training", train.json())


def test_runway_and_cometapi_answer_their_full_objects(fakes, keys):
    rw = fakes("runway", complete_after=0.3)
    h = {"Authorization": f"Bearer {keys['RUNWAYML_API_SECRET']}", "X-Runway-Version": "2024-11-06"}
    made = httpx.post(f"{rw.base_url}/v1/text_to_video", headers=h,
                      json={"model": "gen4.5", "promptText": "a fox", "ratio": "1280:720", "duration": 5}).json()
    _ok("runway.task_created", made)
    for body in _states(lambda: httpx.get(f"{rw.base_url}/v1/tasks/{made['id']}", headers=h).json(), "SUCCEEDED"):
        _ok("runway.task", body)
    comet = fakes("cometapi", complete_after=0.3)
    h = {"Authorization": f"Bearer {keys['COMETAPI_KEY']}"}
    video = httpx.post(f"{comet.base_url}/v1/videos", headers=h,
                       files=[("prompt", (None, "a fox")), ("model", (None, "sora-2")), ("seconds", (None, "4")),
                              ("size", (None, "1280x720"))]).json()
    _ok("cometapi.video", video)
    for body in _states(lambda: httpx.get(f"{comet.base_url}/v1/videos/{video['id']}", headers=h).json(), "completed"):
        _ok("cometapi.video", body)


@pytest.mark.parametrize("provider", ["kling", "fal"])
def test_kling_and_fal_answer_their_full_objects(provider, fakes, keys):
    from masuka_nb.hosted.providers import get_provider

    fake = fakes(provider, complete_after=0.3)
    client = get_provider(provider).client  # the real client builds the auth (Kling's JWT)
    try:
        if provider == "kling":
            made = client.json("POST", "/videos/text2video", op="submit",
                               json={"model_name": "kling-v3", "prompt": "a fox", "duration": "5", "aspect_ratio": "16:9"})
            _ok("kling.task", made)
            tid = made["data"]["task_id"]
            for body in _states(lambda: client.json("GET", f"/videos/text2video/{tid}", op="poll"), "succeed",
                                key=lambda b: b["data"]["task_status"]):
                _ok("kling.task", body)
        else:
            made = client.json("POST", "/fal-ai/kling-video/v2.1/standard/image-to-video", op="submit",
                               json={"prompt": "a fox", "image_url": "https://example.com/a.png"})
            _ok("fal.queued", made)
            for body in _states(lambda: client.json("GET", made["status_url"], op="poll"), "COMPLETED"):
                _ok("fal.status", body)
    finally:
        client.close()
    assert fake.counts["submit"] == 1 and KEY_NAMES[provider]
