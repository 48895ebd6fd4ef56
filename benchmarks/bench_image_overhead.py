"""generate() vs the raw diffusers pipeline with the same settings, on tiny-flux and tiny-sd3.

Both sides use the same loaded pipeline (`ImageEngine.pipeline`), the same prompt, size, steps, guidance
and seed; generate() adds validation, planning, the recipe, the per-step callback and the history
record (the result cache is off, so every call really generates). Goal: median ratio ≤ 1.05.

On a shared 2-core machine wall times swing by 10× between neighbouring calls, so the goal is judged on
the median of *paired* ratios (each generate() call against the raw call next to it, order alternating),
with torch on one thread; the ratio of medians and the CPU-time ratio are printed beside it.

    python benchmarks/bench_image_overhead.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-image-overhead")

from harness import Comparison, exit_with, report

GOAL = 1.05


def bench(model: str, repeat: int) -> bool:
    import torch

    import masuka_nb as mk

    torch.set_num_threads(1)
    from masuka_nb.image.engine import ImageEngine
    from masuka_nb.models.registry import get_model

    mk.configure(result_cache=False)
    spec = get_model(model)
    engine = ImageEngine()
    pipe = engine.pipeline(model)
    settings = dict(width=64, height=64, steps=4, seed=1234)

    history_s = []

    def ours():
        res = engine.generate("a lighthouse at dawn", model=model, save=False, progress=False, **settings)
        history_s.append(res.timings["seconds_history"])

    def raw():
        pipe(prompt="a lighthouse at dawn", width=64, height=64, num_inference_steps=4,
             guidance_scale=spec.default_guidance, num_images_per_prompt=1,
             generator=[torch.Generator("cpu").manual_seed(1234)], max_sequence_length=spec.max_sequence_length,
             output_type="pil")

    result = Comparison("masuka generate", "raw diffusers pipeline")
    cpu = Comparison("masuka generate (CPU time)", "raw diffusers pipeline (CPU time)")
    for _ in range(2):
        ours()
        raw()
    pairs = []
    for i in range(repeat):
        order = [(ours, result.a_times, cpu.a_times), (raw, result.b_times, cpu.b_times)]
        for fn, wall, proc in order if i % 2 == 0 else reversed(order):
            w0, p0 = time.perf_counter(), time.process_time()
            fn()
            wall.append(time.perf_counter() - w0)
            proc.append(time.process_time() - p0)
        pairs.append(result.a_times[-1] / result.b_times[-1])
    paired = statistics.median(pairs)
    # The durable history write (fsync) is the one part that waits on the disk, not the CPU.
    without_history = statistics.median(
        (a - h) / b for a, b, h in zip(result.a_times, result.b_times, history_s[-repeat:]))
    loads = engine.load_count
    return report(f"image generate overhead {model}", result, goal=f"median paired ratio <= {GOAL}",
                  ok=paired <= GOAL and loads == 1,
                  extra={"median paired ratio": f"{paired:.4f}", "CPU-time ratio": f"{cpu.ratio:.4f}",
                         "history write per call (median)": f"{statistics.median(history_s) * 1000:.2f} ms",
                         "paired ratio without the history write": f"{without_history:.4f}",
                         "pipeline loads": loads, "settings": "64x64, 4 steps, batch 1, CPU, 1 torch thread"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=41)
    args = parser.parse_args()
    exit_with(bench("tiny-flux", args.repeat), bench("tiny-sd3", args.repeat))


if __name__ == "__main__":
    main()
