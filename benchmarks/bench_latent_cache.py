"""Latent caching: VAE encodes = number of images, whatever the number of epochs.

Counts real calls to diffusers' `AutoencoderKL.encode` (wrapped here, in the benchmark only) during
tiny-flux runs of 1 and 5 epochs, and during a resume that finds the cache on disk.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-latent-cache")

import numpy as np
from harness import exit_with, report
from PIL import Image

N_IMAGES = 6


def main() -> None:
    from diffusers import AutoencoderKL

    from masuka_nb.errors import CancelledError
    from masuka_nb.lora import Dataset, TrainingRun, train
    from masuka_nb.progress import CancelToken

    calls = {"n": 0}
    original = AutoencoderKL.encode

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    AutoencoderKL.encode = counting
    ds = Dataset.create("bench-cache")
    rng = np.random.default_rng(0)
    files = []
    for k in range(N_IMAGES):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (256, 256 + 32 * k, 3), dtype=np.uint8)).save(buf, format="PNG")
        files.append((f"i{k}.png", buf.getvalue()))
    ds.import_files(files)
    results = {}
    for epochs in (1, 5):
        calls["n"] = 0
        run = train(ds, base="tiny-flux", trigger_word="mk", steps=epochs * N_IMAGES, resolution=32,
                    name=f"epochs-{epochs}")
        results[f"{epochs} epoch(s), {run.step} steps"] = calls["n"]
    # A run cut short and resumed: the resume reads the cached latents from the run folder.
    token = CancelToken()
    calls["n"] = 0
    try:
        train(ds, base="tiny-flux", trigger_word="mk", steps=4 * N_IMAGES, resolution=32, name="resumed",
              checkpoint_every=2, cancel=token,
              progress=lambda e: token.cancel("bench") if e.data.get("global_step") == 7 else None)
    except CancelledError:
        pass
    first = calls["n"]
    calls["n"] = 0
    TrainingRun.load("resumed").resume()
    results["cancelled at step 7 (first attempt)"] = first
    results["resume of that run (cache on disk)"] = calls["n"]
    ok = all(v == N_IMAGES for k, v in results.items() if "resume" not in k) and results[
        "resume of that run (cache on disk)"] == 0
    report("latent cache: VAE encodes per run", goal=f"= {N_IMAGES} images whatever the epochs (0 on resume)",
           ok=ok, extra={k: f"{v} VAE encodes" for k, v in results.items()})
    exit_with(ok)


if __name__ == "__main__":
    main()
