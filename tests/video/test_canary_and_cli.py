"""A canary key never reaches logs, errors, the job store, history or outputs; the simulator CLI serves a fake."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest
from video_helpers import KEY_NAMES, VIDEO_ROUTES

from masuka_nb.errors import MasukaError
from masuka_nb.testing.canary import find_canary
from masuka_nb.video.generator import VideoGenerator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def debug_log(tmp_path):
    """Every masuka_nb and httpx log record at DEBUG, written to a file (what a user's log would hold)."""
    path = tmp_path / "masuka.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger("masuka_nb"), logging.getLogger("httpx"), logging.getLogger("httpcore")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield path
    for lg, level in zip(loggers, old):
        lg.removeHandler(handler)
        lg.setLevel(level)
    handler.close()


def test_canary_keys_never_leak(fakes, keys, image, debug_log, masuka_home, tmp_path):
    errors: list[str] = []
    for provider, (model, needs_image) in VIDEO_ROUTES.items():
        fake = fakes(provider)
        key = keys[KEY_NAMES[provider][0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            VideoGenerator().generate("a fox", model=model, provider=provider, image=image if needs_image else None)
            # A provider that echoes the key back in its error must not carry it into our error or records.
            fake.inject("submit", status=400, body={"error": f"bad key {key}", "detail": f"bad key {key}",
                                                     "message": f"bad key {key}", "code": 1})
            with pytest.raises(MasukaError) as info:
                VideoGenerator().generate("a fox", model=model, provider=provider, image=image if needs_image else None)
            errors += [str(info.value), repr(info.value.to_dict()), repr(info.value.details)]
            fake.inject("status", status=500, body={"error": {"message": f"upstream said {key}"}})
            VideoGenerator().generate("a fox", model=model, provider=provider, image=image if needs_image else None)
    from masuka_nb.lora.cloud import train_cloud

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    items = []
    for i in range(4):
        image.save(root / "images" / f"{i:016x}.png")
        (root / "images" / f"{i:016x}.txt").write_text("sks")
        items.append({"file": f"images/{i:016x}.png", "keep": True, "caption": "sks"})
    import json

    (root / "dataset.json").write_text(json.dumps({"name": "ds", "items": items}))
    job = train_cloud(root, provider="fal", trigger_word="sks", steps=10, name="canary", base="tiny-flux")
    with pytest.raises(MasukaError) as info:
        job.wait()  # the fake's toy LoRA fails validation: an error path with a record and history
    errors.append(str(info.value))
    texts = [*errors, debug_log.read_text()]
    assert debug_log.stat().st_size > 0 and len(list((masuka_home / "jobs").glob("*.json"))) >= 15
    for key in keys.values():
        assert find_canary(key, [masuka_home, debug_log], texts=texts) == [], key


def test_find_canary_finds_encoded_copies(tmp_path):
    import base64

    key = "sk-canary-1234567890abcdef"
    (tmp_path / "a.txt").write_text("nothing here")
    (tmp_path / "b.json").write_text('{"h": "' + base64.b64encode(key.encode()).decode() + '"}')
    assert find_canary(key, [tmp_path]) == [str(tmp_path / "b.json")]
    assert find_canary(key, [], texts=["x", f"Bearer {key}"]) == ["text #1"]


def test_simulator_cli_serves_a_provider():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "masuka_nb.testing.fakes", "runway", "--port", "0", "--key", "sk-sim-123456",
                             "--complete-after", "0.1"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("SIMULATOR runway serving on http://127.0.0.1:")
        base = line.split(" on ")[1].strip()
        headers = {"Authorization": "Bearer sk-sim-123456", "X-Runway-Version": "2024-11-06"}
        r = httpx.post(base + "/v1/text_to_video", headers=headers,
                       json={"model": "gen4.5", "promptText": "a fox", "ratio": "1280:720", "duration": 5})
        assert r.status_code == 200 and r.json()["id"]
        assert httpx.post(base + "/v1/text_to_video", headers={**headers, "Authorization": "Bearer nope"},
                          json={}).status_code == 401
        assert httpx.get(base + "/__fake__/stats").json()["counts"]["submit"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_in_process_simulator_for_the_notebook(monkeypatch):
    from masuka_nb.testing.fakes import simulator

    for name in ("COMETAPI_KEY", "MASUKA_COMETAPI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with simulator("cometapi", complete_after=0.1) as fakes, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = VideoGenerator().generate("a fox", model="sora-2", seconds=4)
        assert fakes["cometapi"].counts["submit"] == 1 and result.path.exists()
    assert "COMETAPI_KEY" not in os.environ and "MASUKA_COMETAPI_BASE_URL" not in os.environ


def test_kling_simulator_answers_at_its_root_too(fakes, monkeypatch):
    fake = fakes("kling")
    monkeypatch.setenv("MASUKA_KLING_BASE_URL", fake.url)  # without Kling's /v1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = VideoGenerator().generate("a fox", model="kling-v2.1", provider="kling")
    assert result.path.read_bytes() == fake.video
