"""Local FLUX LoRA training (diffusers + peft + accelerate) that survives disconnects.

    run = masuka_nb.lora.train(dataset, trigger_word="mycat")     # resumes by itself after a restart
    run.lora_path                                                 # the exported PEFT file in the library

The run, numbered like the diffusers script it follows (`train_dreambooth_lora_flux.py`):
1. plan: recommended values, recipe for this GPU, PLAN_DOES_NOT_FIT before anything loads;
2. cache: each image is VAE-encoded once into its aspect bucket and each caption text-encoded once;
   both caches live in the run folder, and the text encoders and VAE encoder are freed before training;
3. train: LoRA adapters on the (optionally NF4) transformer, flow-matching loss, AdamW (8-bit on a
   T4), gradient checkpointing, under `accelerate` (one process, or many with `accelerate launch`);
4. checkpoint every N steps (LoRA, optimizer, scheduler, RNG states, step, data order) to MASUKA's
   home (Drive when mounted); samples with fixed prompts and seeds; loss data and a loss-curve PNG;
5. export the LoRA (PEFT + kohya + metadata + card) to the library and record the run in the history.

Noise and timesteps of step k come from a generator seeded by (seed, k) and the data order of an
epoch from (seed, epoch), so a run resumed from any checkpoint ends where an uninterrupted one would.
This module holds the public side (`train`, `TrainingRun`, buckets, the loss plot); the loop itself
is in `masuka_nb.lora.trainer`. A run lives in ``home/training/<name>/`` (run.json, checkpoints/,
cache/, samples/, loss.json, loss.png); its LoRA is exported to ``loras_dir/<name>/``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.errors import InvalidRequestError
from masuka_nb.log import get_logger
from masuka_nb.lora.plan import TARGET_PRESETS, TrainingConfig, TrainingPlan, plan_training
from masuka_nb.progress import CancelToken, ProgressCallback
from masuka_nb.storage import atomic_write_json, ensure_dir, read_json

__all__ = ["TrainingRun", "bucket_for", "make_buckets", "train"]

log = get_logger(__name__)

ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 16 / 9, 9 / 16)
FLOW_SHIFT = 3.0  # FLUX.1-dev's static timestep shift


def make_buckets(resolution: int, multiple: int) -> list[tuple[int, int]]:
    """(width, height) buckets of ≈ resolution² pixels, each side a multiple of `multiple`."""
    out = []
    for a in ASPECTS:
        w = max(multiple, round(resolution * math.sqrt(a) / multiple) * multiple)
        h = max(multiple, round(resolution / math.sqrt(a) / multiple) * multiple)
        if (w, h) not in out:
            out.append((w, h))
    return out


def bucket_for(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    aspect = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - aspect))


@dataclass
class TrainingRun:
    """A training run in `home/training/<name>/`: status, checkpoints, losses, samples, the exported LoRA."""

    name: str
    run_dir: Path
    config: TrainingConfig
    dataset_root: Path
    status: str = "new"  # new | running | cancelled | failed | finished
    step: int = 0
    lora_path: Path | None = None
    kohya_path: Path | None = None
    losses: list[float] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    plan: TrainingPlan | None = None

    @property
    def loss_curve_path(self) -> Path:
        return self.run_dir / "loss.png"

    @property
    def loss_data_path(self) -> Path:
        return self.run_dir / "loss.json"

    @property
    def checkpoints(self) -> list[Path]:
        folder = self.run_dir / "checkpoints"
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file())

    @property
    def latest_checkpoint(self) -> Path | None:
        cps = self.checkpoints
        return cps[-1] if cps else None

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def save(self) -> None:
        atomic_write_json(self.run_dir / "run.json", {
            "name": self.name, "config": self.config.to_dict(), "dataset_root": str(self.dataset_root),
            "status": self.status, "step": self.step, "fingerprint": self.config.fingerprint(),
            "lora_path": str(self.lora_path) if self.lora_path else None,
            "kohya_path": str(self.kohya_path) if self.kohya_path else None,
            "samples": [str(p) for p in self.samples], "stats": self.stats,
        })

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike[str]) -> TrainingRun:
        from masuka_nb.config import settings

        run_dir = Path(name_or_dir)
        if not (run_dir / "run.json").is_file():
            run_dir = settings().home / "training" / str(name_or_dir)
        if not (run_dir / "run.json").is_file():
            raise InvalidRequestError(f"No training run {name_or_dir!r}.", argument="name", value=str(name_or_dir),
                                      hint="Runs live in MASUKA's home under training/.")
        d = read_json(run_dir / "run.json")
        run = cls(name=d["name"], run_dir=run_dir, config=TrainingConfig.from_dict(d["config"]),
                  dataset_root=Path(d["dataset_root"]), status=d.get("status", "new"), step=d.get("step", 0),
                  lora_path=Path(d["lora_path"]) if d.get("lora_path") else None,
                  kohya_path=Path(d["kohya_path"]) if d.get("kohya_path") else None,
                  losses=_read_losses(run_dir), samples=[Path(p) for p in d.get("samples", [])],
                  stats=d.get("stats", {}))
        ckpt = run.latest_checkpoint
        if ckpt is not None and not run.finished:
            state = read_json(ckpt / "state.json")
            if state["step"] > run.step:
                run.step = state["step"]
                run.losses = [h["loss"] for h in state.get("losses", [])]
        return run

    def resume(self, *, progress: ProgressCallback | bool | None = None, cancel: CancelToken | None = None) -> TrainingRun:
        """Continue from the latest checkpoint (a finished run is returned as it is)."""
        if self.finished:
            return self
        from masuka_nb.lora.dataset import Dataset

        dataset = Dataset(self.dataset_root)
        if self.stats.get("dataset_hash") not in (None, dataset.content_hash()):
            raise InvalidRequestError(
                f"The images or captions of {dataset.name!r} changed since run {self.name!r} started.",
                argument="dataset", value=dataset.name,
                hint="Resuming would mix two datasets: start a new run with `train(..., name=...)`.")
        return _trainer()(self, dataset).run(progress=progress, cancel=cancel)

    def __repr__(self) -> str:
        return f"TrainingRun({self.name!r}, status={self.status!r}, step={self.step}/{self.config.steps})"


def _read_losses(run_dir: Path) -> list[float]:
    path = run_dir / "loss.json"
    if not path.is_file():
        return []
    return [row["loss"] for row in read_json(path).get("history", [])]


def _embedded_base(base: str, gpu: str | None) -> tuple[str, str]:
    """Without a GPU and without the Hub (and no `gpu` profile asked for), tiny-flux stands in for `base`."""
    from masuka_nb.models.embedded import EMBEDDED_NOTE, use_embedded_models

    if gpu is not None or str(base).startswith("tiny") or not use_embedded_models(engine="train"):
        return base, ""
    log.info("train.tiny_fallback", base=base)
    return "tiny-flux", f"base tiny-flux instead of {base}: {EMBEDDED_NOTE}"


def train(
    dataset,
    *,
    base: str = "flux1-dev",
    trigger_word: str,
    steps: int | None = None,
    rank: int | None = None,
    learning_rate: float | None = None,
    resolution: int | None = None,
    progress: ProgressCallback | bool | None = None,
    cancel: CancelToken | None = None,
    name: str | None = None,
    seed: int = 0,
    batch_size: int = 1,
    checkpoint_every: int | None = None,
    sample_every: int | None = None,
    sample_prompts: list[str] | None = None,
    sample_seeds: list[int] | None = None,
    target_modules: str = "attention",
    gradient_checkpointing: bool | None = None,
    gpu: str | None = None,
    export_kohya: bool = True,
) -> TrainingRun:
    """Train a FLUX LoRA on the kept images of `dataset`; values left as None are recommended ones.

    Calling it again with the same arguments resumes an interrupted run (or returns the finished one).
    """
    from masuka_nb.lora.dataset import Dataset
    from masuka_nb.storage import safe_name

    if not isinstance(dataset, Dataset):
        dataset = Dataset.load(dataset)
    if not trigger_word or not str(trigger_word).strip():
        raise InvalidRequestError("`trigger_word` is required: it is the word that calls the LoRA in prompts.",
                                  argument="trigger_word", value=trigger_word, hint="For example trigger_word='mycat'.")
    if target_modules not in TARGET_PRESETS:
        raise InvalidRequestError(f"Unknown `target_modules` preset {target_modules!r}.", argument="target_modules",
                                  value=target_modules, hint="Use one of: " + ", ".join(TARGET_PRESETS) + ".")
    if batch_size < 1:
        raise InvalidRequestError("`batch_size` must be at least 1.", argument="batch_size", value=batch_size)
    overrides: dict[str, Any] = {"seed": seed, "batch_size": batch_size, "target_modules": target_modules}
    if sample_prompts is not None:
        overrides["sample_prompts"] = list(sample_prompts)
    if sample_seeds is not None:
        overrides["sample_seeds"] = list(sample_seeds)
    base, fallback_note = _embedded_base(base, gpu)
    plan = plan_training(base=base, n_images=len(dataset.kept), trigger_word=trigger_word.strip(), steps=steps,
                         rank=rank, learning_rate=learning_rate, resolution=resolution, gpu=gpu, **overrides)
    if fallback_note:
        plan.notes.insert(0, fallback_note)
    cfg = plan.config
    if (cfg.quantization or cfg.mixed_precision != "no") and not _cuda_available():
        from masuka_nb.errors import PlanDoesNotFitError

        raise PlanDoesNotFitError(
            f"This plan ({cfg.quantization or 'full'} base, {cfg.mixed_precision}) is for a {plan.gpu} GPU, and this "
            "machine has no CUDA GPU.", argument="gpu", value=gpu,
            hint="Run it on a GPU runtime, train in the cloud with `masuka_nb.lora.train_cloud(...)`, or use "
                 "base='tiny-flux' to try the pipeline here.", alternative={"cloud": "train_cloud"})
    if checkpoint_every is not None:
        cfg.checkpoint_every = max(1, int(checkpoint_every))
    if sample_every is not None:
        cfg.sample_every = max(0, int(sample_every))
    if gradient_checkpointing is not None:
        cfg.gradient_checkpointing = bool(gradient_checkpointing)
    elif plan.config.base.startswith("tiny"):
        cfg.gradient_checkpointing = False  # nothing to save on a few-MB model
    if cfg.sample_every and not cfg.sample_prompts:
        cfg.sample_prompts = [f"a photo of {cfg.trigger_word}"]
    import hashlib

    dataset_hash = dataset.content_hash()
    # The same recipe on the same images is the same run (so calling again resumes it); a changed
    # dataset or recipe is a new run.
    run_id = hashlib.sha256(f"{cfg.fingerprint()}:{dataset_hash}".encode()).hexdigest()[:6]
    run_name = name or safe_name(f"{dataset.name}-{cfg.trigger_word}-{run_id}")
    from masuka_nb.config import settings

    run_dir = settings().home / "training" / run_name
    if (run_dir / "run.json").is_file():
        existing = TrainingRun.load(run_dir)
        if existing.stats.get("dataset_hash") not in (None, dataset_hash) and not existing.finished:
            raise InvalidRequestError(
                f"The images or captions of {dataset.name!r} changed since run {run_name!r} started.",
                argument="dataset", value=dataset.name,
                hint="Resuming would mix two datasets: pass a new `name` to start a fresh run.")
        if existing.config.fingerprint() == cfg.fingerprint() and existing.stats.get("dataset_hash") in (
                None, dataset_hash):
            existing.config.checkpoint_every, existing.config.sample_every = cfg.checkpoint_every, cfg.sample_every
            if existing.finished:
                return existing
            log.info("train.resume", run=run_name, step=existing.step)
            existing.plan = plan
            return _trainer()(existing, dataset).run(progress=progress, cancel=cancel)
        raise InvalidRequestError(
            f"A different training run is already called {run_name!r}.", argument="name", value=run_name,
            hint="Pick another `name`, or delete the old run folder.")
    run = TrainingRun(name=run_name, run_dir=ensure_dir(run_dir), config=cfg, dataset_root=dataset.root, plan=plan)
    run.stats["dataset_hash"] = dataset_hash
    run.save()
    return _trainer()(run, dataset).run(progress=progress, cancel=cancel)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _trainer():
    from masuka_nb.lora.trainer import _Trainer  # the loop lives in its own module; imported on use

    return _Trainer


def _record(run: TrainingRun, status: str) -> None:
    from masuka_nb.history import HistoryRecord, record

    record(HistoryRecord(kind="training", status=status, model=run.config.base, prompt=run.config.trigger_word,
                         recipe=run.config.to_dict(), paths=[str(p) for p in (run.lora_path, run.kohya_path) if p],
                         timings={k: v for k, v in run.stats.items() if k.endswith("_s") and v is not None},
                         extra={"run": run.name, "step": run.step, "dataset": str(run.dataset_root)}))


def loss_curve_png(losses: list[float], *, width: int = 640, height: int = 320) -> bytes:
    """A small line plot of the loss (raw and smoothed), drawn with Pillow so training needs no matplotlib."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 50, width - 10, 20, height - 30
    d.rectangle([left, top, right, bottom], outline=(180, 180, 180))
    d.text((left, 4), "training loss", fill=(0, 0, 0))
    if losses:
        lo, hi = min(losses), max(losses)
        span = (hi - lo) or 1.0
        d.text((4, top), f"{hi:.3g}", fill=(90, 90, 90))
        d.text((4, bottom - 10), f"{lo:.3g}", fill=(90, 90, 90))
        d.text((right - 60, bottom + 8), f"step {len(losses)}", fill=(90, 90, 90))

        def pts(values):
            n = max(1, len(values) - 1)
            return [(left + (right - left) * i / n, bottom - (bottom - top) * (v - lo) / span) for i, v in enumerate(values)]

        if len(losses) > 1:
            d.line(pts(losses), fill=(170, 190, 230), width=1)
            ema, smooth = losses[0], []
            for v in losses:
                ema = 0.9 * ema + 0.1 * v
                smooth.append(ema)
            d.line(pts(smooth), fill=(20, 60, 200), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
