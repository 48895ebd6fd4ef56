"""Pipeline reuse and the result cache.

1. A second generate() with the same model loads nothing (ImageEngine.load_count stays 1). Goal: 0 reloads.
2. A result-cache hit vs the generation it replaces (same recipe, cache off), measured alternately.
   Goal: the hit is ≥ 50× faster.

    python benchmarks/bench_image_reuse_cache.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import isolate

isolate("bench-image-reuse-cache", fresh_cache=True)

from harness import compare, exit_with, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    import masuka_nb as mk
    from masuka_nb.image.engine import ImageEngine

    engine = ImageEngine()
    # A typical tiny-model request: FLUX-schnell-like 4 steps at 256², saved like a user's image.
    request = dict(model="tiny-flux", width=256, height=256, steps=4, seed=77, progress=False)

    mk.configure(result_cache=False)  # measure the pipeline, not the cache
    engine.generate("a red fox in snow", save=False, **request)
    first_loads = engine.load_count
    engine.generate("a red fox in snow, again", save=False, **request)
    reloads = engine.load_count - first_loads
    ok_reuse = report("image second call reloads", goal="== 0", ok=reloads == 0 and first_loads == 1,
                      extra={"loads after first call": first_loads, "reloads on second call": reloads})

    mk.configure(result_cache=True)
    primed = engine.generate("a lantern on a pier", save=True, **request)
    assert not primed.cached

    def generation():
        mk.configure(result_cache=False)
        try:
            engine.generate("a lantern on a pier", save=True, **request)
        finally:
            mk.configure(result_cache=True)

    def cache_hit():
        assert engine.generate("a lantern on a pier", save=True, **request).cached

    result = compare("full generation", generation, "result-cache hit", cache_hit, repeat=args.repeat, warmup=1)
    ok_cache = report("image result cache speed-up", result, goal=">= 50x", ok=result.ratio >= 50,
                      extra={"speed-up": f"{result.ratio:.1f}x", "settings": "tiny-flux 256x256, 4 steps, saved"})
    exit_with(ok_reuse, ok_cache)


if __name__ == "__main__":
    main()
