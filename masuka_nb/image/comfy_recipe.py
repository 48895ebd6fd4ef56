"""What a ComfyUI API graph made: walk back from the sampler to the prompt, model, LoRAs, size and seed.

The walk follows links through the stock nodes (`comfy_nodes`); anything else on the way is named in
``unmapped`` rather than guessed at. A graph without a sampler, or one that edits or animates, is not a
text-to-image recipe and is refused with the reason (`RecipeUnsupportedError`).
"""

from __future__ import annotations

from typing import Any

from masuka_nb.errors import RecipeUnsupportedError

__all__ = ["fields_from_prompt"]

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "SamplerCustom")
_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyFlux2LatentImage")
# Node classes that show the graph edits or animates instead of drawing from text (ComfyUI names).
_EDIT = ("ReferenceLatent", "FluxKontextImageScale", "TextEncodeQwenImageEdit", "InpaintModelConditioning",
         "VAEEncodeForInpaint", "FluxKontextMultiReferenceLatentMethod")
# Conditioning that needs an input image (ControlNet, Redux, pix2pix, IP-Adapter…): not text-to-image.
_IMAGE_CONDITIONING = ("ControlNet", "StyleModel", "InstructPixToPix", "unCLIP", "IPAdapter", "Redux", "ImageToVideo",
                       "Inpaint", "ReferenceLatent", "PhotoMaker", "InstantID", "Kontext")
_VIDEO = ("Video", "Wan", "LTXV", "Hunyuan", "Mochi", "Cosmos", "Audio", "3D", "Mesh", "Hunyuan3D")


def _refuse(reason: str, hint: str = "Use an image made by text-to-image (FLUX.1, SD3.5 or FLUX.2 [klein]).",
            ) -> RecipeUnsupportedError:
    return RecipeUnsupportedError(f"This ComfyUI graph is not a recipe MASUKA can replay: {reason}.",
                                  argument="image", hint=hint)


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _add(values: list[float], value: Any) -> None:
    number = _float(value)
    if number is not None:
        values.append(number)


class _Walk:
    def __init__(self, prompt: dict[str, Any]) -> None:
        self.prompt = prompt
        self.unmapped: list[str] = []

    def node(self, ref: Any) -> dict[str, Any] | None:
        if isinstance(ref, list) and len(ref) == 2:
            return self.prompt.get(str(ref[0]))
        return None

    def value(self, node: dict[str, Any], name: str) -> Any:
        """A widget value, following a link to a primitive or another value node."""
        v = node.get("inputs", {}).get(name)
        for _ in range(8):
            src = self.node(v)
            if src is None:
                return v
            ins = src.get("inputs", {})
            v = next((ins[k] for k in ("value", "text", "string", "seed", "noise_seed", "int", "float") if k in ins),
                     None)
        return v

    def text(self, ref: Any, guidance: list[float]) -> str | None:
        """The prompt behind a CONDITIONING link; guidance values met on the way are appended to `guidance`."""
        for _ in range(16):
            node = self.node(ref)
            if node is None:
                return None
            kind, ins = node.get("class_type"), node.get("inputs", {})
            if kind == "CLIPTextEncode":
                return self.value(node, "text")
            if kind in ("CLIPTextEncodeFlux", "CLIPTextEncodeSD3"):
                if kind == "CLIPTextEncodeFlux" and "guidance" in ins:
                    _add(guidance, self.value(node, "guidance"))
                return self.value(node, "t5xxl") or self.value(node, "clip_l")
            if kind == "ConditioningZeroOut":
                return ""
            if kind == "FluxGuidance":
                _add(guidance, self.value(node, "guidance"))
                ref = ins.get("conditioning")
                continue
            if any(word in str(kind) for word in _IMAGE_CONDITIONING):
                raise _refuse(f"it conditions on an input image through {kind}",
                              "Only plain text-to-image graphs can be replayed.")
            links = [v for v in ins.values() if self.node(v) is not None]
            self.unmapped.append(f"conditioning node {kind} (its effect is not reproduced)")
            if not links:
                return None
            ref = links[0]
        return None

    def model(self, ref: Any, loras: list[dict[str, Any]]) -> str | None:
        """The checkpoint / diffusion-model file behind a MODEL link; LoRAs met on the way go to `loras`."""
        for _ in range(32):
            node = self.node(ref)
            if node is None:
                return None
            kind, ins = node.get("class_type"), node.get("inputs", {})
            for name in ("ckpt_name", "unet_name", "model_name"):  # any loader: CheckpointLoader(Simple), UNETLoader…
                if name in ins and self.node(ins[name]) is None:
                    return self.value(node, name)
            if kind in ("LoraLoader", "LoraLoaderModelOnly"):
                loras.insert(0, {"name": self.value(node, "lora_name"),
                                 "weight": _float(self.value(node, "strength_model"), 1.0)})
            elif kind not in ("ModelSamplingFlux", "ModelSamplingSD3", "ModelSamplingAuraFlow"):
                self.unmapped.append(f"model patch {kind} (not reproduced)")
            # a patch passes its `model` on; a switch or custom node: follow its first linked input
            ref = ins.get("model") or next((v for v in ins.values() if self.node(v) is not None), None)
        return None

    def clip_types(self) -> list[str]:
        return [str(n["inputs"].get("type")) for n in self.prompt.values()
                if n.get("class_type") in ("CLIPLoader", "DualCLIPLoader") and "type" in n.get("inputs", {})]


