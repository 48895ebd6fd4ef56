"""Exporting a trained LoRA into the library: PEFT/diffusers file, kohya file, metadata and model card.

Library layout (docs/contracts.md), read by the image engine and written by cloud training too::

    loras_dir/<name>/pytorch_lora_weights.safetensors   diffusers/PEFT keys (transformer.…lora_A.weight)
    loras_dir/<name>/<name>.kohya.safetensors           kohya keys, for ComfyUI / A1111 / Forge
    loras_dir/<name>/masuka_lora.json                   name, base_model, trigger_word, steps, rank, source, ...
    loras_dir/<name>/README.md                          model card

Files are always written with scale 1 (alpha folded into lora_B), so every loader reads them alike. Both
weight files carry kohya ``ss_*`` and ModelSpec ``modelspec.*`` metadata (base model, trigger word, dim/alpha,
hashes) that A1111, Forge, ComfyUI and Civitai read.
The kohya file fuses q/k/v the way BFL's checkpoints do: a rank-3r down matrix and a block-diagonal
up matrix, which diffusers' kohya converter splits back into the exact per-projection LoRAs.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError, ModelNotFoundError
from masuka_nb.hub import upload_folder
from masuka_nb.log import get_logger
from masuka_nb.models.registry import get_model
from masuka_nb.storage import (
    atomic_write_json,
    atomic_write_safetensors,
    atomic_write_text,
    ensure_dir,
    safe_name,
)

__all__ = ["addnet_hash", "export_kohya", "export_lora", "lora_metadata", "peft_to_kohya", "push_to_hub"]

log = get_logger(__name__)

PEFT_FILE = "pytorch_lora_weights.safetensors"
FULL_FLUX_INNER = 3072

# diffusers module (under transformer_blocks.N.) -> (kohya name, fused group, position in the group)
_DOUBLE = {
    "attn.to_q": ("img_attn_qkv", 0), "attn.to_k": ("img_attn_qkv", 1), "attn.to_v": ("img_attn_qkv", 2),
    "attn.to_out.0": ("img_attn_proj", None),
    "attn.add_q_proj": ("txt_attn_qkv", 0), "attn.add_k_proj": ("txt_attn_qkv", 1),
    "attn.add_v_proj": ("txt_attn_qkv", 2), "attn.to_add_out": ("txt_attn_proj", None),
    "ff.net.0.proj": ("img_mlp_0", None), "ff.net.2": ("img_mlp_2", None),
    "ff_context.net.0.proj": ("txt_mlp_0", None), "ff_context.net.2": ("txt_mlp_2", None),
    # FLUX.2: its feed-forwards are linear_in / linear_out (BFL's img_mlp.0 / img_mlp.2)
    "ff.linear_in": ("img_mlp_0", None), "ff.linear_out": ("img_mlp_2", None),
    "ff_context.linear_in": ("txt_mlp_0", None), "ff_context.linear_out": ("txt_mlp_2", None),
    "norm1.linear": ("img_mod_lin", None), "norm1_context.linear": ("txt_mod_lin", None),
}
_SINGLE = {
    "attn.to_q": ("linear1", 0), "attn.to_k": ("linear1", 1), "attn.to_v": ("linear1", 2),
    "proj_mlp": ("linear1", 3), "proj_out": ("linear2", None), "norm.linear": ("modulation_lin", None),
    # FLUX.2 keeps BFL's fused single-block projections: linear1 is one layer, linear2 is attn.to_out
    "attn.to_qkv_mlp_proj": ("linear1", None), "attn.to_out": ("linear2", None),
}
_KEY = re.compile(r"^(?:transformer\.)?(single_transformer_blocks|transformer_blocks)\.(\d+)\.(.+)\.lora_([AB])\.weight$")


def peft_to_kohya(state_dict: dict[str, Any], *, single_dims: tuple[int, ...] | None = None) -> tuple[dict[str, Any], list[str]]:
    """diffusers/PEFT LoRA keys (scale 1) -> kohya keys with `.alpha` (= rank, scale 1). Returns (state, skipped).

    `single_dims` are the split sizes of a single block's fused linear1 (q, k, v, mlp); kohya's layout
    and diffusers' converter assume full-size FLUX ([3072]*3 + [12288]); other sizes are skipped.
    """
    import torch

    groups: dict[tuple[str, int, str], dict[int | None, dict[str, Any]]] = {}
    skipped: list[str] = []
    for key, tensor in state_dict.items():
        m = _KEY.match(key)
        if not m:
            skipped.append(key)
            continue
        kind, idx, module, ab = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        table = _DOUBLE if kind == "transformer_blocks" else _SINGLE
        if module not in table:
            skipped.append(key)
            continue
        name, pos = table[module]
        groups.setdefault((kind, idx, name), {}).setdefault(pos, {})[ab] = tensor
    out: dict[str, Any] = {}
    for (kind, idx, name), parts in groups.items():
        prefix = f"lora_unet_{'double' if kind == 'transformer_blocks' else 'single'}_blocks_{idx}_{name}"
        if None in parts:
            a, b = parts[None]["A"], parts[None]["B"]
            out[prefix + ".lora_down.weight"] = a.contiguous()
            out[prefix + ".lora_up.weight"] = b.contiguous()
            out[prefix + ".alpha"] = torch.tensor(float(a.shape[0]))
            continue
        n_split = 4 if name == "linear1" else 3
        any_part = next(iter(parts.values()))
        rank, in_dim = any_part["A"].shape
        if name == "linear1":
            dims = list(single_dims) if single_dims else None
            if dims is None or dims[0] != FULL_FLUX_INNER:
                skipped += [f"{prefix} (single blocks need full-size FLUX dims)"]
                continue
        else:
            dims = [any_part["B"].shape[0]] * 3
        down = torch.zeros(rank * n_split, in_dim, dtype=any_part["A"].dtype)
        up = torch.zeros(sum(dims), rank * n_split, dtype=any_part["B"].dtype)
        row = 0
        for pos in range(n_split):
            if pos in parts:
                down[pos * rank:(pos + 1) * rank] = parts[pos]["A"]
                up[row:row + dims[pos], pos * rank:(pos + 1) * rank] = parts[pos]["B"]
            row += dims[pos]
        out[prefix + ".lora_down.weight"] = down
        out[prefix + ".lora_up.weight"] = up
        # Converter scale = alpha / (rank·splits); alpha = that rank keeps scale 1.
        out[prefix + ".alpha"] = torch.tensor(float(rank * n_split))
    return out, skipped


def _flux_single_dims(state_dict: dict[str, Any]) -> tuple[int, ...] | None:
    for key, t in state_dict.items():
        if "single_transformer_blocks" in key and key.endswith("attn.to_q.lora_B.weight"):
            inner = t.shape[0]
            return (inner, inner, inner, inner * 4)
    return None


def export_kohya(state_dict: dict[str, Any], path: str | Path, *, metadata: dict[str, str] | None = None) -> tuple[Path, list[str]]:
    """Write a kohya-format file of a scale-1 PEFT LoRA state dict."""

    kohya, skipped = peft_to_kohya(state_dict, single_dims=_flux_single_dims(state_dict))
    if not kohya:
        raise InvalidRequestError("Nothing in this LoRA has a kohya equivalent.", argument="state_dict",
                                  hint="Train with target_modules='attention' or 'double-blocks'.")
    path = atomic_write_safetensors(path, kohya, metadata)
    if skipped:
        log.warning("export.kohya_skipped", count=len(skipped), first=skipped[0])
    return path, skipped


def _model_card(meta: dict[str, Any]) -> str:
    trigger = meta.get("trigger_word") or ""
    return f"""---
