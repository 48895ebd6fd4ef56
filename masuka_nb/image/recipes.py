"""Any image in, its recipe out: read the generation metadata other tools write, in each of their dialects.

    recipe = read_recipe("found.png")            # a path, URL, gs:// or s3:// object, bytes or a PIL image
    recipe = read_recipe(text=civitai_post)      # the "generation data" text a Civitai post shows
    recipe.unmapped                              # what could not be mapped, in plain words
    mk.generate(**recipe.generate_kwargs())

Dialects (facts read 2026-12-05):
- MASUKA: the ``masuka_recipe`` JSON chunk (complete; see `metadata`).
- A1111 / Forge: a ``parameters`` text chunk, ``prompt\\nNegative prompt: …\\nSteps: …, Sampler: …, CFG scale: …,
  Seed: …, Size: WxH, Model hash: …, Model: …, Lora hashes: "name: hash, …"``; in JPEG and WebP the same text
  sits in EXIF UserComment (0x9286) (https://github.com/AUTOMATIC1111/stable-diffusion-webui, modules/images.py
  and modules/infotext_utils.py). Forge adds ``Distilled CFG Scale`` for FLUX.
- Civitai: the same text, plus ``Civitai resources: [{"type", "modelVersionId", "modelName", "weight"}, …]``
  appended to the settings line (StabilityMatrix's reader: github.com/LykosAI/StabilityMatrix,
  StabilityMatrix.Core/Models/CivitaiResource.cs).
- ComfyUI: ``prompt`` (API graph) and ``workflow`` (editor graph) JSON chunks (`comfy`, `comfy_recipe`); its
  WebP files put them in EXIF Make/Model as ``workflow:{…}`` / ``prompt:{…}`` (comfy_extras/nodes_images.py).
- SwarmUI: ``parameters`` holding JSON ``{"sui_image_params": {prompt, negativeprompt, model, seed, steps,
  cfgscale, width, height, sampler, scheduler, loras, loraweights, …}, "sui_models": [{name, param, hash}]}``
  (github.com/mcmonkeyprojects/SwarmUI, src/Text2Image/T2IParamTypes.cs).
- InvokeAI: an ``invokeai_metadata`` JSON chunk (positive_prompt, negative_prompt, width, height, seed, steps,
  cfg_scale, guidance, scheduler, model {name, base, hash}, loras [{model, weight}]) (github.com/invoke-ai/InvokeAI,
  invokeai/app/invocations/metadata.py).
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.errors import InvalidRequestError, RecipeUnsupportedError
from masuka_nb.image.comfy import workflow_to_prompt
from masuka_nb.image.comfy_recipe import fields_from_prompt
from masuka_nb.models.matching import match_model

__all__ = ["LoraRef", "Recipe", "read_image_metadata", "read_recipe"]

MAX_IMAGE_BYTES = 64 * 1024**2  # a PNG with metadata is a few MB; anything far bigger is not what we want


@dataclass
class LoraRef:
    """A LoRA an image names: its name and weight, and whatever identifies it (hash, Civitai version, AIR)."""

    name: str
    weight: float = 1.0
    hash: str | None = None
    civitai_version: int | None = None
    air: str | None = None
    source: str | None = None  # a source `generate(loras=...)` takes, once known


@dataclass
class Recipe:
    """A generation read from an image. `model` is a registry id (None when unknown); `unmapped` lists, in plain
    words, everything the image says that MASUKA cannot reproduce or did not understand."""

    dialect: str
    prompt: str
    negative_prompt: str | None = None
    model: str | None = None
    model_name: str | None = None
    model_hash: str | None = None
    model_civitai_version: int | None = None
    family: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    cfg: float | None = None
    seed: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    strength: float | None = None
    num_images: int = 1
    loras: list[LoraRef] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `masuka_nb.generate` (LoRAs only where their source is known)."""
        out: dict[str, Any] = {"prompt": self.prompt, "model": self.model}
        for key in ("negative_prompt", "width", "height", "steps", "guidance", "seed"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        loras = [(lr.source, lr.weight) for lr in self.loras if lr.source]
        if loras:
            out["loras"] = loras
        return out


# ---------------------------------------------------------------------------------------------------
# the image's text

def _open(image: Any) -> Any:
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image
    data: bytes | None = None
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        text = str(image)
        if text.startswith(("http://", "https://", "gs://", "gcs://", "s3://")):
            from masuka_nb.hosted.download import download_bytes

            data = download_bytes(text, max_bytes=MAX_IMAGE_BYTES, argument="image")
        elif not Path(text).expanduser().is_file():
            raise InvalidRequestError(f"No image at {text}.", argument="image", value=text,
                                      hint="Pass a PNG, JPEG or WebP path, a URL, a gs:// or s3:// object, or "
                                           "read_recipe(text=...) for pasted generation data.")
        else:
            data = Path(text).expanduser().read_bytes()
    else:
        raise InvalidRequestError(f"`image` must be a path, URL, bytes or a PIL image, not {type(image).__name__}.",
                                  argument="image", value=image, hint="e.g. read_recipe(\"found.png\")")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
        return im
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequestError(f"Cannot read {str(image)[:120]} as an image ({type(exc).__name__}).",
                                  argument="image", value=str(image)[:200],
                                  hint="Pass a PNG, JPEG or WebP file.") from exc


def _user_comment(raw: Any) -> str | None:
    """EXIF UserComment: an 8-byte charset prefix, then the text (A1111 writes "UNICODE" + UTF-16)."""
    if isinstance(raw, str):
        return raw.strip("\x00") or None
    if not isinstance(raw, (bytes, bytearray)):
        return None
    head, body = bytes(raw[:8]), bytes(raw[8:])
    if head.startswith(b"UNICODE"):
        # piexif (A1111) writes UTF-16 big-endian, some tools little-endian: keep the reading that is mostly ASCII
        readings = [body.decode(enc, "replace") for enc in ("utf-16-be", "utf-16-le")]
        return max(readings, key=lambda t: sum(c.isascii() for c in t)).strip("\x00") or None
    if head.startswith((b"ASCII", b"\x00" * 8)):
        return body.decode("utf-8", "replace").strip("\x00") or None
    return bytes(raw).decode("utf-8", "replace").strip("\x00") or None


def read_image_metadata(image: Any) -> dict[str, str]:
    """Every text chunk of a PNG, plus what EXIF holds (UserComment as ``parameters``, ComfyUI's WebP keys)."""
    im = _open(image)
    meta = {k: v for k, v in im.info.items() if isinstance(v, str)}
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must not hide the PNG chunks
        exif = {}
    if exif:
        try:
            sub = exif.get_ifd(0x8769)  # the Exif sub-IFD, where UserComment lives
        except Exception:
            sub = {}
        comment = _user_comment(sub.get(0x9286) or exif.get(0x9286))
        if comment and "parameters" not in meta:
            meta["parameters"] = comment
        for tag in (0x010E, 0x010F, 0x0110):  # ImageDescription, Make, Model
            value = exif.get(tag)
            if isinstance(value, str):
                key, _, rest = value.partition(":")
                if key in ("workflow", "prompt") and rest.lstrip().startswith("{"):
                    meta.setdefault(key, rest)
    return meta


# ---------------------------------------------------------------------------------------------------
# the dialects

def read_recipe(image: Any = None, *, text: str | None = None) -> Recipe:
    """The recipe an image carries, in whichever dialect it was written (or of pasted generation `text`).

    Raises `RecipeUnsupportedError` (RECIPE_UNSUPPORTED) with the reason when there is none, when it describes
    an edit, a video or a model family MASUKA does not run."""
    if (image is None) == (text is None):
        raise InvalidRequestError("Give exactly one of `image` and `text`.", argument="image", value=None,
                                  hint="read_recipe(\"found.png\") or read_recipe(text=\"a fox\\nSteps: 20, ...\")")
    if text is not None:
        stripped = text.strip()
        if stripped.startswith("["):
            raise RecipeUnsupportedError("The text is a JSON list, not generation data or a ComfyUI graph.",
                                         argument="text", value=stripped[:200],
                                         hint="Paste A1111/Civitai generation data or a ComfyUI graph (a JSON object).")
        if stripped.startswith("{"):
            try:
                meta = {"parameters": stripped} if "sui_image_params" in stripped else _json_chunks(json.loads(stripped))
            except ValueError as exc:
                raise InvalidRequestError("The text starts like JSON but is not valid JSON.", argument="text",
                                          value=stripped[:200], hint="Paste the whole block.") from exc
        else:
            meta = {"parameters": stripped}
        return _from_meta(meta, where="the text")
    return _from_meta(read_image_metadata(image), where=str(image)[:120] if not hasattr(image, "size") else "the image")


def _json_chunks(obj: Any) -> dict[str, str]:
    """Pasted JSON: a ComfyUI API graph, an editor graph, or an InvokeAI metadata block."""
    if isinstance(obj, dict) and "nodes" in obj and "links" in obj:
        return {"workflow": json.dumps(obj)}
    if isinstance(obj, dict) and ("positive_prompt" in obj or "app_version" in obj):
        return {"invokeai_metadata": json.dumps(obj)}
    return {"prompt": json.dumps(obj)}


def _from_meta(meta: dict[str, str], *, where: str) -> Recipe:
    if "masuka_recipe" in meta:
        return _from_masuka(json.loads(meta["masuka_recipe"]))
    if "invokeai_metadata" in meta:
        return _from_invokeai(_loads(meta["invokeai_metadata"], "invokeai_metadata"))
    params = meta.get("parameters", "")
    if params.lstrip().startswith("{") and "sui_image_params" in params:
        return _from_swarm(_loads(params, "parameters"))
    if "prompt" in meta or "workflow" in meta:
        return _from_comfy(meta)
    if "fooocus" in " ".join(meta).lower() or "fooocus" in params[:2000].lower():
        raise RecipeUnsupportedError(f"{where} was written by Fooocus, which runs SDXL: not a family MASUKA runs.",
                                     argument="image", hint="Use an image made with FLUX.1, SD3.5 or FLUX.2 [klein].")
    if params.lstrip().startswith("{"):
        raise RecipeUnsupportedError(f"{where} holds its settings as JSON in a scheme MASUKA does not read "
                                     "(not SwarmUI's).", argument="image", value=params[:200],
                                     hint="Paste the generation data as A1111 text with read_recipe(text=...).")
    if params.strip():
        return _from_a1111(params)
    if "sd-metadata" in meta or "Dream" in meta:
        raise RecipeUnsupportedError(f"{where} was written by InvokeAI 2.x (`sd-metadata`/`Dream`), which ran "
                                     "Stable Diffusion 1.x/2.x: not a family MASUKA runs.", argument="image",
                                     hint="Use an image made with FLUX.1, SD3.5 or FLUX.2 [klein].")
    if "Comment" in meta and "Software" in meta:
        raise RecipeUnsupportedError(f"{where} was made by {meta['Software']} (NovelAI): not a model MASUKA runs.",
                                     argument="image", hint="Use an image made with FLUX.1, SD3.5 or FLUX.2 [klein].")
    raise RecipeUnsupportedError(f"{where} carries no generation metadata (no A1111, ComfyUI, SwarmUI, InvokeAI or "
                                 "MASUKA chunk).", argument="image",
                                 hint="Sites often strip metadata: use the original file, or paste the generation "
                                      "data with read_recipe(text=...).")


def _loads(raw: str, chunk: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RecipeUnsupportedError(f"The `{chunk}` chunk is not valid JSON.", argument="image",
                                     value=raw[:200], hint="The file may be damaged; use the original.") from exc


def _finish(r: Recipe, *names: str | None) -> Recipe:
    """Map the model names to the registry; refuse a family MASUKA does not run."""
    m = match_model(*names)
    if m.foreign:
        raise RecipeUnsupportedError(f"The image's model {m.note}.", argument="image",
                                     value=next((n for n in names if n), None),
                                     hint="MASUKA runs FLUX.1, SD3.5 and FLUX.2 [klein]: pick an image made with one "
                                          "of them.")
    r.model, r.family = m.model, m.family
    if m.note:
        r.unmapped.append(f"model {m.note}")
    elif m.model is None and any(names):
        r.unmapped.append(f"model `{next(n for n in names if n)}` is not one MASUKA knows by name "
                          "(its hash may still find it on Civitai)")
    if r.model == "flux1-schnell":
        r.guidance = None  # schnell is guidance-distilled to run without it: the registry default stands
    elif r.family == "flux" and r.guidance is None:
        r.guidance = r.cfg if r.cfg not in (None, 1.0) else None  # FLUX.1 [dev]: guidance is distilled, CFG is 1
    elif r.family in ("sd3", "flux2") and r.guidance is None:
        r.guidance = r.cfg
    if r.sampler and r.sampler.lower().replace(" ", "_") not in ("euler", "euler_(flow_matching)"):
        r.unmapped.append(f"sampler {r.sampler}: MASUKA samples with Euler (flow matching)")
    return r


def _from_masuka(recipe: dict[str, Any]) -> Recipe:
    seeds = recipe.get("seeds") or [recipe.get("seed")]
    index = int(recipe.get("image_index", 0))
    loras = [LoraRef(name=Path(str(lr["source"])).name, weight=float(lr.get("weight", 1.0)), hash=lr.get("sha256"),
                     source=lr["source"]) for lr in recipe.get("loras") or []]
    return Recipe("masuka", recipe["prompt"], recipe.get("negative_prompt"), model=recipe.get("model"),
                  model_name=recipe.get("model"), family=None, width=recipe.get("width"), height=recipe.get("height"),
                  steps=recipe.get("steps"), guidance=recipe.get("guidance"), seed=seeds[min(index, len(seeds) - 1)],
                  sampler=recipe.get("sampler"), scheduler=recipe.get("scheduler"), strength=recipe.get("strength"),
                  loras=loras, raw=recipe)


# ---- A1111 / Forge / Civitai text ----

_KEY = re.compile(r"\s*([A-Za-z][\w \-/]*?):\s*")


def _settings(line: str) -> dict[str, Any]:
    """A1111's `k: v, k: "quoted, v", Civitai resources: [json], …` line, JSON values kept whole."""
    out: dict[str, Any] = {}
    i, n = 0, len(line)
    while i < n:
        m = _KEY.match(line, i)
        if not m:
            break
        key, i = m.group(1).strip(), m.end()
        if i < n and line[i] in "[{":
            try:
                value, end = json.JSONDecoder().raw_decode(line, i)
                out[key], i = value, end
            except ValueError:
                end = line.find(",", i)
                out[key], i = line[i:end if end >= 0 else n], (end if end >= 0 else n)
        elif i < n and line[i] == '"':
            try:
                value, end = json.JSONDecoder().raw_decode(line, i)
            except ValueError:
                end = line.find('"', i + 1) + 1 or n
                value = line[i + 1:end - 1]
            out[key], i = value, end
        else:
            end = line.find(",", i)
            end = n if end < 0 else end
            out[key], i = line[i:end].strip(), end
        while i < n and line[i] in ", ":
            i += 1
    return out


def _split_a1111(text: str) -> tuple[str, str | None, dict[str, Any]]:
    lines = text.strip().split("\n")
    settings_at = next((i for i in range(len(lines) - 1, -1, -1) if re.match(r"\s*Steps:\s*\d", lines[i])), None)
    settings = _settings(lines[settings_at]) if settings_at is not None else {}
    body = lines[:settings_at] if settings_at is not None else lines
    if settings_at is not None and settings_at + 1 < len(lines):  # Civitai puts its resources on a line of their own
        settings.update(_settings(" ".join(lines[settings_at + 1:])))
    negative_at = next((i for i, line in enumerate(body) if line.startswith("Negative prompt:")), None)
    if negative_at is None:
        return "\n".join(body).strip(), None, settings
    negative = "\n".join([body[negative_at].removeprefix("Negative prompt:").strip(), *body[negative_at + 1:]])
    return "\n".join(body[:negative_at]).strip(), negative.strip() or None, settings


def _number(value: Any, kind: type = float) -> Any:
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        return None


# Fields that say how the image was made but that MASUKA does not need (or reproduces another way).
_QUIET = {"Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "Version",
          "Denoising strength", "Lora hashes", "Distilled CFG Scale", "Civitai resources", "Civitai metadata",
          "Hashes", "TI hashes", "Module 1", "Module 2", "Module 3", "Diffusion in Low Bits", "created_date"}


def _letters(text: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text or "").lower())


def _from_a1111(text: str) -> Recipe:
    prompt, negative, s = _split_a1111(text)
    if "Steps" not in s:
        raise RecipeUnsupportedError("The generation data has no settings line (`Steps: …, Sampler: …, Seed: …`).",
                                     argument="text", value=text[:200],
                                     hint="Paste the whole block, down to the line that starts with `Steps:`.")
    tags = re.findall(r"<lora:([^:>]+):([-\d.]+)[^>]*>", prompt)
    prompt = re.sub(r"\s*<lora:[^>]+>", "", prompt).strip()
    hashes = {}
    for part in str(s.get("Lora hashes", "")).split(","):
        name, _, h = part.partition(":")
        if h.strip():
            hashes[name.strip()] = h.strip()
    loras = [LoraRef(name=n, weight=float(w), hash=hashes.get(n)) for n, w in tags]
    model_version = None
    for res in s.get("Civitai resources") or []:
        if not isinstance(res, dict):
            continue
        if res.get("type") == "checkpoint":
            model_version = res.get("modelVersionId")
        elif res.get("type") == "lora":
            # the <lora:file-name:w> tag and the resource's page title rarely match exactly: compare letters only,
            # else take the one untagged LoRA with the same weight
            key = _letters(res.get("modelName"))
            free = [lr for lr in loras if lr.civitai_version is None]
            named = next((lr for lr in free if key and (_letters(lr.name) in key or key in _letters(lr.name))), None)
            if named is None:
                same = [lr for lr in free if abs(lr.weight - float(res.get("weight", 1.0))) < 1e-6]
                named = same[0] if len(same) == 1 else None
            if named is None:
                named = LoraRef(name=str(res.get("modelName") or res.get("modelVersionId")),
                                weight=float(res.get("weight", 1.0)))
                loras.append(named)
            named.civitai_version = _number(res.get("modelVersionId"), int)
    size = str(s.get("Size", ""))
    w, _, h = size.partition("x")
    sampler = str(s["Sampler"]) if "Sampler" in s else None
    r = Recipe("civitai" if "Civitai resources" in s else "a1111", prompt, negative, model_name=s.get("Model"),
               model_hash=s.get("Model hash"), model_civitai_version=_number(model_version, int),
               width=_number(w, int), height=_number(h, int), steps=_number(s.get("Steps"), int),
               cfg=_number(s.get("CFG scale")), guidance=_number(s.get("Distilled CFG Scale")),
               seed=_number(s.get("Seed"), int), sampler=sampler, scheduler=s.get("Schedule type"),
               strength=_number(s.get("Denoising strength")), loras=loras, raw=s)
    if r.strength is not None:
        r.unmapped.append(f"Denoising strength {r.strength:g}: the input image (img2img or hires pass) is not in the "
                          "metadata")
    r.unmapped += [f"{k}: {v}" for k, v in s.items() if k not in _QUIET]
    if re.search(r"\([^()]+:\d+(\.\d+)?\)", prompt):
        r.unmapped.append("prompt weighting like (word:1.2) is A1111 syntax; diffusers reads it as plain text")
    return _finish(r, s.get("Model"))


# ---- SwarmUI ----

def _from_swarm(doc: dict[str, Any]) -> Recipe:
    p = doc.get("sui_image_params") or {}
    names = p.get("loras") or []
    weights = p.get("loraweights") or []
    hashes = {m.get("name"): str(m.get("hash", "")).removeprefix("0x") or None
              for m in doc.get("sui_models") or [] if isinstance(m, dict)}
    loras = [LoraRef(name=str(n), weight=_number(weights[i]) if i < len(weights) else 1.0,
                     hash=hashes.get(n) or hashes.get(f"{n}.safetensors")) for i, n in enumerate(names)]
    model = p.get("model")
    r = Recipe("swarmui", str(p.get("prompt", "")), p.get("negativeprompt") or None, model_name=model,
               model_hash=hashes.get(model) or hashes.get(f"{model}.safetensors"),
               width=_number(p.get("width"), int), height=_number(p.get("height"), int),
               steps=_number(p.get("steps"), int), cfg=_number(p.get("cfgscale")),
               guidance=_number(p.get("fluxguidancescale")), seed=_number(p.get("seed"), int),
               sampler=p.get("sampler"), scheduler=p.get("scheduler"), loras=loras, raw=doc)
    known = {"prompt", "negativeprompt", "model", "seed", "steps", "cfgscale", "width", "height", "sampler",
             "scheduler", "loras", "loraweights", "fluxguidancescale", "aspectratio", "swarm_version", "date",
             "generation_time", "imageformat", "nopreviews", "wildcardseed", "vae", "batchsize", "images"}
    r.unmapped += [f"{k}: {v}" for k, v in p.items() if k not in known]
    return _finish(r, model)


# ---- InvokeAI ----

def _from_invokeai(doc: dict[str, Any]) -> Recipe:
    model = doc.get("model") or {}
    model_name = (model.get("name") or model.get("model_name")) if isinstance(model, dict) else str(model)
    base = (model.get("base") or model.get("base_model")) if isinstance(model, dict) else None  # v4+ / v3
    loras = []
    for item in doc.get("loras") or []:
        lm = item.get("model") or item.get("lora") or {}
        loras.append(LoraRef(name=str(lm.get("name") or lm.get("model_name") or lm.get("key")),
                             weight=float(item.get("weight", 1.0)), hash=lm.get("hash")))
    r = Recipe("invokeai", str(doc.get("positive_prompt", "")), doc.get("negative_prompt") or None,
               model_name=model_name, model_hash=model.get("hash") if isinstance(model, dict) else None,
               width=_number(doc.get("width"), int), height=_number(doc.get("height"), int),
               steps=_number(doc.get("steps"), int), cfg=_number(doc.get("cfg_scale")),
               guidance=_number(doc.get("guidance")), seed=_number(doc.get("seed"), int),
               sampler=doc.get("scheduler"), strength=_number(doc.get("strength")), loras=loras, raw=doc)
    if doc.get("generation_mode") and "txt2img" not in str(doc["generation_mode"]):
        r.unmapped.append(f"generation mode {doc['generation_mode']}: the input image is not in the metadata")
    # InvokeAI's base ids (sd-1, sd-2, sdxl, sd-3, flux, …) are the surest family signal
    base_name = {"sd-3": "sd3.5", "flux": "flux", "sdxl": "sdxl", "sd-1": "sd1.5", "sd-2": "sd2.1",
                 "flux2": "flux.2 klein"}.get(str(base or ""))
    if base_name is not None and not base_name.startswith(("flux", "sd3")):
        return _finish(r, base_name, model_name)
    return _finish(r, model_name, base_name)


# ---- ComfyUI ----

def _from_comfy(meta: dict[str, str]) -> Recipe:
    prompt = _loads(meta["prompt"], "prompt") if "prompt" in meta else None
    if not isinstance(prompt, dict) or not prompt:
        prompt = workflow_to_prompt(_loads(meta["workflow"], "workflow")) if "workflow" in meta else {}
    f = fields_from_prompt(prompt)
    loras = [LoraRef(name=re.sub(r"\.safetensors$", "", str(lr["name"]).replace("\\", "/").rsplit("/", 1)[-1]),
                     weight=lr["weight"]) for lr in f["loras"]]
    r = Recipe("comfyui", f["prompt"], f.get("negative_prompt") or None, model_name=f.get("model_file"),
               width=_number(f.get("width"), int), height=_number(f.get("height"), int),
               steps=_number(f.get("steps"), int), cfg=f.get("cfg"), guidance=f.get("guidance"),
               seed=_number(f.get("seed"), int), sampler=f.get("sampler"), scheduler=f.get("scheduler"),
               num_images=int(f.get("batch_size") or 1), loras=loras, unmapped=list(f["unmapped"]),
               raw={"prompt": prompt})
    if f.get("denoise") not in (None, 1.0):
        r.strength = f["denoise"]
    types = f.get("clip_types") or []
    # a text-encoder type names the family even when the model file has a home-made name
    foreign = next((_FOREIGN_CLIP[t] for t in types if t in _FOREIGN_CLIP), None)
    r = _finish(r, f.get("model_file"), foreign, "flux" if "flux" in types else None)
    if r.model is None:  # a graph names its files: one the table cannot place is a model MASUKA does not run
        what = f"`{f['model_file']}`" if f.get("model_file") else "a model from a loader MASUKA cannot read"
        raise RecipeUnsupportedError(f"This ComfyUI graph runs {what}, not a model MASUKA runs.",
                                     argument="image", value=f.get("model_file"),
                                     hint="MASUKA runs FLUX.1, SD3.5 and FLUX.2 [klein]: pick a graph made with one "
                                          "of them.")
    return r


_FOREIGN_CLIP = {"sdxl": "sdxl", "stable_diffusion": "sd1.5", "qwen_image": "qwen-image", "hidream": "hidream",
                 "lumina2": "lumina", "chroma": "chroma", "wan": "wan", "hunyuan_image": "hunyuan",
                 "hunyuan_video": "hunyuan", "omnigen2": "omnigen", "cosmos": "cosmos", "ltxv": "ltx",
                 "kandinsky5": "kandinsky", "kandinsky5_image": "kandinsky"}