def _pick_sampler(w: _Walk) -> tuple[str, dict[str, Any]]:
    samplers = [(k, n) for k, n in w.prompt.items() if n.get("class_type") in SAMPLERS]
    if not samplers:
        classes = sorted({str(n.get("class_type")) for n in w.prompt.values()})
        if any(c in _EDIT for c in classes):
            raise _refuse("it edits an input image", "Use masuka_nb.edit for image edits.")
        if any(any(v in c for v in _VIDEO) for c in classes):
            raise _refuse("it makes video, audio or 3D, not an image")
        raise _refuse(f"it has no sampler node (it runs {', '.join(classes[:6])}…)")
    # The first pass is the one that starts from an empty latent; a second pass (hires fix) is noted.
    first = [(k, n) for k, n in samplers if _starts_empty(w, n)]
    chosen = (first or samplers)[0]
    if len(samplers) > 1:
        w.unmapped.append(f"{len(samplers) - 1} more sampler pass(es) (hires fix or refiner) are not reproduced")
    return chosen


def _latent_of(w: _Walk, node: dict[str, Any]) -> dict[str, Any] | None:
    return w.node(node.get("inputs", {}).get("latent_image"))


def _starts_empty(w: _Walk, node: dict[str, Any]) -> bool:
    latent = _latent_of(w, node)
    return latent is not None and latent.get("class_type") in _LATENTS


def fields_from_prompt(prompt: dict[str, Any]) -> dict[str, Any]:
    """Recipe fields (prompt, negative, model file, loras, size, steps, cfg, seed, sampler, ...) of an API graph."""
    prompt = {str(k): v for k, v in (prompt.items() if isinstance(prompt, dict) else ())
              if isinstance(v, dict) and "class_type" in v}
    if not prompt:
        raise _refuse("it holds no ComfyUI nodes (is it a ComfyUI graph at all?)")
    w = _Walk(prompt)
    if any(n.get("class_type") in _EDIT for n in prompt.values()):
        raise _refuse("it edits an input image (reference latents or inpainting)", "Use masuka_nb.edit for edits.")
    _, sampler = _pick_sampler(w)
    kind, ins = sampler["class_type"], sampler.get("inputs", {})
    out: dict[str, Any] = {"loras": []}
    guidance: list[float] = []
    model_ref, positive, negative = ins.get("model"), ins.get("positive"), ins.get("negative")
    if kind == "SamplerCustomAdvanced":
        guider = w.node(ins.get("guider")) or {}
        g_ins = guider.get("inputs", {})
        model_ref = g_ins.get("model")
        positive = g_ins.get("positive") or g_ins.get("conditioning")
        negative = g_ins.get("negative")
        if "cfg" in g_ins:
            out["cfg"] = _float(w.value(guider, "cfg"))
        noise = w.node(ins.get("noise"))
        if noise is not None:
            out["seed"] = w.value(noise, "noise_seed")
        chooser = w.node(ins.get("sampler"))
        if chooser is not None:
            out["sampler"] = w.value(chooser, "sampler_name")
        sigmas = w.node(ins.get("sigmas"))
        if sigmas is not None:
            out["steps"] = w.value(sigmas, "steps")
            out["scheduler"] = w.value(sigmas, "scheduler") or ("flux2" if sigmas["class_type"] == "Flux2Scheduler"
                                                                 else None)
            if sigmas.get("inputs", {}).get("denoise") is not None:
                out["denoise"] = _float(w.value(sigmas, "denoise"))
    else:
        out["seed"] = w.value(sampler, "seed" if kind != "KSamplerAdvanced" else "noise_seed")
        out["steps"] = w.value(sampler, "steps")
        out["cfg"] = _float(w.value(sampler, "cfg"))
        out["sampler"] = w.value(sampler, "sampler_name")
        out["scheduler"] = w.value(sampler, "scheduler")
        if "denoise" in ins:
            out["denoise"] = _float(w.value(sampler, "denoise"))
    out["prompt"] = w.text(positive, guidance) if positive is not None else None
    out["negative_prompt"] = w.text(negative, []) if negative is not None else None
    if guidance:
        out["guidance"] = guidance[0]
    out["model_file"] = w.model(model_ref, out["loras"])
    latent = _latent_of(w, sampler)
    if latent is not None and latent.get("class_type") in _LATENTS:
        out["width"], out["height"] = w.value(latent, "width"), w.value(latent, "height")
        out["batch_size"] = w.value(latent, "batch_size") or 1
    elif latent is not None and latent.get("class_type") == "VAEEncode":
        out["img2img"] = True
        w.unmapped.append("the input image of this image-to-image graph is not stored in the PNG")
    elif latent is not None:
        raise _refuse(f"its latent comes from {latent.get('class_type')}, not an empty image latent "
                      "(a video, audio or foreign-model graph)")
    out["clip_types"] = w.clip_types()
    out["unmapped"] = w.unmapped
    if not isinstance(out.get("prompt"), str):
        raise _refuse("its positive prompt does not come from a text box MASUKA can read "
                      "(a custom node builds it)")
    return out
