"""Image sequences to MP4 (H.264) and GIF, read back with the encoder libraries themselves."""

from __future__ import annotations

import imageio_ffmpeg
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError


def frames(n, size=(48, 32)):
    return [Image.new("RGB", size, (25 * i, 100, 255 - 25 * i)) for i in range(n)]


def mp4_info(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    return meta, count


def test_an_mp4_has_the_frames_size_fps_and_codec_asked_for(masuka_home):
    path = mk.to_video(frames(5), fps=12)
    assert path.suffix == ".mp4" and path.is_relative_to(masuka_home)
    meta, count = mp4_info(path)
    assert count == 5 and meta["size"] == (48, 32) and meta["fps"] == 12 and meta["codec"] == "h264"
    held, n = mp4_info(mk.to_video(frames(3), fps=4, hold=2, interpolate=3, size=(33, 21)))
    assert n == 3 * 2 + 2 * 2 and held["size"] == (34, 22)  # crossfades between neighbours; padded to even
    assert not list(path.parent.glob(".*incomplete*"))


def test_a_gif_has_the_frames_size_and_frame_time(tmp_path):
    path = mk.to_video(frames(4), fps=5, format="gif", path=tmp_path / "clip")
    assert path == tmp_path / "clip.gif"
    with Image.open(path) as im:
        assert im.n_frames == 4 and im.size == (48, 32) and im.info["duration"] == 200 and im.info["loop"] == 0
    with Image.open(mk.to_video(frames(2), fps=10, format="gif", hold=3, size=(24, 16))) as im:
        total = 0
        for k in range(im.n_frames):
            im.seek(k)
            total += im.info["duration"]
        assert im.size == (24, 16) and total == 6 * 100  # held frames keep their time


def test_a_batch_and_a_grid_axis_become_clips():
    res = mk.batch("a {red|blue|green} kite", seeds=[1], model="tiny-flux", width=32, height=32, steps=1,
                   progress=False)
    assert mp4_info(res.to_video(fps=3))[1] == 3
    g = mk.grid("a kite", x=("seed", [1, 2, 3, 4]), y=("steps", [1, 2]), model="tiny-flux", width=32, height=32,
                save=False, record=False, progress=False)
    assert mp4_info(mk.to_video(g, axis="x", fps=2))[1] == 4
    assert mp4_info(mk.to_video(mk.history.query(kind="image"), fps=2))[1] == 3


@pytest.mark.parametrize("kwargs, argument", [
    ({"fps": 0}, "fps"), ({"fps": -3}, "fps"), ({"fps": True}, "fps"),
    ({"format": "webm"}, "format"), ({"hold": 0}, "hold"), ({"size": (0, 10)}, "size"),
])
def test_bad_clip_settings_are_refused(kwargs, argument):
    with pytest.raises(InvalidRequestError) as err:
        mk.to_video(frames(2), **kwargs)
    assert err.value.argument == argument


def test_frames_of_different_sizes_are_refused_unless_a_size_is_given():
    mixed = frames(2) + frames(1, size=(64, 64))
    with pytest.raises(InvalidRequestError) as err:
        mk.to_video(mixed)
    assert err.value.argument == "size" and "size=" in err.value.hint
    assert mp4_info(mk.to_video(mixed, size=(64, 64)))[0]["size"] == (64, 64)
    with pytest.raises(InvalidRequestError):
        mk.to_video([])
