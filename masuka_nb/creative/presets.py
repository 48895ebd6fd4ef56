"""Style presets: a named prompt prefix/suffix, negative prompt, default settings and LoRAs, stored as data.

    from masuka_nb import presets
    presets.list()                                   # built-ins and your own
    presets.save(presets.Preset(name="noir", prefix="film noir still,", settings={"guidance": 4.0}))
    style = presets.mix(["cinematic", ("watercolor", 0.5)])   # several at once, with weights
    mk.batch("a harbour at dusk", presets=[style])

Your presets are JSON files in `<home>/presets/<name>.json` (edit them by hand or with `save`); one
with a built-in's name replaces it. Applying a preset writes it whole into the recipe (`recipe["presets"]`),
so `reproduce` makes the same image without the preset file.

Mixing: text fragments of all presets are kept, strongest weight first (text encoders weigh early
words more); numeric settings are the weight-averaged values; LoRA weights are scaled by the preset's
weight; negative prompts are joined.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError
from masuka_nb.storage import atomic_write_text

__all__ = ["BUILTIN", "Preset", "apply", "delete", "get", "list", "mix", "save"]

SETTINGS = ("steps", "guidance", "width", "height")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


@dataclass
class Preset:
    """A style. `prefix`/`suffix` wrap the prompt; `settings` holds defaults (steps, guidance, width, height)
    that the call's own values override; `loras` are (source, weight) pairs added to the call's."""

    name: str
    prefix: str = ""
    suffix: str = ""
    negative_prompt: str = ""
    settings: dict[str, float] = field(default_factory=dict)
    loras: builtins.list[tuple[str, float]] = field(default_factory=builtins.list)
    description: str = ""
    builtin: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loras"] = [[s, w] for s, w in self.loras]
        d.pop("builtin")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        try:
            known = {k: data[k] for k in ("name", "prefix", "suffix", "negative_prompt", "settings", "loras",
                                          "description") if k in data}
            known["loras"] = [(str(s), float(w)) for s, w in known.get("loras", [])]
            preset = cls(**known)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"A preset is malformed ({exc}).", argument="presets", value=str(data)[:200],
                                      hint="A preset has a name and optional prefix, suffix, negative_prompt, "
                                           "settings and loras.") from exc
        _check(preset)
        return preset


# Built-ins: short, model-agnostic phrasing that FLUX.1 and SD3.5 both follow.
BUILTIN: dict[str, Preset] = {p.name: p for p in (
    Preset("cinematic", prefix="cinematic film still,", suffix="shallow depth of field, anamorphic lens, "
           "film grain, dramatic lighting", negative_prompt="cartoon, flat lighting", builtin=True,
           description="a frame from a film"),
    Preset("photo", prefix="professional photograph,", suffix="natural light, 50mm lens, sharp focus, "
           "high detail", negative_prompt="painting, illustration, blurry", builtin=True,
           description="a realistic photograph"),
    Preset("watercolor", prefix="watercolor painting of", suffix="soft washes, paper texture, loose brushwork",
           negative_prompt="photo, 3d render", builtin=True, description="a loose watercolour"),
    Preset("anime", prefix="anime illustration,", suffix="clean line art, cel shading, vibrant colors",
           negative_prompt="photo, realistic", builtin=True, description="cel-shaded anime"),
    Preset("product", prefix="studio product shot of", suffix="seamless white background, softbox lighting, "
           "crisp reflections", negative_prompt="clutter, text", settings={"guidance": 4.0}, builtin=True,
           description="an e-commerce product photo"),
)}

PresetLike = str | Preset | tuple


def _folder() -> Path:
    return settings().presets_dir


def list() -> builtins.list[Preset]:
    """Every preset: the built-ins, then yours (yours replace a built-in of the same name)."""
    found = dict(BUILTIN)
    folder = _folder()
    if folder.is_dir():
        for file in sorted(folder.glob("*.json")):
            try:
                preset = Preset.from_dict(json.loads(file.read_text(encoding="utf-8")))
            except (ValueError, InvalidRequestError):
                continue  # a damaged file must not hide the others
            found[preset.name] = preset
    return builtins.list(found.values())


def get(name: str) -> Preset:
    """The preset called `name`."""
    for preset in list():
        if preset.name == name:
            return preset
    raise InvalidRequestError(f"No preset called {name!r}.", argument="presets", value=name,
                              hint=f"Known: {', '.join(p.name for p in list())}; or presets.save(Preset(...)).")


def save(preset: Preset) -> Path:
    """Store (or replace) `preset` in MASUKA's home; returns its file."""
    if not isinstance(preset, Preset):
        raise InvalidRequestError("`save` takes a Preset.", argument="preset", value=preset,
                                  hint="presets.save(presets.Preset(name=\"noir\", prefix=\"film noir,\"))")
    _check(preset)
    path = _folder() / f"{preset.name}.json"
    atomic_write_text(path, json.dumps(preset.as_dict(), indent=1, sort_keys=True))
    return path


