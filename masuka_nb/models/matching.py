"""Which registry model a foreign image's model name stands for: exact, close (same family), or foreign.

Names come from A1111's ``Model:`` field, ComfyUI loader file names, SwarmUI and InvokeAI model names and
Civitai's ``baseModel`` (e.g. "Flux.1 D", "SD 3.5 Large", "SDXL 1.0": developer.civitai.com/site/reference/models,
read 2026-12-05). ComfyUI's own file names (``flux1-dev.safetensors``, ``sd3.5_large_fp8_scaled.safetensors``,
``flux-2-klein-4b.safetensors``) are those its templates use (comfyui-workflow-templates-json 0.1.123).
The table is a best effort: a name it does not know maps to nothing, and the recipe says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from masuka_nb.models.registry import MODELS

__all__ = ["ModelMatch", "match_model"]


@dataclass(frozen=True)
class ModelMatch:
    """`model` is a registry id (None when MASUKA cannot run it); `note` says how close or why not."""

    model: str | None
    family: str | None
    exact: bool
    note: str | None = None

    @property
    def foreign(self) -> bool:
        """Known to be a family MASUKA does not run (so a recipe for it is refused)."""
        return self.model is None and self.family is not None


_T = tuple[str, str | None, str, bool, str | None]  # (pattern, model, family, exact, note)
_TABLE: list[_T] = [
    (r"kontext", "flux1-kontext-dev", "flux", True, None),
    (r"flux.?1.?fill|flux.?fill", "flux1-fill-dev", "flux", True, None),
    (r"krea", "flux1-dev", "flux", False, "FLUX.1 Krea [dev] is a fine-tune of FLUX.1 [dev]; MASUKA runs FLUX.1 [dev]"),
    (r"schnell|flux.?1.?s\b", "flux1-schnell", "flux", True, None),
    (r"flux.?2.?klein.?(base.?)?9b|klein.?9b", None, "flux2",
     False, "FLUX.2 [klein] 9B is not in MASUKA's registry (only the 4B is)"),
    (r"flux.?2.?klein.?base|klein.?base", "flux2-klein", "flux2", False,
     "this is the undistilled FLUX.2 [klein] 4B base; MASUKA runs the distilled 4B"),
    (r"flux.?2.?klein|klein", "flux2-klein", "flux2", True, None),
    (r"flux.?2|flux.?3", None, "flux2", False, "FLUX.2 [dev] and later are not in MASUKA's registry "
     "(only FLUX.2 [klein] 4B is)"),
    (r"flux.?1.?dev|flux.?dev|flux1dev|flux.?1.?d\b", "flux1-dev", "flux", True, None),
    (r"flux", "flux1-dev", "flux", False, "a FLUX.1 fine-tune or variant; MASUKA runs it as FLUX.1 [dev]"),
    (r"sd.?3\.?5.?large.?turbo|sd35.?large.?turbo", "sd35-large-turbo", "sd3", True, None),
    (r"sd.?3\.?5.?large|sd35.?large", "sd35-large", "sd3", True, None),
    (r"sd.?3\.?5.?medium|sd35.?medium", "sd35-medium", "sd3", True, None),
    (r"sd.?3\.?5|sd35", "sd35-large", "sd3", False, "an SD3.5 variant; MASUKA runs it as SD3.5 Large"),
    (r"sd.?3|stable.?diffusion.?3", "sd35-medium", "sd3", False,
     "Stable Diffusion 3 (2024); MASUKA runs SD3.5 Medium, its successor"),
    (r"sd.?xl|xl.?base|pony|illustrious|noob|playground", None, "SDXL", False, None),
    (r"v1-5|sd.?1\.?5|sd.?15\b|sd-?1\b|stable.?diffusion.?1|\bsd1|v2-1|sd.?2\.?1", None, "Stable Diffusion 1.x/2.x",
     False, None),
    (r"qwen", None, "Qwen-Image", False, None),
    (r"hidream", None, "HiDream", False, None),
    (r"hunyuan", None, "HunyuanImage/Video", False, None),
    (r"\bwan|wan2", None, "Wan (video)", False, None),
    (r"ltx", None, "LTX (video)", False, None),
    (r"chroma", None, "Chroma", False, None),
    (r"lumina|neta", None, "Lumina", False, None),
    (r"z.?image", None, "Z-Image", False, None),
    (r"cosmos", None, "Cosmos", False, None),
    (r"kandinsky", None, "Kandinsky", False, None),
    (r"omnigen", None, "OmniGen", False, None),
    (r"cascade", None, "Stable Cascade", False, None),
    (r"aura.?flow", None, "AuraFlow", False, None),
    (r"pixart|sana", None, "PixArt/Sana", False, None),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), m, f, e, n) for p, m, f, e, n in _TABLE]


def match_model(*names: str | None) -> ModelMatch:
    """The first of `names` (most trusted first) that the table knows; a registry id matches itself."""
    for name in names:
        if not name:
            continue
        text = str(name).strip()
        stem = re.sub(r"\.(safetensors|sft|ckpt|gguf|pt|bin)$", "", text.replace("\\", "/").rsplit("/", 1)[-1],
                      flags=re.IGNORECASE)
        for candidate in (text, stem):
            if candidate in MODELS:
                return ModelMatch(candidate, MODELS[candidate].family, True)
        for rx, model, family, exact, note in _COMPILED:
            if rx.search(text):
                if model is None:
                    why = note or f"{family} is not a model family MASUKA runs"
                    return ModelMatch(None, family, False, f"`{stem}` is {family}: {why}")
                return ModelMatch(model, family, exact, None if exact else f"`{stem}`: {note}")
    return ModelMatch(None, None, False, None)
