"""Images carry their recipe: an A1111-style `parameters` text chunk, the full JSON recipe, and ComfyUI's
`prompt` + `workflow` pair (`comfy.build_graphs`), in each PNG.

The `parameters` text is what AUTOMATIC1111, ComfyUI importers, Civitai and exiftool users already read
("prompt / Negative prompt: … / Steps: …, Sampler: …, CFG scale: …, Seed: …, Size: WxH, Model: …").
The JSON recipe (`masuka_recipe` chunk) is MASUKA's own and complete: `reproduce` reads it.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

from masuka_nb.errors import InvalidRequestError
from masuka_nb.image.comfy import build_graphs, lora_display_name
from masuka_nb.log import get_logger
from masuka_nb.storage import atomic_write_bytes, open_local

__all__ = ["RECIPE_KEY", "format_parameters", "lora_display_name", "parse_parameters", "read_png_metadata", "read_recipe", "write_png"]

log = get_logger(__name__)

RECIPE_KEY = "masuka_recipe"
PARAMETERS_KEY = "parameters"


def format_parameters(recipe: dict[str, Any], *, index: int = 0) -> str:
    """The A1111 `parameters` string for image `index` of a recipe."""
    seeds = recipe.get("seeds") or [recipe.get("seed")]
    prompt = recipe["prompt"]
    loras = recipe.get("loras") or []
    if loras:
        prompt += " " + " ".join(f"<lora:{lora_display_name(lr['source'])}:{lr['weight']:g}>" for lr in loras)
    lines = [prompt]
    if recipe.get("negative_prompt"):
        lines.append(f"Negative prompt: {recipe['negative_prompt']}")
    fields = [
        ("Steps", recipe["steps"]),
        ("Sampler", recipe.get("sampler", "Euler")),
        ("Schedule type", recipe.get("scheduler", "Simple")),
        ("CFG scale", f"{recipe['guidance']:g}"),
        ("Seed", seeds[min(index, len(seeds) - 1)]),
        ("Size", f"{recipe['width']}x{recipe['height']}"),
        ("Model", recipe["model"]),
    ]
    if recipe.get("strength") is not None:
        fields.append(("Denoising strength", f"{recipe['strength']:g}"))
    if loras:
        hashes = ", ".join(f"{lora_display_name(lr['source'])}: {lr['sha256'][:12]}" for lr in loras)
        fields.append(("Lora hashes", f'"{hashes}"'))
    fields.append(("Version", f"masuka {recipe.get('masuka_version', '')}".strip()))
    lines.append(", ".join(f"{k}: {v}" for k, v in fields))
    return "\n".join(lines)


_FIELD = re.compile(r'\s*([\w ]+):\s*("(?:[^"\\]|\\.)*"|[^,]*)(?:,|$)')


def parse_parameters(text: str) -> dict[str, Any]:
    """Read an A1111 `parameters` string back (prompt, negative prompt and the key: value fields)."""
    lines = text.strip().split("\n")
    last = lines[-1] if len(lines) > 1 and "Steps:" in lines[-1] else ""
    body = lines[:-1] if last else lines
    negative = None
    prompt_lines = []
    for i, line in enumerate(body):
        if line.startswith("Negative prompt:"):
            negative = "\n".join([line.removeprefix("Negative prompt:").strip(), *body[i + 1:]])
            break
        prompt_lines.append(line)
    prompt = "\n".join(prompt_lines)
    loras = re.findall(r"<lora:([^:>]+):([-\d.]+)>", prompt)
    prompt = re.sub(r"\s*<lora:[^>]+>", "", prompt)
    out: dict[str, Any] = {"prompt": prompt, "negative_prompt": negative,
                           "loras": [(n, float(w)) for n, w in loras]}
    for key, value in _FIELD.findall(last):
        out[key.strip()] = value.strip().strip('"')
    return out


def write_png(image: Any, path: str | os.PathLike[str], *, recipe: dict[str, Any], index: int = 0) -> Path:
    """Write `image` atomically as PNG with both text chunks."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(PARAMETERS_KEY, format_parameters(recipe, index=index))
    info.add_text(RECIPE_KEY, json.dumps({**recipe, "image_index": index}, sort_keys=True, default=str))
    try:
        graphs = build_graphs(recipe, index=index)
    except (KeyError, TypeError, ValueError) as exc:  # an odd recipe must never cost the image itself
        log.warning("metadata.comfy_graph_skipped", error=repr(exc))
        graphs = None
    if graphs is not None:  # ComfyUI's own pair: dropping the PNG on ComfyUI opens a runnable graph
        info.add_text("prompt", json.dumps(graphs[0]))
        info.add_text("workflow", json.dumps(graphs[1]))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return atomic_write_bytes(path, buf.getvalue())


def read_png_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    from PIL import Image, UnidentifiedImageError

    data = open_local(path, argument="path", what="PNG")  # bounded; a FIFO or device is refused
    try:
        with Image.open(data) as im:
            im.load()
            return {k: v for k, v in im.info.items() if isinstance(v, str)}
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidRequestError(f"Cannot read {path} as a PNG ({type(exc).__name__}).", argument="path",
                                  value=str(path), hint="Pass a PNG that MASUKA wrote.") from exc


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON recipe stored in a MASUKA PNG (or a `.json` recipe file)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        from masuka_nb.storage import read_text_file

        try:
            return json.loads(read_text_file(p, max_bytes=16 * 1024**2, argument="path", what="recipe"))
        except (OSError, ValueError) as exc:
            raise InvalidRequestError(f"Cannot read the recipe {p}.", argument="path", value=str(p),
                                      hint="Pass a recipe .json or a PNG that MASUKA wrote.") from exc
    meta = read_png_metadata(p)
    if RECIPE_KEY not in meta:
        raise InvalidRequestError(f"{p.name} carries no MASUKA recipe.", argument="path", value=str(p),
                                  hint="Only PNGs written by masuka_nb.generate hold a full recipe.")
    return json.loads(meta[RECIPE_KEY])
