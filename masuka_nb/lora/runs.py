"""A training run as files: the run record (`TrainingRun`), its history entry, aspect buckets and the loss plot.

Below both the front door (`training.train`) and the loop (`trainer`), so neither imports the other for
these; only `TrainingRun.resume` reaches the loop, at call time.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError, MasukaError
from masuka_nb.log import get_logger
from masuka_nb.lora.checkpoints import Damaged, damaged_run_error, read_state
from masuka_nb.lora.dataset import Dataset
from masuka_nb.lora.plan import TrainingConfig, TrainingPlan
from masuka_nb.progress import CancelToken, ProgressCallback
from masuka_nb.storage import atomic_write_json, quarantine, read_json_guarded

__all__ = ["FLOW_SHIFT", "TrainingRun", "bucket_for", "loss_curve_png", "make_buckets", "record_run"]

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
    def paths(self) -> list[Path]:
        """The exported LoRA files (PEFT first, then kohya), as every result lists what it wrote."""
        return [p for p in (self.lora_path, self.kohya_path) if p]

    @property
    def history_id(self) -> str:
        """The run's latest history record ("" before it has one)."""
        return str(self.stats.get("history_id") or "")

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
        # backup=True: run.json.bak is the last good record, read when run.json itself is damaged
        atomic_write_json(self.run_dir / "run.json", backup=True, obj={
            "name": self.name, "config": self.config.to_dict(), "dataset_root": str(self.dataset_root),
            "status": self.status, "step": self.step, "fingerprint": self.config.fingerprint(),
            "lora_path": str(self.lora_path) if self.lora_path else None,
            "kohya_path": str(self.kohya_path) if self.kohya_path else None,
            "samples": [str(p) for p in self.samples], "stats": self.stats,
        })

    @classmethod
    def load(cls, name_or_dir: str | os.PathLike[str]) -> TrainingRun:
        if not isinstance(name_or_dir, (str, os.PathLike)) or not str(name_or_dir).strip():
            raise InvalidRequestError("`name` must be a run's name or folder.", argument="name", value=name_or_dir,
                                      hint="e.g. TrainingRun.load(\"my-style\")")
        def present(folder: Path) -> bool:  # run.json, or only its backup (run.json was quarantined)
            return (folder / "run.json").is_file() or (folder / "run.json.bak").is_file()

        run_dir = Path(name_or_dir)
        if not present(run_dir):
            run_dir = settings().training_dir / str(name_or_dir)
        if not present(run_dir):
            raise InvalidRequestError(f"No training run {name_or_dir!r}.", argument="name", value=str(name_or_dir),
                                      hint="Runs live in MASUKA's home under training/.")
        d = read_json_guarded(run_dir / "run.json", expect=dict)  # damaged: quarantined, run.json.bak read
        if d is None:
            raise damaged_run_error(str(name_or_dir), "run.json does not parse and no earlier copy is left")
        if not (run_dir / "run.json").is_file():  # read from the backup: put it back as the record
            with contextlib.suppress(MasukaError):
                atomic_write_json(run_dir / "run.json", d)
        try:
            run = cls(name=str(d["name"]), run_dir=run_dir, config=TrainingConfig.from_dict(d["config"]),
                      dataset_root=Path(d["dataset_root"]), status=str(d.get("status", "new")),
                      step=int(d.get("step", 0)),
                      lora_path=Path(d["lora_path"]) if d.get("lora_path") else None,
                      kohya_path=Path(d["kohya_path"]) if d.get("kohya_path") else None,
                      losses=_read_losses(run_dir), samples=[Path(p) for p in d.get("samples", [])],
                      stats=dict(d.get("stats") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise damaged_run_error(str(name_or_dir), f"run.json lacks or mangles {exc}") from exc
        if not run.finished:
            for ckpt in reversed(run.checkpoints):  # the newest checkpoint whose state.json reads
                try:
                    state = read_state(ckpt)
                except Damaged as exc:
                    quarantine(ckpt, reason=f"damaged checkpoint: {exc}")
                    continue
                if state["step"] > run.step:
                    run.step = state["step"]
                    run.losses = [h["loss"] for h in state.get("losses", [])]
                break
        return run

    def resume(self, *, progress: ProgressCallback | bool | None = None, cancel: CancelToken | None = None) -> TrainingRun:
        """Continue from the latest checkpoint (a finished run is returned as it is)."""
        if self.finished:
            return self
        dataset = Dataset(self.dataset_root)
        if self.stats.get("dataset_hash") not in (None, dataset.content_hash()):
            raise InvalidRequestError(
                f"The images or captions of {dataset.name!r} changed since run {self.name!r} started.",
                argument="dataset", value=dataset.name,
                hint="Resuming would mix two datasets: start a new run with `train(..., name=...)`.")
        # The one lazy edge back up: resuming a run needs the loop (tests/test_architecture.py documents it).
        from masuka_nb.lora.trainer import _Trainer

        return _Trainer(self, dataset).run(progress=progress, cancel=cancel)

    def __repr__(self) -> str:
        return f"TrainingRun({self.name!r}, status={self.status!r}, step={self.step}/{self.config.steps})"


def _read_losses(run_dir: Path) -> list[float]:
    data = read_json_guarded(run_dir / "loss.json", default={}, expect=dict)
    rows = data.get("history")
    if not isinstance(rows, list):
        return []
    return [row["loss"] for row in rows if isinstance(row, dict) and isinstance(row.get("loss"), (int, float))]


def record_run(run: TrainingRun, status: str) -> None:
    """One history record for a run (started, cancelled, failed, finished), through the one history writer."""
    stats = run.stats
    timings = {"seconds_cache": stats.get("cache_s"), "seconds_run": stats.get("train_s")}
    if timings["seconds_cache"] is not None or timings["seconds_run"] is not None:
        timings["seconds_total"] = (timings["seconds_cache"] or 0.0) + (timings["seconds_run"] or 0.0)
    rec = history.write("training", status=status, model=run.config.base, prompt=run.config.trigger_word,
                        recipe=run.config.to_dict(), paths=run.paths,
                        timings={k: v for k, v in timings.items() if v is not None},
                        extra={"run": run.name, "step": run.step, "dataset": str(run.dataset_root)})
    if rec is not None:
        run.stats["history_id"] = rec.id


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
