"""LoRAs for the image engine: find them, check they fit a model, stack them on a pipeline, take them off.

A LoRA source may be a local file or folder, a name in the LoRA library (``settings().loras_dir/<name>/``),
a Hub repo id (``owner/name``), an https URL, or a Civitai source: ``civitai:<versionId>``, an AIR
(``urn:air:flux1:lora:civitai:<model>@<version>``) or a civitai.com model URL (`hosted.civitai`, saved into the
library with its page's name, trigger words and base model). `validate_lora` reads the file once and checks every
targeted layer against the model's real transformer shapes (tiny models: their own config; real
models: the published configs built on the `meta` device), so a LoRA made for SD3 never reaches a
FLUX pipeline and fails there with a shape error deep inside peft.

Formats: diffusers/PEFT (``transformer.….lora_A.weight``), older diffusers (``….lora.down.weight``)
and kohya (``lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight``), which diffusers converts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import (
    DownloadError,
    InvalidRequestError,
    LoraIncompatibleError,
    ModelFilesMissingError,
    ModelNotFoundError,
)
from masuka_nb.hosted.civitai import fetch_lora, parse_civitai_source
from masuka_nb.hosted.download import download, public_url
from masuka_nb.image.shapes import linear_shapes
from masuka_nb.log import get_logger
from masuka_nb.models.registry import MODELS, get_model
from masuka_nb.quiet import quiet_third_party
from masuka_nb.storage import file_sha256

__all__ = [
    "LoraInfo",
    "LoraSpec",
    "ResolvedLora",
    "apply_loras",
    "normalise_loras",
    "resolve_lora",
    "unload_loras",
    "validate_lora",
]

log = get_logger(__name__)

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
METADATA_NAME = "masuka_lora.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA to apply: where it is and how strongly (``weight`` 1.0 is the strength it was trained at)."""

    source: str
    weight: float = 1.0


@dataclass(frozen=True)
class LoraInfo:
    """What `validate_lora` found in a LoRA file."""

    path: Path
    format: str  # "peft" | "kohya" | "xlabs"
    family: str  # "flux" | "sd3"
    model: str  # the model it was checked against (and fits)
    rank: int
    modules: int  # transformer layers it changes
    text_encoder_modules: int
    sha256: str
    base_model: str | None = None  # from masuka_lora.json or the file's metadata, when recorded
    trigger_word: str | None = None
    alpha: float | None = None


@dataclass(frozen=True)
class ResolvedLora:
    """A LoRA ready to load: the local weight file, its weight, and a stable name (its hash)."""

    source: str
    path: Path
    weight: float
    sha256: str
    info: LoraInfo | None = None
    adapter_name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter_name", f"lora_{self.sha256[:12]}")

    def as_recipe(self) -> dict[str, Any]:
        return {"source": self.source, "weight": self.weight, "sha256": self.sha256}


# ---- where a LoRA comes from ----

def normalise_loras(loras: Any) -> list[LoraSpec]:
    """Accept `"path"`, `("path", 0.8)`, `LoraSpec`, `{"source":..., "weight":...}` or a list of them."""
    if loras is None:
        return []
    if isinstance(loras, (str, os.PathLike, LoraSpec, dict)):
        loras = [loras]
    if isinstance(loras, tuple) and len(loras) == 2 and isinstance(loras[1], (int, float)) \
            and not isinstance(loras[1], bool) and isinstance(loras[0], (str, os.PathLike)):
        loras = [loras]
    if not isinstance(loras, Iterable):
        raise _bad_lora(loras)
    out = []
    for item in loras:
        if isinstance(item, LoraSpec):
            spec = item
        elif isinstance(item, (str, os.PathLike)):
            spec = LoraSpec(str(item))
        elif isinstance(item, dict) and "source" in item:
            spec = LoraSpec(str(item["source"]), item.get("weight", 1.0))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (str, os.PathLike)):
            spec = LoraSpec(str(item[0]), item[1])
        else:
            raise _bad_lora(item)
        weight = spec.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not -4.0 <= weight <= 4.0 \
                or weight != weight:
            raise InvalidRequestError(
                f"LoRA weight {weight!r} for `{spec.source}` is not a number between -4 and 4.",
                argument="loras", value=weight, hint="Typical weights are 0.5–1.2, e.g. (\"my-style\", 0.8).",
            )
        if not spec.source.strip():
            raise _bad_lora(item)
        out.append(LoraSpec(spec.source.strip(), float(weight)))
    if len(out) > 8:
        raise InvalidRequestError(f"{len(out)} LoRAs is too many to stack.", argument="loras", value=len(out),
                                  hint="Stack at most 8 LoRAs.")
    return out


