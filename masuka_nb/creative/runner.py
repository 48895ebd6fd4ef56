"""`batch`: many images in one call — prompt lists, prompt files and templates × seeds, with presets.

    res = mk.batch("a {red|blue} car, __style__", seeds=[1, 2], model="flux1-schnell")
    mk.batch.estimate(...)        # size in images and a time estimate, before anything runs

Every item is checked before the first image is made. The pipeline loads once and a prompt that repeats
(one prompt × several seeds) is encoded once. Outputs keep the input order; each image gets its own history
record (tagged with the batch id and its index) and the batch one more (kind "batch").

Resumable: a batch is identified by what it makes (its items, model and settings), so calling it again
after a crash or a runtime restart skips the items its records show as finished, and makes only the rest.

Scale-out: the same call under `accelerate launch --num_processes N script.py` splits the items across
the processes (each item exactly once), and every process returns the whole gathered batch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import statistics
import time
import warnings
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb import history
from masuka_nb.config import settings
from masuka_nb.creative.clips import to_video
from masuka_nb.creative.presets import apply
from masuka_nb.creative.templates import expand, read_prompts
from masuka_nb.errors import CancelledError, InvalidRequestError, MasukaError, StorageError
from masuka_nb.image.engine import default_engine
from masuka_nb.image.generation import resolve_model, run
from masuka_nb.image.grid import make_grid
from masuka_nb.image.job import PromptCache
from masuka_nb.image.lora import normalise_loras
from masuka_nb.image.pipeline import pick_seeds
from masuka_nb.image.request import MAX_IMAGES, MAX_SEED, GenerationRequest
from masuka_nb.log import get_logger
from masuka_nb.memory import plan as make_plan
from masuka_nb.models.registry import get_model
from masuka_nb.progress import ProgressReporter

__all__ = ["BatchEstimate", "BatchItem", "BatchResult", "batch", "estimate", "per_image_seconds", "plan_items"]

log = get_logger(__name__)

MAX_ITEMS = 5_000
# Seconds per denoising step per megapixel when the history has no measurement yet (a rough guess:
# FLUX.1-schnell on an L4 runs about 1 s/step at 1024², tiny-flux on a CPU core a few ms).
_GUESS_S_PER_STEP_MPX = {"tiny": 0.02, "default": 1.0}


@dataclass
class BatchItem:
    index: int
    prompt: str  # as generated (presets applied)
    seed: int
    source_prompt: str = ""  # the prompt (or template expansion) before presets
    path: Path | None = None
    history_id: str = ""
    resumed: bool = False  # made by an earlier run of the same batch, skipped now
    image: Any = None

    def load(self) -> Any:
        """The image (read from its file when it was made by another process or an earlier run)."""
        if self.image is None and self.path is not None and Path(self.path).is_file():
            from PIL import Image

            with Image.open(self.path) as im:
                self.image = im.convert("RGB")
        return self.image


@dataclass
class BatchEstimate:
    images: int
    seconds: float
    per_image_s: float
    basis: str  # "history" (same model, size and steps measured here), "rough" (scaled) or "guess"

    def __str__(self) -> str:
        return f"{self.images} image(s), about {_human(self.seconds)} ({self.per_image_s:.2f} s each, {self.basis})"


@dataclass
class BatchResult:
    """The batch's images in input order, with their prompts, seeds, paths and history ids."""

    id: str
    items: list[BatchItem]
    model: str
    estimate: BatchEstimate | None = None
    elapsed_s: float = 0.0
    history_id: str = ""
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)
    prompt_reuses: int = 0  # items whose prompt embeddings came from an earlier item (encoded once)

    @property
    def images(self) -> list[Any]:
        return [it.load() for it in self.items]

    @property
    def paths(self) -> list[Path]:
        return [Path(it.path) for it in self.items if it.path]

    @property
    def seconds(self) -> float:
        warnings.warn("BatchResult.seconds is now `elapsed_s` (wall time of the call).", DeprecationWarning,
                      stacklevel=2)
        return self.elapsed_s

    @property
    def resumed(self) -> int:
        return sum(it.resumed for it in self.items)

    def grid(self, **kwargs: Any) -> Any:
        """A contact sheet of the batch (labels: each item's seed), via `masuka_nb.image.make_grid`."""
        kwargs.setdefault("labels", [f"#{it.index} seed {it.seed}" for it in self.items])
        return make_grid(self.images, **kwargs)

    def to_video(self, path: str | Path | None = None, **kwargs: Any) -> Path:
        """The batch as a clip (`masuka_nb.to_video` arguments)."""
        return to_video(self.images, path=path, **kwargs)

    def _repr_html_(self) -> str:
        import base64
        import html
        import io

        tags = []
        for it in self.items[:64]:
            im = it.load()
            if im is None:
                continue
            thumb = im.copy()
            thumb.thumbnail((160, 160))
            buf = io.BytesIO()
            thumb.save(buf, format="PNG")
            title = html.escape(f"{it.prompt[:80]} · seed {it.seed}", quote=True)  # a prompt is user text
            tags.append(f'<img title="{title}" style="margin:2px" '
                        f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')
        return "".join(tags) + f"<div><small>batch {html.escape(str(self.id))}: {len(self.items)} image(s)</small></div>"


@dataclass
class _Plan:
    """A batch decided before it runs: the items, the shared settings, and the id that names it."""

    id: str
    model: str
    items: list[BatchItem]
    settings: dict[str, Any]
    loras: list[Any]
    presets: list[dict[str, Any]]
    template: str | None
    supports_negative: bool = True
    steps: int = 1
    per_item: dict[int, dict[str, Any]] = field(default_factory=dict)  # index → negative/settings/loras
    key: str = ""  # what the batch makes, seeds aside: a rerun with seeds=None finds its seed by it


def plan_items(
    prompts_or_template: str | Path | Sequence[str],
    *,
    model: str | None = None,
    seeds: Sequence[int] | None = None,
    presets: Sequence[Any] = (),
    loras: Any = (),
    negative_prompt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    mode: str = "all",
    count: int | None = None,
    wildcards_dir: str | Path | None = None,
) -> _Plan:
    """Expand and check every item of a batch (nothing loads); `batch` and `estimate` start here."""
    template = None
    if isinstance(prompts_or_template, Path) or (isinstance(prompts_or_template, str)
                                                 and prompts_or_template.endswith(".txt")
                                                 and "\n" not in prompts_or_template):
        sources = read_prompts(prompts_or_template)
    elif isinstance(prompts_or_template, str):
        template, sources = prompts_or_template, [prompts_or_template]
    elif isinstance(prompts_or_template, Sequence) and all(isinstance(p, str) for p in prompts_or_template):
        sources = list(prompts_or_template)
    else:
        raise InvalidRequestError("`prompts_or_template` must be a template, a list of prompts or a .txt file.",
                                  argument="prompts_or_template", value=prompts_or_template,
                                  hint="e.g. \"a {red|blue} car\", [\"a cat\", \"a dog\"] or \"prompts.txt\"")
    if not sources:
        raise InvalidRequestError("The batch has no prompt.", argument="prompts_or_template", value=[],
                                  hint="Give at least one prompt.")
    prompts: list[str] = []
    for src in sources:
        prompts += expand(src, mode=mode, count=count, wildcards_dir=wildcards_dir)
        if len(prompts) > MAX_ITEMS:  # counted as it grows: 5,000 templates of 10,000 prompts never pile up
            raise InvalidRequestError(f"The batch would make more than {MAX_ITEMS} images.",
                                      argument="prompts_or_template", value=len(prompts),
                                      hint="Split it into several batches, or use mode=\"random\" with count=.")
    model_id, _ = resolve_model(model)
    spec = get_model(model_id)
    key = hashlib.sha256(json.dumps([model_id, prompts, presets, loras, negative_prompt, width, height, steps,
                                     guidance], sort_keys=True, default=str).encode()).hexdigest()[:16]
    seed_list = _seeds(seeds, key, MAX_SEED)
    n = len(prompts) * len(seed_list)
    if n > MAX_ITEMS:
        raise InvalidRequestError(f"The batch would make {n} images (limit {MAX_ITEMS}).",
                                  argument="prompts_or_template", value=n, hint="Split it into several batches.")
    base_loras = [(s.source, s.weight) for s in normalise_loras(loras)]
    items, per_item, preset_recipe = [], {}, []
    call = {"width": width, "height": height, "steps": steps, "guidance": guidance}
    for prompt in prompts:
        styled = apply(prompt, presets, negative_prompt=negative_prompt,
                       supports_negative=spec.supports_negative_prompt)
        preset_recipe = styled.recipe
        merged = {**{k: v for k, v in styled.settings.items() if k in call}, **{k: v for k, v in call.items()
                                                                               if v is not None}}
        # Validated now, for every prompt: a bad item stops the batch before the first image.
        req = GenerationRequest.build(spec, prompt=styled.prompt, negative_prompt=styled.negative_prompt,
                                      seed=seed_list[0], **merged)
        for seed in seed_list:
            index = len(items)
            items.append(BatchItem(index=index, prompt=styled.prompt, seed=int(seed), source_prompt=prompt))
            per_item[index] = {"negative_prompt": styled.negative_prompt, "settings": merged,
                               "loras": base_loras + list(styled.loras)}
    settings = {"width": req.width, "height": req.height, "steps": req.steps, "guidance": req.guidance}
    ident = json.dumps({"model": model_id, "items": [(it.prompt, it.seed) for it in items],
                        "per_item": [per_item[i] for i in range(len(items))]}, sort_keys=True, default=str)
    batch_id = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return _Plan(batch_id, model_id, items, settings, base_loras, preset_recipe, template,
                 spec.supports_negative_prompt, req.steps, per_item, key)


def estimate(prompts_or_template: str | Path | Sequence[str], *, model: str | None = None,
             seeds: Sequence[int] | None = None, presets: Sequence[Any] = (), width: int | None = None,
             height: int | None = None, steps: int | None = None, mode: str = "all", count: int | None = None,
             wildcards_dir: str | Path | None = None) -> BatchEstimate:
    """How many images a batch makes and about how long it takes (from this machine's history when it can)."""
    plan = plan_items(prompts_or_template, model=model, seeds=seeds, presets=presets, width=width, height=height,
                      steps=steps, mode=mode, count=count, wildcards_dir=wildcards_dir)
    return _estimate(plan)


def batch(
    prompts_or_template: str | Path | Sequence[str],
    *,
    model: str | None = None,
    seeds: Sequence[int] | None = None,
    presets: Sequence[Any] = (),
    loras: Any = (),
    negative_prompt: str | None = None,
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    mode: str = "all",
    count: int | None = None,
    wildcards_dir: str | Path | None = None,
    resume: bool = True,
    save: bool = True,
    progress: Any = None,
    cancel: Any = None,
    chunk: int | None = None,
    engine: Any = None,
) -> BatchResult:
    """Make every prompt × seed of a batch; returns them in order. See the module docstring.

    `prompts_or_template`: a template (`a {red|blue} car, __style__`), a list of prompts (each may be a
    template) or a `.txt` prompt file. `seeds` None picks one random seed for every prompt (recorded; a
    rerun of the same batch finds it again and resumes). `presets`: names, Presets or (name, weight) pairs.
    `mode="random"` with `count=` picks from each template instead of taking every combination.
    `chunk`: up to this many compatible items (same model, size, steps, guidance, negative prompt and LoRAs;
    any prompts and seeds) share one pipeline call, each prompt encoded once; None: as many as the memory plan
    allows at the same plan (at most 16). chunk=1 runs every image on its own.
    """
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                              or not 1 <= chunk <= MAX_IMAGES):
        raise InvalidRequestError(f"`chunk` must be a whole number from 1 to {MAX_IMAGES} (or None).",
                                  argument="chunk", value=chunk, hint="chunk=4 puts up to four images in one call.")
    t0 = time.perf_counter()
    plan = plan_items(prompts_or_template, model=model, seeds=seeds, presets=presets, loras=loras,
                      negative_prompt=negative_prompt, width=width, height=height, steps=steps, guidance=guidance,
                      mode=mode, count=count, wildcards_dir=wildcards_dir)
    est = _estimate(plan)
    log.info("batch.start", id=plan.id, images=len(plan.items), estimate_s=round(est.seconds, 1))
    state = _distributed()
    done = _finished(plan.id) if resume else {}
    if state is not None:
        # Every process reads what is finished before any writes: the same list, so the same split.
        state.wait_for_everyone()
    for it in plan.items:
        if it.index in done:
            it.path, it.history_id, it.resumed = done[it.index]["path"], done[it.index]["id"], True
    todo = [it for it in plan.items if not it.resumed]
    if state is not None:
        todo = todo[state.process_index::state.num_processes]
    status, error, reuses = "ok", None, 0
    warnings: list[str] = []
    try:
        reuses = _run_items(plan, todo, engine or default_engine(), save=save, progress=progress, cancel=cancel,
                            chunk=chunk or _auto_chunk(plan), warnings=warnings)
    except (Exception, KeyboardInterrupt) as exc:
        error = exc if isinstance(exc, MasukaError) else None
        status = "cancelled" if isinstance(exc, (CancelledError, KeyboardInterrupt)) else "failed"
        _record_batch(plan, est, time.perf_counter() - t0, status, exc)
        if isinstance(exc, StorageError):
            raise _with_saved(exc, plan) from exc
        raise
    if state is not None:
        state.wait_for_everyone()
        gathered = _finished(plan.id)
        for it in plan.items:
            if it.image is None and it.index in gathered:
                it.path, it.history_id = gathered[it.index]["path"], gathered[it.index]["id"]
    seconds = time.perf_counter() - t0
    rec_id = ""
    if state is None or state.is_main_process:
        rec_id = _record_batch(plan, est, seconds, status, error)
    return BatchResult(plan.id, plan.items, plan.model, est, seconds, rec_id, status, warnings, prompt_reuses=reuses)


