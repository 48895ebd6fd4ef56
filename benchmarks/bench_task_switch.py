"""Switching tasks in one process: tiny-flux → tiny-wan → a LoRA training step → tiny-flux.

Peak resident model memory over the whole sequence vs the largest single task run alone (each from an empty
device host, in this same process), as the device host measures it (bytes of every resident tensor, sampled at
every progress event of every task and after each one). Before the host, the image and video pipelines stayed
loaded side by side, so the sequence's peak was their sum. Goal: sequence / largest single task ≤ 1.1. Also
printed: the seconds of each switch (the first call of a task after another task ran: its load included),
beside the same call with its model already resident.

    python benchmarks/bench_task_switch.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-task-switch")

from harness import exit_with, report


def main() -> None:
    import torch

    torch.set_num_threads(1)
    import masuka_nb as mk
    from masuka_nb.host import GIB, device_host
    from masuka_nb.testing.media import noise_pngs
    from masuka_nb.video.local import generate_local

    host = device_host()
    small = dict(width=32, height=32, steps=2, save=False)
    peak = [0.0]

    def sample(event=None) -> None:
        peak[0] = max(peak[0], sum(r.vram_gb + r.ram_gb for r in host.resident()))

    ds = mk.lora.Dataset.create("bench-switch")
    ds.import_files(noise_pngs(2))
    runs = iter(range(1000))

    tasks = {
        "image": lambda: mk.generate("a lighthouse", model="tiny-flux", progress=sample, **small),
        "video": lambda: generate_local("waves", model="tiny-wan", num_frames=5, width=32, height=32, steps=2,
                                        progress=sample),
        "lora step": lambda: mk.lora.train(ds, base="tiny-flux", trigger_word="mk", steps=1, resolution=32,
                                           target_modules="double-blocks", progress=sample,
                                           name=f"bench-switch-{next(runs)}"),
    }

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        sample()
        return time.perf_counter() - t

    for fn in tasks.values():  # warm-up: tiny models built, imports done
        fn()
    alone: dict[str, float] = {}
    for name, fn in tasks.items():
        host.evict_all()
        peak[0] = 0.0
        timed(fn)
        alone[name] = peak[0]
    host.evict_all()
    peak[0] = 0.0
    switches = [(name, timed(tasks[name])) for name in ("image", "video", "lora step", "image")]
    resident_again = {n: timed(tasks[n]) for n in ("image",)}
    sequence = peak[0]
    largest = max(alone.values())
    ratio = sequence / largest if largest else float("inf")
    ok = report("task switch: peak resident memory vs the largest task", goal="<= 1.1", ok=ratio <= 1.1, extra={
        "sequence": "tiny-flux -> tiny-wan -> LoRA step -> tiny-flux (one process)",
        "peak over the sequence (MiB)": f"{sequence * GIB / 2**20:.2f}",
        "largest single task (MiB)": f"{largest * GIB / 2**20:.2f} ({max(alone, key=alone.get)})",
        "each task alone (MiB)": ", ".join(f"{k} {v * GIB / 2**20:.2f}" for k, v in alone.items()),
        "ratio": f"{ratio:.4f}",
        "seconds per task in the sequence": ", ".join(f"{k} {v:.2f} s" for k, v in switches),
        "tiny-flux again, already resident": f"{resident_again['image']:.2f} s",
    })
    exit_with(ok)


if __name__ == "__main__":
    main()
