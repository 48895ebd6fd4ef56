"""Switching tasks in one process (issue 18's "done when"): Image → Video → LoRA training → Edit → Image on the
CPU with the tiny twins. At every progress event of every task, and after each one, the device host holds at
most one task's models; what a task left behind is really gone (no reference keeps it alive); and the planner's
free-memory figure is the device's memory less what is resident."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.testing.media import noise_pngs
from masuka_nb.video.local import generate_local


def _picture(k: int, size: int = 64) -> Image.Image:
    rng = np.random.default_rng(k)
    return Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8"))


def test_image_video_training_edit_image_hold_one_tasks_models_at_a_time(empty_device_host):
    host = empty_device_host
    host.simulate("t4", counts_cpu=True)  # the CPU's RAM stands in for a T4's 15 GB: the planner reads it
    seen: list[set[str]] = []

    def watch(event):  # during every task: what is resident right now
        seen.append(host.tasks())

    def residents() -> dict[str, list]:
        out: dict[str, list] = {}
        for task in host.tasks():
            out[task] = [weakref.ref(obj[0] if isinstance(obj, tuple) else obj) for obj in host.objects(task)]
        return out

    def after(task: str) -> dict[str, list]:
        assert host.tasks() <= {task}, host.resident()
        free = mk.plan("flux1-schnell").vram_available_gb
        assert free == pytest.approx(15.0 - sum(r.vram_gb for r in host.resident()), abs=1e-6)
        return residents()

    small = dict(width=32, height=32, steps=1, progress=watch)
    mk.generate("a lighthouse", model="tiny-flux", plan={"gpu": "cpu"}, save=False, **small)
    image_refs = after("image")["image"]

    generate_local("waves", model="tiny-wan", num_frames=5, plan={"gpu": "cpu"}, **small)
    video_refs = after("video")["video"]
    gc.collect()
    assert all(r() is None for r in image_refs)  # the image pipeline is gone, not just unlisted

    ds = mk.lora.Dataset.create("switch")
    ds.import_files(noise_pngs(2))
    run = mk.lora.train(ds, base="tiny-flux", trigger_word="mk", steps=2, resolution=32, progress=watch,
                        target_modules="double-blocks", gpu="cpu")
    assert run.finished and run.lora_path.is_file()
    after("train")  # a training run holds its parts only while it runs
    gc.collect()
    assert all(r() is None for r in video_refs)

    mk.edit(_picture(3, 32), "make it night", plan={"gpu": "cpu"}, steps=1, progress=watch)
    edit_refs = after("image")["image"]

    mk.generate("a lighthouse", model="tiny-flux", plan={"gpu": "cpu"}, save=False, **small)
    after("image")
    gc.collect()
    assert all(r() is None for r in edit_refs)  # the Kontext twin left the slot for FLUX

    assert seen and all(len(tasks) <= 1 for tasks in seen), [t for t in seen if len(t) > 1]
    assert {t for tasks in seen for t in tasks} == {"image", "video", "train"}