def _with_saved(exc: StorageError, plan: _Plan) -> StorageError:
    """A full or read-only disk mid-batch, saying which images did reach the disk (a rerun skips them)."""
    saved = [it for it in plan.items if it.path is not None and Path(it.path).is_file()]
    where = sorted({str(Path(it.path).parent) for it in saved})
    said = (f"{len(saved)} of {len(plan.items)} images of this batch are saved (in {', '.join(where)}); running "
            "the same batch again makes only the rest." if saved else
            f"None of the {len(plan.items)} images of this batch was saved.")
    base, inner = exc.message, exc.details.get("saved")
    if isinstance(inner, str) and base.endswith(inner):  # one image's "saved" sentence gives way to the batch's
        base = base[: -len(inner)].rstrip()
    return type(exc)(f"{base} {said}", argument=exc.argument, value=exc.value, hint=exc.hint,
                     saved=said, errno=exc.details.get("errno"))


# ---- running ----

def _run_items(plan: _Plan, todo: list[BatchItem], engine: Any, *, save: bool, progress: Any, cancel: Any,
               chunk: int, warnings: list[str]) -> int:
    """Make the items, compatible neighbours together in one pipeline call; one history record per image."""
    groups = _groups(plan, todo, chunk)
    total = len(groups) * plan.steps
    reporter = ProgressReporter("batch", total, progress=progress, cancel=cancel)
    cache = PromptCache()
    made = 0
    for k, group in enumerate(groups):
        reporter.check("the batch")
        offset, first = k * plan.steps, group[0]
        label = f"images {made + 1}-{made + len(group)} of {len(todo)}" if len(group) > 1 else \
            f"image {made + 1} of {len(todo)}"

        def step(event, offset=offset, label=label):
            reporter.update(min(offset + event.step, total), message=label)

        extra = plan.per_item[first.index]
        recipe_extra: dict[str, Any] = {"batch": {"id": plan.id, "key": plan.key, "index": first.index,
                                                  "of": len(plan.items)}}
        if plan.presets:
            recipe_extra["presets"] = plan.presets
        if plan.template:
            recipe_extra["template"] = plan.template
        prompts = [it.prompt for it in group]
        result = run(engine, first.prompt, model=plan.model, negative_prompt=extra["negative_prompt"],
                     seeds=[it.seed for it in group], num_images=len(group), loras=extra["loras"], save=save,
                     progress=step, cancel=cancel, prompt_cache=cache, recipe_extra=recipe_extra, record=False,
                     prompts=prompts if len(set(prompts)) > 1 else None, **extra["settings"])
        for i, it in enumerate(group):
            it.image = result.images[i]
            it.path = result.paths[i] if result.paths else None
            # the image is saved: a history that cannot be written is a warning, never a failed batch (a rerun
            # then cannot skip this item, and makes it again)
            it.history_id = _record_item(plan, it, result, i, warnings)
        made += len(group)
        reporter.update(offset + plan.steps, message=label)
    reporter.done(f"{len(todo)} image(s)")
    return cache.hits


