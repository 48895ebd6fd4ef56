"""A generation request, validated before anything loads: every field checked against the model's limits.

`GenerationRequest.build(...)` turns keyword arguments (and the registry's defaults) into a typed,
checked request, or raises `InvalidRequestError` naming the field, the value received and the fix.
"""

from __future__ import annotations

import math
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from masuka_nb.errors import InvalidRequestError, MasukaError
from masuka_nb.models.registry import ModelSpec
from masuka_nb.storage import open_local

__all__ = ["MAX_GUIDANCE", "MAX_IMAGES", "MAX_SEED", "MAX_STEPS", "GenerationRequest", "check_float", "check_int",
           "check_seed", "open_image"]

# The same limits for every local task, image, edit and video (they had drifted: guidance [0, 100] vs
# [0, 30], 8 vs 16 images per call).
MAX_SEED = 2**32 - 1
MAX_IMAGES = 16
MAX_STEPS = 150
MAX_GUIDANCE = 30.0  # CFG past 30 only burns the image (A1111 caps its slider there too)
MAX_PROMPT_CHARS = 20_000


class GenerationRequest(BaseModel):
    """What to make. Built with `GenerationRequest.build(spec, ...)`, which applies the model's defaults."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, strict=True)

    model: str
    prompt: str
    negative_prompt: str | None = None
    width: int
    height: int
    steps: int
    guidance: float
    seed: int | None = None
    num_images: int = 1
    strength: float | None = None
    image: Any = None  # a PIL image (already opened), for image-to-image

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the prompt is empty")
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt has {len(v)} characters (limit {MAX_PROMPT_CHARS})")
        return v

    @classmethod
    def build(
        cls,
        spec: ModelSpec,
        *,
        prompt: Any,
        negative_prompt: Any = None,
        width: Any = None,
        height: Any = None,
        steps: Any = None,
        guidance: Any = None,
        seed: Any = None,
        num_images: Any = 1,
        image: Any = None,
        strength: Any = None,
    ) -> GenerationRequest:
        _check_type("prompt", prompt, str, "a text prompt such as \"a lighthouse at dawn\"")
        if negative_prompt is not None:
            _check_type("negative_prompt", negative_prompt, str, "text, or None")
            if negative_prompt.strip() and not spec.supports_negative_prompt:
                raise InvalidRequestError(
                    f"{spec.id} ignores negative prompts (it has no unconditional pass), so it would be dropped.",
                    argument="negative_prompt", value=negative_prompt,
                    hint="Remove it, or use a model with negative prompts (sd35-large, sd35-medium, tiny-sd3).",
                )
            if not negative_prompt.strip():
                negative_prompt = None
        if image is not None:
            image = open_image(image)
            # Image-to-image keeps the input's size unless told otherwise (rounded to the size multiple).
            width = _fit_size(image.width, spec) if width is None else width
            height = _fit_size(image.height, spec) if height is None else height
        w = check_int("width", spec.default_width if width is None else width, spec.min_size, spec.max_size)
        h = check_int("height", spec.default_height if height is None else height, spec.min_size, spec.max_size)
        for name, value in (("width", w), ("height", h)):
            if value % spec.size_multiple:
                lower = value - value % spec.size_multiple
                raise InvalidRequestError(
                    f"`{name}` must be a multiple of {spec.size_multiple} for {spec.id}.",
                    argument=name, value=value, hint=f"Use {lower} or {lower + spec.size_multiple}.",
                )
        s = check_int("steps", spec.default_steps if steps is None else steps, spec.min_steps, MAX_STEPS)
        g = check_float("guidance", spec.default_guidance if guidance is None else guidance, 0.0, MAX_GUIDANCE)
        seed = check_seed(seed)
        n = check_int("num_images", num_images, 1, MAX_IMAGES)
        if image is None and strength is not None:
            raise InvalidRequestError("`strength` only applies to image-to-image.", argument="strength",
                                      value=strength, hint="Pass `image=` too, or drop `strength`.")
        if image is not None:
            strength = check_float("strength", 0.6 if strength is None else strength, 0.0, 1.0)
            if strength == 0.0 or s * strength < 1:
                raise InvalidRequestError(
                    f"strength {strength} with {s} steps leaves no denoising step to run.",
                    argument="strength", value=strength,
                    hint=f"Use strength ≥ {1 / s:.2f} or more steps.",
                )
        try:
            return cls(model=spec.id, prompt=prompt, negative_prompt=negative_prompt, width=w, height=h, steps=s,
                       guidance=g, seed=seed, num_images=n, strength=strength, image=image)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "request"
            raise InvalidRequestError(f"`{field}`: {first['msg']}.", argument=field, value=first.get("input"),
                                      hint="Give a non-empty prompt that describes the image.") from None


def _fit_size(pixels: int, spec: ModelSpec) -> int:
    m = spec.size_multiple
    return min(spec.max_size, max(spec.min_size, round(pixels / m) * m))


def _check_type(name: str, value: Any, typ: type, expected: str) -> None:
    if not isinstance(value, typ):
        raise InvalidRequestError(f"`{name}` must be {expected}, not {type(value).__name__}.", argument=name,
                                  value=value, hint=f"Pass {expected}.")


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """`value` as a whole number in [low, high], or `InvalidRequestError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidRequestError(f"`{name}` must be a whole number between {low} and {high}.",
                                      argument=name, value=value, hint=f"e.g. {name}={min(max(low, 1), high)}")
    if not low <= value <= high:
        raise InvalidRequestError(f"`{name}` must be between {low} and {high}.", argument=name, value=value,
                                  hint=f"Use a value from {low} to {high}.")
    return value


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """`value` as a finite number in [low, high], or `InvalidRequestError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequestError(f"`{name}` must be a number between {low} and {high}.", argument=name,
                                  value=value, hint=f"e.g. {name}={low + (high - low) / 2 if high < 10 else 3.5}")
    if not low <= value <= high:
        raise InvalidRequestError(f"`{name}` must be between {low} and {high}.", argument=name, value=value,
                                  hint=f"Use a value from {low} to {high}.")
    return float(value)


