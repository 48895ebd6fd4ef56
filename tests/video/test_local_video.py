"""Local Wan video on a CPU with the tiny twins: an H.264 MP4 read back (frames, size, fps), per-step progress,
cancel leaving nothing behind, the recipe in the history, "local, $0", and the VideoGenerator front door."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import CancelledError, InvalidRequestError
from masuka_nb.progress import CancelToken, collect_events
from masuka_nb.video.local import COST_LABEL, LocalVideoResult, generate_local, read_mp4, write_mp4


def test_tiny_wan_writes_an_h264_mp4_whose_frames_size_and_fps_read_back():
    events, sink = collect_events()
    clip = generate_local("waves at night", model="tiny-wan", num_frames=9, fps=8, width=48, height=32, steps=3,
                          seed=7, progress=sink)
    info = read_mp4(clip.path)
    assert (info.num_frames, info.width, info.height, info.fps, info.codec) == (9, 48, 32, 8.0, "h264")
    assert (clip.num_frames, clip.width, clip.height, clip.fps) == (9, 48, 32, 8)
    assert isinstance(clip, mk.VideoResult) and clip.provider == "local" and clip.cost == 0.0
    assert clip.cost_label == COST_LABEL == "local, $0" and COST_LABEL in clip.notes
    assert any("noise" in n for n in clip.notes) and "noise" in clip.recipe["label"]
    steps = [e.step for e in events if e.stage == "video" and e.step]
    assert steps[:3] == [1, 2, 3]
    assert clip.thumbnail.is_file() and not list(clip.path.parent.glob(".*partial*"))
    rec = mk.history.query(kind="video")[0]
    assert rec.status == "ok" and rec.recipe["num_frames"] == 9 and rec.recipe["seed"] == 7
    assert rec.recipe["cost"] == COST_LABEL and rec.extra["provider"] == "local"
    assert str(clip.path) in rec.paths


def test_the_same_seed_gives_the_same_frames():
    a = generate_local("a fox", model="tiny-wan", num_frames=5, seed=3, steps=2)
    b = generate_local("a fox", model="tiny-wan", num_frames=5, seed=3, steps=2)
    c = generate_local("a fox", model="tiny-wan", num_frames=5, seed=4, steps=2)
    fa, fb, fc = (np.asarray(Image.open(x.thumbnail)) for x in (a, b, c))
    assert np.array_equal(fa, fb) and not np.array_equal(fa, fc)


def test_image_to_video_animates_the_given_image():
    still = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype("uint8"))
    clip = generate_local("it starts to rain", model="tiny-wan-i2v", image=still, num_frames=9, seed=1, steps=2)
    assert read_mp4(clip.path).num_frames == 9
    assert clip.recipe["image_sha256"]
    with pytest.raises(InvalidRequestError) as err:
        generate_local("rain", model="tiny-wan-i2v")
    assert err.value.argument == "image"
    with pytest.raises(InvalidRequestError):
        generate_local("rain", model="tiny-wan", image=still)  # text-to-video only


def test_cancel_stops_between_steps_and_leaves_no_clip(masuka_home):
    token = CancelToken()

    def stop_at_two(event):
        if event.stage == "video" and event.step == 2:
            token.cancel()

    with pytest.raises(CancelledError):
        generate_local("waves", model="tiny-wan", num_frames=9, steps=5, progress=stop_at_two, cancel=token)
    assert not list(masuka_home.rglob("*.mp4"))
    assert mk.history.query(kind="video")[0].status == "cancelled"


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"num_frames": 8}, "num_frames"), ({"num_frames": 101}, "num_frames"), ({"width": 40}, "width"),
    ({"fps": 0}, "fps"), ({"steps": 0}, "steps"), ({"seed": -1}, "seed"), ({"prompt": " "}, "prompt"),
])
def test_bad_requests_name_the_argument(kwargs, argument):
    args = {"prompt": "waves", **kwargs}
    with pytest.raises(InvalidRequestError) as err:
        generate_local(args.pop("prompt"), model="tiny-wan", **args)
    assert err.value.argument == argument and err.value.hint


def test_an_image_model_is_not_a_video_model():
    with pytest.raises(InvalidRequestError):
        generate_local("waves", model="tiny-flux")


def test_video_generator_front_door_runs_local_models_at_no_cost():
    gen = mk.VideoGenerator()
    est = gen.estimate("waves", model="tiny-wan", duration=1)
    assert est.usd == 0.0 and est.provider == "local" and "local, $0" in est.price_source
    clip = gen.generate("waves", model="tiny-wan", duration=1, resolution="32p")
    assert isinstance(clip, LocalVideoResult) and clip.num_frames == 9 and clip.fps == 8
    assert read_mp4(clip.path).num_frames == 9
    # A real Wan model on this CPU: the estimate says where it fits instead of refusing.
    real = gen.estimate("waves", model="wan2.1-t2v-1.3b", duration=5, resolution="480p")
    assert real.usd == 0.0 and "t4" in " ".join(real.notes)


def test_write_mp4_leaves_nothing_when_a_frame_is_bad(tmp_path):
    frames = [Image.new("RGB", (32, 32), (i * 20, 0, 0)) for i in range(4)] + [Image.new("RGB", (16, 16))]
    with pytest.raises(InvalidRequestError):
        write_mp4(frames, tmp_path / "clip.mp4", fps=8)
    assert not list(tmp_path.iterdir())


def test_the_video_tab_runs_a_local_model_end_to_end():
    """The tab lists the registry's video models beside the hosted ones; with tiny-wan picked, the tab's
    own buttons estimate ($0) and generate through VideoGenerator, and the player gets the MP4."""
    ui = mk.app(display=False)
    panel = ui.video
    ids = [mid for _, mid in panel.model.options]
    assert {"tiny-wan", "wan2.1-t2v-1.3b", "veo-3.1-fast"} <= set(ids)
    panel.model.value = "tiny-wan"
    assert 2 in [v for _, v in panel.duration.options]
    panel.prompt.value = "waves at night"
    panel.duration.value = 2  # the estimate follows the form (no Estimate button)
    assert panel.last_error is None, panel.last_error
    assert panel.estimate_result.usd == 0.0
    panel.generate_button.click()
    panel.wait(300)  # the run goes through the app's queue, off the click handler
    assert panel.last_error is None, panel.last_error
    clip = panel.result
    assert isinstance(clip, LocalVideoResult) and clip.num_frames == 17
    assert panel.player.value == clip.path.read_bytes()
    assert "tiny-wan" in panel.pane.caption.value and "free" in panel.pane.caption.value  # a local clip costs nothing


def _frames(path):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)
    return [bytes(f) for f in reader]


def test_a_clip_is_made_again_from_its_recipe_or_history_id():
    from masuka_nb.video.local import reproduce_local

    clip = generate_local("a fox running", model="tiny-wan", num_frames=9, steps=2, seed=21, plan={"speed": "fast"})
    again = reproduce_local(clip.history_id)
    assert again.recipe["seed"] == 21 and again.plan.speed == "fast" and again.path != clip.path
    assert _frames(again.path) == _frames(clip.path)
    still = Image.fromarray((np.random.default_rng(5).random((32, 32, 3)) * 255).astype("uint8"))
    moving = generate_local("rain", model="tiny-wan-i2v", image=still, num_frames=5, steps=2, seed=3)
    with pytest.raises(InvalidRequestError):
        reproduce_local(moving.recipe)  # needs its image
    assert _frames(reproduce_local(moving, image=still).path) == _frames(moving.path)
