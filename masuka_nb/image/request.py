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

__all__ = ["MAX_IMAGES", "MAX_SEED", "GenerationRequest"]

MAX_SEED = 2**32 - 1
MAX_IMAGES = 16
MAX_STEPS = 150
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
            image = _open_image(image)
            # Image-to-image keeps the input's size unless told otherwise (rounded to the size multiple).
            width = _fit_size(image.width, spec) if width is None else width
            height = _fit_size(image.height, spec) if height is None else height
        w = _int("width", spec.default_width if width is None else width, spec.min_size, spec.max_size)
        h = _int("height", spec.default_height if height is None else height, spec.min_size, spec.max_size)
        for name, value in (("width", w), ("height", h)):
            if value % spec.size_multiple:
                lower = value - value % spec.size_multiple
                raise InvalidRequestError(
                    f"`{name}` must be a multiple of {spec.size_multiple} for {spec.id}.",
                    argument=name, value=value, hint=f"Use {lower} or {lower + spec.size_multiple}.",
                )
        s = _int("steps", spec.default_steps if steps is None else steps, spec.min_steps, MAX_STEPS)
        g = _float("guidance", spec.default_guidance if guidance is None else guidance, 0.0, 100.0)
        if seed is not None:
            seed = _int("seed", seed, 0, MAX_SEED)
        n = _int("num_images", num_images, 1, MAX_IMAGES)
        if image is None and strength is not None:
            raise InvalidRequestError("`strength` only applies to image-to-image.", argument="strength",
                                      value=strength, hint="Pass `image=` too, or drop `strength`.")
        if image is not None:
            strength = _float("strength", 0.6 if strength is None else strength, 0.0, 1.0)
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


def _int(name: str, value: Any, low: int, high: int) -> int:
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


def _float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequestError(f"`{name}` must be a number between {low} and {high}.", argument=name,
                                  value=value, hint=f"e.g. {name}={low + (high - low) / 2 if high < 10 else 3.5}")
    if not low <= value <= high:
        raise InvalidRequestError(f"`{name}` must be between {low} and {high}.", argument=name, value=value,
                                  hint=f"Use a value from {low} to {high}.")
    return float(value)


def _open_image(image: Any):
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        from masuka_nb.storage import open_local

        data = open_local(image, argument="image")  # bounded; a FIFO or device is refused, never opened
        try:
            with Image.open(data) as im:
                return im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise InvalidRequestError(f"Cannot open {image} as an image ({type(exc).__name__}).",
                                      argument="image", value=str(image),
                                      hint="Pass a PNG/JPEG path or a PIL image.") from exc
    raise InvalidRequestError(f"`image` must be a PIL image or a file path, not {type(image).__name__}.",
                              argument="image", value=image, hint="Pass a PNG/JPEG path or a PIL image.")


def as_error(exc: Exception) -> MasukaError:
    """Any error from validation, as MASUKA's (pydantic's own errors never escape)."""
    if isinstance(exc, MasukaError):
        return exc
    return InvalidRequestError(f"Invalid request: {exc}", argument="request", value=None,
                               hint="Check the arguments against `help(masuka_nb.generate)`.")
