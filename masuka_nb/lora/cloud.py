"""Cloud LoRA training on fal (`flux-lora-fast-training`) or Replicate (`ostris/flux-dev-lora-trainer`).

    job = masuka_nb.lora.train_cloud("my-dog", trigger_word="sks dog", steps=1000)   # returns at once
    lora = job.wait()                       # polls, downloads into the LoRA library, checks it loads
    lora.folder                             # settings().loras_dir / <name>

The dataset folder (docs/contracts.md) becomes a zip of its kept images with `<stem>.txt` captions
beside them; it is uploaded to the provider's storage, then one training job is submitted with a
job record written first (see `masuka_nb.jobs`: restarts resume it, never pay for it twice). The
result lands in ``settings().loras_dir/<name>/`` as ``pytorch_lora_weights.safetensors`` with
``masuka_lora.json`` and a README, and is checked with the image engine's `validate_lora`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from masuka_nb.config import check_url, settings
from masuka_nb.errors import DatasetError, InvalidRequestError, MasukaError, ProviderBadResponseError
from masuka_nb.hosted import pricing as _cost
from masuka_nb.hosted.catalog import training_price
from masuka_nb.hosted.providers import get_provider
from masuka_nb.hosted.runner import Download, Job, JobRecord, submit_recorded
from masuka_nb.hosted.runner import poll_interval as jobs_poll_interval
from masuka_nb.image.lora import validate_lora
from masuka_nb.log import get_logger
from masuka_nb.progress import ProgressCallback
from masuka_nb.storage import atomic_write_bytes, atomic_write_json, atomic_write_text, safe_name

__all__ = ["CloudTrainingJob", "CloudTrainingResult", "build_dataset_zip", "train_cloud"]

log = get_logger(__name__)

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
FAL_TRAINER = "fal-ai/flux-lora-fast-training"
REPLICATE_TRAINER = "ostris/flux-dev-lora-trainer"
MIN_IMAGES = {"fal": 4, "replicate": 1}


@dataclass
class CloudTrainingResult:
    """A trained LoRA in the library: its folder, weight file, metadata and the check's verdict."""

    name: str
    folder: Path
    lora_path: Path
    provider: str
    trigger_word: str
    steps: int
    cost: float | None
    validated: bool
    info: Any = None
    notes: list[str] = field(default_factory=list)


# ---- dataset -----------------------------------------------------------------------------------


def _dataset_root(dataset: Any) -> Path:
    try:
        if not isinstance(dataset, (str, os.PathLike)):  # (a Path's own `.root` is "/": check paths first)
            for attr in ("path", "root"):
                value = getattr(dataset, attr, None)
                if isinstance(value, (str, os.PathLike)):
                    return Path(value)
        if isinstance(dataset, (str, os.PathLike)):
            path = Path(dataset)
            if not path.is_dir():
                from masuka_nb.config import settings

                named = settings().datasets_dir / str(dataset)
                if named.is_dir():
                    return named
            return path
    except (TypeError, ValueError, OSError) as exc:  # a NUL byte, a path the OS refuses
        raise InvalidRequestError(f"`dataset` cannot be used as a folder: {exc}.", argument="dataset",
                                  value=str(dataset)[:120]) from None
    raise InvalidRequestError("`dataset` must be a dataset folder (path or name) or a Dataset object.",
                              argument="dataset", value=type(dataset).__name__)


