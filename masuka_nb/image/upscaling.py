"""Upscaling: a plain resampling (`lanczos`), or `refine`: resample, then image-to-image with the same model
at a low strength so the model redraws fine detail at the new size (the classic "hires fix")."""

from __future__ import annotations

from typing import Any

from masuka_nb.errors import InvalidRequestError

__all__ = ["upscale"]

METHODS = ("lanczos", "bicubic", "refine")


def upscale(
    image: Any,
    *,
    factor: float = 2.0,
    method: str = "lanczos",
    model: str | None = None,
    prompt: str | None = None,
    strength: float = 0.3,
    steps: int | None = None,
    seed: int | None = None,
    save: bool = False,
    progress: Any = None,
    cancel: Any = None,
) -> Any:
    """`image` (PIL, a path, or a `GenerationResult`) made `factor`× larger.

    `refine` needs a model and a prompt; from a `GenerationResult` (or a MASUKA PNG) they come from its
    recipe. Returns a PIL image for lanczos/bicubic, a `GenerationResult` for refine.
    """
    from PIL import Image

    from masuka_nb.image.generation import GenerationResult, generate
    from masuka_nb.image.request import _open_image

    recipe: dict[str, Any] = {}
    if isinstance(image, GenerationResult):
        recipe, image = image.recipe, image.images[0]
    elif not isinstance(image, Image.Image):
        from masuka_nb.image.metadata import RECIPE_KEY, read_png_metadata

        path = image
        image = _open_image(path)
        meta = read_png_metadata(path) if str(path).lower().endswith(".png") else {}
        if RECIPE_KEY in meta:
            import json

            recipe = json.loads(meta[RECIPE_KEY])
    if method not in METHODS:
        raise InvalidRequestError(f"Unknown upscale method {method!r}.", argument="method", value=method,
                                  hint=f"Use one of: {', '.join(METHODS)}.")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1.0 <= factor <= 8.0:
        raise InvalidRequestError("`factor` must be a number from 1 to 8.", argument="factor", value=factor,
                                  hint="factor=2 doubles the width and height.")
    multiple = 16
    w = max(multiple, round(image.width * factor / multiple) * multiple)
    h = max(multiple, round(image.height * factor / multiple) * multiple)
    resample = Image.Resampling.BICUBIC if method == "bicubic" else Image.Resampling.LANCZOS
    big = image.convert("RGB").resize((w, h), resample)
    if method != "refine":
        return big
    model = model or recipe.get("model")
    prompt = prompt or recipe.get("prompt")
    if not model or not prompt:
        raise InvalidRequestError("`refine` needs the model and prompt the image was made with.", argument="model",
                                  value=model, hint="Pass model= and prompt=, or a GenerationResult / MASUKA PNG.")
    seeds = recipe.get("seeds") or [None]
    return generate(prompt, model=model, image=big, strength=strength, width=w, height=h,
                    steps=steps or recipe.get("steps"), guidance=recipe.get("guidance"),
                    seed=seed if seed is not None else seeds[0],
                    loras=[(lr["source"], lr["weight"]) for lr in recipe.get("loras", [])],
                    save=save, progress=progress, cancel=cancel)