def _groups(plan: _Plan, todo: list[BatchItem], chunk: int) -> list[list[BatchItem]]:
    """Neighbouring items that can share a pipeline call (the same negative prompt, settings and LoRAs; the
    model is the batch's), up to `chunk` at a time. Their prompts and seeds may differ."""
    groups: list[list[BatchItem]] = []
    for it in todo:
        last = groups[-1] if groups else None
        if last and len(last) < chunk and plan.per_item[last[0].index] == plan.per_item[it.index]:
            last.append(it)
        else:
            groups.append([it])
    return groups


def _auto_chunk(plan: _Plan) -> int:
    """The most images one call can make on this machine without a lighter plan than one image gets."""
    one = make_plan(plan.model, width=plan.settings["width"], height=plan.settings["height"])
    for n in range(min(MAX_IMAGES, len(plan.items)), 1, -1):
        try:
            many = make_plan(plan.model, width=plan.settings["width"], height=plan.settings["height"], num_images=n)
        except MasukaError:
            continue
        if many.fits and _same_choices(one, many):
            return n
    return 1


def _same_choices(a: Any, b: Any) -> bool:
    return (a.dtype, a.quantization, a.offload, a.free_text_encoders) == (b.dtype, b.quantization, b.offload,
                                                                         b.free_text_encoders)


