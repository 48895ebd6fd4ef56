"""generate() vs the raw diffusers pipeline with the same settings, on tiny-flux and tiny-sd3.

Both sides use the same loaded pipeline (`ImageEngine.pipeline`), the same prompt, size, steps, guidance
and seed; generate() adds validation, planning, the recipe, the per-step callback and the history
record (the result cache is off, so every call really generates). Goal: median ratio ≤ 1.05.

    python benchmarks/bench_image_overhead.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["MASUKA_HOME"] = tempfile.mkdtemp(prefix="masuka-bench-")
atexit.register(shutil.rmtree, os.environ["MASUKA_HOME"], True)
os.environ["MASUKA_PROGRESS"] = "off"

from harness import compare, exit_with, report  # noqa: E402

GOAL = 1.05


def bench(model: str, repeat: int) -> bool:
    import torch

    import masuka_nb as mk
    from masuka_nb.image.engine import ImageEngine
    from masuka_nb.models.registry import get_model

    mk.configure(result_cache=False)
    spec = get_model(model)
    engine = ImageEngine()
    pipe = engine.pipeline(model)
    settings = dict(width=64, height=64, steps=4, seed=1234)

    def ours():
        engine.generate("a lighthouse at dawn", model=model, save=False, progress=False, **settings)

    def raw():
        pipe(prompt="a lighthouse at dawn", width=64, height=64, num_inference_steps=4,
             guidance_scale=spec.default_guidance, num_images_per_prompt=1,
             generator=[torch.Generator("cpu").manual_seed(1234)], max_sequence_length=spec.max_sequence_length,
             output_type="pil")

    result = compare("masuka generate", ours, "raw diffusers pipeline", raw, repeat=repeat, warmup=2)
    loads = engine.load_count
    return report(f"image generate overhead {model}", result, goal=f"<= {GOAL}", ok=result.ratio <= GOAL and loads == 1,
                  extra={"pipeline loads": loads, "settings": "64x64, 4 steps, batch 1, CPU"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    exit_with(bench("tiny-flux", args.repeat), bench("tiny-sd3", args.repeat))


if __name__ == "__main__":
    main()
