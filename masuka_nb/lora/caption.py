"""Auto-captioning: Florence-2 by default, BLIP-2 as an alternative, batched, into `.txt` sidecars.

Captions a user wrote (or edited in a sidecar) are never replaced unless `overwrite=True`. The
trigger word leads each caption. The captioner is loaded through the device host for the call and freed
afterwards (a T4 needs that memory for training); its files come through `masuka_nb.hub`. Without a GPU and offline, the tiny random captioners stand in
(their captions are gibberish, and each is labelled with the model that wrote it).
"""

from __future__ import annotations

import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from masuka_nb import history
from masuka_nb.errors import DatasetError, InvalidRequestError
from masuka_nb.host import device_host, torch_device
from masuka_nb.hub import locate_repo
from masuka_nb.log import get_logger
from masuka_nb.models.embedded import use_embedded_models
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter
from masuka_nb.quiet import quiet_third_party
from masuka_nb.storage import atomic_write_text

__all__ = ["CAPTIONERS", "CaptionReport", "caption_dataset", "with_trigger"]

log = get_logger(__name__)

# name -> (family, repo). Families set the loading and prompting code.
CAPTIONERS: dict[str, tuple[str, str]] = {
    "florence-2": ("florence-2", "florence-community/Florence-2-large"),
    "florence-2-large": ("florence-2", "florence-community/Florence-2-large"),
    "florence-2-base": ("florence-2", "florence-community/Florence-2-base"),
    "blip-2": ("blip-2", "Salesforce/blip2-opt-2.7b"),
    "tiny-florence-2": ("florence-2", "tiny-florence-2"),
    "tiny-blip-2": ("blip-2", "tiny-blip-2"),
}
FLORENCE_TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
# What a captioner load reads: weights as safetensors, configs, tokenizer and processor files.
_CAPTIONER_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.py")

# Weak references to the last captioner loaded: tests and the memory panel check it is gone.
_loaded: list[weakref.ref] = []


@dataclass
class CaptionReport:
    model: str
    captioned: list[str] = field(default_factory=list)
    kept_user: list[str] = field(default_factory=list)
    kept_existing: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    tiny: bool = False
    history_id: str = ""
    paths: list[Path] = field(default_factory=list)  # the caption sidecars written

    @property
    def seconds(self) -> float:
        warnings.warn("CaptionReport.seconds is now `elapsed_s`.", DeprecationWarning, stacklevel=2)
        return self.elapsed_s

    def summary(self) -> str:
        return (f"{len(self.captioned)} captioned with {self.model}, {len(self.kept_user)} user captions kept, "
                f"{len(self.kept_existing)} existing captions kept")


def with_trigger(caption: str, trigger_word: str | None) -> str:
    """`trigger, caption` unless the caption already names the trigger word."""
    caption = " ".join(caption.replace("\ufffd", "").split())
    if not trigger_word:
        return caption
    if caption.lower().startswith(trigger_word.lower()):
        return caption
    return f"{trigger_word}, {caption}" if caption else trigger_word


def _resolve(model: str) -> tuple[str, str, bool]:
    """(family, repo or folder, tiny) for a captioner name. Without a GPU and without the Hub: the tiny twin."""
    key = model.strip().lower()
    if key not in CAPTIONERS:
        raise InvalidRequestError(f"Unknown captioner `{model}`.", argument="model", value=model,
                                  hint="Use one of: " + ", ".join(CAPTIONERS) + ".")
    family, repo = CAPTIONERS[key]
    if not repo.startswith("tiny-") and use_embedded_models(engine="caption"):
        log.info("caption.tiny_fallback", model=model, reason="no GPU and no Hub")
        repo = f"tiny-{family}"
    tiny = repo.startswith("tiny-")
    if tiny:
        from masuka_nb.models.tiny_vision import ensure_tiny_vision

        repo = str(ensure_tiny_vision(repo))
    return family, repo, tiny