def _record_item(plan: _Plan, it: BatchItem, result: Any, i: int, warnings: list[str]) -> str:
    """The image's own history record: its prompt and seed, and the batch id, key and index a resume looks for."""
    share = len(result.images)
    recipe = {**result.recipe, "prompt": it.prompt, "seeds": [it.seed],
              "batch": {"id": plan.id, "key": plan.key, "index": it.index, "of": len(plan.items)}}
    recipe.pop("prompts", None)
    rec = history.write("image", model=plan.model, prompt=it.prompt, recipe=recipe,
                        paths=[it.path] if it.path else [],
                        timings={k: v / share for k, v in result.timings.items()}, plan=result.plan,
                        extra={"cached": result.cached, "batch_call_images": share}, warnings=warnings)
    return rec.id if rec else ""


def _finished(batch_id: str) -> dict[int, dict[str, Any]]:
    """index → {path, id} of the items the history shows as made by this batch (and still on disk)."""
    out: dict[int, dict[str, Any]] = {}
    for rec in history.query(kind="image", status="ok"):
        tag = rec.recipe.get("batch") if isinstance(rec.recipe, dict) else None
        if not isinstance(tag, dict) or tag.get("id") != batch_id or not rec.paths:
            continue
        index = tag.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            continue  # an edited or foreign record: it cannot say which item it made
        path = Path(rec.paths[0])
        if path.is_file() and index not in out:
            out[index] = {"path": path, "id": rec.id}
    return out


