"""Result cache: the same recipe returns the stored images without running the pipeline.

The key hashes everything that decides the pixels: model and revision (or tiny builder version),
prompt, sizes, steps, guidance, seeds, scheduler, img2img input hash and strength, LoRA file hashes and
weights, and how it was computed: every plan field that changes the arithmetic (device, dtypes, NF4 and
which components, offload, freed text encoders, compile, first-block cache, VAE tiling, speed) and the
engine's attention backend (`compute_of`). Two plans that should give the same image are then two
computations, never a cache hit standing in for one. Entries point at PNGs (the saved outputs, or copies
in the local cache when `save=False`) and record each one's SHA-256: a missing, damaged or replaced file
is a miss (and the entry is rebuilt by the next store), never an error and never someone else's picture.
An entry that does not parse is quarantined. The cache is a convenience: a full disk while storing an
entry is logged, not raised. Turn it off with `configure(result_cache=False)`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import MasukaError
from masuka_nb.image.metadata import write_png
from masuka_nb.log import get_logger
from masuka_nb.storage import atomic_write_json, file_sha256, read_json_guarded

__all__ = ["COMPUTE_FIELDS", "KEY_FIELDS", "compute_of", "lookup", "recipe_key", "store"]

log = get_logger(__name__)

KEY_FIELDS = ("model", "revision", "prompt", "negative_prompt", "width", "height", "steps", "guidance", "seeds",
              "scheduler", "image_sha256", "strength", "loras", "device", "dtype", "vae_dtype", "quantization",
              "max_sequence_length", "compute")
# The MemoryPlan fields that change how the pixels are computed (tests/image/test_image_memory.py checks that
# every other plan field is an estimate, a label or a size already in the recipe).
COMPUTE_FIELDS = ("device", "dtype", "vae_dtype", "text_encoder_dtype", "quantization", "quantized_components",
                  "quantized_repo", "quantized_file", "offload", "free_text_encoders", "compile", "first_block_cache", "vae_tiling",
                  "speed")


def compute_of(plan: Any, *, attention_backend: str | None = None) -> dict[str, Any]:
    """How a generation is computed, as the recipe records it: the plan's compute fields and the attention."""
    out = {name: getattr(plan, name) for name in COMPUTE_FIELDS}
    out["quantized_components"] = list(out["quantized_components"])
    out["attention_backend"] = attention_backend
    return out


def recipe_key(recipe: dict[str, Any]) -> str:
    essential = {k: recipe.get(k) for k in KEY_FIELDS}
    blob = json.dumps(essential, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _entry(key: str) -> Path:
    return settings().cache_dir / "results" / key[:2] / f"{key}.json"


def lookup(key: str) -> tuple[list[Any], list[Path]] | None:
    """The cached images and their paths, or None."""
    from PIL import Image

    entry = _entry(key)
    if not entry.is_file():
        return None
    data = read_json_guarded(entry, expect=dict)  # not JSON / not a mapping: quarantined, a miss
    paths_raw, hashes = (data or {}).get("paths"), (data or {}).get("sha256")
    if not (isinstance(paths_raw, list) and isinstance(hashes, list) and paths_raw and len(paths_raw) == len(hashes)
            and all(isinstance(p, str) for p in paths_raw) and all(isinstance(h, str) for h in hashes)):
        if data is not None:
            from masuka_nb.storage import quarantine

            quarantine(entry, reason="a result-cache entry of the wrong shape (no paths with hashes)")
        return None
    paths = [Path(p) for p in paths_raw]
    # Images saved under another MASUKA home (another Drive, a finished test) are not this user's.
    if not all(_ours(p) for p in paths):
        return None
    images = []
    try:
        for p, digest in zip(paths, hashes):
            if file_sha256(p) != digest:
                log.info("cache.miss_changed", key=key[:12], path=str(p))  # replaced or edited since: not ours
                return None
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        log.info("cache.miss_damaged", key=key[:12], error=type(exc).__name__)
        return None
    return images, paths


def _ours(path: Path) -> bool:
    s = settings()
    return path.is_relative_to(s.outputs_dir) or path.is_relative_to(s.cache_dir / "results")


def store(key: str, images: list[Any], paths: list[Path], recipe: dict[str, Any]) -> list[Path]:
    """Remember `images` under `key`; when they were not saved, keep copies in the local cache.

    Returns the paths the entry points at ([] when the cache could not be written: a full disk here
    never fails the generation whose images are already made)."""
    entry = _entry(key)
    try:
        if not paths:
            paths = [write_png(im, entry.parent / key / f"{i}.png", recipe=recipe, index=i)
                     for i, im in enumerate(images)]
        atomic_write_json(entry, {"paths": [str(p) for p in paths], "sha256": [file_sha256(p) for p in paths]})
    except (MasukaError, OSError) as exc:
        log.warning("cache.store_failed", key=key[:12], error=str(exc))
        return [p for p in paths if Path(p).is_file()] if paths else []
    return paths
