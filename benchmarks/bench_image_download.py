"""Planned download bytes vs the whole FLUX.1-dev repo (recorded listing in tests/data). Goal: ≤ 0.6.

The bf16 plan (A100/H100) needs the diffusers folders only, never the 23.8 GB single-file checkpoint;
the free-Colab T4 plan takes NF4 components from the pre-quantized repo and only CLIP, VAE and
tokenizers from the original.

    python benchmarks/bench_image_download.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-image-download")

from harness import exit_with, report

GOAL = 0.6


def main() -> None:
    import masuka_nb as mk
    from masuka_nb.hub import download_plan, load_listing

    listing = load_listing(ROOT / "tests" / "data" / "flux1-dev.files.json")
    whole = sum(f.size for f in listing)
    oks = []
    for profile in ("a100-80", "t4"):
        plan = mk.plan("flux1-dev", gpu=profile)
        dplan = download_plan("flux1-dev", plan=plan, listing=listing)
        own = sum(f.size for f in dplan.files)
        ratio = own / whole
        oks.append(report(f"image planned download flux1-dev {profile}", goal=f"<= {GOAL}", ok=ratio <= GOAL,
                          extra={"plan": plan.label, "whole repo GB": f"{whole / 1e9:.2f}",
                                 "planned from black-forest-labs/FLUX.1-dev GB": f"{own / 1e9:.2f}",
                                 "ratio": f"{ratio:.3f}",
                                 "also from": ", ".join(p.repo for p in dplan.extra) or "-"}))
    exit_with(*oks)


if __name__ == "__main__":
    main()
