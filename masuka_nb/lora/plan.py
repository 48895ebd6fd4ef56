"""Training plans: what a LoRA run will use on this GPU, decided before anything is loaded.

`plan_training` fills what the user left out (steps from the dataset size, rank and resolution from
the GPU), picks the recipe (T4: NF4 base + 8-bit AdamW + fp16, the QLoRA recipe; bf16 GPUs: bf16),
estimates peak VRAM, and raises PLAN_DOES_NOT_FIT with the nearest plan that fits (smaller rank or
resolution, or cloud training) rather than let CUDA crash the runtime half-way.

Memory model (../shared/reference/memory.md): base weights + activations per megapixel (with
gradient checkpointing, text embeddings and latents cached) + LoRA parameters, gradients and
optimizer state + CUDA context. Calibrated on the published points: QLoRA rank 4 at 512×768 ≈ 9 GB,
plain bf16 LoRA on the same setup ≈ 26 GB.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from masuka_nb.errors import InvalidRequestError, PlanDoesNotFitError
from masuka_nb.host import device_host
from masuka_nb.models.registry import get_model
from masuka_nb.runtime import profile

__all__ = ["TARGET_PRESETS", "TrainingConfig", "TrainingPlan", "estimate_vram_gb", "plan_training"]

# Which Linear layers get LoRA adapters. "attention" is the QLoRA recipe's to_q/k/v/out.0.
TARGET_PRESETS: dict[str, list[str]] = {
    "attention": ["to_q", "to_k", "to_v", "to_out.0"],
    "attention+context": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
    # Double (MMDiT) blocks only: kohya's single-block layout is defined for full-size FLUX only.
    "double-blocks": [r"transformer_blocks\.\d+\.attn\.(to_q|to_k|to_v|to_out\.0)"],
}

TRANSFORMER_GB = {"bf16": 23.8, "fp16": 23.8, "nf4": 6.7, "fp32": 47.6}
ACTIVATION_GB_PER_MP = 5.6  # with gradient checkpointing; (9 − 6.7 − 0.2) / 0.39 MP
CUDA_CONTEXT_GB = 0.6
LORA_PARAMS_PER_RANK = 1.17e6  # to_q/k/v/out.0 over FLUX's 57 blocks: 4.67 M at rank 4
# The bases local training runs on, and their LoRA size per rank on to_q/k/v/out.0: FLUX.2 [klein] has them in its 5
# double blocks (8 × 3072 per rank each), Z-Image in its 30 layers and 4 refiners (8 × 3840 per rank each).
TRAINABLE_FAMILIES = ("flux", "flux2", "zimage")
LORA_PARAMS_PER_RANK_BY_FAMILY = {"flux": LORA_PARAMS_PER_RANK, "flux2": 5 * 8 * 3072, "zimage": 34 * 8 * 3840}
FLUX_DEV_PARAMS_B = 11.9014
HEADROOM = 0.92


@dataclass
class TrainingConfig:
    """Everything a run needs, as data (saved with every checkpoint and in the LoRA's metadata)."""

    base: str = "flux1-dev"
    trigger_word: str = ""
    steps: int = 1000
    rank: int = 16
    alpha: float | None = None  # None: alpha = rank (scale 1)
    learning_rate: float = 1e-4
    resolution: int = 512
    batch_size: int = 1
    seed: int = 0
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    quantization: str | None = None  # None | "nf4"
    # NF4 plans: the pre-quantized repo (or local folder) the transformer and T5 come from; None quantizes
    # them while loading (BitsAndBytesConfig), never the 23.8 GB fp16 transformer.
    quantized_repo: str | None = None
    optimizer: str = "adamw"  # "adamw" | "adamw8bit"
    gradient_checkpointing: bool = True
    target_modules: str = "attention"
    warmup_steps: int = 0
    guidance: float = 1.0
    checkpoint_every: int = 100
    sample_every: int = 0
    sample_prompts: list[str] = field(default_factory=list)
    sample_seeds: list[int] = field(default_factory=lambda: [0])
    sample_steps: int = 20
    keep_checkpoints: int = 2
    max_grad_norm: float = 1.0
    eval_loss: bool = True  # fixed-noise loss on the training set at the start and the end

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else self.rank)

    def fingerprint(self) -> str:
        """What makes two runs the same run (for automatic resume); sampling/checkpoint cadence do not."""
        keys = ("base", "trigger_word", "steps", "rank", "alpha", "learning_rate", "resolution", "batch_size",
                "seed", "mixed_precision", "quantization", "optimizer", "target_modules", "warmup_steps", "guidance")
        data = {k: getattr(self, k) for k in keys}
        if self.quantized_repo:  # only when set, so the runs made before the field existed still resume
            data["quantized_repo"] = self.quantized_repo
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainingPlan:
    config: TrainingConfig
    gpu: str
    estimated_vram_gb: float
    available_vram_gb: float
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        c = self.config
        lines = [f"{c.base} LoRA on {self.gpu}: rank {c.rank}, {c.resolution}px, {c.steps} steps, lr {c.learning_rate:g}",
                 f"precision {c.mixed_precision}, base {c.quantization or 'full'}, optimizer {c.optimizer}",
                 f"estimated peak VRAM {self.estimated_vram_gb:.1f} GB of {self.available_vram_gb:.1f} GB"]
        return "\n".join(lines + [f"• {n}" for n in self.notes])


