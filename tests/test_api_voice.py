"""One API voice: the README's public API table matches the real signatures, and the rules it states hold
(random seeds recorded, results with paths and history ids, save by default, elapsed_s / duration_s, old names
warning for one release, every argument honoured or refused)."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from pathlib import Path

import pytest
from PIL import Image

import masuka_nb as mk

ROOT = Path(__file__).resolve().parents[1]
TABLE = re.compile(r"^\| `([^`]+)` \| `([^`]*)` \| `([^`]+)` \|", re.M)
# Each row's call, as the user writes it, resolved to the object it is.
WHERE = {
    "masuka_nb.generate": "masuka_nb:generate",
    "masuka_nb.edit": "masuka_nb:edit",
    "masuka_nb.upscale": "masuka_nb:upscale",
    "masuka_nb.reproduce": "masuka_nb:reproduce",
    "masuka_nb.batch": "masuka_nb:batch",
    "masuka_nb.grid": "masuka_nb:grid",
    "masuka_nb.to_video": "masuka_nb:to_video",
    "masuka_nb.plan": "masuka_nb:plan",
    "masuka_nb.lora.train": "masuka_nb.lora:train",
    "masuka_nb.lora.compare": "masuka_nb.lora:compare",
    "masuka_nb.video.local.generate_local": "masuka_nb.video.local:generate_local",
    "VideoGenerator().generate": "masuka_nb:VideoGenerator.generate",
}
SMALL = dict(model="tiny-flux", width=32, height=32, steps=1, progress=False)


def _rows() -> list[tuple[str, str, str]]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## The public API", 1)[1].split("\n## ", 1)[0]
    return TABLE.findall(section)


def _resolve(call: str):
    module, attr = WHERE[call].split(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _render(fn) -> tuple[str, str]:
    parts, star = [], False
    sig = inspect.signature(fn)
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    ret = sig.return_annotation
    return ", ".join(parts), ret if isinstance(ret, str) else getattr(ret, "__name__", str(ret))


def test_the_readme_table_lists_every_call_with_its_real_signature():
    rows = _rows()
    assert [r[0] for r in rows] == list(WHERE), "the table and the list of public calls differ"
    for call, arguments, returns in rows:
        real_args, real_return = _render(_resolve(call))
        assert arguments == real_args, f"{call}: README says ({arguments}), the code says ({real_args})"
        assert returns == real_return, f"{call}: README says {returns}, the code says {real_return}"


def test_every_call_that_writes_files_saves_by_default():
    for call in WHERE:
        params = inspect.signature(_resolve(call)).parameters
        if "save" in params:
            assert params["save"].default is True, call


def test_seeds_are_random_unless_given_and_always_recorded():
    a = mk.generate("a fox", **SMALL, save=False)
    b = mk.generate("a fox", **SMALL, save=False)
    assert a.seeds != b.seeds and a.recipe["seeds"] == a.seeds
    g = mk.grid("a fox", x=("steps", [1]), **{k: v for k, v in SMALL.items() if k != "steps"}, save=False,
                record=False)
    assert isinstance(g.cells[0].recipe["seeds"][0], int)
    assert {inspect.signature(_resolve(c)).parameters["seed"].default for c in
            ("masuka_nb.generate", "masuka_nb.edit", "masuka_nb.grid", "masuka_nb.upscale", "masuka_nb.lora.train",
             "masuka_nb.video.local.generate_local")} == {None}


def test_results_carry_paths_history_ids_and_elapsed_time():
    res = mk.generate("a lighthouse", seed=1, **SMALL)
    assert res.paths and res.paths[0].is_file() and res.history_id
    assert res.elapsed_s == res.timings["seconds_total"] > 0
    rec = mk.history.get(res.history_id)
    assert rec.seconds("total") == pytest.approx(res.timings["seconds_total"], rel=1e-3)
    assert rec.seconds("run") > 0 and rec.seconds("load") is not None  # 0 when the model was already loaded
    up = mk.upscale(res, factor=2)  # a GenerationResult for every method now, saved, recorded
    assert isinstance(up, mk.GenerationResult) and up.paths[0].is_file() and up.history_id
    assert mk.history.get(up.history_id).kind == "upscale"
    with pytest.warns(DeprecationWarning):
        assert up.size == (64, 64)  # the old PIL-image use still works, with a warning


def test_grids_say_images_for_their_outputs_and_warn_on_the_old_names():
    g = mk.grid("a fox", x=("seed", [1, 2]), **SMALL, save=False, record=False)
    assert len(g.images) == 2 and all(isinstance(im, Image.Image) for im in g.images)
    assert g.sheet.width > g.images[0].width
    with pytest.warns(DeprecationWarning):
        assert g.image is g.sheet
    with pytest.warns(DeprecationWarning):
        assert g.seconds == g.elapsed_s


def test_a_clip_has_duration_s_and_elapsed_s():
    from masuka_nb.video.local import generate_local

    clip = generate_local("waves", model="tiny-wan", num_frames=9, fps=8, steps=1, width=32, height=32)
    assert clip.duration_s == pytest.approx(9 / 8) and clip.elapsed_s > 0 and clip.history_id
    assert clip.paths == [clip.path, clip.thumbnail]
    with pytest.warns(DeprecationWarning):
        assert clip.seconds == clip.duration_s


def test_a_local_video_model_refuses_or_warns_about_controls_it_lacks():
    gen = mk.VideoGenerator(strict=True)
    with pytest.raises(mk.MasukaError) as err:
        gen.generate("waves", model="tiny-wan", duration=1, resolution="32p", motion_intensity=0.5)
    assert err.value.argument == "motion_intensity"
    with pytest.raises(mk.MasukaError) as err:
        gen.submit("waves", model="tiny-wan", duration=1)
    assert err.value.argument == "model" and "generate" in err.value.hint
    from masuka_nb.video.generator import IgnoredControlWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = mk.VideoGenerator(strict=False).generate("waves", model="tiny-wan", duration=1, resolution="32p",
                                                        motion_intensity=0.5)
    assert clip.path.is_file() and any(issubclass(w.category, IgnoredControlWarning) for w in caught)


def test_export_kohya_false_writes_only_the_peft_file(dataset_factory):
    ds = dataset_factory()
    run = mk.lora.train(ds, base="tiny-flux", trigger_word="mk", steps=1, resolution=32,
                        target_modules="double-blocks", export_kohya=False, progress=False)
    assert run.lora_path.is_file() and run.kohya_path is None
    assert not list(run.lora_path.parent.glob("*.kohya.safetensors"))
    assert run.paths == [run.lora_path] and run.history_id
    again = mk.lora.train(ds, base="tiny-flux", trigger_word="mk", steps=1, resolution=32,
                          target_modules="double-blocks", export_kohya=False, progress=False)
    assert again.name == run.name  # seed None: the same run is found again (its seed recorded)


@pytest.fixture
def dataset_factory():
    from masuka_nb.testing.media import noise_pngs

    def make():
        ds = mk.lora.Dataset.create("voice")
        ds.import_files(noise_pngs(2))
        return ds

    return make
