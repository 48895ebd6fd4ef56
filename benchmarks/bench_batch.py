"""A batch of 32 tiny-flux images via `batch` vs the same 32 images as separate `generate` calls.

Both make 8 prompts × 4 seeds at 128², 4 steps, saved as PNGs with their history records, on one
loaded pipeline (result cache off). `batch` puts compatible items (any prompts and seeds at the same
model, size, steps and LoRAs) into one pipeline call as far as the memory plan allows (16 images here)
and encodes each prompt once. Measured alternately, each round in a fresh MASUKA home so a batch never
resumes from the previous round. Goal: batch / separate ≤ 0.7, in this process's CPU time (torch runs on
one thread, so CPU time is the work done; the wall-clock ratio beside it moves with the machine's other
load on a shared box).

    python benchmarks/bench_batch.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

HOME = isolate("bench-batch")  # removed at exit, with every round's home made inside it

from harness import compare, exit_with, report

PROMPTS = [f"a {c} {t} at dusk" for c in ("red", "blue") for t in ("kite", "boat", "lamp", "tower")]
SEEDS = [1, 2, 3, 4]


def main() -> None:
    import os
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    import masuka_nb as mk
    from masuka_nb.image.engine import ImageEngine

    engine = ImageEngine()
    settings = dict(model="tiny-flux", width=128, height=128, steps=4, progress=False)

    def fresh_home():
        # Inside the throwaway home `isolate` removes at exit: no round is left behind in /tmp.
        os.environ["MASUKA_HOME"] = tempfile.mkdtemp(prefix="round-", dir=HOME)
        mk.reset_configuration()
        mk.configure(result_cache=False)

    def with_batch():
        fresh_home()
        res = mk.batch(PROMPTS, seeds=SEEDS, engine=engine, **settings)
        assert len(res.paths) == 32 and res.resumed == 0

    def separately():
        fresh_home()
        paths = []
        for prompt in PROMPTS:
            for seed in SEEDS:
                paths += engine.generate(prompt, seed=seed, **settings).paths
        assert len(paths) == 32

    result = compare("batch (32 images)", with_batch, "32 generate calls", separately, repeat=args.repeat,
                     warmup=1)
    ok = report("batch vs separate generate", result, goal="CPU-time ratio <= 0.7", ok=result.cpu_ratio <= 0.7,
                extra={"settings": "tiny-flux 128x128, 4 steps, 8 prompts x 4 seeds, saved",
                       "loads": engine.load_count})
    exit_with(ok)


if __name__ == "__main__":
    main()