def check_seed(seed: Any, *, argument: str = "seed") -> int | None:
    """A seed as given (None: the run picks a random one, and records it)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidRequestError(f"`{argument}` must be a whole number from 0 to {MAX_SEED}.", argument=argument,
                                  value=seed, hint=f"e.g. {argument}=42, or None for a random one (recorded).")
    return seed


def open_image(value: Any, *, argument: str = "image", mode: str = "RGB") -> Any:
    """A PIL image in `mode` from a PIL image, a file path, or a result (its first image): how every engine
    reads an input image."""
    from PIL import Image, UnidentifiedImageError

    if getattr(value, "images", None) and not isinstance(value, (str, os.PathLike)):
        value = value.images[0]  # a GenerationResult: "Edit" or "Animate" any result
    if isinstance(value, Image.Image):
        return value.convert(mode)
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise InvalidRequestError(f"`{argument}` must be a PIL image or an image path, not {type(value).__name__}.",
                                  argument=argument, value=value, hint="Pass a PNG/JPEG path or a PIL image.")
    data = open_local(value, argument=argument)  # bounded; a FIFO or device is refused, never opened
    try:
        with Image.open(data) as im:
            return im.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequestError(f"Cannot open {str(value)[:200]} as an image ({type(exc).__name__}).",
                                  argument=argument, value=str(value)[:200],
                                  hint="Pass a PNG/JPEG path or a PIL image.") from exc


def as_error(exc: Exception) -> MasukaError:
    """Any error from validation, as MASUKA's (pydantic's own errors never escape)."""
    if isinstance(exc, MasukaError):
        return exc
    return InvalidRequestError(f"Invalid request: {exc}", argument="request", value=None,
                               hint="Check the arguments against `help(masuka_nb.generate)`.")