def estimate_vram_gb(*, quantization: str | None, precision: str, rank: int, resolution: int,
                     batch_size: int = 1, optimizer: str = "adamw", flash_attention: bool = True,
                     base: str = "flux1-dev") -> float:
    """Peak VRAM of a run. Calibrated on FLUX.1-dev; other bases scale the weights and activations by their
    transformer's parameters (registry) and the LoRA by its own layer count (an estimate: no published QLoRA peak
    for FLUX.2 [klein] or Z-Image to check it against)."""
    from masuka_nb.models.registry import get_model

    spec = get_model(base)
    ratio = 1.0 if spec.family == "flux" or spec.tiny else spec.component("transformer").params_b / FLUX_DEV_PARAMS_B
    weights = ratio * TRANSFORMER_GB["nf4" if quantization == "nf4" else ("fp32" if precision == "no" else "bf16")]
    mp = resolution * resolution / 1e6 * batch_size * ratio
    params = LORA_PARAMS_PER_RANK_BY_FAMILY.get(spec.family, LORA_PARAMS_PER_RANK) * rank
    per_param = (4 + 4 + (2 if optimizer == "adamw8bit" else 8))  # fp32 weights + grads + Adam moments
    attention = 0.0
    if not flash_attention:
        # Below compute capability 8.0 there is no flash attention: one block's score matrices
        # (24 heads × tokens², fp16, forward + backward) are materialised during recomputation.
        tokens = (resolution // 16) ** 2 + 512
        attention = 24 * tokens**2 * 2 * 2 * batch_size / 1e9
    return round(weights + ACTIVATION_GB_PER_MP * mp + params * per_param / 1e9 + CUDA_CONTEXT_GB + attention, 2)


def recommended_steps(n_images: int) -> int:
    """≈ 100 steps per image, within 500–2500 (common practice for FLUX character/style LoRAs)."""
    return int(min(2500, max(500, round(n_images * 100 / 50) * 50)))


def plan_training(
    *,
    base: str = "flux1-dev",
    n_images: int,
    trigger_word: str = "",
    steps: int | None = None,
    rank: int | None = None,
    learning_rate: float | None = None,
    resolution: int | None = None,
    gpu: str | None = None,
    **overrides: Any,
) -> TrainingPlan:
    """The plan for a run, with recommended values for whatever is None. `gpu` names a profile
    (t4, l4, a100-40, h100, cpu...); None looks at this machine."""
    spec = get_model(base)
    if spec.family not in TRAINABLE_FAMILIES or spec.is_video:
        raise InvalidRequestError(f"Local LoRA training runs on FLUX.1, FLUX.2 [klein] and Z-Image bases, not `{base}`.",
                                  argument="base", value=base,
                                  hint="Use base='flux1-dev', 'flux2-klein' or 'zimage-turbo' (or 'tiny-flux', "
                                       "'tiny-flux2-klein', 'tiny-zimage' to try the pipeline).")
    if n_images < 1:
        raise InvalidRequestError("The dataset has no kept images to train on.", argument="dataset", value=n_images,
                                  hint="Import images (and check `keep` after curation).")
    # None: this machine as the device host sees it now (the `device` setting honoured, resident models
    # subtracted; `train` claims the device first, so other tasks' models are gone by then).
    prof = profile(gpu) if gpu else device_host().planning_profile(spec.id)
    for name, value, lo, hi in (("steps", steps, 1, 100_000), ("rank", rank, 1, 256),
                                ("resolution", resolution, 16, 2048)):
        if value is not None and not lo <= value <= hi:
            raise InvalidRequestError(f"`{name}` must be between {lo} and {hi}.", argument=name, value=value)
    if learning_rate is not None and not 0 < learning_rate < 1:
        raise InvalidRequestError("`learning_rate` must be between 0 and 1.", argument="learning_rate",
                                  value=learning_rate, hint="1e-4 is a good start for FLUX LoRAs.")
    notes: list[str] = []
    steps = steps or recommended_steps(n_images)
    if spec.tiny:
        cfg = TrainingConfig(base=spec.id, trigger_word=trigger_word, steps=steps, rank=rank or 4,
                             learning_rate=learning_rate or 1e-3, resolution=resolution or 64,
                             checkpoint_every=max(1, steps // 4), **overrides)
        notes.append("tiny model: runs anywhere, learns noise (for trying the pipeline and for tests)")
        return TrainingPlan(cfg, prof.name, 0.0, prof.vram_gb, notes)
    if not prof.is_cuda:
        raise PlanDoesNotFitError(
            f"Training a {spec.title} LoRA needs a CUDA GPU; this runtime has none.",
            argument="base", value=base,
            hint="Switch the Colab runtime to a T4 or better, or train in the cloud with "
                 "`masuka_nb.lora.train_cloud(dataset, provider='fal', trigger_word=...)`.",
            alternative={"cloud": "train_cloud"},
        )
    if prof.bf16:
        defaults = dict(rank=16, resolution=1024 if prof.vram_gb >= 39 else 768, mixed_precision="bf16",
                        quantization=None, optimizer="adamw")
        if prof.vram_gb < 30:  # L4: bf16 FLUX itself does not leave room for training
            defaults.update(quantization="nf4", optimizer="adamw8bit")
    else:
        defaults = dict(rank=8, resolution=512, mixed_precision="fp16", quantization="nf4", optimizer="adamw8bit")
        notes.append("T4 (no bf16 hardware): QLoRA recipe, NF4 base + 8-bit AdamW + fp16 mixed precision; "
                     "text encoders run once and are freed before training")
    cfg = TrainingConfig(base=spec.id, trigger_word=trigger_word, steps=steps, rank=rank or defaults["rank"],
                         learning_rate=learning_rate or 1e-4, resolution=resolution or defaults["resolution"],
                         mixed_precision=defaults["mixed_precision"], quantization=defaults["quantization"],
                         optimizer=defaults["optimizer"], checkpoint_every=min(250, max(50, steps // 10)),
                         sample_every=max(100, steps // 5), **overrides)
    if cfg.quantization == "nf4":
        if cfg.quantized_repo is None:
            cfg.quantized_repo = spec.quantized_repos.get("nf4")
        encoder = "T5" if spec.family == "flux" else "the text encoder runs once in 16 bit"
        notes.append(f"transformer{' and T5' if spec.family == 'flux' else ''} in NF4: "
                     + (f"pre-quantized, from {cfg.quantized_repo}" if cfg.quantized_repo
                        else "quantized while loading (bitsandbytes), never the 16-bit transformer in RAM")
                     + ("" if spec.family == "flux" else f"; {encoder} to cache the captions, then leaves"))
    if spec.task == "fill":
        notes.append("FLUX Fill: each image is trained with a masked copy of itself (a random rectangle drawn "
                     "from the run's seed) and that mask, the two extra inputs Fill's transformer reads")
    budget = prof.vram_gb * HEADROOM

    def need(c: TrainingConfig) -> float:
        return estimate_vram_gb(quantization=c.quantization, precision=c.mixed_precision, rank=c.rank,
                                resolution=c.resolution, batch_size=c.batch_size, optimizer=c.optimizer,
                                flash_attention=prof.bf16, base=spec.id)

    est = need(cfg)
    if est > budget:
        alternatives = []
        for res in (768, 640, 512):
            for r in (cfg.rank, 8, 4):
                alt = replace(cfg, resolution=min(res, cfg.resolution), rank=min(r, cfg.rank), batch_size=1)
                if need(alt) <= budget and (alt.resolution, alt.rank) not in alternatives:
                    alternatives.append((alt.resolution, alt.rank))
        best = alternatives[0] if alternatives else None
        fit = (f"resolution={best[0]}, rank={best[1]} fits (≈{need(replace(cfg, resolution=best[0], rank=best[1], batch_size=1)):.1f} GB)"
               if best else "nothing at ≥ 512 px fits")
        raise PlanDoesNotFitError(
            f"rank {cfg.rank} at {cfg.resolution}px needs ≈{est:.1f} GB, more than the {budget:.1f} GB usable on "
            f"{prof.label or prof.name}.",
            argument="resolution" if best else "base", value=cfg.resolution,
            hint=f"{fit}; or train in the cloud with `masuka_nb.lora.train_cloud(...)`.",
            alternative={"resolution": best[0], "rank": best[1]} if best else {"cloud": "train_cloud"},
            estimated_gb=est,
        )
    return TrainingPlan(cfg, prof.name, est, prof.vram_gb, notes)
