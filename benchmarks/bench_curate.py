"""Curating 200 images: batched CLIP embedding + aesthetic scoring vs one image at a time.

Goal: the batched embedding/scoring stage is ≥ 2× faster than one image at a time (same scorer,
same images, measured alternately in one run). The whole-curation ratio is printed beside it.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-curate")

import numpy as np
from harness import Comparison, exit_with, report
from PIL import Image

N_IMAGES = 200
ROUNDS = 3


def _dataset():
    from masuka_nb.lora import Dataset

    ds = Dataset.create("bench-curate")
    rng = np.random.default_rng(0)
    files = []
    for k in range(N_IMAGES):
        coarse = Image.fromarray(rng.integers(0, 255, (5, 5, 3), dtype=np.uint8)).resize((256, 256), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        coarse.save(buf, format="PNG")
        files.append((f"img{k}.png", buf.getvalue()))
    ds.import_files(files)
    return ds


def main() -> None:
    import torch

    # One thread: on a shared 2-core machine, thread contention makes tiny one-image calls erratically
    # slow (11–18× "speed-ups"); one thread gives the stable, conservative ratio.
    torch.set_num_threads(1)
    from masuka_nb.lora.curate import ClipScorer, curate

    ds = _dataset()
    scorer = ClipScorer("tiny-clip")
    curate(ds, batch_size=32, scorer=scorer, apply=False)  # warm-up
    embed = Comparison("batched (32)", "one at a time")
    whole = Comparison("batched (32)", "one at a time")
    for i in range(ROUNDS):
        order = ((32, embed.a_times, whole.a_times), (1, embed.b_times, whole.b_times))
        for batch, embed_sink, whole_sink in order if i % 2 == 0 else reversed(order):
            r = curate(ds, batch_size=batch, scorer=scorer, apply=False)
            embed_sink.append(r.timings["embed_s"])
            whole_sink.append(r.elapsed_s)
    speedup = 1 / embed.ratio
    ok = report(f"curate {N_IMAGES} images: embedding and scoring", embed, goal="batched ≥ 2× faster",
                ok=speedup >= 2.0, extra={"speed-up": f"{speedup:.2f}×"})
    report(f"curate {N_IMAGES} images: whole curation (decode, hashes, blur, embed, judge)", whole,
           extra={"speed-up": f"{1 / whole.ratio:.2f}×"})
    exit_with(ok)


if __name__ == "__main__":
    main()