def _record_batch(plan: _Plan, est: BatchEstimate, seconds: float, status: str, error: Any) -> str:
    items = [{"index": it.index, "prompt": it.prompt, "seed": it.seed, "history_id": it.history_id,
              "path": str(it.path) if it.path else None, "resumed": it.resumed} for it in plan.items]
    recipe = {"batch_id": plan.id, "model": plan.model, "template": plan.template, "presets": plan.presets,
              "loras": plan.loras, **plan.settings, "images": len(plan.items),
              "seeds": sorted({it.seed for it in plan.items})}
    err = error.to_dict() if isinstance(error, MasukaError) else (
        {"code": "CANCELLED", "message": "interrupted"} if status == "cancelled" else None)
    rec = history.write("batch", status=status, model=plan.model, prompt=plan.template or plan.items[0].prompt,
                        recipe=recipe, paths=[i["path"] for i in items if i["path"]],
                        timings={"seconds_total": seconds, "seconds_estimate": est.seconds}, error=err,
                        extra={"items": items})
    return rec.id if rec else ""


def _distributed() -> Any:
    """Accelerate's process state when launched as several processes (`accelerate launch`, torchrun), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    # On a CPU, Accelerate sees several processes only with cpu=True (otherwise each thinks it is alone).
    cpu = settings().device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    return state if state.num_processes > 1 else None


# ---- sizing ----

def _seeds(seeds: Sequence[int] | None, key: str, max_seed: int) -> list[int]:
    """The batch's seeds. None: one random seed for every prompt (the rule everywhere), except that a batch
    already started with the same items reuses its seed, read from its images' records: a rerun resumes."""
    if seeds is None:
        for rec in history.query(kind="image", status="ok"):
            tag = rec.recipe.get("batch") if isinstance(rec.recipe, dict) else None
            if isinstance(tag, dict) and tag.get("key") == key and rec.recipe.get("seeds"):
                return [int(rec.recipe["seeds"][0])]
        return pick_seeds(None, 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if isinstance(seeds, (str, bytes, dict)) or not isinstance(seeds, Iterable):
        raise InvalidRequestError(f"`seeds` must be a whole number or a list of them, not {type(seeds).__name__}.",
                                  argument="seeds", value=seeds, hint="e.g. seeds=[1, 2, 3] or seeds=range(8)")
    if isinstance(seeds, Sized) and len(seeds) > MAX_ITEMS:
        raise InvalidRequestError(f"`seeds` holds {len(seeds)} seeds (limit {MAX_ITEMS} images per batch).",
                                  argument="seeds", value=len(seeds), hint="Split it into several batches.")
    seeds = list(itertools.islice(seeds, MAX_ITEMS + 1))
    if len(seeds) > MAX_ITEMS:
        raise InvalidRequestError(f"`seeds` holds more than {MAX_ITEMS} seeds (the limit per batch).",
                                  argument="seeds", value=f"{MAX_ITEMS}+", hint="Split it into several batches.")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= max_seed for s in seeds):
        raise InvalidRequestError(f"`seeds` must be whole numbers from 0 to {max_seed} (at least one).",
                                  argument="seeds", value=seeds, hint="e.g. seeds=[1, 2, 3] or seeds=range(8)")
    return seeds


