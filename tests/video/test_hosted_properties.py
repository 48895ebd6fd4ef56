"""Only MasukaErrors from the paid-hosted entry points, whatever a notebook passes them (hypothesis).

VideoRequest / estimate / submit / generate (against the simulators), the jobs API (get, list,
resume_all, wait, cancel) and cloud training submits: every generated call either works or raises a
MasukaError naming the argument; nothing else escapes. The counts are printed at the end.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masuka_nb import jobs
from masuka_nb.errors import MasukaError
from masuka_nb.lora.cloud import train_cloud
from masuka_nb.progress import CancelToken
from masuka_nb.video.generator import VideoGenerator
from masuka_nb.video.request import VideoRequest

SEEN: Counter[str] = Counter()
PROFILE = settings(max_examples=120, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

hostile = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFF), max_size=12),
    st.binary(max_size=16), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just(object()), st.just(Path("/nonexistent/x.png")), st.just("\x00"), st.just("../../etc/passwd"),
    st.just(float("nan")), st.just(-0.0), st.just("16"), st.just("16:0"), st.just("a:b"), st.just("0:9"),
    st.just((None, None)), st.just("https://"), st.just("ftp://x/y"), st.just("http://[::1"),
)
seconds = st.one_of(hostile, st.integers(min_value=1, max_value=40), st.floats(min_value=0.5, max_value=40))
models = st.one_of(hostile, st.sampled_from(["veo-3.1-fast", "gen4.5", "kling-v3", "kling-v4", "seedance-2", "sora-2",
                                             "seedance-1.5-pro", "haiper-2", "gen4_turbo", "svd-1.1", "nope"]))
aspects = st.one_of(hostile, st.sampled_from(["16:9", "9:16", "1:1", "21:9", "4:3", "16x9", "7:3"]))
resolutions = st.one_of(hostile, st.sampled_from(["720p", "1080p", "480p", "4k", "2160p", "999p"]))


def _run(label: str, fn, /, *args, **kwargs):
    SEEN["generated"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except MasukaError:
        SEEN["masuka errors"] += 1
        return None
    except Exception as exc:  # the property: nothing else
        SEEN["raw"] += 1
        raise AssertionError(f"{label} raised {type(exc).__name__}: {exc!r}") from exc


def spoiled(base: dict, names: list[str], n: int = 2):
    """`base` (a call that works) with up to `n` of its arguments replaced by hostile values."""
    return st.dictionaries(st.sampled_from(names), hostile, max_size=n).map(lambda bad: {**base, **bad})


VIDEO = {"prompt": "a fox in the snow", "model": "veo-3.1-fast", "seconds": None, "resolution": None,
         "aspect_ratio": None, "image": None, "video": None, "motion_intensity": None, "provider": None,
         "max_cost": None, "duration": None}
VIDEO_NAMES = list(VIDEO)


@PROFILE
@given(call=spoiled(VIDEO, VIDEO_NAMES), model=models, seconds=seconds, resolution=resolutions, aspect=aspects)
def test_video_request_and_estimate_raise_only_masuka_errors(call, model, seconds, resolution, aspect):
    for kwargs in (call, {**call, "model": model, "seconds": seconds, "resolution": resolution, "aspect_ratio": aspect}):
        prompt = kwargs.pop("prompt")
        _run("VideoRequest.build", VideoRequest.build, prompt, **kwargs)
        _run("estimate", VideoGenerator().estimate, prompt, **kwargs)


@pytest.fixture
def simulators(fakes):
    return [fakes(p, complete_after=0.02) for p in ("runway", "cometapi", "kling", "fal", "replicate")]


SUBMIT = {**VIDEO, "model": "gen4.5", "provider": "runway", "progress": False}


@settings(PROFILE, max_examples=60)
@given(call=spoiled(SUBMIT, [*VIDEO_NAMES, "progress"], n=1), cancel=st.one_of(st.none(), hostile))
def test_submit_and_generate_raise_only_masuka_errors(simulators, call, cancel):
    gen = VideoGenerator()
    prompt = call.pop("prompt")
    job = _run("submit", gen.submit, prompt, **call)
    if job is not None:
        _run("wait", job.wait, progress=False, cancel=cancel, timeout=30)
    _run("generate", gen.generate, prompt, cancel=cancel, **call)


JOBS = {"job_id": "v20261201-000000-abcdef", "kind": None, "state": None, "workers": 2, "progress": False,
        "cancel": None, "timeout": 5.0}


@settings(PROFILE, max_examples=80)
@given(call=spoiled(JOBS, list(JOBS)), job_id=st.one_of(hostile, st.text(max_size=30)))
def test_the_jobs_api_raises_only_masuka_errors(simulators, call, job_id):
    _run("jobs.get", jobs.get, call["job_id"])
    _run("jobs.get", jobs.get, job_id)
    _run("jobs.list", jobs.list, kind=call["kind"], state=call["state"])
    _run("jobs.resume_all", jobs.resume_all, progress=call["progress"], max_workers=call["workers"],
         cancel=call["cancel"])
    listed = jobs.list()
    if listed:
        _run("Job.wait", listed[0].wait, call["progress"], timeout=call["timeout"], cancel=call["cancel"])
        _run("Job.cancel", listed[0].cancel)


def test_the_jobs_api_on_a_real_job_with_hostile_waits(simulators):
    job = VideoGenerator().submit("a fox", model="gen4.5", provider="runway")
    for timeout in (0, -1, math.inf, math.nan, "5", True, 10**30):
        _run("Job.wait", job.wait, timeout=timeout)
    token = CancelToken()
    token.cancel()
    _run("Job.wait", job.wait, cancel=token)
    assert job.wait(timeout=30).path.is_file()


@pytest.fixture
def dataset(tmp_path):
    import json

    from PIL import Image

    root = tmp_path / "ds"
    root.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (50 * i, 20, 90)).save(root / f"i{i}.png")
    (root / "dataset.json").write_text(json.dumps({"items": [{"file": f"i{i}.png"} for i in range(4)]}))
    return root


TRAIN = {"dataset": "DATASET", "provider": "fal", "trigger_word": "sks", "steps": 10, "name": "t", "base": "flux1-dev",
         "rank": 16, "learning_rate": None, "is_style": False, "max_cost": None, "destination": None,
         "base_url": None, "poll_interval": None}


@settings(PROFILE, max_examples=80)
@given(call=spoiled(TRAIN, list(TRAIN)))
def test_cloud_training_submits_raise_only_masuka_errors(simulators, dataset, call):
    args = dict(call)
    target = args.pop("dataset")
    _run("train_cloud", train_cloud, dataset if target == "DATASET" else target, **args)


def test_zz_property_counts(capsys):
    with capsys.disabled():
        print(f"\nhosted properties: generated inputs {SEEN['generated']}, MasukaErrors {SEEN['masuka errors']}, "
              f"raw exceptions {SEEN['raw']}")
    assert SEEN["generated"] > 0 and SEEN["raw"] == 0
