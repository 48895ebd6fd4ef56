"""The video model catalog (data in ``catalog.json``) and the normaliser that fits a request to a route.

Each model id maps to an ordered list of routes (provider + provider model) with the durations,
sizes and prices (with date and source) that route accepts. `plan_routes` turns a request into one
`RoutePlan` per usable route, recording every change it had to make (5 s → 4 s, 1080p → 720p) so the
user is told before anything is paid; in strict mode a change is refused instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from masuka_nb.errors import InvalidRequestError, ModelNotFoundError, ProviderUnavailableError

__all__ = ["Route", "RoutePlan", "catalog", "list_video_models", "plan_routes", "resolve_model", "training_price"]


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    text = resources.files("masuka_nb.video").joinpath("catalog.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Route:
    model_id: str
    provider: str
    route: str
    model: str
    modes: tuple[str, ...]
    durations: tuple[int, ...]
    sizes: dict[str, dict[str, str]]
    price: dict[str, Any]
    price_date: str
    price_source: str
    mode: str | None = None
    max_images: int = 1

    def cost(self, seconds: int, resolution: str) -> float:
        p = self.price
        if "per_second" in p:
            table = p["per_second"]
            rate = table.get(resolution, max(table.values()))
            return round(rate * seconds, 4)
        if "base_usd" in p:
            extra = max(0, seconds - p["base_seconds"]) * p["extra_per_second"]
            return round(p["base_usd"] + extra, 4)
        raise KeyError(f"no price for {self.provider}:{self.model}")


@dataclass
class RoutePlan:
    """A request fitted to one route: what will be sent, what it costs, and what had to change."""

    route: Route
    seconds: int
    resolution: str
    aspect_ratio: str
    size: str
    mode: str
    usd: float
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def list_video_models() -> dict[str, str]:
    """Model id -> title (aliases and unavailable models included, with why)."""
    out = {}
    for mid, entry in catalog()["models"].items():
        if "alias_of" in entry:
            out[mid] = f"alias of {entry['alias_of']}"
        elif "unavailable" in entry:
            out[mid] = f"unavailable: {entry['unavailable']}"
        else:
            out[mid] = entry.get("title", mid)
    return out


def resolve_model(model: str) -> tuple[str, list[Route], str | None]:
    """(canonical id, its routes, preferred provider) for `model` or an alias; unavailable ones raise."""
    models = catalog()["models"]
    prefer = None
    seen = []
    mid = model
    while mid in models and "alias_of" in models[mid]:
        prefer = prefer or models[mid].get("prefer")
        seen.append(mid)
        mid = models[mid]["alias_of"]
    if mid not in models:
        import difflib

        close = difflib.get_close_matches(model, list(models), n=3)
        raise ModelNotFoundError(f"No video model `{model}`." + (f" Did you mean {', '.join(close)}?" if close else ""),
                                 argument="model", value=model,
                                 hint="Video models: " + ", ".join(sorted(models)) + ".")
    entry = models[mid]
    if "unavailable" in entry:
        raise ProviderUnavailableError(f"`{model}` is not available: {entry['unavailable']}",
                                       argument="model", value=model, retryable=False)
    routes = [Route(model_id=mid, provider=r["provider"], route=r["route"], model=r["model"], modes=tuple(r["modes"]),
                    durations=tuple(r["durations"]), sizes=r["sizes"], price=r["price"],
                    price_date=r["price_date"], price_source=r["price_source"], mode=r.get("mode"),
                    max_images=r.get("max_images", 1))
              for r in entry["routes"]]
    if prefer:
        routes.sort(key=lambda r: r.provider != prefer)
    return mid, routes, prefer


def _res_value(label: str) -> int:
    m = re.match(r"(\d+)", label.lower())
    return 2160 if label.lower() == "4k" else int(m.group(1)) if m else 0


def _ratio_value(aspect: str) -> float:
    w, h = re.split(r"[:x]", aspect)
    return float(w) / float(h)


def nearest_duration(seconds: float, allowed: tuple[int, ...]) -> int:
    # Ties go to the longer clip: the user asked for at least that much video.
    return min(allowed, key=lambda d: (abs(d - seconds), -d))


def nearest_resolution(resolution: str, allowed: list[str]) -> str:
    want = _res_value(resolution)
    below = [r for r in allowed if _res_value(r) <= want]
    return max(below, key=_res_value) if below else min(allowed, key=_res_value)


def nearest_aspect(aspect: str, allowed: list[str]) -> str:
    want = _ratio_value(aspect)
    return min(allowed, key=lambda a: abs(_ratio_value(a) - want))


def plan_routes(model: str, *, duration: float, resolution: str, aspect_ratio: str | None,
                has_image: bool, provider: str | None = None, motion_intensity: float | None = None,
                strict: bool = False, image_aspect: str | None = None, images: int | None = None) -> list[RoutePlan]:
    """Every usable route for the request, in fallback order, each fitted and priced."""
    if duration <= 0:
        raise InvalidRequestError("`duration` must be a positive number of seconds.", argument="duration", value=duration)
    if motion_intensity is not None and not 0 <= motion_intensity <= 1:
        raise InvalidRequestError("`motion_intensity` must be between 0 and 1.", argument="motion_intensity",
                                  value=motion_intensity)
    _, routes, _ = resolve_model(model)
    if provider:
        routes = [r for r in routes if r.provider == provider]
        if not routes:
            raise InvalidRequestError(f"`{model}` is not offered by `{provider}`.", argument="provider", value=provider,
                                      hint="Providers for it: " + ", ".join(r.provider for r in resolve_model(model)[1]))
    mode = "i2v" if has_image else "t2v"
    plans, skipped = [], []
    for r in routes:
        if mode not in r.modes:
            skipped.append(f"{r.provider}:{r.model} needs an image" if mode == "t2v" else f"{r.provider}:{r.model} is text-only")
            continue
        if (images or 0) > r.max_images:
            skipped.append(f"{r.provider}:{r.model} takes {r.max_images} image, not a first and last frame")
            continue
        plans.append(_fit(r, duration, resolution, aspect_ratio, mode, motion_intensity, image_aspect))
    if not plans:
        raise InvalidRequestError(f"No route for `{model}` can take this request: " + "; ".join(skipped) + ".",
                                  argument="image", value=None if not has_image else "given",
                                  hint="Give an `image=` for image-to-video models, or pick a text-to-video model (gen4.5, veo3-fast).")
    if strict and plans[0].changes:
        raise InvalidRequestError(f"`{model}` cannot take the request as given (strict mode): " + "; ".join(plans[0].changes) + ".",
                                  argument="strict", value=True,
                                  hint="Ask for what the model accepts, or call with strict=False to let MASUKA adjust it.")
    if strict:
        plans = [p for p in plans if not p.changes]
    return plans


def _fit(r: Route, duration: float, resolution: str, aspect: str | None, mode: str,
         motion: float | None, image_aspect: str | None) -> RoutePlan:
    changes: list[str] = []
    notes: list[str] = []
    seconds = nearest_duration(duration, r.durations)
    if seconds != duration:
        changes.append(f"duration {duration:g} s → {seconds} s ({r.model} makes {', '.join(map(str, r.durations))} s)")
    res = resolution if resolution in r.sizes else nearest_resolution(resolution, list(r.sizes))
    if res != resolution:
        changes.append(f"resolution {resolution} → {res} ({r.model} offers {', '.join(r.sizes)})")
    asked = aspect or image_aspect or "16:9"
    ratios = list(r.sizes[res])
    fitted = asked if asked in ratios else nearest_aspect(asked, ratios)
    if fitted != asked and aspect:
        changes.append(f"aspect ratio {asked} → {fitted} ({r.model} offers {', '.join(ratios)})")
    if motion is not None:
        # None of the documented contracts has a motion control (Kling's cfg_scale is prompt
        # adherence, not motion), so the value is reported as not applicable rather than guessed.
        notes.append(f"motion_intensity does not apply to {r.provider}:{r.model} (no such control); ignored")
    return RoutePlan(route=r, seconds=seconds, resolution=res, aspect_ratio=fitted, size=r.sizes[res][fitted],
                     mode=mode, usd=r.cost(seconds, res), changes=changes, notes=notes)


def training_price(provider: str, steps: int) -> tuple[float, str, str]:
    entry = catalog()["training"][provider]
    return round(entry["price"]["per_step"] * steps, 4), entry["price_date"], entry["price_source"]
