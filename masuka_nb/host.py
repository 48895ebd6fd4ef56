"""The device host: the one owner of what is loaded on this machine's GPU (and in RAM for CPU runs).

Every local model is loaded through it — image, edit and fill pipelines, local video, the upscaler, the
captioner, the CLIP scorer and the LoRA trainer's parts — so one object knows what is resident, what each
resident thing weighs (measured from its tensors once loaded, per device), frees what the next task needs,
and tells the memory planner what is really free:

    host = device_host()
    host.resident()        # [Resident(task='image', model='tiny-flux', vram_gb=0.0, ram_gb=0.0007, ...)]
    host.free_vram_gb()    # the device's memory minus what is resident: what `masuka_nb.plan` plans against
    host.evict_all()       # give everything back (a notebook cell before something big)

The policy, in the order a run meets it:

1. `claim(task)` before a task plans: idle models of *other* tasks leave (one task's models at a time:
   Image → Video → LoRA training on a T4 never holds two tasks' weights at once). A slot of this task
   holding another model is emptied too, so the plan that follows sees what it will really have.
2. `load(key, loader, ...)`: a key already resident is reused (a second `generate` loads nothing); otherwise
   the slot's previous model goes, then, while the plan's estimate is more than is free, the least recently
   used idle model goes; then the loader runs and its footprint is measured.
3. `hold(...)` is the same for a model kept only for one piece of work (a captioner, the trainer's VAE):
   it leaves when the `with` block ends, error or not.

A model in use (`using(key)` / `hold`) is never evicted: a second thread's task plans around it instead.
Nothing here imports torch unless a loaded model already did.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError
from masuka_nb.log import get_logger
from masuka_nb.runtime import PROFILES, GpuProfile, detect, free_memory
from masuka_nb.runtime import profile as named

__all__ = ["Host", "Resident", "device_host", "footprint", "torch_device"]

log = get_logger(__name__)

GIB = 1024**3


@dataclass
class _Entry:
    key: Hashable
    task: str
    slot: str
    model: str
    obj: Any
    vram_bytes: int
    ram_bytes: int
    loaded_at: float
    last_used: float
    order: int
    plan: Any = None
    on_evict: Callable[[Any], None] | None = None
    users: int = 0
    kept: bool = True  # False: held for one `with` block only
    extras: dict[str, Any] = field(default_factory=dict)  # views sharing the weights (img2img, i2v pipelines)


@dataclass(frozen=True)
class Resident:
    """What one resident model is and weighs (a snapshot; the host keeps the model itself)."""

    task: str
    slot: str
    model: str
    vram_gb: float
    ram_gb: float
    in_use: bool
    kept: bool
    plan_label: str = ""


def footprint(obj: Any) -> dict[str, int]:
    """Bytes of tensors `obj` holds, per device type ("cuda", "cpu", "mps", "meta"): a module, a diffusers
    pipeline (its components), containers of them, or plain objects holding them as attributes. Tensors
    shared between two holders (an img2img pipeline made with `from_pipe`) are counted once."""
    if "torch" not in sys.modules:  # nothing loaded can hold a tensor
        return {}
    import torch

    modules: list[torch.nn.Module] = []
    seen_objs: set[int] = set()

    def walk(value: Any, depth: int) -> None:
        if id(value) in seen_objs or depth > 6:
            return
        seen_objs.add(id(value))
        if isinstance(value, torch.nn.Module):
            modules.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, depth + 1)
        elif isinstance(getattr(value, "components", None), dict):  # a diffusers pipeline
            walk(value.components, depth + 1)
        elif depth <= 1 and hasattr(value, "__dict__") and not isinstance(value, type):
            for v in vars(value).values():
                walk(v, depth + 1)

    walk(obj, 0)
    out: dict[str, int] = {}
    storages: set[tuple[str, int]] = set()
    for module in modules:
        for tensor in itertools.chain(module.parameters(recurse=True), module.buffers(recurse=True)):
            kind = tensor.device.type
            if kind == "meta":
                continue
            try:
                ident = (kind, tensor.untyped_storage().data_ptr())
            except (RuntimeError, NotImplementedError):
                ident = (kind, id(tensor))
            if ident in storages:
                continue
            storages.add(ident)
            out[kind] = out.get(kind, 0) + tensor.numel() * tensor.element_size()
    return out


def torch_device() -> str:
    """The torch device work runs on, as the `device` setting says: "auto" → CUDA when there is one, else
    the CPU; "cuda" / "mps" are honoured or refused (never silently replaced by the CPU); "cpu" is the CPU."""
    wanted = settings().device
    if wanted == "cpu":
        return "cpu"
    cuda = _cuda_available()
    if wanted == "auto":
        return "cuda" if cuda else "cpu"
    if wanted == "cuda" and not cuda:
        raise InvalidRequestError("The `device` setting says \"cuda\", and this machine has no CUDA GPU.",
                                  argument="device", value=wanted,
                                  hint="Use a GPU runtime (Colab: Runtime > Change runtime type > T4 GPU), or "
                                       "masuka_nb.configure(device=\"auto\") to run on what is here.")
    if wanted == "mps" and not _mps_available():
        raise InvalidRequestError("The `device` setting says \"mps\", and this machine has no Apple GPU (MPS).",
                                  argument="device", value=wanted,
                                  hint="masuka_nb.configure(device=\"auto\") runs on what is here.")
    return wanted


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _mps_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


class Host:
    """The owner of one device's loaded models. `device_host()` is the one every engine uses."""

    def __init__(self, *, machine: GpuProfile | None = None) -> None:
        self._entries: dict[Hashable, _Entry] = {}
        self._lock = threading.RLock()
        self._order = itertools.count()
        self._machine = machine
        self._device_types: tuple[str, ...] = ("cuda", "mps")  # tensors on these count as the device's memory
        self.loads = 0
        self.evictions = 0

    # ---- the machine ----

    def machine(self) -> GpuProfile:
        """This machine as a planning profile, as the `device` setting has it (total memory, nothing
        subtracted). A simulated machine (`simulate`) stands in for it in tests and benchmarks."""
        if self._machine is not None:
            return self._machine
        device = torch_device()
        if device == "cpu":
            return replace(PROFILES["cpu"], ram_gb=_this_machine().ram_gb)
        if device == "mps":  # unified memory: the planner's CPU rules, on the Apple GPU
            return GpuProfile("mps", 0.0, _this_machine().ram_gb, None, label="Apple GPU (MPS)")
        return _this_machine()

    def simulate(self, profile: GpuProfile | str | None, *, counts_cpu: bool = False) -> None:
        """Plan as if this machine were `profile` (a name such as "t4", or a GpuProfile); None: the real one.
        `counts_cpu=True` counts what models hold in RAM as the simulated device's memory (a CPU-only
        machine standing in for a GPU one in tests and benchmarks)."""
        self._machine = named(profile) if isinstance(profile, str) else profile
        self._device_types = ("cuda", "mps", "cpu") if counts_cpu and profile is not None else ("cuda", "mps")
        with self._lock:
            for entry in self._entries.values():
                self._measure(entry)

    def free_vram_gb(self, *, excluding_model: str | None = None) -> float:
        """The device's memory less what is resident (less what `excluding_model` holds, if it is the model
        about to be planned: it will be reused or replaced, not added)."""
        used = sum(e.vram_bytes for e in self._snapshot() if e.model != excluding_model)
        return max(0.0, self.machine().vram_gb - used / GIB)

    def free_ram_gb(self, *, excluding_model: str | None = None) -> float:
        used = sum(e.ram_bytes for e in self._snapshot() if e.model != excluding_model)
        return max(0.0, self.machine().ram_gb - used / GIB)

    def planning_profile(self, model: str | None = None) -> GpuProfile:
        """The machine as the planner should see it for `model`: its memory less what stays resident."""
        prof = self.machine()
        return replace(prof, vram_gb=self.free_vram_gb(excluding_model=model) if prof.is_cuda else 0.0,
                       ram_gb=self.free_ram_gb(excluding_model=model))

    # ---- what is resident ----

    def resident(self) -> list[Resident]:
        """Every resident model, oldest first."""
        return [Resident(e.task, e.slot, e.model, round(e.vram_bytes / GIB, 6), round(e.ram_bytes / GIB, 6),
                         e.users > 0, e.kept, getattr(e.plan, "label", "")) for e in self._snapshot()]

    def objects(self, task: str | None = None) -> list[Any]:
        """The resident objects themselves (of `task`, or all): for checks that they are really gone later."""
        return [e.obj for e in self._snapshot() if task is None or e.task == task]

    def tasks(self) -> set[str]:
        """The tasks with a model resident now."""
        return {e.task for e in self._snapshot()}

    def get(self, key: Hashable) -> Any:
        """The resident object under `key` (marked as just used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.last_used = time.monotonic()
            return entry.obj

    def entry_plan(self, key: Hashable) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            return entry.plan if entry is not None else None

    def extras(self, key: Hashable) -> dict[str, Any]:
        """A dict kept with the resident `key` (views that share its weights); it leaves with it."""
        with self._lock:
            return self._entries[key].extras

    def in_slot(self, slot: str) -> list[tuple[Hashable, str, Any]]:
        """(key, model, plan) of what `slot` holds."""
        return [(e.key, e.model, e.plan) for e in self._snapshot() if e.slot == slot]

    # ---- claiming and loading ----

    def claim(self, task: str, *, slot: str | None = None, model: str | None = None) -> list[str]:
        """Make room for `task` before it plans: idle models of other tasks leave, and so does what `slot`
        holds when it is not `model`. Returns the models evicted."""
        with self._lock:
            gone = [e for e in self._entries.values() if e.users == 0 and (
                e.task != task or (slot is not None and e.slot == slot and e.model != model))]
            for e in gone:
                self._evict(e, why=f"{task} claimed the device")
        if gone:
            free_memory()
        return [e.model for e in gone]

    def load(self, key: Hashable, loader: Callable[[], Any], *, task: str, slot: str, model: str,
             plan: Any = None, need_gb: float = 0.0, on_evict: Callable[[Any], None] | None = None) -> Any:
        """The object under `key`, loaded with `loader()` when it is not resident (see the module docstring)."""
        with self._lock:
            found = self.get(key)
            if found is not None:
                return found
            return self._load(key, loader, task=task, slot=slot, model=model, plan=plan, need_gb=need_gb,
                              on_evict=on_evict, kept=True).obj

    @contextlib.contextmanager
    def hold(self, key: Hashable, loader: Callable[[], Any], *, task: str, slot: str, model: str,
             plan: Any = None, need_gb: float = 0.0) -> Iterator[Any]:
        """Load for one `with` block: resident (and counted) inside it, gone after it."""
        self.claim(task)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._load(key, loader, task=task, slot=slot, model=model, plan=plan, need_gb=need_gb,
                                   on_evict=None, kept=False)
            entry.users += 1
        try:
            yield entry.obj
        finally:
            with self._lock:
                entry.users -= 1
                if entry.users == 0 and not entry.kept and self._entries.get(key) is entry:
                    self._evict(entry, why="done")
            free_memory()

    @contextlib.contextmanager
    def using(self, key: Hashable) -> Iterator[Any]:
        """Pin a resident model while it runs: no other task evicts it meanwhile."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise KeyError(key)
            entry.users += 1
            entry.last_used = time.monotonic()
        try:
            yield entry.obj
        finally:
            with self._lock:
                entry.users -= 1

    def remeasure(self, key: Hashable) -> None:
        """Measure a resident model again (after it moved between devices)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._measure(entry)

    # ---- giving memory back ----

    def evict(self, key: Hashable) -> bool:
        """Drop the model under `key` (unless it is in use). True when it was resident and left."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.users:
                return False
            self._evict(entry, why="asked")
        free_memory()
        return True

    def evict_slot(self, slot: str) -> list[str]:
        with self._lock:
            gone = [e for e in self._entries.values() if e.slot == slot and e.users == 0]
            for e in gone:
                self._evict(e, why="asked")
        if gone:
            free_memory()
        return [e.model for e in gone]

    def evict_all(self) -> list[str]:
        """Drop every idle model and give the memory back (a notebook cell before something big)."""
        with self._lock:
            gone = [e for e in self._entries.values() if e.users == 0]
            for e in gone:
                self._evict(e, why="asked")
        free_memory()
        return [e.model for e in gone]

    # ---- inside ----

    def _snapshot(self) -> list[_Entry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.order)

    def _load(self, key, loader, *, task, slot, model, plan, need_gb, on_evict, kept) -> _Entry:
        for e in [e for e in self._entries.values() if e.slot == slot and e.users == 0]:
            self._evict(e, why=f"{model} replaces it in {slot}")
        self._make_room(need_gb, plan, keep=key)
        cuda_before = _cuda_allocated()
        obj = loader()
        now = time.monotonic()
        entry = _Entry(key, task, slot, model, obj, 0, 0, now, now, next(self._order), plan, on_evict, kept=kept)
        self._measure(entry)
        # What the allocator gained while loading: bitsandbytes' workspace is no parameter, yet it is held.
        entry.vram_bytes = max(entry.vram_bytes, _cuda_allocated() - cuda_before)
        self._entries[key] = entry
        self.loads += 1
        log.info("host.loaded", task=task, model=model, vram_gb=round(entry.vram_bytes / GIB, 3),
                 ram_gb=round(entry.ram_bytes / GIB, 3))
        return entry

    def _measure(self, entry: _Entry) -> None:
        sizes = footprint([entry.obj, entry.extras])
        entry.vram_bytes = sum(v for k, v in sizes.items() if k in self._device_types)
        entry.ram_bytes = 0 if "cpu" in self._device_types else sizes.get("cpu", 0)

    def _make_room(self, need_gb: float, plan: Any, *, keep: Hashable) -> None:
        """Evict idle models, least recently used first, while the next load's estimate is over what is free."""
        if not need_gb:
            return
        on_gpu = getattr(plan, "device", "cuda") != "cpu"
        free = self.free_vram_gb if on_gpu else self.free_ram_gb
        idle = sorted((e for e in self._entries.values() if e.users == 0 and e.key != keep),
                      key=lambda e: e.last_used)
        while idle and free() < need_gb:
            self._evict(idle.pop(0), why=f"the next model needs {need_gb:.1f} GB")
        free_memory()

    def _evict(self, entry: _Entry, *, why: str) -> None:
        self._entries.pop(entry.key, None)
        self.evictions += 1
        log.info("host.evicted", task=entry.task, model=entry.model, why=why)
        if entry.on_evict is not None:
            try:
                entry.on_evict(entry.obj)
            except Exception as exc:  # a failing clean-up must not keep the memory
                log.warning("host.on_evict_failed", model=entry.model, error=f"{type(exc).__name__}: {exc}")
        entry.extras.clear()
        entry.obj = None


def _cuda_allocated() -> int:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0
    return int(torch.cuda.memory_allocated())


_machine_lock = threading.Lock()
_machine_cache: list[GpuProfile] = []


def _this_machine() -> GpuProfile:
    """This machine as a profile. Its GPU and total RAM do not change while the process lives (a Colab
    runtime change restarts it), so it is looked at once."""
    with _machine_lock:
        if not _machine_cache:
            _machine_cache.append(detect().as_profile())
        return _machine_cache[0]


_HOST = Host()  # made at import: it holds nothing until a model is loaded, and imports nothing heavy


def device_host() -> Host:
    """The host every engine loads through (one per process)."""
    return _HOST