def build_dataset_zip(dataset: Any, *, min_images: int = 1) -> tuple[bytes, str, int]:
    """(zip bytes, dataset hash, image count) for the kept items: `<stem>.<ext>`, and `<stem>.txt` where the
    item has a caption (fal and Replicate let the trigger word stand in for a missing one)."""
    root = _dataset_root(dataset)
    manifest = root / "dataset.json"
    try:
        found = manifest.is_file()
    except (OSError, ValueError):  # a name too long for the OS
        found = False
    if not found:
        raise DatasetError(f"{root} is not a MASUKA dataset (no dataset.json).", argument="dataset", value=str(root),
                           hint="Make one with `masuka_nb.lora.Dataset.create(name)` and import images into it.")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{manifest} cannot be read as JSON: {exc}.", argument="dataset", value=str(root)) from exc
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(it, dict) and isinstance(it.get("file"), str) for it in items):
        raise DatasetError(f"{manifest} does not list its items as {{\"file\": ...}} objects.", argument="dataset",
                           value=str(root), hint="Re-import the images with `masuka_nb.lora.Dataset`.")
    kept = [it for it in items if it.get("keep", True)]
    buf = io.BytesIO()
    digest = hashlib.sha256()
    count = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:  # images are already compressed
        for item in sorted(kept, key=lambda it: it["file"]):
            image = root / item["file"]
            if not image.is_file() or not image.resolve().is_relative_to(root.resolve()):
                raise DatasetError(f"{image} is listed in dataset.json but missing.", argument="dataset", value=str(root))
            sidecar = image.with_suffix(".txt")
            try:
                caption = (sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file()
                           else str(item.get("caption") or "").strip())
                data_bytes = image.read_bytes()
            except OSError as exc:
                raise DatasetError(f"{image} cannot be read: {exc.strerror or exc}.", argument="dataset",
                                   value=str(root)) from exc
            zf.writestr(image.name, data_bytes)
            if caption:  # an empty caption file would say "no words" instead of letting the trigger word stand in
                zf.writestr(image.stem + ".txt", caption)
            digest.update(hashlib.sha256(data_bytes).digest() + caption.encode())
            count += 1
    if count < min_images:
        raise DatasetError(f"The dataset has {count} kept images; this trainer needs at least {min_images}.",
                           argument="dataset", value=str(root), hint="Import more images or keep more of them.")
    return buf.getvalue(), digest.hexdigest()[:16], count


# ---- submit ------------------------------------------------------------------------------------