def _bad_lora(item: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Cannot read {item!r} as a LoRA.",
        argument="loras",
        value=item,
        hint="Give a path, a LoRA library name, a Hub repo id, an https URL or a Civitai id/AIR/URL "
        "(civitai:<versionId>), optionally as (source, weight).",
    )


def _weight_file(folder: Path) -> Path | None:
    if (folder / WEIGHT_NAME).is_file():
        return folder / WEIGHT_NAME
    files = sorted(folder.glob("*.safetensors"))
    preferred = [f for f in files if ".kohya." not in f.name]
    return (preferred or files or [None])[0]


def resolve_lora(source: str) -> Path:
    """The local `.safetensors` file for `source` (downloading it first for a URL or a Hub repo)."""
    text = str(source).strip()
    if parse_civitai_source(text) is not None:  # civitai:<versionId>, an AIR, or a civitai.com page/download URL
        return fetch_lora(text, max_bytes=MAX_LORA_BYTES)
    if text.startswith(("https://", "http://", "gs://", "gcs://", "s3://")):
        return _download_url(text)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        found = _weight_file(path)
        if found is None:
            raise ModelFilesMissingError(f"The folder {path} holds no .safetensors LoRA file.", argument="loras",
                                         value=text, hint=f"Put the LoRA weights in {path / WEIGHT_NAME}.")
        return found
    library = settings().loras_dir / text
    if "/" not in text and library.is_dir():
        return resolve_lora(str(library))
    if _REPO_ID.match(text) and not path.exists():
        from masuka_nb.hub import fetch_lora_file

        return fetch_lora_file(text)
    raise ModelFilesMissingError(
        f"No LoRA at `{text}`: not a file, a folder, a name in {settings().loras_dir}, a Hub repo id, a URL or a "
        "Civitai id.",
        argument="loras",
        value=text,
        hint="Check the path, or list your LoRA library with `sorted(p.name for p in "
        "masuka_nb.settings().loras_dir.iterdir())`.",
    )


MAX_LORA_BYTES = 4 * 1024**3  # the largest FLUX LoRAs are ~1.3 GB; anything bigger is not a LoRA


