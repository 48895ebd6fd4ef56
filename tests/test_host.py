"""The device host: one owner of what is loaded. It measures what it holds, evicts other tasks' models when a
task claims the device, keeps a task's own models between calls, frees what the next load needs, never evicts
a model in use, and the memory planner plans against what is really free."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import masuka_nb as mk
from masuka_nb.host import GIB, Host, footprint, torch_device
from masuka_nb.runtime import GpuProfile
from masuka_nb.video.local import generate_local

MIB = 1024**2


def _module(mib: int) -> torch.nn.Module:
    """A module holding `mib` MiB of fp16 weights."""
    m = torch.nn.Module()
    m.w = torch.nn.Parameter(torch.zeros(mib * MIB // 2, dtype=torch.float16), requires_grad=False)
    return m


@pytest.fixture
def host():
    return Host()


@pytest.fixture
def fresh_device_host(empty_device_host):
    return empty_device_host


def test_footprint_counts_each_tensor_once_per_device():
    m = _module(2)
    shared = {"a": m, "b": [m, {"c": m}]}
    assert footprint(m) == {"cpu": 2 * MIB}
    assert footprint(shared) == {"cpu": 2 * MIB}  # the same weights held twice are one copy

    class Holder:
        def __init__(self) -> None:
            self.model, self.head = _module(1), _module(1)

    assert footprint(Holder()) == {"cpu": 2 * MIB}


def test_a_claim_evicts_other_tasks_and_keeps_the_tasks_own(host):
    calls = []
    a = host.load("a", lambda: calls.append("a") or _module(1), task="image", slot="s1", model="m1")
    again = host.load("a", lambda: calls.append("a2") or _module(1), task="image", slot="s1", model="m1")
    assert again is a and calls == ["a"] and host.loads == 1
    ref = weakref.ref(a)
    del a, again
    host.load("v", lambda: _module(1), task="video", slot="video", model="wan")
    assert host.tasks() == {"image", "video"}  # load alone does not claim
    assert host.claim("video") == ["m1"] and host.tasks() == {"video"}
    gc.collect()
    assert ref() is None  # evicted means gone: no reference left behind


def test_a_slot_holds_one_model_and_a_claim_for_another_model_empties_it(host):
    host.load("flux", lambda: _module(1), task="image", slot="engine", model="tiny-flux")
    host.load("sd3", lambda: _module(1), task="image", slot="engine", model="tiny-sd3")
    assert [r.model for r in host.resident()] == ["tiny-sd3"]
    host.load("other", lambda: _module(1), task="image", slot="engine-2", model="tiny-flux")
    assert host.claim("image", slot="engine", model="tiny-flux") == ["tiny-sd3"]
    assert [r.model for r in host.resident()] == ["tiny-flux"]


def test_a_model_in_use_is_never_evicted_and_a_hold_leaves_after_its_block(host):
    host.load("busy", lambda: _module(1), task="train", slot="t", model="flux")
    with host.using("busy"):
        assert host.claim("image") == [] and host.tasks() == {"train"}
        assert host.evict("busy") is False
    with host.hold("vae", lambda: _module(1), task="train", slot="vae", model="flux") as vae:
        assert isinstance(vae, torch.nn.Module) and {r.slot for r in host.resident()} == {"t", "vae"}
    assert {r.slot for r in host.resident()} == {"t"}
    with pytest.raises(RuntimeError), host.hold("boom", lambda: _module(1), task="train", slot="x", model="f"):
        raise RuntimeError("the block failed")
    assert {r.slot for r in host.resident()} == {"t"}  # gone even so


def test_a_load_that_needs_more_than_is_free_evicts_the_least_recently_used(host):
    host.simulate(GpuProfile("sim", 0.004, 0.004, (8, 0)), counts_cpu=True)  # a 4 MiB "GPU"
    host.load("old", lambda: _module(2), task="image", slot="a", model="x")
    host.load("new", lambda: _module(1), task="image", slot="b", model="y")
    host.get("old")  # used last: "new" is now the least recently used
    assert host.free_vram_gb() == pytest.approx(0.004 - 3 * MIB / GIB)
    host.load("big", lambda: _module(2), task="image", slot="c", model="z", need_gb=2 * MIB / GIB)
    assert sorted(r.model for r in host.resident()) == ["x", "z"]


def test_on_a_simulated_15_gb_device_the_planners_free_memory_follows_what_is_loaded(fresh_device_host):
    host = fresh_device_host
    host.simulate("t4", counts_cpu=True)  # this CPU's RAM stands in for a T4's 15 GB
    assert mk.plan("flux1-schnell").vram_available_gb == pytest.approx(15.0)
    # 64 MiB loaded by a task: the planner sees 15 GB less exactly that (measured from the tensors).
    host.load("weights", lambda: _module(64), task="probe", slot="probe", model="probe")
    assert mk.plan("flux1-schnell").vram_available_gb == pytest.approx(15.0 - 64 * MIB / GIB)
    # A real pipeline, loaded through the engines on the CPU: the figure follows it in and out.
    res = mk.generate("a fox", model="tiny-flux", width=32, height=32, steps=1, plan={"gpu": "cpu"}, save=False,
                      progress=False)
    flux = next(r for r in host.resident() if r.model == "tiny-flux")
    assert flux.vram_gb > 0 and [r.model for r in host.resident()] == ["tiny-flux"]  # the probe's task left
    assert mk.plan("flux1-schnell").vram_available_gb == pytest.approx(15.0 - flux.vram_gb, abs=1e-6)
    # The model being planned does not count against itself (it is reused or replaced).
    assert mk.plan("tiny-flux", gpu=None, width=32, height=32).vram_available_gb == pytest.approx(15.0)
    generate_local("waves", model="tiny-wan", num_frames=5, steps=1, width=32, height=32,
                                  plan={"gpu": "cpu"})
    wan = [r for r in host.resident()]
    assert [r.model for r in wan] == ["tiny-wan"]
    assert mk.plan("flux1-schnell").vram_available_gb == pytest.approx(15.0 - wan[0].vram_gb, abs=1e-6)
    host.evict_all()
    assert mk.plan("flux1-schnell").vram_available_gb == pytest.approx(15.0)
    assert res.images


def test_the_device_setting_is_honoured_or_refused(fresh_device_host):
    mk.configure(device="cpu")
    assert torch_device() == "cpu" and fresh_device_host.machine().name == "cpu"
    assert mk.plan("tiny-flux").device == "cpu"
    if not torch.cuda.is_available():
        mk.configure(device="cuda")
        with pytest.raises(mk.MasukaError) as err:
            mk.generate("a fox", model="tiny-flux", width=32, height=32, steps=1, save=False)
        assert err.value.argument == "device" and "no CUDA GPU" in str(err.value)
    mk.configure(device="mps")
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        with pytest.raises(mk.MasukaError) as err:
            torch_device()
        assert err.value.argument == "device"


@pytest.mark.gpu
def test_on_a_gpu_switching_tasks_gives_the_memory_back_and_the_host_counts_it(fresh_device_host):
    """On CUDA: the image pipeline's bytes are measured on the GPU, and running a video model after it leaves the
    allocator where one model alone would (the image pipeline is gone, not just unlisted)."""
    host = fresh_device_host
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    mk.generate("a fox", model="tiny-flux", width=64, height=64, steps=1, save=False, progress=False)
    (flux,) = host.resident()
    assert flux.vram_gb * GIB >= 0.9 * (torch.cuda.memory_allocated() - base) > 0
    generate_local("waves", model="tiny-wan", num_frames=5, steps=1, width=32, height=32)
    (wan,) = host.resident()
    assert wan.model == "tiny-wan" and wan.vram_gb > 0
    assert torch.cuda.memory_allocated() - base <= 1.1 * wan.vram_gb * GIB + 64 * MIB
    host.evict_all()
    assert torch.cuda.memory_allocated() - base <= 64 * MIB


@pytest.mark.gpu
def test_device_cpu_keeps_every_engine_off_the_gpu_even_with_one_present(fresh_device_host):
    mk.configure(device="cpu")
    res = mk.generate("a fox", model="tiny-flux", width=32, height=32, steps=1, save=False, progress=False)
    assert res.plan.device == "cpu" and fresh_device_host.resident()[0].vram_gb == 0
    from masuka_nb.lora.curate import ClipScorer

    assert ClipScorer("tiny-clip").model.device.type == "cpu"
