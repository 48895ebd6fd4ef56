"""`reproduce`: make the images of a recipe again, whichever engine made them (generate or edit).

It sits above both `generation` and `edit`, so neither imports the other to replay a recipe. Foreign
images (other tools' metadata, read by `recipes`) are replayed by `foreign`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from masuka_nb.buckets import fetch, is_bucket_url
from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError
from masuka_nb.image.edit import reproduce_edit
from masuka_nb.image.engine import default_engine
from masuka_nb.image.foreign import reproduce_foreign as _reproduce_foreign
from masuka_nb.image.generation import CARRIED, GenerationResult, run
from masuka_nb.image.pipeline import image_sha256
from masuka_nb.image.recipes import Recipe
from masuka_nb.image.recipes import read_recipe as read_any

__all__ = ["reproduce"]


def reproduce(path_or_recipe: Any, *, save: bool = True, progress: Any = None,
              cancel: Any = None) -> GenerationResult:
    """Make the images of a recipe again: a MASUKA PNG, a recipe .json, a recipe dict or a result, or a
    foreign image (A1111/Forge, ComfyUI, SwarmUI, InvokeAI, Civitai; a path, URL, bucket object or `Recipe`).

    A MASUKA recipe is replayed exactly (the result cache is bypassed: the pipeline really runs, so the images
    are the same ones when the model, LoRA files and device are the same). A foreign one is mapped: its model
    to the registry (by name, hash or a Civitai lookup), its LoRAs fetched (library, Civitai by id or hash), and
    `result.warnings` says plainly where the result can only be close (sampler, base model, noise, a tiny twin).
    """
    if isinstance(path_or_recipe, GenerationResult):
        recipe = path_or_recipe.recipe
    elif isinstance(path_or_recipe, dict):
        recipe = path_or_recipe
    elif isinstance(path_or_recipe, Recipe):
        if path_or_recipe.dialect == "masuka" and path_or_recipe.raw:
            recipe = path_or_recipe.raw
        else:
            return _reproduce_foreign(path_or_recipe, save=save, progress=progress, cancel=cancel)
    elif isinstance(path_or_recipe, (str, Path)):
        recipe = _read(path_or_recipe)
        if isinstance(recipe, Recipe):
            return _reproduce_foreign(recipe, save=save, progress=progress, cancel=cancel)
    else:
        raise InvalidRequestError("`reproduce` takes a PNG path, a recipe .json, a recipe dict, a result or a Recipe.",
                                  argument="path_or_recipe", value=path_or_recipe,
                                  hint="e.g. masuka_nb.reproduce(result.paths[0]) or mk.reproduce(\"found.png\")")
    if isinstance(recipe, dict) and recipe.get("kind") == "edit":  # masuka_nb.edit's recipes (image/edit.py)
        return reproduce_edit(recipe, save=save, progress=progress, cancel=cancel)
    try:
        seeds = [int(s) for s in recipe["seeds"]]
        loras = [(lr["source"], float(lr["weight"])) for lr in recipe.get("loras", [])]
        image = None
        if recipe.get("image_sha256"):
            image = _find_input(recipe)
        return run(default_engine(), recipe["prompt"], model=recipe["model"],
                   negative_prompt=recipe.get("negative_prompt"), width=recipe["width"], height=recipe["height"],
                   steps=recipe["steps"], guidance=recipe["guidance"], seed=seeds[0], num_images=len(seeds),
                   loras=loras, image=image, strength=recipe.get("strength"), save=save, progress=progress,
                   cancel=cancel, use_cache=False, seeds=seeds,
                   plan=recipe.get("plan_overrides") or None,
                   recipe_extra={k: recipe[k] for k in CARRIED if recipe.get(k)} or None)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"The recipe is incomplete or damaged ({type(exc).__name__}: {exc}).",
                                  argument="path_or_recipe", value=str(path_or_recipe)[:200],
                                  hint="Use a PNG or recipe written by masuka_nb.generate.") from exc


def _read(path: str | Path) -> Any:
    """A MASUKA recipe dict (its PNG or .json), or the `Recipe` a foreign image carries."""
    text = str(path)
    if text.startswith(("http://", "https://")):
        found = read_any(text)
    else:
        local = _local_copy(path)
        if Path(local).suffix.lower() == ".json":
            from masuka_nb.image.metadata import read_recipe

            return read_recipe(local)
        found = read_any(local)
    return found.raw if found.dialect == "masuka" else found


def _find_input(recipe: dict[str, Any]) -> Any:
    from PIL import Image

    path = recipe.get("image_path")
    if path and Path(path).is_file():
        with Image.open(path) as im:
            im = im.convert("RGB")
        if image_sha256(im) == recipe["image_sha256"]:
            return im
    raise InvalidRequestError("The recipe's input image (image-to-image) is not where it was.",
                              argument="path_or_recipe", value=path,
                              hint="Call generate(..., image=<the original image>) with the recipe's settings.")


def _local_copy(path: str | Path) -> str | Path:
    """A gs:// or s3:// PNG or recipe, fetched whole into the cache (recipes are small; PNGs a few MB)."""
    if not is_bucket_url(path):
        return path
    import hashlib

    name = str(path).rstrip("/").rsplit("/", 1)[-1] or "recipe.json"
    key = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return fetch(str(path), settings().cache_dir / "reproduce" / key / name, max_bytes=200 * 1024**2,
                 argument="path_or_recipe")