def train_cloud(dataset: Any, *, provider: str = "fal", trigger_word: str, steps: int = 1000, name: str | None = None,
                base: str = "flux1-dev", rank: int = 16, learning_rate: float | None = None,
                is_style: bool = False, max_cost: float | None = None, destination: str | None = None,
                base_url: str | None = None, poll_interval: float | None = None,
                progress: ProgressCallback | bool | None = None) -> CloudTrainingJob:
    """Upload the dataset and start one paid training job; `.wait()` on the result brings the LoRA home.

    `base` is the model the LoRA is recorded and checked against (the trainers fine-tune FLUX.1-dev);
    `destination` is Replicate's `owner/model` for the weights (default: `<you>/masuka-<name>`, made
    private when missing).
    """
    _check_arguments(provider=provider, trigger_word=trigger_word, steps=steps, name=name, base=base, rank=rank,
                     learning_rate=learning_rate, is_style=is_style, max_cost=max_cost, destination=destination,
                     base_url=base_url, poll_interval=poll_interval)
    root = _dataset_root(dataset)
    lora_name = safe_name(name or f"{root.name}-{provider}")
    data, dataset_hash, count = build_dataset_zip(root, min_images=MIN_IMAGES[provider])
    usd, price_date, price_source = training_price(provider, steps)
    _cost.check_budget(usd, max_cost=max_cost, what=f"Training {steps} steps on {provider}")

    client = get_provider(provider, base_url=base_url)
    try:
        url = client.upload_bytes(data, "application/zip", name=f"{lora_name}.zip")
        rec = JobRecord.new("training", provider, model=base, prompt=trigger_word,
                            provider_model=FAL_TRAINER if provider == "fal" else REPLICATE_TRAINER)
        rec.base_url, rec.estimate_usd = client.base_url, usd
        rec.poll_interval = jobs_poll_interval(client, poll_interval)
        rec.request = {"name": lora_name, "steps": steps, "trigger_word": trigger_word, "rank": rank,
                       "dataset": str(root), "dataset_hash": dataset_hash, "images": count,
                       "learning_rate": learning_rate, "price_date": price_date, "price_source": price_source}

        def send() -> None:
            if provider == "fal":
                payload: dict[str, Any] = {"images_data_url": url, "trigger_word": trigger_word, "steps": steps,
                                           "create_masks": True, "is_style": is_style,
                                           "is_input_format_already_preprocessed": False, "data_archive_format": "zip"}
                client.submit_app(rec, FAL_TRAINER, payload)
            else:
                dest = destination or client.ensure_destination(f"masuka-{lora_name}".lower()[:60])
                rec.extra["destination"] = dest
                payload = {"input_images": url, "trigger_word": trigger_word, "steps": steps, "autocaption": False,
                           "lora_rank": rank, "batch_size": 1, "resolution": "512,768,1024",
                           "caption_dropout_rate": 0.05, "optimizer": "adamw8bit"}
                if learning_rate is not None:
                    payload["learning_rate"] = learning_rate
                client.submit_training(rec, REPLICATE_TRAINER, dest, payload)

        try:
            submit_recorded(rec, send, usd=usd)
        except MasukaError:
            CloudTrainingJob(rec).record_history("failed")
            raise
    finally:
        client.close()
    log.info("lora.cloud_submitted", job=rec.id, provider=provider, steps=steps, usd=usd)
    return CloudTrainingJob(rec)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_arguments(*, provider: Any, trigger_word: Any, steps: Any, name: Any, base: Any, rank: Any,
                     learning_rate: Any, is_style: Any, max_cost: Any, destination: Any, base_url: Any,
                     poll_interval: Any) -> None:
    """Every argument of `train_cloud`, checked before anything is read, uploaded or paid."""
    if not isinstance(provider, str) or provider not in MIN_IMAGES:
        raise InvalidRequestError(f"Cloud training runs on fal or replicate, not `{provider}`.", argument="provider",
                                  value=provider, hint="Use provider=\"fal\" or provider=\"replicate\".")
    if not isinstance(trigger_word, str) or not trigger_word.strip():
        raise InvalidRequestError("`trigger_word` is required: it is how prompts call the LoRA.", argument="trigger_word",
                                  value=trigger_word, hint="Give a short rare word, e.g. trigger_word=\"sks dog\".")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 3 <= steps <= 6000:
        raise InvalidRequestError("`steps` must be a whole number between 3 and 6000.", argument="steps", value=steps)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= 128:
        raise InvalidRequestError("`rank` must be a whole number between 1 and 128.", argument="rank", value=rank)
    if learning_rate is not None and (not _is_number(learning_rate) or not 0 < learning_rate < 1):
        raise InvalidRequestError("`learning_rate` must be a number between 0 and 1 (e.g. 4e-4), or None.",
                                  argument="learning_rate", value=learning_rate)
    if max_cost is not None and (not _is_number(max_cost) or max_cost <= 0):
        raise InvalidRequestError("`max_cost` must be a positive number of US dollars, or None.", argument="max_cost",
                                  value=max_cost)
    if poll_interval is not None and (not _is_number(poll_interval) or poll_interval < 0):
        raise InvalidRequestError("`poll_interval` must be a number of seconds ≥ 0, or None.",
                                  argument="poll_interval", value=poll_interval)
    if not isinstance(is_style, bool):
        raise InvalidRequestError("`is_style` must be True or False.", argument="is_style", value=is_style)
    for arg, value in (("name", name), ("destination", destination), ("base_url", base_url)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidRequestError(f"`{arg}` must be text or None.", argument=arg, value=value)
    if base_url is not None:
        check_url("base_url", base_url)  # INVALID_SETTING naming it when it is not an http(s) URL
    if destination is not None and destination.count("/") != 1:
        raise InvalidRequestError("`destination` is Replicate's `owner/model`.", argument="destination",
                                  value=destination)
    if not isinstance(base, str) or not base.strip():
        raise InvalidRequestError("`base` must be a model id such as \"flux1-dev\".", argument="base", value=base)


# ---- the job -----------------------------------------------------------------------------------


class CloudTrainingJob(Job):
    """A cloud training job (see `masuka_nb.jobs.Job`); `wait()` returns a `CloudTrainingResult`."""

    needs_download = True
    kind = "training"

    def _folder(self) -> Path:
        return settings().loras_dir / self.record.request["name"]

    def _target_path(self, d: Download) -> Path:
        if d.role == "lora":
            return self._folder() / WEIGHT_NAME
        return self._folder() / f".{d.role}{d.suffix}"  # the Replicate tar, unpacked in _finish

    def _check_file(self, d: Download, part: Path, content_type: str) -> None:
        ok = tarfile.is_tarfile(part) if d.suffix == ".tar" else _is_safetensors(part)
        if not ok:
            part.unlink(missing_ok=True)
            raise ProviderBadResponseError(f"{self.record.provider}'s {d.role} file is damaged or of the wrong kind.",
                                           provider=self.record.provider, request_id=self.record.provider_job_id)

    def _finish(self) -> None:
        rec = self.record
        folder = self._folder()
        weights = folder / WEIGHT_NAME
        if "weights" in rec.paths and not weights.exists():
            tar_path = Path(rec.paths["weights"])
            with tarfile.open(tar_path) as tar:
                member = next((m for m in tar.getmembers() if m.name.endswith(".safetensors")), None)
                if member is None:
                    raise ProviderBadResponseError("Replicate's weights archive holds no .safetensors file.",
                                                   provider=rec.provider, request_id=rec.provider_job_id)
                atomic_write_bytes(weights, tar.extractfile(member).read())
            tar_path.unlink(missing_ok=True)
        rec.paths["lora"] = str(weights)
        if rec.paths.pop("weights", None):
            rec.extra.setdefault("consumed", []).append("weights")
        req = rec.request
        meta = {"name": req["name"], "base_model": rec.model, "trigger_word": req["trigger_word"], "steps": req["steps"],
                "rank": req.get("rank"), "source": rec.provider, "dataset_hash": req["dataset_hash"],
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "job_id": rec.id, "provider_job_id": rec.provider_job_id}
        atomic_write_json(folder / "masuka_lora.json", meta)
        atomic_write_text(folder / "README.md", _model_card(meta))
        try:
            info = validate_trained_lora(weights, model=rec.model)
        except MasukaError as exc:
            # The paid file stays in the library; the job says why it cannot be used.
            self._fail(exc, "failed")
        rec.extra["validated"] = info is not None
        rec.extra["lora_rank"] = getattr(info, "rank", None)

    def _history_fields(self) -> dict[str, Any]:
        rec = self.record
        return {"extra": {"cost_usd": rec.cost_usd, "estimate_usd": rec.estimate_usd,
                          "validated": rec.extra.get("validated"), "steps": rec.request.get("steps")}}

    def result(self) -> CloudTrainingResult:
        rec = self.record
        if rec.state != "completed":
            raise self._stored_error()
        folder = self._folder()
        return CloudTrainingResult(name=rec.request["name"], folder=folder, lora_path=folder / WEIGHT_NAME,
                                   provider=rec.provider, trigger_word=rec.request["trigger_word"],
                                   steps=rec.request["steps"], cost=rec.cost_usd,
                                   validated=bool(rec.extra.get("validated")), notes=list(rec.notes))


def validate_trained_lora(path: Path, *, model: str):
    """The image engine's `validate_lora` on what the trainer made (raises LoraIncompatibleError)."""
    return validate_lora(path, model=model)


def _is_safetensors(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 2 <= n <= 100_000_000 or n + 8 > path.stat().st_size:
                return False
            json.loads(fh.read(n))
        return True
    except (OSError, ValueError):
        return False


def _model_card(meta: dict[str, Any]) -> str:
    return (f"# {meta['name']}\n\nFLUX LoRA trained on {meta['source']} ({meta['steps']} steps) for `{meta['base_model']}`.\n\n"
            f"Trigger word: `{meta['trigger_word']}`\n\nDataset hash: `{meta['dataset_hash']}` · made {meta['created_at']}\n\n"
            "Use it: `masuka_nb.generate(\"<trigger word> ...\", loras=[\"" + meta["name"] + "\"])`\n")