def _download_url(url: str) -> Path:
    """Download once into the local cache (named by the URL's hash) and reuse it afterwards.

    Through the one downloader (`masuka_nb.hosted.download`): resumable, size-capped, renamed into place
    only when whole; http(s), gs:// and s3:// alike.
    """
    name = Path(url.split("?")[0]).name or "lora.safetensors"
    if not name.endswith(".safetensors"):
        name += ".safetensors"
    target = settings().cache_dir / "loras" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file():
        problem = safetensors_problem(target)
        if problem is None:
            return target
        from masuka_nb.storage import quarantine

        # an HTML page or a cut file cached as "the LoRA" once must not stay it forever: fetch it again
        quarantine(target, reason=f"the cached LoRA is not a whole .safetensors file ({problem})")
    if settings().offline:
        raise ModelFilesMissingError(f"The LoRA at {public_url(url)} is not downloaded and MASUKA is offline.",
                                     argument="loras", value=public_url(url), hint="Go online once, or pass a local file.")
    try:
        path = download(url, target, max_bytes=MAX_LORA_BYTES, argument="loras")
    except DownloadError as exc:  # for a LoRA source, "not there" is the error the rest of this room raises
        raise ModelFilesMissingError(exc.message, argument="loras", value=public_url(url), hint=exc.hint,
                                     status=exc.details.get("status")) from exc
    problem = safetensors_problem(path)
    if problem is not None:
        path.unlink(missing_ok=True)  # never cached: the next try downloads again
        raise InvalidRequestError(f"{public_url(url)} did not give a .safetensors LoRA file: {problem}.",
                                  argument="loras", value=public_url(url),
                                  hint="Use the file's direct download link (a page about the LoRA, or a login "
                                       "page, answers HTML); some sites need an API token in the URL.")
    return path


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file (None when it is), read from its header alone.

    The header is 8 bytes of length then JSON naming each tensor's byte range; a page of HTML, a cut
    download or a file with trailing junk fails here without loading a single tensor.
    """
    import json
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "it is shorter than a safetensors header"
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > min(size - 8, 100 * 1024**2):
                start = head.lstrip()[:1]
                return "it is an HTML or text page" if start in (b"<", b"{", b"[") else "its header length is wrong"
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return f"its header does not parse ({type(exc).__name__})"
    if not isinstance(header, dict):
        return "its header is not a mapping"
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return f"tensor {key!r} has no byte range"
        end = max(end, offsets[1])
    if 8 + n + end != size:
        return f"it holds {size} bytes where its header describes {8 + n + end} (cut or padded)"
    return None


# ---- reading and checking ----

def _read(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidRequestError(f"{path.name} is not a readable .safetensors LoRA file ({exc}).",
                                  argument="loras", value=str(path),
                                  hint="Use the .safetensors file a LoRA trainer wrote.") from exc


def _format_of(keys: Sequence[str]) -> str:
    if any(k.startswith("lora_unet_") or k.startswith("lora_te") for k in keys):
        return "kohya"
    if any("processor" in k for k in keys):
        return "xlabs"
    if any(".lora_A." in k or ".lora.down." in k or ".lora_B." in k for k in keys):
        return "peft"
    return "unknown"


def _family_hint(keys: Sequence[str]) -> str | None:
    joined = "\n".join(keys[:2000])
    if "noise_refiner" in joined or "context_refiner" in joined or ".attention.to_q" in joined \
            or ".feed_forward.w" in joined or "layers_0_attention" in joined:
        return "zimage"  # Z-Image's S3-DiT: layers.N.attention / feed_forward, noise and context refiners
    if ".img_mlp.net" in joined or ".txt_mlp.net" in joined or ".img_mod." in joined:
        return "qwenimage"
    if "to_qkv_mlp_proj" in joined or ".ff.linear_in" in joined or "double_stream_modulation" in joined:
        return "flux2"  # FLUX.2's fused single-block projection and its linear_in/out feed-forwards
    if "double_blocks" in joined or "single_blocks" in joined or "single_transformer_blocks" in joined:
        return "flux"
    if "joint_blocks" in joined or ".attn2." in joined or "pos_embed" in joined:
        return "sd3"
    return None


def _library_metadata(path: Path) -> dict[str, Any]:
    meta_file = path.parent / METADATA_NAME
    if meta_file.is_file():
        try:
            return json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
    return {}


def _to_diffusers(state: dict[str, Any], family: str) -> dict[str, Any]:
    """Diffusers' own converters (kohya/xlabs → PEFT keys); plain PEFT files pass through."""
    import diffusers

    cls = getattr(diffusers, {"flux": "FluxPipeline", "flux2": "Flux2KleinPipeline", "zimage": "ZImagePipeline",
                              "qwenimage": "QwenImagePipeline"}.get(family, "StableDiffusion3Pipeline"))
    converted = cls.lora_state_dict(dict(state))
    if isinstance(converted, tuple):
        converted = converted[0]
    out = {}
    for key, value in converted.items():
        key = key.replace(".lora.down.weight", ".lora_A.weight").replace(".lora.up.weight", ".lora_B.weight")
        out[key] = value
    return out


