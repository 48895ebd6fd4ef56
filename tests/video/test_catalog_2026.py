"""The catalog as it stands in December 2026, and a front door that sends exactly what was asked.

Defaults come from the chosen model, so the default call and the README's examples are never
adjusted; Sora 2 (retired by OpenAI on 2026-09-24) works through CometAPI with a warning while
CometAPI answers for it, and is a MODEL_RETIRED error naming the date and live models when it does
not; a control the model lacks is refused in strict mode, warned once when set, silent when unset.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from pathlib import Path

import pytest

import masuka_nb
from masuka_nb import jobs
from masuka_nb.errors import MasukaError
from masuka_nb.hosted.catalog import catalog, model_info, resolve_model
from masuka_nb.progress import CancelToken
from masuka_nb.video import VideoGenerator
from masuka_nb.video.generator import IgnoredControlWarning, RetiredModelWarning
from masuka_nb.video.request import DEFAULT_MODEL, VideoRequest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


DATE = re.compile(r"^2026-\d\d-\d\d$")
URL = re.compile(r"https://[\w.-]+\.[a-z]{2,}/\S*")


def test_every_entry_is_dated_and_sourced_by_public_urls():
    """Every model, route price, retirement and training price: a date and a public https URL (never a repo path)."""
    models = catalog()["models"]
    for mid, entry in models.items():
        if "alias_of" in entry:
            assert entry["alias_of"] in models and "alias_of" not in models[entry["alias_of"]], mid
            continue
        assert entry["checked"].startswith("2026-12"), mid
        assert entry["sources"] and all(URL.fullmatch(u) for u in entry["sources"]), mid
        for route in entry.get("routes", []):
            assert DATE.match(route["price_date"]) and route["price_date"] <= "2026-12-31", (mid, route["model"])
            assert URL.search(route["price_source"]), (mid, route["model"])
            estimate = route["price_source"].startswith("estimate")
            assert not estimate or "unverified" in route["price_source"], (mid, route["model"])  # say so
        if "retired" in entry:
            assert DATE.match(entry["retired"]["date"]) and URL.fullmatch(entry["retired"]["source"]), mid
            assert all(n in models for n in entry["retired"]["nearest"]), mid
        if "unavailable" not in entry and "retired" not in entry:
            assert entry["routes"], mid
    for provider, entry in catalog()["training"].items():
        assert DATE.match(entry["price_date"]) and URL.search(entry["price_source"]), provider


def test_the_catalog_for_december_2026():
    # Kling 4.0: released 2026-10-24, 3-30 s at 720p/1080p, on fal at $0.157/s (720p) and $0.235/s (1080p)
    k4 = catalog()["models"]["kling-v4"]
    assert k4["released"] == "2026-10-24" and model_info("kling-4.0").id == "kling-v4"
    routes = resolve_model("kling-v4")[1]
    assert all(r.durations == tuple(range(3, 31)) and set(r.sizes) == {"720p", "1080p"} for r in routes)
    assert VideoGenerator().estimate("x", model="kling-v4", seconds=30, resolution="1080p").usd == pytest.approx(7.05)
    # Kling 3.0 Turbo on Kling's own API, 3-15 s
    assert resolve_model("kling-v3-turbo")[1][0].model == "kling-v3-0-turbo"
    # Runway's API also serves seedance2, veo3.1 and veo3.1_fast
    runway = {r.model for mid in catalog()["models"] for r in (resolve_model(mid)[1] if "alias_of" not in
              catalog()["models"][mid] and catalog()["models"][mid].get("routes") else []) if r.provider == "runway"}
    assert {"seedance2", "veo3.1", "veo3.1_fast"} <= runway
    # CometAPI bills Veo 3.1 per second (at Google's rates)
    for mid, rate in (("veo-3.1", 0.4), ("veo-3.1-fast", 0.12)):
        comet = next(r for r in resolve_model(mid)[1] if r.provider == "cometapi")
        assert comet.price == {"per_second": {"1080p": rate}} and "per-second" in comet.price_source
    # Seedance 1.5 Pro retired after 2026-11-11 for Seedance 2.5; the retired model stays listed, with its date
    assert "retired by CometAPI on 2026-11-11" in masuka_nb.video.list_video_models()["seedance-1.5-pro"]
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="seedance-1.5-pro")
    assert info.value.code == "MODEL_RETIRED" and "seedance-2.5" in str(info.value)
    assert resolve_model("seedance-2-5")[0] == "seedance-2.5" and resolve_model("seedance-2.5")[1][0].durations[-1] == 30


@pytest.mark.parametrize(("model", "kwargs", "provider"), [
    ("kling-v4", {"seconds": 30, "resolution": "1080p", "aspect_ratio": "21:9"}, "fal"),
    ("kling-v4", {"seconds": 3, "image": "https://example.com/first.png"}, "fal"),
    ("kling-v3-turbo", {"seconds": 15}, "kling"),
    ("seedance-2", {"seconds": 12, "aspect_ratio": "9:16"}, "runway"),
    ("seedance-2", {"seconds": 4, "image": "IMAGE"}, "runway"),
    ("seedance-2", {"seconds": 15, "provider": "cometapi"}, "cometapi"),
    ("seedance-2.5", {"seconds": 30, "aspect_ratio": "21:9"}, "cometapi"),
    ("veo3.1", {"seconds": 6}, "runway"),
    ("veo3.1_fast", {"seconds": 4, "image": "IMAGE"}, "runway"),
])
def test_the_simulators_take_the_documented_requests_for_the_new_models(model, kwargs, provider, fakes, image):
    fake = fakes(provider)
    kwargs = {k: (image if v == "IMAGE" else v) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sent exactly as asked: no adjustment
        result = VideoGenerator().generate("a fox in the snow", model=model, **kwargs)
    assert result.provider == provider and result.path.read_bytes() == fake.video
    assert fake.counts["submit"] == 1 and result.seconds == kwargs["seconds"]


def test_the_simulators_still_refuse_what_the_services_refuse(fakes):
    import httpx

    fal, runway, comet = fakes("fal"), fakes("runway"), fakes("cometapi")
    key = {"Authorization": f"Key {fal.key}"}
    assert httpx.post(f"{fal.url}/kling/v4/text-to-video", json={"prompt": "x", "duration": "31"},
                      headers=key).status_code == 422
    assert httpx.post(f"{fal.url}/kling/v4/text-to-video", json={"prompt": "x", "resolution": "4k"},
                      headers=key).status_code == 422
    rw = {"Authorization": f"Bearer {runway.key}", "X-Runway-Version": "2024-11-06"}
    assert httpx.post(f"{runway.url}/v1/text_to_video", json={"model": "seedance2", "promptText": "x", "duration": 20},
                      headers=rw).status_code == 400
    assert httpx.post(f"{runway.url}/v1/text_to_video", json={"model": "seedance2", "promptText": "x",
                                                               "ratio": "1000:1000"}, headers=rw).status_code == 400
    cm = {"Authorization": f"Bearer {comet.key}"}
    form = {"prompt": (None, "x"), "model": (None, "doubao-seedance-2-0"), "seconds": (None, "16"), "size": (None, "16:9")}
    assert httpx.post(f"{comet.url}/v1/videos", files=form, headers=cm).status_code == 400
    form.update(model=(None, "doubao-seedance-1-5-pro"), seconds=(None, "5"))
    answer = httpx.post(f"{comet.url}/v1/videos", files=form, headers=cm)  # retired after 2026-11-11
    assert answer.status_code == 503 and "model_not_found" in answer.text
    assert not fal.jobs and not runway.jobs and not comet.jobs


@pytest.mark.parametrize(("model", "seconds", "resolution"), [
    ("veo-3.1", 8, "1080p"), ("veo-3.1-fast", 8, "1080p"), ("gen4.5", 5, "720p"), ("gen4_turbo", 5, "720p"),
    ("gen4_aleph", 5, "720p"), ("kling-v3", 5, "720p")])
def test_live_models_and_their_own_defaults(model, seconds, resolution):
    info = model_info(model)
    assert (info.seconds, info.resolution, info.retired) == (seconds, resolution, None)


def test_veo_31_is_8_s_at_720p_or_1080p_with_audio_and_kling_3_takes_3_to_15_s():
    for model in ("veo-3.1", "veo-3.1-fast"):
        assert model_info(model).audio
        sizes = {res for r in resolve_model(model)[1] for res in r.sizes}
        assert sizes == {"720p", "1080p"} and all(8 in r.durations for r in resolve_model(model)[1])
    assert resolve_model("kling-v3")[1][0].durations == tuple(range(3, 16))
    assert resolve_model("gen4_aleph")[1][0].modes == ("v2v",)


def test_seed_names_keep_resolving():
    assert {m: resolve_model(m)[0] for m in ("sora-2-hd", "veo3-pro", "veo3-fast", "runway-gen4")} == {
        "sora-2-hd": "sora-2-pro", "veo3-pro": "veo-3.1", "veo3-fast": "veo-3.1-fast", "runway-gen4": "gen4_turbo"}


def test_the_default_call_sends_what_was_asked_with_no_warning(fakes):
    fake = fakes("cometapi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any adjustment, ignored-control or retirement warning fails the test
        result = VideoGenerator().generate("waves at night")
    assert result.model == DEFAULT_MODEL and result.seconds == 8 and result.path.is_file()
    assert fake.counts["submit"] == 1
    rec = jobs.get(result.job_id).record
    assert rec.request["seconds"] == 8 and rec.request["resolution"] == "1080p" and rec.notes[-1].startswith("SIMULATOR")
    assert not [n for n in rec.notes if not n.startswith("SIMULATOR")]


def test_every_readme_video_example_is_sent_unadjusted(fakes):
    fakes("cometapi"), fakes("kling")
    calls = re.findall(r"video\.(estimate|generate)\((\"[^\n]*?)\)\)?\s*(?:#.*)?$", README, re.M)
    calls += [("generate", a) for a in re.findall(r"VideoGenerator\(\)\.generate\((.*?)\)\.path", README)]
    assert calls, "the README has video examples"
    gen = VideoGenerator()
    for verb, args in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = eval(f"gen.{verb}({args})", {"gen": gen})  # the README's own text, as a user would run it
        if verb == "estimate":
            assert out.changes == [] and not [n for n in out.notes if "ignored" in n or "retired" in n]


def test_sora_2_works_through_cometapi_with_one_visible_warning(fakes):
    fakes("cometapi")
    with pytest.warns(RetiredModelWarning, match="2026-09-24") as seen:
        result = VideoGenerator().generate("a fox", model="sora-2", seconds=4)
    assert result.provider == "cometapi" and result.path.is_file()
    assert len([w for w in seen if w.category is RetiredModelWarning]) == 1
    assert any("retired by OpenAI on 2026-09-24" in n for n in result.notes)  # kept with the clip's record
    est = VideoGenerator().estimate("a fox", model="sora-2")
    assert any("retired by OpenAI on 2026-09-24" in n for n in est.notes)
    assert "retired by OpenAI on 2026-09-24" in masuka_nb.video.list_video_models()["sora-2"]


def test_sora_2_is_model_retired_when_cometapi_no_longer_answers_for_it(fakes):
    fake = fakes("cometapi", retired=("sora-2", "sora-2-pro"))
    with pytest.raises(MasukaError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        VideoGenerator().generate("a fox", model="sora-2", seconds=4)
    err = info.value
    assert err.code == "MODEL_RETIRED" and err.argument == "model" and err.value == "sora-2"
    assert "2026-09-24" in str(err) and "veo-3.1" in str(err) and "veo-3.1" in err.hint
    assert fake.counts["submit"] == 1  # asked once, not retried: the answer will not change
    assert [j.state for j in jobs.list()] == ["failed"]


def test_sora_2_in_strict_mode_or_elsewhere_is_model_retired_before_anything_is_sent(fakes):
    fake = fakes("cometapi")
    for gen, kw in ((VideoGenerator(strict=True), {}), (VideoGenerator(), {"provider": "runway"})):
        with pytest.raises(MasukaError) as info:
            gen.estimate("a fox", model="sora-2-hd", **kw)
        assert info.value.code == "MODEL_RETIRED" and "gen4.5" in str(info.value)
    assert sum(fake.counts.values()) == 0


def test_motion_intensity_silent_when_unset_warned_once_when_set_refused_when_strict(fakes):
    fake = fakes("runway")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = VideoGenerator().estimate("a fox", model="gen4.5")
    assert not any("motion" in n for n in est.notes)
    with pytest.warns(IgnoredControlWarning) as seen:
        VideoGenerator().submit("a fox", model="gen4.5", motion_intensity=0.7)
    assert len([w for w in seen if w.category is IgnoredControlWarning]) == 1
    with pytest.raises(MasukaError) as info:
        VideoGenerator(strict=True).submit("a fox", model="gen4.5", motion_intensity=0.7)
    assert info.value.code == "INVALID_REQUEST" and info.value.argument == "motion_intensity"
    assert fake.counts["submit"] == 1


def test_one_request_model_for_estimate_submit_and_generate(fakes):
    fake = fakes("kling")
    req = VideoRequest(prompt="a fox in the snow", model="kling-v3", seconds=12)
    gen = VideoGenerator()
    assert gen.estimate(req).seconds == 12
    result = gen.generate(req)
    assert result.seconds == 12 and fake.jobs[next(iter(fake.jobs))].input["duration"] == "12"
    # `duration` is the old name of `seconds`; giving both differently is refused
    assert gen.estimate("x", model="kling-v3", duration=7).seconds == 7
    with pytest.raises(MasukaError) as info:
        gen.estimate("x", model="kling-v3", duration=7, seconds=8)
    assert info.value.argument == "duration"


def test_aleph_restyles_a_clip_video_to_video(fakes):
    fake = fakes("runway")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = VideoGenerator().generate("claymation style", model="gen4_aleph", video="https://example.com/clip.mp4")
    assert result.path.is_file()
    body = next(iter(fake.jobs.values())).input
    assert body["videoUri"] == "https://example.com/clip.mp4" and body["model"] == "gen4_aleph"
    with pytest.raises(MasukaError) as info:
        VideoGenerator().estimate("x", model="gen4_aleph")
    assert info.value.argument == "video"


def test_a_cancel_during_a_60_s_retry_after_returns_within_a_second(fakes):
    fake = fakes("runway", complete_after=30)
    job = VideoGenerator().submit("a fox", model="gen4.5")
    fake.inject("status", status=429, body={"error": "Too many requests"}, headers={"Retry-After": "60"}, times=5)
    token = CancelToken()
    caught: list[BaseException] = []

    def wait() -> None:
        try:
            job.wait(cancel=token)
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    deadline = time.monotonic() + 10
    while fake.counts["status"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # now inside the 60 s wait the provider asked for
    cancelled_at = time.monotonic()
    token.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - cancelled_at < 1.0
    assert caught and getattr(caught[0], "code", "") == "CANCELLED"
    assert jobs.get(job.id).state in ("submitted", "running")  # still resumable: nothing lost


def test_a_motion_control_is_mapped_where_the_provider_has_one(fakes):
    """SVD on fal has `motion_bucket_id` (1-255): motion_intensity 0..1 maps onto it; unset, nothing is sent."""
    fake = fakes("fal")
    gen = VideoGenerator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = gen.estimate("a rocket", model="svd-1.1", image="https://example.com/rocket.png", motion_intensity=0.5)
        assert est.usd == pytest.approx(0.075) and not est.notes
        gen.generate("a rocket", model="svd-1.1", image="https://example.com/rocket.png", motion_intensity=0.5)
        gen.generate("a rocket", model="svd-1.1", image="https://example.com/rocket.png", motion_intensity=1.0)
        gen.generate("a rocket", model="svd-1.1", image="https://example.com/rocket.png")
    sent = [j.input for j in fake.jobs.values()]
    assert [s.get("motion_bucket_id") for s in sent] == [128, 255, None]
    assert all(s["fps"] == 6 and "prompt" not in s and "duration" not in s for s in sent)  # 25 frames ≈ 4 s
    # strict mode accepts a control the model has
    VideoGenerator(strict=True).estimate("a rocket", model="svd-1.1", image="https://example.com/r.png", motion_intensity=0.2)


def test_a_route_kind_and_a_model_can_be_registered_at_run_time(fakes):
    """The seam for a local open-weight model (or a proxy): register a provider class and a model that uses it."""
    from masuka_nb.hosted import catalog as catalog_module
    from masuka_nb.hosted import providers
    from masuka_nb.hosted.catalog import register_model
    from masuka_nb.hosted.providers import register_provider
    from masuka_nb.hosted.providers.runway import RunwayProvider

    class ProxiedRunway(RunwayProvider):  # speaks Runway's contract, under its own route name
        pass

    fake = fakes("runway")
    entry = {"title": "my studio's model", "checked": "2026-12-01", "sources": ["https://example.com/model"],
             "defaults": {"seconds": 6, "resolution": "720p", "aspect_ratio": "16:9"},
             "routes": [{"provider": "studio", "route": "runway", "model": "gen4.5", "modes": ["t2v"],
                         "durations": [6], "sizes": {"720p": {"16:9": "1280:720"}}, "price": {"per_clip": 0.0},
                         "price_date": "2026-12-01", "price_source": "https://example.com/model (free)"}]}
    with pytest.raises(MasukaError) as info:
        register_model("broken", {"title": "x", "routes": [{"provider": "studio"}]})
    assert info.value.argument == "entry" and "routes[0].model" in str(info.value)
    register_provider("studio", ProxiedRunway)
    register_model("studio-model", entry)
    try:
        assert "studio-model" in masuka_nb.video.list_video_models()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = VideoGenerator().generate("a fox", model="studio-model")
        assert result.provider == "studio" and result.seconds == 6 and fake.counts["submit"] == 1
    finally:
        providers._REGISTERED.pop("studio", None)
        catalog_module._REGISTERED.pop("studio-model", None)


def test_resume_all_stops_every_wait_at_a_cancel(fakes):
    fake = fakes("runway", complete_after=60)
    gen = VideoGenerator()
    made = [gen.submit(f"clip {i}", model="gen4.5") for i in range(3)]
    token = CancelToken()
    done: list = []
    thread = threading.Thread(target=lambda: done.extend(jobs.resume_all(cancel=token)))
    thread.start()
    while fake.counts["status"] < 3:
        time.sleep(0.01)
    start = time.monotonic()
    token.cancel()
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - start < 1.0
    assert sorted(j.id for j in done) == sorted(j.id for j in made)
    assert all(jobs.get(j.id).state in ("submitted", "running") for j in made)  # still resumable
