"""The hosted model catalog (data in ``catalog.json``, checked 2026-12) and the normaliser that fits a request.

Each model id maps to its own defaults (seconds, resolution, aspect ratio), its sources (public URLs)
and an ordered list of routes (provider + provider model) with the durations, sizes and prices (with
date and source) that route accepts. A model a vendor has retired says so (date, source, nearest live
models); it is still routed where a reseller serves it, with a warning. `plan_routes` turns a request
into one `RoutePlan` per usable route, recording every change it had to make (5 s → 4 s, 1080p → 720p)
so the user is told before anything is paid; in strict mode a change is refused instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from masuka_nb.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelRetiredError,
    ProviderUnavailableError,
)

__all__ = ["ModelInfo", "Retirement", "Route", "RoutePlan", "catalog", "list_video_models", "model_info",
           "plan_routes", "register_model", "resolve_model", "retired_error", "training_price"]

MODES = {"t2v": "text to video", "i2v": "image to video", "v2v": "video to video"}

# The video front door's default model (VideoRequest, the Video tab): fast, 8 s, 1080p, with audio.
DEFAULT_VIDEO_MODEL = "veo-3.1-fast"


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    text = resources.files("masuka_nb.hosted").joinpath("catalog.json").read_text(encoding="utf-8")
    return json.loads(text)


_REGISTERED: dict[str, dict[str, Any]] = {}


def catalog() -> dict[str, Any]:
    """The shipped catalog with the models added by `register_model` (which win over shipped ones)."""
    shipped = _shipped()
    if not _REGISTERED:
        return shipped
    return {**shipped, "models": {**shipped["models"], **_REGISTERED}}


def register_model(model_id: str, entry: dict[str, Any]) -> None:
    """Add (or replace) a model at run time, in the catalog's own shape: `title`, `defaults`, `sources`,
    `checked` and `routes` (each with provider, route, model, modes, durations, sizes, price, price_date,
    price_source). A local open-weight model is one whose route's provider was registered with
    `masuka_nb.hosted.providers.register_provider`."""
    missing = [k for k in ("title", "routes") if k not in entry] + [
        f"routes[{i}].{k}" for i, r in enumerate(entry.get("routes", ()))
        for k in ("provider", "route", "model", "modes", "durations", "sizes", "price", "price_date", "price_source")
        if k not in r]
    if missing or not entry.get("routes"):
        raise InvalidRequestError(f"The catalog entry for `{model_id}` lacks {', '.join(missing) or 'routes'}.",
                                  argument="entry", value=model_id, hint="See `masuka_nb/hosted/catalog.json` for the shape.")
    _REGISTERED[model_id] = entry


@dataclass(frozen=True)
class Retirement:
    """A vendor retired the model: when, who, where it says so, and the nearest live models."""

    date: str
    by: str
    source: str
    nearest: tuple[str, ...]
    still_served_by: str | None = None

    def sentence(self, model: str) -> str:
        served = f"; {self.still_served_by} may still serve it" if self.still_served_by else ""
        return (f"`{model}` was retired by {self.by} on {self.date} ({self.source}){served}. "
                f"Nearest live models: {', '.join(self.nearest)}.")


@dataclass(frozen=True)
class ModelInfo:
    """One catalog model: its own defaults, what it is, whether it is retired, and its sources."""

    id: str
    title: str
    seconds: int
    resolution: str
    aspect_ratio: str
    sources: tuple[str, ...] = ()
    checked: str = ""
    audio: bool = False
    retired: Retirement | None = None
    notes: tuple[str, ...] = ()


def model_info(model: str) -> ModelInfo:
    """The canonical model behind `model` (or an alias) with its defaults; unknown ids raise MODEL_NOT_FOUND."""
    mid, routes, _ = resolve_model(model)
    entry = catalog()["models"][mid]
    d = entry.get("defaults") or {}
    r = entry.get("retired")
    retired = Retirement(date=r["date"], by=r["by"], source=r["source"], nearest=tuple(r["nearest"]),
                         still_served_by=r.get("still_served_by")) if r else None
    first = routes[0] if routes else None  # a retired model nobody serves any more keeps its entry, no routes
    return ModelInfo(id=mid, title=entry.get("title", mid),
                     seconds=int(d.get("seconds", first.durations[0] if first else 0)),
                     resolution=d.get("resolution", next(iter(first.sizes)) if first else ""),
                     aspect_ratio=d.get("aspect_ratio", "16:9"), sources=tuple(entry.get("sources", ())),
                     checked=entry.get("checked", ""), audio=bool(entry.get("audio")), retired=retired,
                     notes=tuple(entry.get("notes", ())))


def retired_error(model: str, info: ModelInfo, *, why: str = "") -> ModelRetiredError:
    assert info.retired is not None
    return ModelRetiredError(info.retired.sentence(model) + (f" {why}" if why else ""), argument="model", value=model,
                             hint=f"Use one of {', '.join(info.retired.nearest)} instead "
                                  f"(e.g. `model=\"{info.retired.nearest[0]}\"`).",
                             retired_on=info.retired.date, nearest=list(info.retired.nearest))


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
    controls: dict[str, Any] = field(default_factory=dict)  # request control -> how the route takes it

    def cost(self, seconds: int, resolution: str) -> float:
        p = self.price
        if "per_second" in p:
            table = p["per_second"]
            rate = table.get(resolution, max(table.values()))
            return round(rate * seconds, 4)
        if "per_clip" in p:
            return round(p["per_clip"], 4)
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
    controls: dict[str, Any] = field(default_factory=dict)  # provider field -> value (mapped controls)


def list_video_models() -> dict[str, str]:
    """Model id -> title (aliases, retired and unavailable models included, with why)."""
    out = {}
    for mid, entry in catalog()["models"].items():
        if "alias_of" in entry:
            out[mid] = f"alias of {entry['alias_of']}"
        elif "unavailable" in entry:
            out[mid] = f"unavailable: {entry['unavailable']}"
        elif "retired" in entry:
            r = entry["retired"]
            out[mid] = f"retired by {r['by']} on {r['date']}: {entry.get('title', mid)}"
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
                    max_images=r.get("max_images", 1), controls=r.get("controls", {}))
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


def plan_routes(model: str, *, seconds: float | None = None, resolution: str | None = None,
                aspect_ratio: str | None = None, mode: str = "t2v", provider: str | None = None,
                motion_intensity: float | None = None, strict: bool = False, image_aspect: str | None = None,
                images: int | None = None) -> list[RoutePlan]:
    """Every usable route for the request, in fallback order, each fitted and priced.

    `seconds` and `resolution` left as None take the model's own defaults, so a request that names
    nothing is never adjusted. `motion_intensity` is honoured only where a route has such a control.
    """
    info = model_info(model)
    if info.retired is not None and not resolve_model(model)[1]:
        raise retired_error(model, info, why="No provider serves it any more.")
    seconds = info.seconds if seconds is None else seconds
    resolution = info.resolution if resolution is None else resolution
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidRequestError("`seconds` must be a positive number of seconds.", argument="seconds", value=seconds,
                                  hint=f"{info.id} makes {', '.join(map(str, resolve_model(model)[1][0].durations))} s.")
    if motion_intensity is not None and not 0 <= motion_intensity <= 1:
        raise InvalidRequestError("`motion_intensity` must be between 0 and 1.", argument="motion_intensity",
                                  value=motion_intensity)
    if info.retired is not None and strict:
        raise retired_error(model, info, why="Strict mode does not route a retired model.")
    _, routes, _ = resolve_model(model)
    if provider:
        routes = [r for r in routes if r.provider == provider]
        if not routes:
            if info.retired is not None:
                raise retired_error(model, info, why=f"`{provider}` does not serve it.")
            raise InvalidRequestError(f"`{model}` is not offered by `{provider}`.", argument="provider", value=provider,
                                      hint="Providers for it: " + ", ".join(r.provider for r in resolve_model(model)[1]))
    if strict and motion_intensity is not None and not any("motion_intensity" in r.controls for r in routes):
        raise InvalidRequestError(f"`{info.id}` has no motion control, so `motion_intensity` cannot be honoured "
                                  "(strict mode).", argument="motion_intensity", value=motion_intensity,
                                  hint="Leave `motion_intensity` unset (describe the motion in the prompt instead), "
                                       "or call with strict=False to have it ignored with a warning.")
    plans, skipped = [], []
    for r in routes:
        if mode not in r.modes:
            skipped.append(f"{r.provider}:{r.model} takes {' or '.join(MODES[m] for m in r.modes)}, "
                           f"not {MODES.get(mode, mode)}")
            continue
        if (images or 0) > r.max_images:
            skipped.append(f"{r.provider}:{r.model} takes {r.max_images} image, not a first and last frame")
            continue
        plans.append(_fit(r, seconds, resolution, aspect_ratio or info.aspect_ratio if not image_aspect else aspect_ratio,
                          mode, motion_intensity, image_aspect))
    if not plans:
        wants_video = mode == "v2v" or all(r.modes == ("v2v",) for r in routes)
        argument = "video" if wants_video else "image"
        raise InvalidRequestError(f"No route for `{model}` can take this request: " + "; ".join(skipped) + ".",
                                  argument=argument, value=None if mode == "t2v" else "given",
                                  hint="Give an `image=` for image-to-video models, a `video=` for video-to-video "
                                       "ones (gen4_aleph), or pick a text-to-video model (veo-3.1-fast, gen4.5, kling-v3).")
    if strict and plans[0].changes:
        raise InvalidRequestError(f"`{model}` cannot take the request as given (strict mode): " + "; ".join(plans[0].changes) + ".",
                                  argument="strict", value=True,
                                  hint="Ask for what the model accepts, or call with strict=False to let MASUKA adjust it.")
    if strict:  # only routes that take the request exactly, set controls included
        plans = [p for p in plans if not p.changes and not any("is ignored" in n for n in p.notes)]
        if not plans:
            raise InvalidRequestError(f"No route for `{model}` takes `motion_intensity` as given (strict mode).",
                                      argument="motion_intensity", value=motion_intensity,
                                      hint="Leave `motion_intensity` unset, or call with strict=False.")
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
    controls: dict[str, Any] = {}
    if motion is not None:
        control = r.controls.get("motion_intensity")
        if control:  # {"field": name, "min": a, "max": b}: 0..1 mapped linearly onto the provider's range
            lo, hi = control.get("min", 0.0), control.get("max", 1.0)
            value = lo + motion * (hi - lo)
            controls[control["field"]] = round(value) if control.get("integer") else round(value, 3)
        else:
            # None of the documented contracts in the catalog has a motion control (Kling's cfg_scale is
            # prompt adherence, not motion), so the value is reported as not applicable rather than guessed.
            notes.append(f"motion_intensity={motion:g} is ignored: {r.provider}:{r.model} has no motion control")
    return RoutePlan(route=r, seconds=seconds, resolution=res, aspect_ratio=fitted, size=r.sizes[res][fitted],
                     mode=mode, usd=r.cost(seconds, res), changes=changes, notes=notes, controls=controls)


def training_price(provider: str, steps: int) -> tuple[float, str, str]:
    entry = catalog()["training"][provider]
    return round(entry["price"]["per_step"] * steps, 4), entry["price_date"], entry["price_source"]
