"""Peak memory of a 4× refine upscale of a large image (128² → 512², large for tiny-flux, whose VAE does not
downsample: 65,536 image tokens): tiled (128-pixel output tiles, 32 overlap) vs untiled (one img2img over the
whole output), result cache off.

Each contender runs in its own fresh process (peak RSS is a high-water mark), side by side in one run:
load the pipeline, make the source image, note the peak, upscale, note the peak again. The number compared
is what the upscale added on top of the loaded pipeline. Goal: tiled / untiled ≤ 0.5.

    python benchmarks/bench_upscale.py [--source 128] [--tile 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-upscale")

from harness import ROOT, exit_with, report

CHILD = """
import json, resource, sys, torch
torch.set_num_threads(1)
import masuka_nb as mk
mk.configure(result_cache=False)  # both really run (a cached answer would use no memory at all)
source, tile = int(sys.argv[1]), int(sys.argv[2]) or None
res = mk.generate("a harbour at dawn", model="tiny-flux", width=source, height=source, steps=2, seed=3,
                  save=False, progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
up = mk.upscale(res, factor=4, method="refine", steps=2, strength=0.5, tile=tile, overlap=32 if tile else 64)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "size": list(up.image.size)}))
"""


def measure(source: int, tile: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(source), str(tile)], check=True, capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                   "PYTHONPATH": str(ROOT)})
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["added_mb"] = (data["after_kb"] - data["before_kb"]) / 1024
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=int, default=128)
    parser.add_argument("--tile", type=int, default=128)
    args = parser.parse_args()
    untiled = measure(args.source, 0)
    tiled = measure(args.source, args.tile)
    ratio = max(tiled["added_mb"], 1.0) / max(untiled["added_mb"], 1.0)
    ok = report("tiled vs untiled upscale peak memory", goal="<= 0.5", ok=ratio <= 0.5 and
                tiled["size"] == untiled["size"], extra={
                    "output": f"{untiled['size'][0]}x{untiled['size'][1]} (4x of {args.source})",
                    "untiled added peak": f"{untiled['added_mb']:.0f} MB",
                    f"tiled ({args.tile}px tiles) added peak": f"{tiled['added_mb']:.0f} MB",
                    "ratio tiled / untiled": f"{ratio:.3f}"})
    exit_with(ok)


if __name__ == "__main__":
    main()