def delete(name: str) -> bool:
    """Remove your preset `name` (built-ins stay); True if there was one."""
    path = _folder() / f"{name}.json"
    if path.is_file():
        path.unlink()
        return True
    return False


def mix(presets: Iterable[PresetLike], *, name: str | None = None) -> Preset:
    """One preset from several, each a name, a Preset, or a `(name or Preset, weight)` pair."""
    pairs = _weighted(presets)
    if not pairs:
        raise InvalidRequestError("`mix` needs at least one preset.", argument="presets", value=[],
                                  hint="e.g. presets.mix([\"cinematic\", (\"watercolor\", 0.5)])")
    ordered = sorted(pairs, key=lambda pw: -pw[1])
    total = sum(w for _, w in pairs)
    settings: dict[str, float] = {}
    for key in SETTINGS:
        have = [(p.settings[key], w) for p, w in pairs if key in p.settings]
        if have:
            value = sum(v * w for v, w in have) / sum(w for _, w in have)
            settings[key] = round(value) if key != "guidance" else round(value, 3)
    loras: builtins.list[tuple[str, float]] = []
    for p, w in ordered:
        loras += [(src, round(lw * w, 4)) for src, lw in p.loras]
    return Preset(
        name=name or "+".join(f"{p.name}" if w == 1 else f"{p.name}x{w:g}" for p, w in ordered),
        prefix=" ".join(p.prefix for p, _ in ordered if p.prefix),
        suffix=", ".join(p.suffix for p, _ in ordered if p.suffix),
        negative_prompt=", ".join(dict.fromkeys(p.negative_prompt for p, _ in ordered if p.negative_prompt)),
        settings=settings, loras=loras,
        description=f"mix of {', '.join(p.name for p, _ in ordered)} (weights sum {total:g})",
    )


@dataclass
class Applied:
    """A prompt with its presets applied, ready for `generate`."""

    prompt: str
    negative_prompt: str | None
    settings: dict[str, Any]
    loras: builtins.list[tuple[str, float]]
    recipe: builtins.list[dict[str, Any]]  # what goes in recipe["presets"]


def apply(prompt: str, presets: Sequence[PresetLike] = (), *, negative_prompt: str | None = None,
          supports_negative: bool = True) -> Applied:
    """`prompt` wrapped by `presets` (several are mixed); their settings and LoRAs returned beside it."""
    pairs = _weighted(presets)
    if not pairs:
        return Applied(prompt, negative_prompt, {}, [], [])
    style = pairs[0][0] if len(pairs) == 1 and pairs[0][1] == 1 else mix([(p, w) for p, w in pairs])
    text = " ".join(t for t in (style.prefix, prompt.strip()) if t)
    if style.suffix:
        text = f"{text}, {style.suffix}"
    negative = negative_prompt
    if style.negative_prompt and supports_negative:
        negative = ", ".join(t for t in (negative_prompt, style.negative_prompt) if t)
    recipe = [{**p.as_dict(), "weight": w} for p, w in pairs]
    return Applied(text, negative, dict(style.settings), builtins.list(style.loras), recipe)


def _weighted(presets: Iterable[PresetLike]) -> builtins.list[tuple[Preset, float]]:
    if isinstance(presets, (str, Preset, dict)):
        presets = [presets]
    if presets is not None and (not isinstance(presets, Iterable) or isinstance(presets, (bytes, bytearray))):
        raise InvalidRequestError(f"`presets` must be a preset name or a list of them, not {type(presets).__name__}.",
                                  argument="presets", value=presets, hint="e.g. presets=[\"cinematic\"] or "
                                  "presets=[(\"watercolor\", 0.5)]")
    out = []
    for item in presets or ():
        weight = 1.0
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InvalidRequestError("A weighted preset is a (name, weight) pair.", argument="presets",
                                          value=item, hint="e.g. (\"watercolor\", 0.5)")
            item, weight = item
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 10:
            raise InvalidRequestError("A preset weight must be a number above 0 (at most 10).", argument="presets",
                                      value=weight, hint="e.g. (\"watercolor\", 0.5)")
        if isinstance(item, dict):
            item = Preset.from_dict(item)
        preset = item if isinstance(item, Preset) else get(item) if isinstance(item, str) else None
        if preset is None:
            raise InvalidRequestError(f"A preset must be a name or a Preset, not {type(item).__name__}.",
                                      argument="presets", value=item, hint="e.g. presets=[\"cinematic\"]")
        out.append((preset, float(weight)))
    return out


def _check(preset: Preset) -> None:
    if not isinstance(preset.name, str) or not _NAME.match(preset.name):
        raise InvalidRequestError(f"A preset name must be lower-case letters, digits, - or _, not {preset.name!r}.",
                                  argument="name", value=preset.name, hint="e.g. name=\"film-noir\"")
    unknown = set(preset.settings) - set(SETTINGS)
    if unknown:
        raise InvalidRequestError(f"Unknown preset settings: {', '.join(sorted(unknown))}.", argument="settings",
                                  value=preset.settings, hint=f"Allowed: {', '.join(SETTINGS)}.")
