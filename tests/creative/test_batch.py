"""Batches on tiny-flux: order, records, one pipeline and shared prompt encodings, one progress bar,
estimates, refusal of bad input, and resume after a SIGKILL in the middle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.errors import InvalidRequestError
from masuka_nb.history import query
from masuka_nb.image.engine import ImageEngine
from masuka_nb.progress import collect_events

SMALL = {"model": "tiny-flux", "width": 32, "height": 32, "steps": 2}
ROOT = Path(__file__).resolve().parents[2]


def test_a_template_batch_keeps_order_records_each_image_and_loads_once():
    engine = ImageEngine()
    events, sink = collect_events()
    res = mk.batch("a {red|blue} car", seeds=[1, 2], progress=sink, engine=engine, chunk=1, **SMALL)
    assert [(it.prompt, it.seed) for it in res.items] == [("a red car", 1), ("a red car", 2), ("a blue car", 1),
                                                           ("a blue car", 2)]
    assert engine.load_count == 1 and res.prompt_reuses == 2  # each prompt encoded once for its two seeds
    assert all(p.is_file() for p in res.paths) and len(res.paths) == 4
    images = query(kind="image")
    assert len(images) == 4 and {r.recipe["batch"]["id"] for r in images} == {res.id}
    (rec,) = query(kind="batch")
    assert rec.id == res.history_id and rec.recipe["template"] == "a {red|blue} car"
    assert [i["index"] for i in rec.extra["items"]] == [0, 1, 2, 3] and len(rec.paths) == 4
    # One bar over the whole batch: one stage, steps never go back, ETA while running, ends at the total.
    assert {e.stage for e in events} == {"batch"} and events[-1].step == events[-1].total == 4 * 2
    steps = [e.step for e in events]
    assert steps == sorted(steps) and any(e.eta_s is not None for e in events[:-1])


def test_a_batch_matches_the_same_generate_calls_and_records_each_image_once():
    import numpy as np

    engine = ImageEngine()
    res = mk.batch(["a kite", "a boat"], seeds=[7, 8, 9], progress=False, engine=engine, **SMALL)  # chunk 4
    assert engine.load_count == 1 and len(query(kind="image")) == 6
    for it in res.items:
        one = mk.generate(it.prompt, seed=it.seed, save=False, progress=False, **SMALL)
        diff = np.abs(np.asarray(one.images[0], dtype=int) - np.asarray(it.image, dtype=int))
        assert diff.max() <= 2  # one call for three seeds: the same images, up to float rounding
    recs = {r.recipe["batch"]["index"]: r for r in query(kind="image") if "batch" in r.recipe}
    assert sorted(recs) == [0, 1, 2, 3, 4, 5] and recs[4].recipe["seeds"] == [8] and recs[4].paths == [
        str(res.items[4].path)]


def test_each_prompt_is_encoded_once_in_one_encoder_call_per_group_and_each_png_is_its_own(monkeypatch):
    import functools

    import numpy as np
    import torch
    from diffusers import FluxPipeline

    from masuka_nb.image.metadata import read_recipe
    from masuka_nb.image.pipeline import _encode_each, encode_prompt
    from masuka_nb.models.registry import get_model

    calls: list[list[str]] = []
    original = FluxPipeline.encode_prompt

    @functools.wraps(original)  # the run pipeline reads the signature to know what it may pass
    def counting(self, *args, **kwargs):
        prompt = kwargs.get("prompt", args[0] if args else None)
        if prompt is not None:  # None: the pipeline's own call, handed the embeddings made before
            calls.append([prompt] if isinstance(prompt, str) else list(prompt))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FluxPipeline, "encode_prompt", counting)
    engine = ImageEngine()
    # 3 prompts x 2 seeds, 4 images a call: [kite 1, kite 2, boat 1, boat 2] and [lamp 1, lamp 2]
    res = mk.batch(["a kite", "a boat", "a lamp"], seeds=[1, 2], chunk=4, progress=False, engine=engine, **SMALL)
    assert calls == [["a kite", "a boat"], ["a lamp"]]  # each prompt once; a group's prompts in one call
    assert engine.load_count == 1
    for it in res.items:  # one save per group, yet every PNG carries its own prompt and seed
        recipe = read_recipe(it.path)
        assert (recipe["prompt"], recipe["seeds"][recipe["image_index"]]) == (it.prompt, it.seed)
        assert recipe["seeds"] == ([it.seed] if it.index < 4 else [1, 2])  # a one-prompt group: one recipe
        assert "prompts" not in recipe and f"-{it.seed}.png" in it.path.name
        with Image.open(it.path) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(it.image))
    # The rows of the group's one encoding are the prompts' own encodings, bit for bit.
    pipe, spec = engine.pipeline("tiny-flux"), get_model("tiny-flux")  # the batch's loaded pipeline
    assert engine.load_count == 1
    with torch.inference_mode():
        together = _encode_each(pipe, spec, ["a kite", "a boat"], negative_prompt=None, guidance=3.5, device="cpu")
        for text in ("a kite", "a boat"):
            alone = encode_prompt(pipe, spec, prompt=text, negative_prompt=None, count=1, guidance=3.5,
                                  device="cpu")
            assert alone.keys() == together[text].keys()
            assert all(torch.equal(alone[k], together[text][k]) for k in alone)


def test_the_estimate_gives_the_size_before_anything_runs_then_learns_from_history():
    first = mk.batch.estimate("a {cat|dog|fox}", seeds=[1, 2], **SMALL)
    assert first.images == 6 and first.basis == "guess" and first.seconds > 0
    mk.batch("a cat", seeds=[1], progress=False, **SMALL)
    later = mk.batch.estimate("a {cat|dog|fox}", seeds=[1, 2], **SMALL)
    assert later.basis == "history" and later.images == 6 and "6 image(s)" in str(later)


@pytest.mark.parametrize("kwargs, argument", [
    ({"prompts_or_template": "a {red car"}, "prompts_or_template"),
    ({"prompts_or_template": []}, "prompts_or_template"),
    ({"prompts_or_template": "a cat", "seeds": []}, "seeds"),
    ({"prompts_or_template": "a cat", "seeds": [-1]}, "seeds"),
    ({"prompts_or_template": ["a cat", 3]}, "prompts_or_template"),
    ({"prompts_or_template": "a cat", "width": 33}, "width"),
])
def test_bad_batches_are_refused_before_the_first_image(kwargs, argument):
    with pytest.raises(InvalidRequestError) as err:
        mk.batch(progress=False, **{**SMALL, **kwargs})
    assert err.value.argument == argument
    assert query(kind="image") == []


_KILLED = textwrap.dedent("""
    import os, signal, masuka_nb as mk
    made = []
    def on_event(e):
        # SIGKILL (no cleanup, no finally) in the middle of the third call's denoising (two images a call)
        if e.step == 5:
            os.kill(os.getpid(), signal.SIGKILL)
    mk.batch("a {red|green|blue} {car|bike}", seeds=[5], model="tiny-flux", width=32, height=32, steps=2,
             progress=on_event, chunk=2)
""")


def test_a_batch_killed_mid_way_resumes_without_repeating_or_missing_an_item(masuka_home):
    run = subprocess.run([sys.executable, "-c", _KILLED], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    before = query(kind="image")
    assert len(before) == 4 and query(kind="batch") == []  # two calls made, the third killed half-way
    res = mk.batch("a {red|green|blue} {car|bike}", seeds=[5], progress=False, **SMALL)
    assert res.resumed == len(before) and len(res.items) == 6
    records = query(kind="image")
    indices = sorted(r.recipe["batch"]["index"] for r in records)
    assert indices == [0, 1, 2, 3, 4, 5]  # each item exactly once, none missing
    assert [it.prompt for it in res.items] == ["a red car", "a red bike", "a green car", "a green bike",
                                               "a blue car", "a blue bike"]
    assert all(it.load() is not None for it in res.items)
    again = mk.batch("a {red|green|blue} {car|bike}", seeds=[5], progress=False, **SMALL)
    assert again.resumed == 6 and len(query(kind="image")) == 6
