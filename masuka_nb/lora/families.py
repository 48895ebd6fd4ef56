"""What differs between the bases a LoRA trains on beyond FLUX.1: FLUX.2 [klein] and Z-Image.

The training loop (`masuka_nb.lora.trainer`) is the same for every base: cached latents and text embeddings,
flow matching with noise and sigma drawn from (seed, step), LoRA on the attention projections, checkpoints that
resume exactly. A `Family` supplies the rest, each step following the family's own diffusers pipeline:

- FLUX.2 [klein] (`Flux2KleinPipeline`): AutoencoderKLFlux2 latents patchified 2×2 and normalised by the VAE's
  batch-norm statistics (`_encode_vae_image`); Qwen3 embeddings padded to `max_sequence_length`; the transformer
  reads packed tokens with 4-axis position ids and sigma as its timestep, and predicts the flow (noise − x₀).
- Z-Image (`ZImagePipeline`): FLUX.1's VAE normalisation; a variable-length Qwen3 embedding per prompt; the
  transformer takes lists of (C, 1, H, W) latents and of embeddings with t = 1 − σ, and predicts −(noise − x₀)
  (the pipeline negates it), so the flow is its output negated.

FLUX.1 (and its Fill/Kontext bases) stays in the trainer itself, where it was first written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["FAMILIES", "Family", "family_of"]


class Family:
    """One base family's pieces of the training loop (see the module docstring)."""

    name = ""
    pipeline_class = ""
    vae_class = "AutoencoderKL"
    transformer_class = ""

    def lora_targets(self, preset: str) -> Any:
        """PEFT `target_modules` for a preset of masuka_nb.lora.plan.TARGET_PRESETS."""
        from masuka_nb.lora.plan import TARGET_PRESETS

        targets = TARGET_PRESETS[preset]
        return targets[0] if len(targets) == 1 and "\\" in targets[0] else list(targets)

    # ---- latents ----
    def encode(self, vae: Any, x: Any) -> Any:
        """(1, C, H, W) latents in the transformer's input space for an image batch `x` in [-1, 1]."""
        lat = vae.encode(x).latent_dist.mode()
        return (lat - vae.config.shift_factor) * vae.config.scaling_factor

    # ---- text ----
    def text_pipeline(self, base: str, dtype: Any) -> Any:
        import diffusers

        return getattr(diffusers, self.pipeline_class).from_pretrained(base, transformer=None, vae=None,
                                                                       torch_dtype=dtype)

    def encode_text(self, pipe: Any, prompt: str, device: Any, max_len: int) -> Any:
        raise NotImplementedError

    # ---- the transformer ----
    def flow(self, model: Any, noisy: Any, sigma: Any, embeds: list[Any], dtype: Any) -> Any:
        """The model's flow prediction (noise − x₀) for `noisy` (B, C, H, W) at `sigma` (B,)."""
        raise NotImplementedError

    # ---- samples ----
    def sample_pipeline(self, base: str, model: Any, vae: Any) -> Any:
        import diffusers

        parts = dict(scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_pretrained(base, subfolder="scheduler"),
                     vae=vae, text_encoder=None, tokenizer=None, transformer=model)
        return getattr(diffusers, self.pipeline_class)(**parts, **self.extra_parts(base))

    def extra_parts(self, base: str) -> dict[str, Any]:
        return {}

    def sample_call(self, embeds: Any, device: Any, dtype: Any) -> dict[str, Any]:
        raise NotImplementedError


class Flux2(Family):
    name = "flux2"
    pipeline_class = "Flux2KleinPipeline"
    vae_class = "AutoencoderKLFlux2"
    transformer_class = "Flux2Transformer2DModel"

    def lora_targets(self, preset: str) -> Any:
        """FLUX.2's single blocks fuse q/k/v with the MLP's input (attn.to_qkv_mlp_proj, BFL's linear1) and the
        attention output with the MLP's (attn.to_out, linear2): "attention" covers them, as FLUX.1's preset covers
        its single blocks' to_q/k/v."""
        if preset != "attention":
            return super().lora_targets(preset)
        return (r".*(transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)"
                r"|single_transformer_blocks\.\d+\.attn\.(to_qkv_mlp_proj|to_out))$")

    def encode(self, vae: Any, x: Any) -> Any:
        import torch
        from diffusers import Flux2KleinPipeline

        lat = Flux2KleinPipeline._patchify_latents(vae.encode(x).latent_dist.mode())
        mean = vae.bn.running_mean.view(1, -1, 1, 1).to(lat)
        std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(lat)
        return (lat - mean) / std

    def encode_text(self, pipe: Any, prompt: str, device: Any, max_len: int) -> Any:
        embeds, _ = pipe.encode_prompt(prompt=prompt, device=device, max_sequence_length=max_len)
        return embeds[0]

    def flow(self, model: Any, noisy: Any, sigma: Any, embeds: list[Any], dtype: Any) -> Any:
        import torch
        from diffusers import Flux2KleinPipeline as P

        b, c, h, w = noisy.shape
        text = torch.stack(embeds).to(noisy.device, dtype)
        out = model(hidden_states=P._pack_latents(noisy).to(dtype), encoder_hidden_states=text,
                    timestep=sigma.to(dtype), img_ids=P._prepare_latent_ids(noisy).to(noisy.device),
                    txt_ids=P._prepare_text_ids(text).to(noisy.device), guidance=None, return_dict=False)[0]
        return out.permute(0, 2, 1).reshape(b, c, h, w)

    def extra_parts(self, base: str) -> dict[str, Any]:
        index = _model_index(base)
        return {"is_distilled": index["is_distilled"]} if "is_distilled" in index else {}

    def sample_call(self, embeds: Any, device: Any, dtype: Any) -> dict[str, Any]:
        return {"prompt_embeds": embeds[None].to(device, dtype), "guidance_scale": 1.0}


class ZImage(Family):
    name = "zimage"
    pipeline_class = "ZImagePipeline"
    transformer_class = "ZImageTransformer2DModel"

    def encode_text(self, pipe: Any, prompt: str, device: Any, max_len: int) -> Any:
        embeds, _ = pipe.encode_prompt(prompt=prompt, device=device, do_classifier_free_guidance=False,
                                       max_sequence_length=max_len)
        return embeds[0]

    def flow(self, model: Any, noisy: Any, sigma: Any, embeds: list[Any], dtype: Any) -> Any:
        import torch

        x = [lat.unsqueeze(1).to(dtype) for lat in noisy]
        caps = [e.to(noisy.device, dtype) for e in embeds]
        out = model(x, (1 - sigma).to(dtype), caps, return_dict=False)[0]
        return -torch.stack([o.squeeze(1) for o in out])

    def sample_call(self, embeds: Any, device: Any, dtype: Any) -> dict[str, Any]:
        return {"prompt_embeds": [embeds.to(device, dtype)], "guidance_scale": 0.0}


FAMILIES: dict[str, Family] = {f.name: f for f in (Flux2(), ZImage())}


def family_of(spec: Any) -> Family | None:
    """The family adapter for a base (None: FLUX.1, handled by the trainer itself)."""
    return FAMILIES.get(spec.family)


def _model_index(base: str) -> dict[str, Any]:
    path = Path(base) / "model_index.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download

    return json.loads(Path(hf_hub_download(base, "model_index.json")).read_text(encoding="utf-8"))