def _estimate(plan: _Plan) -> BatchEstimate:
    per_image, basis = per_image_seconds(plan.model, width=plan.settings["width"], height=plan.settings["height"],
                                         steps=plan.steps)
    return BatchEstimate(len(plan.items), per_image * len(plan.items), per_image, basis)


def per_image_seconds(model: str, *, width: int, height: int, steps: int) -> tuple[float, str]:
    """Seconds one image takes and how that is known: "history" (the median of past runs here with the same
    model, size and steps), "rough" (scaled from this model's runs at other sizes or steps: fixed costs do
    not scale, so it can be far off) or "guess" (no run of this model yet)."""
    mpx = width * height / 1e6
    same, scaled = [], []
    for rec in history.query(kind="image", status="ok", model=model, limit=200):
        gen, r = rec.seconds("run"), rec.recipe
        if not all(_positive(v) for v in (gen, r.get("steps"), r.get("width"), r.get("height"))):
            continue  # not a measurement (an edited or foreign record among them)
        if not (rec.extra or {}).get("cached"):
            seeds = r.get("seeds")
            n = max(1, len(seeds) if isinstance(seeds, list) else 1)
            if (r["width"], r["height"], r["steps"]) == (width, height, steps):
                same.append(gen / n)
            scaled.append(gen / (r["steps"] * n * r["width"] * r["height"] / 1e6))
        if len(same) >= 20:
            break
    if same:
        return statistics.median(same), "history"
    if scaled:
        return statistics.median(scaled[:20]) * steps * mpx, "rough"
    tiny = get_model(model).tiny
    return _GUESS_S_PER_STEP_MPX["tiny" if tiny else "default"] * steps * mpx, "guess"


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


def _human(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


batch.estimate = estimate  # `mk.batch.estimate(...)`: the size and time of a batch before it runs