base_model: {meta.get('base_repo') or meta.get('base_model')}
library_name: diffusers
tags: [{_family_of_base(meta.get('base_model')) or 'flux'}, lora, text-to-image, masuka]
instance_prompt: {trigger}
---
# {meta['name']}

A LoRA for `{meta.get('base_model')}` trained with MASUKA ({meta.get('source', 'local')}).

- base model: `{meta.get('base_model')}`
- trigger word: `{trigger}`
- steps: {meta.get('steps')}, rank: {meta.get('rank')}, learning rate: {meta.get('learning_rate')}, resolution: {meta.get('resolution')}
- dataset hash: `{meta.get('dataset_hash')}` ({meta.get('images')} images)

## Use it

```python
import masuka_nb as mk
mk.generate("{trigger} ...", model="{meta.get('base_model')}", loras=["{meta['name']}"])
```

With diffusers: `pipe.load_lora_weights("{meta['name']}", weight_name="pytorch_lora_weights.safetensors")`.
{_other_file_line(meta)}
"""


def _other_file_line(meta: dict[str, Any]) -> str:
    if meta.get("comfyui_file"):
        # ComfyUI maps these diffusers names onto Z-Image's fused qkv only since its pull request 10978 (after v0.3.75,
        # 2025-11-27); an older ComfyUI loads none of the file (checked through ComfyUI's own loader, docs/contracts.md)
        return (f"`{meta['comfyui_file']}` is the same LoRA with ComfyUI's `diffusion_model.` keys (a ComfyUI newer "
                "than v0.3.75 of 2025-11-27; older ones ignore it).")
    return f"`{meta['name']}.kohya.safetensors` is the same LoRA in kohya format (ComfyUI, A1111, Forge)."


# ModelSpec architecture ids (github.com/Stability-AI/ModelSpec; the ids kohya's sd-scripts writes in
# library/sai_model_spec.py: "flux-1-dev", "flux-1-schnell", "stable-diffusion-v3.5-large", …; read 2026-12-05).
_ARCH = {"flux1-dev": "flux-1-dev", "flux1-schnell": "flux-1-schnell", "sd35-large": "stable-diffusion-v3.5-large",
         "sd35-large-turbo": "stable-diffusion-v3.5-large-turbo", "sd35-medium": "stable-diffusion-v3.5-medium",
         "flux2-klein": "flux-2-klein-4b", "zimage-turbo": "z-image-turbo", "qwen-image": "qwen-image"}
_IMPL = {"flux": "https://github.com/black-forest-labs/flux", "sd3": "https://github.com/Stability-AI/sd3.5",
         "flux2": "https://github.com/black-forest-labs/flux2", "zimage": "https://github.com/Tongyi-MAI/Z-Image",
         "qwenimage": "https://github.com/QwenLM/Qwen-Image"}
_SS_BASE = {"flux": "flux1", "sd3": "sd3", "flux2": "flux2", "zimage": "zimage"}  # kohya's ss_base_model_version


def addnet_hash(tensors: dict[str, Any]) -> str:
    """SHA-256 of a safetensors file's tensor bytes (everything after its header): kohya's ``sshs_model_hash``,
    which A1111 and Civitai shorten to 12 hex for "Lora hashes" / AutoV3. It ignores the metadata, so it can
    be computed before the metadata is written."""
    import hashlib

    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    header = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + header:]).hexdigest()


def lora_metadata(meta: dict[str, Any], tensors: dict[str, Any], *, name: str, kohya: bool) -> dict[str, str]:
    """kohya ``ss_*`` and ModelSpec ``modelspec.*`` keys (strings, as safetensors metadata must be) for a
    trained LoRA: base model, trigger words, dim/alpha and hashes, which A1111, Forge, ComfyUI's LoRA managers
    and Civitai show (keys: github.com/kohya-ss/sd-scripts library/train_util.py and sai_model_spec.py)."""
    base = str(meta.get("base_model") or "")
    try:
        spec = get_model(base)
        family, repo = spec.family, spec.repo or base
    except ModelNotFoundError:
        family, repo = "flux", base
    trigger = str(meta.get("trigger_word") or "")
    rank = meta.get("rank")
    res = meta.get("resolution")
    model_hash = addnet_hash(tensors)
    out = {
        "ss_base_model_version": _SS_BASE.get(family, family), "ss_sd_model_name": str(repo),
        "ss_network_module": ({"flux2": "networks.lora_flux2"}.get(family, "networks.lora_flux")
                              if kohya and family in ("flux", "flux2") else "peft"),
        "ss_network_dim": str(rank), "ss_network_alpha": str(rank),  # alpha folded into lora_B: scale 1
        "ss_output_name": name, "ss_training_comment": f"trained with MASUKA on {base}",
        "ss_steps": str(meta.get("steps")), "ss_max_train_steps": str(meta.get("steps")),
        "ss_learning_rate": str(meta.get("learning_rate")), "ss_seed": str(meta.get("seed")),
        "ss_num_train_images": str(meta.get("images")), "ss_resolution": f"({res}, {res})",
        "ss_tag_frequency": json.dumps({name: {trigger: int(meta.get("images") or 1)}} if trigger else {}),
        "ss_training_finished_at": str(int(datetime.now(timezone.utc).timestamp())),
        "sshs_model_hash": model_hash,
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{_ARCH.get(base, base)}/lora",
        "modelspec.implementation": _IMPL.get(family, "diffusers") if kohya else "diffusers",
        "modelspec.title": name, "modelspec.author": "MASUKA",
        "modelspec.date": datetime.now(timezone.utc).date().isoformat(),
        "modelspec.resolution": f"{res}x{res}", "modelspec.trigger_phrase": trigger,
        "modelspec.hash_sha256": f"0x{model_hash}", "modelspec.tags": f"{family},lora,masuka",
        "modelspec.usage_hint": f"{trigger} …" if trigger else "",
        # MASUKA's own validate_lora reads these plain keys first
        "base_model": base, "trigger_word": trigger,
        "masuka": json.dumps({k: v for k, v in meta.items() if isinstance(v, (str, int, float))}),
    }
    return {k: v for k, v in out.items() if v not in ("None", "(None, None)", "NonexNone")}


def _family_of_base(base: Any) -> str | None:
    from masuka_nb.errors import ModelNotFoundError
    from masuka_nb.models.registry import get_model

    try:
        return get_model(str(base)).family if base else None
    except ModelNotFoundError:
        return None


def export_lora(state_dict: dict[str, Any], *, name: str, meta: dict[str, Any], kohya: bool = True,
                loras_dir: str | Path | None = None) -> Path:
    """Write a scale-1 PEFT LoRA (diffusers keys, `transformer.` prefix) into the library; returns its folder.

    Both files carry kohya ``ss_*`` and ModelSpec metadata (`lora_metadata`), so any safetensors metadata
    reader shows the base model, trigger word, rank and hash."""
    from diffusers import FluxPipeline
    from safetensors.torch import load_file

    if not isinstance(name, str) or safe_name(name, default="") != name:
        raise InvalidRequestError("`name` must use only letters, digits, '.', '_' and '-'.", argument="name",
                                  value=name, hint=f"e.g. name={safe_name(str(name), default='my-style')!r}")
    if not isinstance(meta, dict):
        raise InvalidRequestError("`meta` must be a mapping.", argument="meta", value=meta,
                                  hint="e.g. meta={\"base_model\": \"flux1-dev\", \"trigger_word\": \"mk\"}")
    if loras_dir is not None and (isinstance(loras_dir, bool) or not isinstance(loras_dir, (str, Path))):
        raise InvalidRequestError("`loras_dir` must be a folder path or None.", argument="loras_dir", value=loras_dir)
    import torch

    if not isinstance(state_dict, dict) or not state_dict or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()):
        raise InvalidRequestError("`state_dict` must map LoRA weight names to tensors (at least one).",
                                  argument="state_dict", value=type(state_dict).__name__,
                                  hint="Pass `peft.get_peft_model_state_dict(model)`, or use `lora.train`.")
    folder = ensure_dir(Path(loras_dir) if loras_dir else settings().loras_dir / name)
    sd = {(k if k.startswith("transformer.") else f"transformer.{k}"): v.detach().cpu().contiguous()
          for k, v in state_dict.items()}
    tmp = ensure_dir(folder / ".incomplete")
    FluxPipeline.save_lora_weights(str(tmp), transformer_lora_layers={k[len("transformer."):]: v for k, v in sd.items()},
                                   safe_serialization=True)
    meta = {"name": name, "source": "local", "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **meta}
    peft = load_file(str(tmp / PEFT_FILE))  # diffusers' own key layout, re-written with the metadata added
    atomic_write_safetensors(folder / PEFT_FILE, peft, lora_metadata(meta, peft, name=name, kohya=False))
    (tmp / PEFT_FILE).unlink()
    tmp.rmdir()
    if kohya and _family_of_base(meta.get("base_model")) == "zimage":
        # Z-Image: ComfyUI maps diffusers-named keys under `diffusion_model.` onto its fused qkv (model_lora_keys_unet,
        # Lumina2 branch, via comfy.utils.z_image_to_diffusers); diffusers' Z-Image converter reads them back too
        comfy = {f"diffusion_model.{k[len('transformer.'):]}": v for k, v in sd.items()}
        atomic_write_safetensors(folder / f"{name}.comfyui.safetensors", comfy,
                                 lora_metadata(meta, comfy, name=name, kohya=False))
        meta["comfyui_file"] = f"{name}.comfyui.safetensors"
    elif kohya:
        kohya_sd, _ = peft_to_kohya(sd, single_dims=_flux_single_dims(sd))
        st_meta = lora_metadata(meta, kohya_sd, name=name, kohya=True) if kohya_sd else None
        _, skipped = export_kohya(sd, folder / f"{name}.kohya.safetensors", metadata=st_meta)
        meta["kohya_file"] = f"{name}.kohya.safetensors"
        if skipped:
            meta["kohya_skipped"] = skipped[:20]
    atomic_write_json(folder / "masuka_lora.json", meta)
    atomic_write_text(folder / "README.md", _model_card(meta))
    return folder


def push_to_hub(lora: str | Path, *, repo_id: str, private: bool = True, token: str | None = None) -> str:
    """Upload a library LoRA folder (weights, kohya file, card) to the Hugging Face Hub; returns its URL."""
    folder = Path(lora)
    if not folder.is_dir():
        folder = settings().loras_dir / str(lora)
    if not (folder / PEFT_FILE).is_file():
        raise InvalidRequestError(f"No LoRA at {folder}.", argument="lora", value=str(lora),
                                  hint="Pass a name in the LoRA library or a folder holding pytorch_lora_weights.safetensors.")
    if token is None:
        from masuka_nb.secrets import get_secret

        token = get_secret("HF_TOKEN", purpose="pushing a LoRA to the Hugging Face Hub")
    return upload_folder(folder, repo_id=repo_id, private=private, token=token,
                         message="Upload LoRA trained with MASUKA")