def _load(family: str, repo: str, model_name: str):
    """(model, processor, dtype), read from a local folder `masuka_nb.hub` finds (or fetches) for `repo`, on
    the device the `device` setting names."""
    import torch
    from transformers import AutoProcessor

    folder = locate_repo(repo, name=model_name, allow=_CAPTIONER_FILES)
    device = torch_device()
    dtype = torch.float16 if device == "cuda" else torch.float32
    if family == "florence-2":
        from transformers import Florence2ForConditionalGeneration as cls
    else:
        from transformers import Blip2ForConditionalGeneration as cls
    with quiet_third_party():
        processor = AutoProcessor.from_pretrained(str(folder))
        model = cls.from_pretrained(str(folder), dtype=dtype).eval()
    model = model.to(device)
    _loaded[:] = [weakref.ref(model)]
    return model, processor, dtype


def _generate(family: str, model, processor, dtype, images: list, task: str, max_new_tokens: int) -> list[str]:
    import torch

    if family == "florence-2":
        inputs = processor(text=[task] * len(images), images=images, return_tensors="pt", padding=True)
    else:
        inputs = processor(images=images, return_tensors="pt")
    inputs = {k: (v.to(model.device, dtype) if v.is_floating_point() else v.to(model.device)) for k, v in inputs.items()}
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    return [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]


def caption_dataset(
    dataset,
    *,
    model: str = "florence-2",
    trigger_word: str | None = None,
    overwrite: bool = False,
    batch_size: int = 8,
    task: str = "<DETAILED_CAPTION>",
    max_new_tokens: int = 96,
    only_kept: bool = False,
    progress: ProgressCallback | bool | None = None,
    cancel: CancelToken | None = None,
) -> CaptionReport:
    """Caption the dataset's images into `.txt` sidecars and `dataset.json`."""
    from PIL import Image

    if task not in FLORENCE_TASKS:
        raise InvalidRequestError(f"Unknown Florence-2 task `{task}`.", argument="task", value=task,
                                  hint="Use one of: " + ", ".join(FLORENCE_TASKS) + ".")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidRequestError("`batch_size` must be at least 1.", argument="batch_size", value=batch_size)
    dataset.sync_captions()
    family, repo, tiny = _resolve(model)
    report = CaptionReport(model=model if not tiny else f"tiny-{family}", tiny=tiny)
    todo = []
    for it in dataset.items:
        if only_kept and not it.keep:
            continue
        if it.caption and not overwrite:
            (report.kept_user if it.caption_source == "user" else report.kept_existing).append(it.file)
            continue
        todo.append(it)
    if not todo:
        return report
    start = time.perf_counter()
    reporter = ProgressReporter("caption", len(todo), progress=progress, cancel=cancel)
    with device_host().hold(("caption", repo), lambda: _load(family, repo, model), task="caption",
                            slot="captioner", model=report.model) as (captioner, processor, dtype):
        for i in range(0, len(todo), batch_size):
            reporter.check("captioning")
            batch = todo[i:i + batch_size]
            images = []
            for it in batch:
                try:
                    with Image.open(dataset.path_of(it)) as im:
                        images.append(im.convert("RGB"))
                except (OSError, ValueError) as exc:  # vanished or damaged on disk since it was imported
                    raise DatasetError(f"The dataset image {it.file} cannot be read: {exc}.", argument="dataset",
                                       value=it.file, hint="Re-import it, or set keep=False on it and caption "
                                       "with only_kept=True.") from exc
            texts = _generate(family, captioner, processor, dtype, images, task, max_new_tokens)
            for it, text in zip(batch, texts):
                it.caption = with_trigger(text, trigger_word)
                it.caption_source = family
                sidecar = atomic_write_text(dataset.images_dir / f"{it.stem}.txt", it.caption + "\n")
                report.paths.append(Path(sidecar))
                report.captioned.append(it.file)
            dataset.save()  # per batch: an interruption keeps every caption written so far
            reporter.update(min(i + batch_size, len(todo)), message=f"{len(report.captioned)} captioned")
        del captioner, processor  # the host drops its own reference as the block ends
    report.elapsed_s = time.perf_counter() - start
    rec = history.write("caption", model=report.model, recipe={"dataset": dataset.name, "trigger_word": trigger_word,
                                                               "task": task, "overwrite": overwrite},
                        paths=[dataset.root], timings={"seconds_total": report.elapsed_s},
                        extra={"captioned": len(report.captioned)})
    report.history_id = rec.id if rec else ""
    return report