def _pairs(state: dict[str, Any]) -> tuple[dict[str, tuple[int, int, int]], int]:
    """`{module: (rank, in, out)}` for transformer layers, and the number of text-encoder layers."""
    downs: dict[str, Any] = {}
    ups: dict[str, Any] = {}
    text = set()
    for key, value in state.items():
        if not key.endswith((".lora_A.weight", ".lora_B.weight")):
            continue
        module, kind = key.rsplit(".lora_", 1)
        if module.startswith(("text_encoder", "te.")):
            text.add(module)
            continue
        module = module.removeprefix("transformer.").removeprefix("base_model.model.")
        (downs if kind.startswith("A") else ups)[module] = value
    pairs = {}
    for module, down in downs.items():
        up = ups.get(module)
        if up is None or down.ndim < 2 or up.ndim < 2:
            continue
        pairs[module] = (int(down.shape[0]), int(down.shape[1]), int(up.shape[0]))
    return pairs, len(text)


def _mismatches(pairs: dict[str, tuple[int, int, int]], shapes: dict[str, tuple[int, int]]) -> list[str]:
    bad = []
    for module, (_, fan_in, fan_out) in pairs.items():
        expected = shapes.get(module)
        if expected is None:
            bad.append(f"{module}: no such layer")
        elif expected != (fan_in, fan_out):
            bad.append(f"{module}: LoRA {fan_in}→{fan_out}, model {expected[0]}→{expected[1]}")
    return bad


def _models_that_fit(pairs: dict[str, tuple[int, int, int]], family: str | None) -> list[str]:
    fits = []
    for spec in MODELS.values():
        if family and spec.family != family:
            continue
        try:
            if not _mismatches(pairs, linear_shapes(spec.id)):
                fits.append(spec.id)
        except Exception as exc:  # one broken config must not hide the answer for the others
            log.debug("lora.shape_probe_failed", model=spec.id, error=repr(exc))
    return fits


def validate_lora(path: str | os.PathLike[str], *, model: str) -> LoraInfo:
    """Check that the LoRA at `path` (file, folder, library name, repo id or URL) fits `model`.

    Raises `LoraIncompatibleError` naming the model it was made for and `model` when its layers or
    shapes do not match `model`'s transformer; `InvalidRequestError` when it is not a LoRA at all.
    """
    spec = get_model(model)
    file = resolve_lora(str(path))
    raw, metadata = _read(file)
    keys = list(raw)
    fmt = _format_of(keys)
    if fmt == "unknown":
        raise InvalidRequestError(f"{file.name} holds no LoRA weights (no lora_A/lora_B or lora_down/lora_up keys).",
                                  argument="loras", value=str(path),
                                  hint="Pass the LoRA file itself, not a full model checkpoint.")
    library = _library_metadata(file)
    base_model = library.get("base_model") or metadata.get("base_model") or metadata.get("ss_base_model_version")
    # a recorded base names the family; else the keys do (FLUX.1 and FLUX.2 kohya keys look alike: the shapes decide)
    hinted = _family_of(base_model) or _family_hint(keys)
    if hinted == "flux" and spec.family == "flux2" and not base_model:
        hinted = None
    if fmt in ("kohya", "xlabs") and hinted is None:
        hinted = "flux"
    family = hinted or spec.family
    made_for = f"a {hinted.upper()} model" if hinted else "another model"
    if base_model:
        made_for = str(base_model)

    def incompatible(reason: str, fits: list[str] | None = None) -> LoraIncompatibleError:
        fits = fits if fits is not None else []
        target = f"{fits[0]}" if fits else made_for
        return LoraIncompatibleError(
            f"LoRA `{file.name}` was made for {target}, not for {spec.id}: {reason}.",
            argument="loras",
            value=str(path),
            hint=(f"Use it with {', '.join(fits)}" if fits else f"Use a LoRA trained on {spec.id}")
            + f", or pick a LoRA made for {spec.id}.",
            lora_model=target,
            model=spec.id,
        )

    if hinted and hinted != spec.family:
        pairs, _ = _pairs(_safe_convert(raw, hinted, incompatible))
        raise incompatible(f"its layers are {hinted.upper()} layers and {spec.id} is {spec.family.upper()}",
                           _models_that_fit(pairs, hinted))
    state = _safe_convert(raw, family, incompatible)
    pairs, text_modules = _pairs(state)
    if not pairs and not text_modules:
        raise InvalidRequestError(f"{file.name} has no complete LoRA layer pairs.", argument="loras",
                                  value=str(path), hint="The file may be truncated: download it again.")
    bad = _mismatches(pairs, linear_shapes(spec.id))
    if bad:
        more = f" (and {len(bad) - 2} more)" if len(bad) > 2 else ""
        raise incompatible("; ".join(bad[:2]) + more, _models_that_fit(pairs, None))
    ranks = sorted({r for r, _, _ in pairs.values()})
    alpha = metadata.get("lora_alpha") or metadata.get("ss_network_alpha")
    return LoraInfo(
        path=file,
        format=fmt,
        family=spec.family,
        model=spec.id,
        rank=ranks[-1] if ranks else 0,
        modules=len(pairs),
        text_encoder_modules=text_modules,
        sha256=file_sha256(file),
        base_model=str(base_model) if base_model else None,
        trigger_word=library.get("trigger_word") or metadata.get("trigger_word"),
        alpha=float(alpha) if _is_number(alpha) else None,
    )


