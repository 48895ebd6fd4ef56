"""Speed mode on tiny-flux: transformer passes the first-block cache saves per image, and, on a GPU, seconds
per image with and without, measured alternately in the same run.

Passes are counted inside the last transformer block (a cached step never enters it), for 28 steps at the
default threshold (0.08, what speed="fast" uses) and at looser thresholds for the curve. tiny-flux has random
weights, so its steps change the hidden states far more than a trained model's: the saving here is a floor,
not a forecast (published: ≈1.55× on FLUX.1-dev at 0.08, L40). No goal on a CPU; on a GPU, goal: fast ≤ off.

    python benchmarks/bench_speed_mode.py [--steps 28] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-speed-mode")

from harness import compare, exit_with, report


def _pipe(plan, device):
    from diffusers import DiffusionPipeline

    from masuka_nb.image.speed import apply_speed
    from masuka_nb.models.tiny import ensure_tiny

    pipe = DiffusionPipeline.from_pretrained(ensure_tiny("tiny-flux")).to(device)
    pipe.set_progress_bar_config(disable=True)
    apply_speed(pipe, plan)
    return pipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    import masuka_nb as mk
    from masuka_nb.image.speed import count_full_passes

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    call = dict(prompt="a red fox in snow", num_inference_steps=args.steps, height=256, width=256)
    off_plan = mk.plan("tiny-flux", gpu="cpu")
    fast_plan = mk.plan("tiny-flux", gpu="cpu", speed="fast")
    extra = {}
    for label, threshold in (("speed=fast (0.08)", None), ("threshold 0.2", 0.2), ("threshold 0.3", 0.3)):
        plan = fast_plan if threshold is None else mk.plan("tiny-flux", gpu="cpu", first_block_cache=threshold)
        pipe = _pipe(plan, device)
        with count_full_passes(pipe) as count:
            pipe(**call, generator=torch.Generator().manual_seed(0))
        extra[f"{label}: full passes / calls"] = f"{count.full}/{count.calls} (saved {count.saved} per image)"
    oks = [report("speed mode passes saved on tiny-flux", extra=extra)]
    if device == "cuda":
        off, fast = _pipe(off_plan, device), _pipe(fast_plan, device)
        comp = compare("speed=fast", lambda: fast(**call, generator=torch.Generator().manual_seed(0)),
                       "speed=off", lambda: off(**call, generator=torch.Generator().manual_seed(0)),
                       repeat=args.repeat, warmup=1)
        oks.append(report("speed mode seconds per image on tiny-flux (GPU)", comp, goal="fast/off ≤ 1.0",
                          ok=comp.ratio <= 1.0))
    exit_with(*oks)


if __name__ == "__main__":
    main()
