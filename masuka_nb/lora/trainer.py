"""The training loop behind `masuka_nb.lora.train`: caches, model, steps, checkpoints, samples, export.

One `_Trainer` is one attempt at a run (a first start or a resume). Every step's noise and timesteps
come from a generator seeded by (seed, step) and each epoch's data order from (seed, epoch), so a run
resumed from a checkpoint (LoRA, optimizer, scheduler, RNG states, step, data order) ends exactly
where an uninterrupted one would. Only rank 0 writes checkpoints, samples and the export.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

from masuka_nb.errors import (
    CancelledError,
    InvalidRequestError,
    MasukaError,
    StorageError,
    TrainingFailedError,
)
from masuka_nb.host import device_host, torch_device
from masuka_nb.hub import download_plan, locate_model
from masuka_nb.log import get_logger
from masuka_nb.lora.checkpoints import Damaged, newest_intact, write_checkpoint
from masuka_nb.lora.export import PEFT_FILE, export_lora
from masuka_nb.lora.plan import TARGET_PRESETS
from masuka_nb.lora.runs import FLOW_SHIFT, TrainingRun, bucket_for, loss_curve_png, make_buckets, record_run
from masuka_nb.models.registry import get_model
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter, stop_between_blocks
from masuka_nb.quiet import quiet_third_party
from masuka_nb.storage import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_safetensors,
    ensure_dir,
    quarantine,
    read_json_guarded,
)

log = get_logger(__name__)


class _Trainer:
    """One attempt at a run: cache, load, train from the latest checkpoint, export."""

    def __init__(self, run: TrainingRun, dataset) -> None:
        self.run_ = run
        self.cfg = run.config
        self.dataset = dataset
        self.vae_encodes = 0
        self.text_encodes = 0

    # ---- 1. where the weights come from ----
    def _source(self) -> tuple[str, str | None, Any]:
        """(local folder for vae/text encoders/scheduler, folder for the transformer, spec). Real models' files
        come through `masuka_nb.hub` (session copy, Drive copy, else the Hub along a download plan)."""
        spec = get_model(self.cfg.base)
        if spec.tiny:
            from masuka_nb.models.tiny import ensure_tiny

            path = str(ensure_tiny(spec.id))
            self.nf4_path = self.cfg.quantized_repo if self.cfg.quantization == "nf4" else None
            return path, self._nf4_repo() or path, spec
        quantized = ("transformer", "text_encoder_2") if self.cfg.quantization == "nf4" else ()
        repo = self.cfg.quantized_repo if quantized else None
        dplan = download_plan(spec, quantized_components=quantized, quantized_repo=repo)
        base = str(locate_model(spec, dplan))
        self.nf4_path = str(locate_model(spec, dplan.extra[0])) if repo and dplan.extra else None
        return base, self._nf4_repo() or base, spec

    def _nf4_repo(self) -> str | None:
        """The local folder of the pre-quantized repo the plan names for an NF4 run; None: quantize while loading."""
        if self.cfg.quantization != "nf4":
            return None
        return getattr(self, "nf4_path", None) or None

    def _nf4_dtype(self):
        """NF4 compute dtype: fp16 on a T4 (no bf16 hardware), bf16 where the plan trains in bf16."""
        import torch

        return torch.bfloat16 if self.cfg.mixed_precision == "bf16" else torch.float16

    def _is_fill(self, spec) -> bool:
        """FLUX Fill reads, beside the noisy latents, the masked image's latents and the mask (in_channels 384)."""
        return spec.task == "fill"

    def _compute_dtype(self):
        """Inputs in the compute precision (an NF4 base stores uint8 weights, so never ask the weights)."""
        import torch

        if self._device().type != "cuda":
            return torch.float32
        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.cfg.mixed_precision, torch.float32)

    def _device(self):
        """The device the `device` setting names ("cpu" trains on the CPU even with a GPU present)."""
        import torch

        return torch.device(torch_device())

    def _hold(self, part: str, loader):
        """Load a part of the run through the device host, for one block (the run's other parts stay)."""
        return device_host().hold(("train", self.run_.name, part), loader, task="train", slot=f"train-{part}",
                                  model=self.cfg.base)

    # ---- 2. caches ----
    def _items(self) -> list[tuple[Any, str]]:
        out = []
        trig = self.cfg.trigger_word
        for it in self.dataset.kept:
            cap = it.caption.strip()
            if not cap:
                cap = trig
            elif trig.lower() not in cap.lower():
                cap = f"{trig}, {cap}"
            out.append((it, cap))
        if not out:
            raise InvalidRequestError("The dataset has no kept images.", argument="dataset", value=self.dataset.name,
                                      hint="Import images, or set keep=True on some after curation.")
        return out

    def _cache_latents(self, items, base: str, *, fill: bool = False) -> dict[str, Any]:
        """sha256 → the image's latents (and, for FLUX Fill, sha256 + ".cond" → its packed masked-image
        latents and mask), encoded once per run and resolution."""
        import diffusers
        import numpy as np
        import torch
        from PIL import Image, ImageOps
        from safetensors.torch import load_file

        fam = self._family()
        cache = self.run_.run_dir / "cache" / f"latents-{self.cfg.resolution}.safetensors"
        wanted = {it.sha256 for it, _ in items} | ({f"{it.sha256}.cond" for it, _ in items} if fill else set())
        stored = _read_cache(cache, load_file)  # damaged: quarantined and rebuilt
        if stored is not None and wanted <= set(stored):
            return {k: stored[k] for k in wanted}
        device = self._device()
        out = {}
        vae_class = getattr(diffusers, fam.vae_class if fam else "AutoencoderKL")  # FLUX.2: AutoencoderKLFlux2
        with self._hold("vae", lambda: vae_class.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32
                                                                 ).to(device).eval()) as vae:
            scale = 2 ** (len(vae.config.block_out_channels) - 1)
            buckets = make_buckets(self.cfg.resolution, scale * 2)
            for it, _ in items:
                with Image.open(self.dataset.path_of(it)) as im:
                    im = im.convert("RGB")
                    size = bucket_for(im.width, im.height, buckets)
                    im = ImageOps.fit(im, size, method=Image.Resampling.LANCZOS)
                arr = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
                x = torch.from_numpy(arr).permute(2, 0, 1)[None].to(device)
                with torch.no_grad():
                    if fam is not None:  # FLUX.2's batch-norm statistics, Z-Image's FLUX.1 shift and scale
                        out[it.sha256] = fam.encode(vae, x)[0].cpu().contiguous()
                        self.vae_encodes += 1
                        continue
                    lat = vae.encode(x).latent_dist.mode()
                    self.vae_encodes += 1
                    if fill:
                        out[f"{it.sha256}.cond"] = self._fill_cond(vae, scale, x, _fill_mask(self.cfg.seed, it.sha256,
                                                                                              x.shape[-2:]))
                out[it.sha256] = ((lat - vae.config.shift_factor) * vae.config.scaling_factor)[0].cpu().contiguous()
            del vae
        atomic_write_safetensors(cache, out)
        return out

    def _fill_cond(self, vae, scale: int, x, mask) -> Any:
        """What FLUX Fill's transformer reads beside the latents, made by FluxFillPipeline's own
        `prepare_mask_latents`: the masked image's latents (packed) and the mask folded to the latent grid."""
        import types

        import torch
        from diffusers import FluxFillPipeline

        mask = mask.to(x.device, x.dtype)[None, None]
        masked = vae.encode(x * (1 - mask)).latent_dist.mode()  # latents in: the pipeline skips its own encode
        self.vae_encodes += 1
        shim = types.SimpleNamespace(vae=vae, vae_scale_factor=scale, _pack_latents=FluxFillPipeline._pack_latents)
        packed_mask, packed = FluxFillPipeline.prepare_mask_latents(
            shim, mask, masked, 1, masked.shape[1], 1, x.shape[-2], x.shape[-1], torch.float32, x.device, None)
        return torch.cat((packed, packed_mask), dim=-1)[0].cpu().contiguous()

    def _cache_text(self, prompts: list[str], base: str, max_len: int) -> dict[str, dict[str, Any]]:
        import torch
        from diffusers import FluxPipeline
        from safetensors.torch import load_file

        cache = self.run_.run_dir / "cache" / "text.safetensors"
        keys = {p: f"p{i}" for i, p in enumerate(sorted(set(prompts)))}
        index_path = cache.with_suffix(".json")
        stored = _read_cache(cache, load_file) if read_json_guarded(index_path, expect=dict) == keys else None
        parts = ("embeds",) if self._family() is not None else ("embeds", "pooled")  # FLUX.2 / Z-Image: no pooled
        if stored is not None and all(f"{k}.{part}" in stored for k in keys.values() for part in parts):
            return {p: {part: stored[f"{k}.{part}"] for part in parts} for p, k in keys.items()}
        device = self._device()
        dtype = torch.float16 if device.type == "cuda" and self.cfg.mixed_precision == "fp16" else (
            torch.bfloat16 if device.type == "cuda" else torch.float32)
        if self._family() is not None:
            return self._cache_family_text(keys, base, max_len, device, dtype, cache, index_path)
        extra = {}
        nf4_repo = self._nf4_repo()
        if nf4_repo:  # T4 RAM: the pre-quantized T5 (≈5.9 GiB in fp16) instead of 10.7 GiB of fp16 weights
            from transformers import T5EncoderModel

            extra["text_encoder_2"] = T5EncoderModel.from_pretrained(nf4_repo, subfolder="text_encoder_2",
                                                                     dtype=dtype)
        elif self.cfg.quantization == "nf4" and device.type == "cuda":
            # No pre-quantized repo (schnell, Kontext, Fill): quantized as it loads, straight onto the GPU, so
            # the fp16 T5 never sits in a T4's 12.7 GB of RAM.
            from transformers import BitsAndBytesConfig, T5EncoderModel

            extra["text_encoder_2"] = T5EncoderModel.from_pretrained(
                base, subfolder="text_encoder_2", dtype=dtype, quantization_config=BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype))
        def load():
            pipe = FluxPipeline.from_pretrained(base, transformer=None, vae=None, torch_dtype=dtype, **extra)
            for encoder in (pipe.text_encoder, pipe.text_encoder_2):
                if not getattr(encoder, "is_quantized", False):
                    encoder.to(device)
            return pipe

        flat = {}
        # Text encoders (T5 ≈ 9.5 GB) leave before the transformer arrives: the host drops them after the block.
        with self._hold("text", load) as pipe:
            extra.clear()
            for prompt, key in keys.items():
                with torch.no_grad():
                    embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=device,
                                                           num_images_per_prompt=1, max_sequence_length=max_len)
                self.text_encodes += 1
                flat[key + ".embeds"] = embeds[0].float().cpu().contiguous()
                flat[key + ".pooled"] = pooled[0].float().cpu().contiguous()
            del pipe
        atomic_write_safetensors(cache, flat)
        atomic_write_json(index_path, keys)
        return {p: {"embeds": flat[k + ".embeds"], "pooled": flat[k + ".pooled"]} for p, k in keys.items()}

    def _family(self):
        """FLUX.2 [klein] and Z-Image's pieces of the loop (None: FLUX.1, written out in this module)."""
        from masuka_nb.lora.families import family_of
        from masuka_nb.models.registry import get_model

        return family_of(get_model(self.cfg.base))

    def _cache_family_text(self, keys, base, max_len, device, dtype, cache, index_path) -> dict[str, dict[str, Any]]:
        """One embedding per prompt (no pooled one), from the family pipeline's own encode_prompt; the text
        encoder leaves before the transformer arrives."""
        import torch

        fam = self._family()

        def load():
            pipe = fam.text_pipeline(base, dtype)
            pipe.text_encoder.to(device)
            return pipe

        flat = {}
        with self._hold("text", load) as pipe:  # the host drops the text encoder after the block
            for prompt, key in keys.items():
                with torch.no_grad():
                    flat[key + ".embeds"] = fam.encode_text(pipe, prompt, device, max_len).float().cpu().contiguous()
                self.text_encodes += 1
            del pipe
        atomic_write_safetensors(cache, flat)
        atomic_write_json(index_path, keys)
        return {p: {"embeds": flat[k + ".embeds"]} for p, k in keys.items()}

    # ---- 3. model ----
    def _transformer(self, repo: str, subfolder: str = "transformer"):
        import diffusers
        import torch

        fam = self._family()
        FluxTransformer2DModel = getattr(diffusers, fam.transformer_class if fam else "FluxTransformer2DModel")

        device = self._device()
        if self.cfg.quantization == "nf4":
            if device.type != "cuda":
                raise TrainingFailedError("NF4 (QLoRA) training needs a CUDA GPU.", argument="quantization",
                                          value="nf4", hint="Use a GPU runtime, or train in the cloud.")
            kwargs: dict[str, Any] = {"torch_dtype": self._nf4_dtype()}
            if not self._nf4_repo():
                # No pre-quantized weights named: quantize while loading (the fp16 transformer is 23.8 GB).
                from diffusers import BitsAndBytesConfig

                kwargs["quantization_config"] = BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=self._nf4_dtype())
            model = FluxTransformer2DModel.from_pretrained(repo, subfolder=subfolder, **kwargs)
            if not getattr(model, "is_quantized", False):
                raise TrainingFailedError(f"The NF4 plan loaded an unquantized transformer from {repo}.",
                                          argument="quantization", value="nf4",
                                          hint="Its config carries no quantization_config: name a pre-quantized "
                                               "repo, or leave `quantized_repo` None to quantize while loading.")
            from peft import prepare_model_for_kbit_training

            # peft's own checkpointing switch is the transformers API; diffusers models use
            # enable_gradient_checkpointing() (below), so peft only casts norms to fp32 here.
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        else:
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.mixed_precision, torch.float32) \
                if device.type == "cuda" else torch.float32
            model = FluxTransformer2DModel.from_pretrained(repo, subfolder=subfolder, torch_dtype=dtype)
        model.requires_grad_(False)
        if self.cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        if getattr(model, "is_quantized", False):
            return model  # bitsandbytes placed it on the GPU when loading
        return model.to(device)

    def _add_lora(self, model) -> list:
        import torch
        from peft import LoraConfig

        targets = TARGET_PRESETS[self.cfg.target_modules]
        target: Any = targets[0] if len(targets) == 1 and "\\" in targets[0] else list(targets)
        fam = self._family()
        if fam is not None:
            target = fam.lora_targets(self.cfg.target_modules)
        torch.manual_seed(self.cfg.seed)  # LoRA init is part of the run's recipe
        model.add_adapter(LoraConfig(r=self.cfg.rank, lora_alpha=self.cfg.lora_alpha, init_lora_weights="gaussian",
                                     target_modules=target, lora_dropout=0.0))
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # LoRA weights train in fp32 even over an fp16/bf16 base (as diffusers' script does)
            p.data = p.data.float()
        return params

    def _optimizer(self, params):
        import torch

        if self.cfg.optimizer == "adamw8bit":
            try:
                import bitsandbytes as bnb
            except ImportError as exc:
                from masuka_nb.errors import DependencyMissingError

                raise DependencyMissingError("8-bit AdamW needs bitsandbytes.", argument="optimizer",
                                             value="adamw8bit", hint="pip install 'masuka-nb[train]'") from exc
            return bnb.optim.AdamW8bit(params, lr=self.cfg.learning_rate, weight_decay=1e-4)
        return torch.optim.AdamW(params, lr=self.cfg.learning_rate, weight_decay=1e-4, eps=1e-8)

    # ---- data order ----
    def _epoch_batches(self, epoch: int, shapes: list[tuple[int, ...]]) -> list[list[int]]:
        """Batches of indices with one bucket (latent shape) each, shuffled by (seed, epoch)."""
        rng = random.Random(self.cfg.seed * 1_000_003 + epoch)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, s in enumerate(shapes):
            by_shape.setdefault(s, []).append(i)
        batches = []
        for shape in sorted(by_shape):
            idx = by_shape[shape][:]
            rng.shuffle(idx)
            batches += [idx[k:k + self.cfg.batch_size] for k in range(0, len(idx), self.cfg.batch_size)]
        rng.shuffle(batches)
        return batches

    # ---- 4. checkpoints (format and safety: masuka_nb.lora.checkpoints) ----
    def _save_checkpoint(self, step: int, model, optimizer, scheduler, accel, data_order, losses) -> Path:
        import numpy as np
        import torch
        from peft.utils import get_peft_model_state_dict

        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                               "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        scaler = accel.scaler.state_dict() if accel.scaler is not None else None  # fp16 on a T4: the loss scale
        final = write_checkpoint(self.run_.run_dir / "checkpoints", step,
                                 lora=get_peft_model_state_dict(accel.unwrap_model(model)),
                                 optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), scaler=scaler,
                                 rng=rng, state={"data_order": data_order, "losses": losses,
                                                 "fingerprint": self.cfg.fingerprint()})
        for old in self.run_.checkpoints[:-max(1, self.cfg.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        log.info("train.checkpoint", run=self.run_.name, step=step)
        return final

    def _load_checkpoint(self, model, optimizer, scheduler, accel) -> dict[str, Any] | None:
        """Resume from the newest intact checkpoint (damaged newer ones are quarantined); None: none is."""
        import numpy as np
        import torch
        from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

        unwrapped = accel.unwrap_model(model)
        expected = {k: tuple(v.shape) for k, v in get_peft_model_state_dict(unwrapped).items()}
        groups = [len(g["params"]) for g in optimizer.param_groups]

        def fits(data) -> None:  # checked before anything is applied: a bad one leaves the model untouched
            got = {k: tuple(v.shape) for k, v in data.lora.items()}
            if got != expected:
                raise Damaged("its LoRA weights do not fit this run's model")
            saved = data.optimizer.get("param_groups")
            if not isinstance(saved, list) or [len(g.get("params", ())) for g in saved] != groups:
                raise Damaged("its optimizer state does not fit this run's parameters")
            if data.state.get("fingerprint") not in (None, self.cfg.fingerprint()):
                raise Damaged("it belongs to a run with other settings")

        data = newest_intact(self.run_.checkpoints, fits)
        if data is None:  # every one was damaged (and is now in quarantine/): the run starts over, said once
            log.warning("train.no_intact_checkpoint", run=self.run_.name,
                        effect="no intact checkpoint is left; training starts again from step 0")
            self.run_.stats["restarted_after_damage"] = True
            return None
        try:
            set_peft_model_state_dict(unwrapped, data.lora)
            optimizer.load_state_dict(data.optimizer)
            scheduler.load_state_dict(data.scheduler)
            if accel.scaler is not None and data.scaler:
                accel.scaler.load_state_dict(data.scaler)
            rng = data.rng
            torch.set_rng_state(rng["torch"])
            np.random.set_state(rng["numpy"])
            random.setstate(_as_tuples(rng["python"]))
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainingFailedError(f"The checkpoint {data.path.name} of {self.run_.name} could not be applied: "
                                      f"{type(exc).__name__}: {exc}", argument="name", value=self.run_.name,
                                      hint="Move that checkpoint folder away and resume again.") from exc
        return data.state

    # ---- samples and loss curve ----
    def _samples(self, step, model, accel, base, sample_text, spec=None) -> list[Path]:
        """Fixed prompts × fixed seeds through the training transformer; decoded by the VAE in fp32
        (FLUX's VAE is unsafe in fp16, and it is only 0.17 GB). A Fill base paints the whole frame (a full
        mask over a grey image), the way a blank canvas is filled."""

        import diffusers
        import torch

        device = self._device()
        fam = self._family()
        vae_class = getattr(diffusers, fam.vae_class if fam else "AutoencoderKL")
        with self._hold("sample-vae", lambda: vae_class.from_pretrained(
                base, subfolder="vae", torch_dtype=torch.float32).to(device).eval()) as vae:
            if fam is not None:
                return self._family_samples(step, model, accel, base, sample_text, vae)
            return self._render_samples(step, model, accel, base, sample_text, spec, vae, device)

    def _render_samples(self, step, model, accel, base, sample_text, spec, vae, device) -> list[Path]:
        import io

        import torch
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxPipeline
        from diffusers.image_processor import VaeImageProcessor

        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        fill = spec is not None and self._is_fill(spec)
        dtype = self._compute_dtype()
        size = self.cfg.resolution
        extra: dict[str, Any] = {}
        pipe_vae = vae
        if fill:
            from PIL import Image

            # FluxFillPipeline encodes the (grey, fully masked) image in the prompt's dtype: give it a VAE in
            # that dtype for the encode; the decode below stays in fp32.
            if dtype != torch.float32:
                pipe_vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=dtype).to(device).eval()
            extra = dict(image=Image.new("RGB", (size, size), (127, 127, 127)),
                         mask_image=Image.new("L", (size, size), 255))
        parts = dict(scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(base, subfolder="scheduler"),
                     vae=pipe_vae, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                     transformer=accel.unwrap_model(model))
        pipe = (FluxFillPipeline if fill else FluxPipeline)(**parts)
        pipe.set_progress_bar_config(disable=True)
        processor = VaeImageProcessor(vae_scale_factor=scale * 2)
        out = []
        folder = ensure_dir(self.run_.run_dir / "samples")
        c = vae.config.latent_channels
        for pi, prompt in enumerate(self.cfg.sample_prompts):
            emb = sample_text[prompt]
            for seed in self.cfg.sample_seeds:
                gen = torch.Generator("cpu").manual_seed(seed)
                if fill:  # the starting noise, drawn from the seed (Fill otherwise noises the encoded image)
                    h = w = 2 * (size // (scale * 2))
                    noise = torch.randn(1, c, h, w, generator=gen)
                    extra["latents"] = FluxPipeline._pack_latents(noise, 1, c, h, w).to(device, dtype)
                with torch.no_grad():
                    packed = pipe(prompt_embeds=emb["embeds"][None].to(device, dtype),
                                  pooled_prompt_embeds=emb["pooled"][None].to(device, dtype),
                                  height=size, width=size, num_inference_steps=self.cfg.sample_steps,
                                  guidance_scale=spec.default_guidance if fill else 3.5, generator=gen,
                                  output_type="latent", **extra).images
                    lat = FluxPipeline._unpack_latents(packed, size, size, scale).float()
                    lat = lat / vae.config.scaling_factor + vae.config.shift_factor
                    image = processor.postprocess(vae.decode(lat, return_dict=False)[0], output_type="pil")[0]
                path = folder / f"step-{step:07d}-p{pi}-s{seed}.png"
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                atomic_write_bytes(path, buf.getvalue())
                out.append(path)
        del pipe, vae, pipe_vae
        return out

    def _family_samples(self, step, model, accel, base, sample_text, vae) -> list[Path]:
        """FLUX.2 [klein] / Z-Image samples: the family's own pipeline around the training transformer, its VAE
        in fp32 (decode only), on the cached embeddings; fixed prompts × fixed seeds."""
        import io

        import torch

        fam, device, dtype, size = self._family(), self._device(), self._compute_dtype(), self.cfg.resolution
        pipe = fam.sample_pipeline(base, accel.unwrap_model(model), vae)
        pipe.set_progress_bar_config(disable=True)
        folder = ensure_dir(self.run_.run_dir / "samples")
        out = []
        for pi, prompt in enumerate(self.cfg.sample_prompts):
            for seed in self.cfg.sample_seeds:
                with torch.no_grad():
                    image = pipe(**fam.sample_call(sample_text[prompt]["embeds"], device, dtype), height=size,
                                 width=size, num_inference_steps=self.cfg.sample_steps,
                                 generator=torch.Generator("cpu").manual_seed(seed), output_type="pil").images[0]
                path = folder / f"step-{step:07d}-p{pi}-s{seed}.png"
                buf = io.BytesIO()
                image.save(buf, format="PNG")
                atomic_write_bytes(path, buf.getvalue())
                out.append(path)
        del pipe
        return out

    def _write_loss(self, history: list[dict[str, float]], *, plot: bool = True) -> None:
        atomic_write_json(self.run_.loss_data_path, {"history": history})
        if plot:
            atomic_write_bytes(self.run_.loss_curve_path, loss_curve_png([h["loss"] for h in history]))

    # ---- the run ----
    def run(self, *, progress: ProgressCallback | bool | None, cancel: CancelToken | None) -> TrainingRun:
        try:
            return self._run(progress, cancel)
        except (CancelledError, KeyboardInterrupt) as exc:
            self._settle("cancelled")
            if isinstance(exc, CancelledError):
                exc.hint = f"The checkpoint at step {self.run_.step} is kept: `run.resume()` continues from it."
                exc.details["run"] = self.run_.name
                raise
            raise CancelledError(f"Training {self.run_.name} was interrupted at step {self.run_.step}.",
                                 argument="cancel", hint="`TrainingRun.load(name).resume()` continues from the "
                                 "last checkpoint.", run=self.run_.name) from exc
        except StorageError as exc:  # a full or read-only disk: say what is kept, and where
            self._settle("failed")
            ckpt = self.run_.latest_checkpoint
            saved = (f"The checkpoint at step {ckpt.name.removeprefix('step-').lstrip('0') or '0'} is kept in {ckpt}; "
                     "free some space and `TrainingRun.load(name).resume()` continues from it." if ckpt else
                     f"No checkpoint of {self.run_.name} was written yet; free some space and train again.")
            raise type(exc)(f"{exc.message} {saved}", argument=exc.argument, value=exc.value, hint=exc.hint,
                            saved=saved, run=self.run_.name, errno=exc.details.get("errno")) from exc
        except MasukaError:
            self._settle("failed")
            raise
        except Exception as exc:
            self._settle("failed")
            msg = str(exc)
            if "out of memory" in msg.lower():
                from masuka_nb.errors import OutOfMemoryError

                raise OutOfMemoryError(f"Training ran out of GPU memory: {msg[:200]}.", argument="resolution",
                                       value=self.cfg.resolution, hint="Lower `resolution` or `rank`, then "
                                       "resume; or train in the cloud.") from exc
            if isinstance(exc, OSError) and exc.errno is not None:
                from masuka_nb.storage import storage_error

                raise storage_error(exc, path=exc.filename or self.run_.run_dir, what="the training state",
                                    saved=f"Checkpoints so far are kept in {self.run_.run_dir / 'checkpoints'}.") from exc
            raise TrainingFailedError(f"Training {self.run_.name} failed at step {self.run_.step}: "
                                      f"{type(exc).__name__}: {msg[:300]}", argument="dataset",
                                      hint="The last checkpoint is kept; fix the cause and `resume()`.") from exc

    def _settle(self, status: str) -> None:
        """Record how the run ended; a disk that refuses even that must not hide the error being raised."""
        self.run_.status = status
        try:
            self.run_.save()
            if status == "cancelled":
                record_run(self.run_, "cancelled")
        except MasukaError as exc:
            log.warning("train.status_not_saved", run=self.run_.name, status=status, error=str(exc))

    def _run(self, progress, cancel) -> TrainingRun:
        from accelerate import Accelerator

        cfg, run = self.cfg, self.run_
        cuda = self._device().type == "cuda"
        accel = Accelerator(mixed_precision=cfg.mixed_precision if cuda else "no", cpu=self._device().type == "cpu")
        items = self._items()
        t0 = time.perf_counter()
        with accel.main_process_first(), quiet_third_party():  # rank 0 builds/downloads and caches; the others then read
            base, transformer_repo, spec = self._source()
            fill = self._is_fill(spec)
            latents = self._cache_latents(items, base, fill=fill)
            prompts = [cap for _, cap in items] + list(cfg.sample_prompts)
            text = self._cache_text(prompts, base, spec.max_sequence_length)
        run.stats.update(vae_encodes=run.stats.get("vae_encodes", 0) + self.vae_encodes,
                         text_encodes=run.stats.get("text_encodes", 0) + self.text_encodes,
                         cache_s=round(time.perf_counter() - t0, 3), images=len(items))
        lat_list = [latents[it.sha256] for it, _ in items]
        self.conds = [latents[f"{it.sha256}.cond"] for it, _ in items] if fill else None
        emb_list = [text[cap] for _, cap in items]
        shapes = [tuple(t.shape) for t in lat_list]

        held = self._hold("transformer", lambda: self._transformer(transformer_repo))
        with quiet_third_party():
            model = held.__enter__()  # the host holds it (and counts it) until the run ends, error or not
        try:
            return self._train(run, cfg, accel, items, model, base, spec, lat_list, emb_list, shapes, text,
                               progress, cancel)
        finally:
            model = None
            held.__exit__(None, None, None)

    def _train(self, run, cfg, accel, items, model, base, spec, lat_list, emb_list, shapes, text, progress,
               cancel) -> TrainingRun:
        from diffusers.optimization import get_scheduler

        params = self._add_lora(model)
        optimizer = self._optimizer(params)
        scheduler = get_scheduler("constant_with_warmup", optimizer=optimizer, num_warmup_steps=cfg.warmup_steps,
                                  num_training_steps=cfg.steps)
        if accel.num_processes > 1 or accel.mixed_precision == "fp16":
            model, optimizer, scheduler = accel.prepare(model, optimizer, scheduler)
        else:
            # One process and no grad scaler: accelerate's optimizer/scheduler wrappers would only add
            # per-step bookkeeping, so only the model goes through prepare (device placement).
            model = accel.prepare(model)
        history: list[dict[str, float]] = []
        start = 0
        state = self._load_checkpoint(model, optimizer, scheduler, accel) if run.checkpoints else None
        if state is not None:
            start = int(state["step"])
            history = state.get("losses", [])
            run.stats["resumed_from"] = start
        run.step, run.status = start, "running"
        run.save()

        device = accel.device
        dtype = self._compute_dtype()
        guidance_embeds = bool(getattr(accel.unwrap_model(model).config, "guidance_embeds", False))
        vae_scale = 2 ** (len(_vae_config(base)["block_out_channels"]) - 1)
        world, rank_ = accel.num_processes, accel.process_index
        reporter = ProgressReporter("train", cfg.steps - start, progress=progress, cancel=cancel)
        eval_args = (lat_list, emb_list, model, device, dtype, guidance_embeds, vae_scale, accel)
        if "eval_loss_start" not in run.stats and start == 0 and cfg.eval_loss:
            run.stats["eval_loss_start"] = self._eval_loss(*eval_args)
        model.train()
        loop_start = time.perf_counter()
        n_batches_cache: dict[int, list[list[int]]] = {}
        n = len(self._epoch_batches(0, shapes))  # batches per epoch depend on the buckets only
        step = start
        try:
            # Stop acts inside a step too, between the model's blocks (a QLoRA step on a T4 takes seconds); a
            # step stopped half-way leaves nothing behind (no gradient is kept before backward ends, and the
            # optimizer has not stepped), so the checkpoint below is the last finished step.
            with stop_between_blocks([model], cancel, f"training {run.name}"):
                for step in range(start, cfg.steps):
                    reporter.check(f"training {run.name}")
                    slot = step * world + rank_
                    epoch, pos = divmod(slot, n)
                    if epoch not in n_batches_cache:
                        n_batches_cache.clear()
                        n_batches_cache[epoch] = self._epoch_batches(epoch, shapes)
                    batch = n_batches_cache[epoch][pos]
                    loss = self._step(slot, batch, lat_list, emb_list, model, device, dtype, guidance_embeds, vae_scale,
                                      accel)
                    if cfg.max_grad_norm:
                        _clip_grad_norm(params, cfg.max_grad_norm, accel)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    done = step + 1
                    history.append({"step": done, "loss": loss, "lr": scheduler.get_last_lr()[0]})
                    run.step = done
                    reporter.update(done - start, message=f"step {done}/{cfg.steps} loss {loss:.4f}", loss=loss,
                                    global_step=done)
                    if accel.is_main_process:
                        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                            # The checkpoint alone carries step and losses: `TrainingRun.load` reads them from
                            # there, so run.json and loss.json need no rewrite (and no fsync) here.
                            self._save_checkpoint(done, model, optimizer, scheduler, accel, n_batches_cache[epoch], history)
                        if cfg.sample_every and done % cfg.sample_every == 0:
                            run.samples += self._samples(done, model, accel, base, text, spec)
        except (CancelledError, KeyboardInterrupt):
            optimizer.zero_grad(set_to_none=True)  # a step stopped inside backward leaves part of its gradients
            if accel.is_main_process and run.step > 0 and (run.latest_checkpoint is None or
                                                           not run.latest_checkpoint.name.endswith(f"{run.step:07d}")):
                epoch_now = max(n_batches_cache) if n_batches_cache else 0
                self._save_checkpoint(run.step, model, optimizer, scheduler, accel,
                                      n_batches_cache.get(epoch_now, []), history)
                self._write_loss(history)
            raise
        loop_s = time.perf_counter() - loop_start
        run.stats.update(processes=world, train_s=round(loop_s, 3), steps_per_s=round((cfg.steps - start) / loop_s, 3) if loop_s else None)
        if cfg.eval_loss:
            run.stats["eval_loss_end"] = self._eval_loss(*eval_args)
        accel.wait_for_everyone()
        if accel.is_main_process:
            self._write_loss(history)
            run.losses = [h["loss"] for h in history]
            self._export(model, accel, spec)
            if cfg.sample_every and cfg.steps % cfg.sample_every:
                run.samples += self._samples(cfg.steps, model, accel, base, text, spec)
            run.status = "finished"
            record_run(run, "ok")  # first: the run's file then keeps its history id
            run.save()
        accel.wait_for_everyone()
        reporter.done()
        del model, optimizer
        if not accel.is_main_process:  # the other ranks report what the main one exported
            return TrainingRun.load(run.run_dir)
        return run

    def _eval_loss(self, lat_list, emb_list, model, device, dtype, guidance_embeds, vae_scale, accel) -> float:
        """Loss on fixed noise and timesteps for every training image: unlike the per-step loss, it
        is comparable between two moments of a run (it falls when the LoRA learns the set)."""
        import torch
        from diffusers import FluxPipeline

        gen = torch.Generator("cpu").manual_seed(self.cfg.seed + 424242)
        total, count = 0.0, 0
        fam = self._family()
        with torch.no_grad():
            for i, (lat, emb) in enumerate(zip(lat_list, emb_list)):
                for sigma_value in (0.25, 0.5, 0.75):
                    x = lat[None].to(device, torch.float32)
                    b, c, h, w = x.shape
                    noise = torch.randn(x.shape, generator=gen).to(device)
                    sigma = torch.full((1,), sigma_value, device=device)
                    noisy = (1 - sigma_value) * x + sigma_value * noise
                    if fam is not None:
                        with accel.autocast():
                            pred = fam.flow(model, noisy, sigma, [emb["embeds"]], dtype)
                        total += float(torch.nn.functional.mse_loss(pred.float(), (noise - x).float()))
                        count += 1
                        continue
                    packed = self._with_cond(FluxPipeline._pack_latents(noisy, b, c, h, w).to(dtype), [i], device)
                    img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype)
                    txt_ids = torch.zeros(emb["embeds"].shape[0], 3, device=device, dtype=dtype)
                    guidance = torch.full((1,), self.cfg.guidance, device=device) if guidance_embeds else None
                    with accel.autocast():
                        pred = model(hidden_states=packed, timestep=sigma.to(dtype), guidance=guidance,
                                     pooled_projections=emb["pooled"][None].to(device, dtype),
                                     encoder_hidden_states=emb["embeds"][None].to(device, dtype),
                                     txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
                    pred = FluxPipeline._unpack_latents(pred, h * vae_scale, w * vae_scale, vae_scale)
                    total += float(torch.nn.functional.mse_loss(pred.float(), (noise - x).float()))
                    count += 1
        return total / max(count, 1)

    def _step(self, slot, batch, lat_list, emb_list, model, device, dtype, guidance_embeds, vae_scale, accel) -> float:
        """One optimisation step's forward and backward. `slot` = step × processes + rank: each rank
        draws its own noise, and a one-process run is reproducible from (seed, step) alone."""
        import torch
        from diffusers import FluxPipeline

        cfg = self.cfg
        fam = self._family()
        lat = torch.stack([lat_list[i] for i in batch]).to(device, torch.float32)
        if fam is not None:
            gen = torch.Generator("cpu").manual_seed(cfg.seed * 1_000_003 + slot)
            noise = torch.randn(lat.shape, generator=gen).to(device)
            u = torch.rand(lat.shape[0], generator=gen).to(device)
            sigma = FLOW_SHIFT * u / (1 + (FLOW_SHIFT - 1) * u)
            s = sigma.view(-1, 1, 1, 1)
            with accel.autocast():
                pred = fam.flow(model, (1 - s) * lat + s * noise, sigma, [emb_list[i]["embeds"] for i in batch], dtype)
            loss = torch.nn.functional.mse_loss(pred.float(), (noise - lat).float())
            accel.backward(loss)
            return float(loss.detach())
        embeds = torch.stack([emb_list[i]["embeds"] for i in batch]).to(device, dtype)
        pooled = torch.stack([emb_list[i]["pooled"] for i in batch]).to(device, dtype)
        b, c, h, w = lat.shape
        gen = torch.Generator("cpu").manual_seed(cfg.seed * 1_000_003 + slot)
        noise = torch.randn(lat.shape, generator=gen).to(device)
        u = torch.rand(b, generator=gen).to(device)
        sigma = FLOW_SHIFT * u / (1 + (FLOW_SHIFT - 1) * u)
        s = sigma.view(b, 1, 1, 1)
        noisy = (1 - s) * lat + s * noise
        packed = self._with_cond(FluxPipeline._pack_latents(noisy, b, c, h, w).to(dtype), batch, device)
        img_ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype)
        txt_ids = torch.zeros(embeds.shape[1], 3, device=device, dtype=dtype)
        guidance = torch.full((b,), cfg.guidance, device=device, dtype=torch.float32) if guidance_embeds else None
        with accel.autocast():
            pred = model(hidden_states=packed, timestep=sigma.to(dtype), guidance=guidance, pooled_projections=pooled,
                         encoder_hidden_states=embeds, txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
        pred = FluxPipeline._unpack_latents(pred, h * vae_scale, w * vae_scale, vae_scale)
        loss = torch.nn.functional.mse_loss(pred.float(), (noise - lat).float())
        accel.backward(loss)
        return float(loss.detach())

    def _with_cond(self, packed, batch: list[int], device):
        """FLUX Fill: the packed latents followed by each image's masked-image latents and mask (channels
        64 + 64 + 256 at full size), as FluxFillPipeline concatenates them; other bases: unchanged."""
        import torch

        if not getattr(self, "conds", None):
            return packed
        cond = torch.stack([self.conds[i] for i in batch]).to(device, packed.dtype)
        return torch.cat((packed, cond), dim=-1)

    # ---- 5. export ----
    def _export(self, model, accel, spec) -> None:
        from peft.utils import get_peft_model_state_dict

        cfg, run = self.cfg, self.run_
        sd = get_peft_model_state_dict(accel.unwrap_model(model))
        scale = cfg.lora_alpha / cfg.rank
        sd = {k: (v.float() * scale if ".lora_B." in k else v.float()) for k, v in sd.items()}
        meta = {"base_model": spec.id, "base_repo": spec.repo, "trigger_word": cfg.trigger_word, "steps": cfg.steps,
                "rank": cfg.rank, "learning_rate": cfg.learning_rate, "resolution": cfg.resolution,
                "dataset_hash": run.stats.get("dataset_hash") or self.dataset.content_hash(),
                "images": run.stats.get("images"), "seed": cfg.seed, "run": run.name,
                "target_modules": cfg.target_modules, "final_loss": run.losses[-1] if run.losses else None}
        kohya = bool(run.stats.get("export_kohya", True))  # train(export_kohya=False): the PEFT file only
        folder = export_lora(sd, name=run.name, meta=meta, kohya=kohya)
        run.lora_path = folder / PEFT_FILE
        # the ComfyUI/A1111-loadable file: kohya keys (FLUX.1, FLUX.2), or Z-Image's diffusion_model.* keys
        kohya = next((f for f in (folder / f"{run.name}.kohya.safetensors", folder / f"{run.name}.comfyui.safetensors")
                      if f.is_file()), None)
        run.kohya_path = kohya
        with contextlib.suppress(ImportError):
            from masuka_nb.image.lora import validate_lora  # the image engine's own check, once it exists

            validate_lora(run.lora_path, model=spec.id)


def _fill_mask(seed: int, sha256: str, size) -> Any:
    """The mask FLUX Fill trains one image with: a rectangle covering 40–100 % of each side, drawn from
    (run seed, image), so a resumed run sees the same masks. 1 = repaint, as in FluxFillPipeline."""
    import torch

    h, w = int(size[0]), int(size[1])
    rng = random.Random(f"{seed}:{sha256}")
    mh, mw = max(1, round(h * rng.uniform(0.4, 1.0))), max(1, round(w * rng.uniform(0.4, 1.0)))
    top, left = rng.randint(0, h - mh), rng.randint(0, w - mw)
    mask = torch.zeros(h, w)
    mask[top:top + mh, left:left + mw] = 1.0
    return mask


def _clip_grad_norm(params: list, max_norm: float, accel) -> None:
    """Clip the LoRA gradients' total norm to `max_norm` with one fused pass (foreach ops)."""
    import torch

    if accel.scaler is not None:  # fp16: gradients must be unscaled first, which accelerate does
        accel.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, coef)


def _read_cache(path: Path, load_file) -> dict[str, Any] | None:
    """A latent or text-embedding cache, or None (absent, or damaged: quarantined and rebuilt)."""
    from safetensors import SafetensorError

    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        quarantine(path, reason=f"a damaged cache ({exc}); it is rebuilt")
        return None


def _as_tuples(state: Any) -> Any:
    """Python's RNG state is nested tuples; one read back from JSON may be lists."""
    return tuple(_as_tuples(v) for v in state) if isinstance(state, (list, tuple)) else state


def _vae_config(base: str) -> dict[str, Any]:
    path = Path(base) / "vae" / "config.json"
    if path.is_file():
        return json.loads(path.read_text())
    from diffusers import AutoencoderKL

    return dict(AutoencoderKL.load_config(base, subfolder="vae"))