def _safe_convert(raw: dict[str, Any], family: str, incompatible) -> dict[str, Any]:
    try:
        return _to_diffusers(raw, family)
    except Exception as exc:
        # diffusers' converters assume full-size dims and assert on them (AssertionError, ValueError,
        # KeyError...): any failure means the file's layout is not this model's.
        raise incompatible(f"diffusers could not convert its keys ({type(exc).__name__}: {exc})") from exc


def _family_of(base_model: Any) -> str | None:
    if not base_model:
        return None
    try:
        return get_model(str(base_model)).family
    except ModelNotFoundError:
        text = str(base_model).lower()
        for needle, family in (("flux2", "flux2"), ("flux-2", "flux2"), ("flux.2", "flux2"), ("flux", "flux"),
                               ("zimage", "zimage"), ("z-image", "zimage"), ("qwen", "qwenimage"),
                               ("sd3", "sd3"), ("stable-diffusion-3", "sd3")):
            if needle in text:
                return family
        return None


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


# ---- stacking on a pipeline ----

def resolve_all(loras: Any, *, model: str) -> list[ResolvedLora]:
    """Normalise, fetch and validate every requested LoRA (before anything touches the pipeline)."""
    out = []
    for spec in normalise_loras(loras):
        file = resolve_lora(spec.source)
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, model)
        info = _validated.get(key)
        if info is None:
            info = validate_lora(file, model=model)
            _validated[key] = info
        out.append(ResolvedLora(spec.source, info.path, spec.weight, info.sha256, info))
    return out


# A LoRA file that has not changed (same size and mtime) was already checked: no need to hash it again.
_validated: dict[tuple, LoraInfo] = {}


def apply_loras(pipe: Any, loras: Sequence[ResolvedLora]) -> None:
    """Make exactly `loras` active on `pipe` with their weights; adapters already loaded are reused."""
    # Kept on the transformer: the text-to-image and image-to-image pipelines share it.
    loaded: dict[str, ResolvedLora] = getattr(pipe.transformer, "_masuka_loras", {})
    wanted = {lr.adapter_name: lr for lr in loras}
    if not wanted:
        unload_loras(pipe)
        return
    stale = [name for name in loaded if name not in wanted]
    if stale:
        pipe.delete_adapters(stale)
        for name in stale:
            loaded.pop(name)
    for name, lr in wanted.items():
        if name not in loaded:
            with quiet_third_party():  # "No LoRA keys associated to CLIPTextModel …": expected for Flux LoRAs
                pipe.load_lora_weights(str(lr.path), adapter_name=name)
            loaded[name] = lr
    pipe.set_adapters(list(wanted), adapter_weights=[lr.weight for lr in wanted.values()])
    pipe.transformer._masuka_loras = loaded
    log.info("lora.applied", adapters=",".join(f"{lr.source}@{lr.weight}" for lr in loras))


def unload_loras(pipe: Any) -> None:
    """Remove every LoRA layer: the pipeline computes exactly what the base model computes again."""
    if getattr(pipe.transformer, "_masuka_loras", None):
        pipe.unload_lora_weights()
        log.info("lora.unloaded", count=len(pipe.transformer._masuka_loras))
    pipe.transformer._masuka_loras = {}
