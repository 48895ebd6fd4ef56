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
This module is the front door (`train`); the run record, buckets and loss plot are in
`masuka_nb.lora.runs`, the loop itself in `masuka_nb.lora.trainer` (both below this one). A run lives in ``training_dir/<name>/`` (a setting; ``home/training`` by default) (run.json, checkpoints/,
cache/, samples/, loss.json, loss.png); its LoRA is exported to ``loras_dir/<name>/``.
"""

from __future__ import annotations

from typing import Any

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError, MasukaError, StorageError
from masuka_nb.host import device_host, torch_device
from masuka_nb.image.pipeline import pick_seeds
from masuka_nb.log import get_logger
from masuka_nb.lora.dataset import Dataset
from masuka_nb.lora.plan import TARGET_PRESETS, plan_training
from masuka_nb.lora.runs import TrainingRun, bucket_for, make_buckets
from masuka_nb.lora.trainer import _Trainer
from masuka_nb.models.embedded import EMBEDDED_NOTE, use_embedded_models
from masuka_nb.progress import CancelToken, ProgressCallback
from masuka_nb.storage import ensure_dir, safe_name

__all__ = ["TrainingRun", "bucket_for", "make_buckets", "train"]

log = get_logger(__name__)


def _embedded_base(base: str, gpu: str | None) -> tuple[str, str]:
    """Without a GPU and without the Hub (and no `gpu` profile asked for), tiny-flux stands in for `base`."""
    if gpu is not None or str(base).startswith("tiny") or not use_embedded_models(engine="train"):
        return base, ""
    from masuka_nb.models.registry import get_model

    tiny = {"flux2": "tiny-flux2-klein", "zimage": "tiny-zimage"}.get(get_model(base).family, "tiny-flux")
    log.info("train.tiny_fallback", base=base, tiny=tiny)
    return tiny, f"base {tiny} instead of {base}: {EMBEDDED_NOTE}"


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
    seed: int | None = None,
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
    """Train a LoRA on the kept images of `dataset` for `base` (FLUX.1, FLUX.2 [klein] or Z-Image, or their tiny
    twins); values left as None are recommended ones.

    Calling it again with the same arguments resumes an interrupted run (or returns the finished one).
    `seed` None picks a random seed (recorded in the run and its LoRA's metadata), except that a run of the
    same recipe on the same images already started is found again and carried on.
    """
    if not isinstance(dataset, Dataset):
        dataset = Dataset.load(dataset)
    _check_arguments(trigger_word=trigger_word, name=name, seed=seed, batch_size=batch_size, steps=steps, rank=rank,
                     resolution=resolution, learning_rate=learning_rate, checkpoint_every=checkpoint_every,
                     sample_every=sample_every, sample_prompts=sample_prompts, sample_seeds=sample_seeds,
                     target_modules=target_modules, gradient_checkpointing=gradient_checkpointing, gpu=gpu,
                     export_kohya=export_kohya, base=base)
    if not trigger_word or not str(trigger_word).strip():
        raise InvalidRequestError("`trigger_word` is required: it is the word that calls the LoRA in prompts.",
                                  argument="trigger_word", value=trigger_word, hint="For example trigger_word='mycat'.")
    if target_modules not in TARGET_PRESETS:
        raise InvalidRequestError(f"Unknown `target_modules` preset {target_modules!r}.", argument="target_modules",
                                  value=target_modules, hint="Use one of: " + ", ".join(TARGET_PRESETS) + ".")
    if batch_size < 1:
        raise InvalidRequestError("`batch_size` must be at least 1.", argument="batch_size", value=batch_size)
    overrides: dict[str, Any] = {"seed": 0 if seed is None else seed, "batch_size": batch_size,
                                 "target_modules": target_modules}
    if sample_prompts is not None:
        overrides["sample_prompts"] = list(sample_prompts)
    if sample_seeds is not None:
        overrides["sample_seeds"] = list(sample_seeds)
    base, fallback_note = _embedded_base(base, gpu)
    if gpu is None:
        device_host().claim("train")  # before planning: other tasks' models leave, the plan sees what is free
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
    if seed is None:  # the rule everywhere: random unless given (recorded), but the same run resumes
        cfg.seed = _earlier_seed(cfg, dataset_hash, name=name)
    # The same recipe on the same images is the same run (so calling again resumes it); a changed
    # dataset or recipe is a new run.
    run_id = hashlib.sha256(f"{cfg.fingerprint()}:{dataset_hash}".encode()).hexdigest()[:6]
    run_name = name or safe_name(f"{dataset.name}-{cfg.trigger_word}-{run_id}")
    run_dir = settings().training_dir / run_name
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
            existing.stats["export_kohya"] = bool(export_kohya)
            if existing.finished:
                return existing
            log.info("train.resume", run=run_name, step=existing.step)
            existing.plan = plan
            return _trainer()(existing, dataset).run(progress=progress, cancel=cancel)
        raise InvalidRequestError(
            f"A different training run is already called {run_name!r}.", argument="name", value=run_name,
            hint="Pick another `name`, or delete the old run folder.")
    try:
        run = TrainingRun(name=run_name, run_dir=ensure_dir(run_dir), config=cfg, dataset_root=dataset.root, plan=plan)
        run.stats["dataset_hash"] = dataset_hash
        run.stats["export_kohya"] = bool(export_kohya)  # honoured by the export (a resume keeps it)
        run.save()
    except StorageError as exc:  # a full or read-only home before the first step
        said = f"Nothing of run {run_name!r} was written; the dataset is unchanged."
        raise type(exc)(f"{exc.message} {said}", argument=exc.argument, value=exc.value, hint=exc.hint, saved=said,
                        errno=exc.details.get("errno")) from exc
    return _trainer()(run, dataset).run(progress=progress, cancel=cancel)


def _earlier_seed(cfg: Any, dataset_hash: str, *, name: str | None = None) -> int:
    """The seed of an earlier run of this recipe on these images (so calling `train` again resumes it or
    returns it): the run called `name` when one is named, else any; otherwise a new random one."""
    import dataclasses

    root = settings().training_dir
    wanted = dataclasses.replace(cfg, seed=0).fingerprint()
    for run_json in sorted(root.glob(f"{name or '*'}/run.json")) if root.is_dir() else ():
        try:
            run = TrainingRun.load(run_json.parent)
        except (MasukaError, OSError, ValueError):  # a damaged run folder is not a match
            continue
        if run.stats.get("dataset_hash") == dataset_hash and \
                dataclasses.replace(run.config, seed=0).fingerprint() == wanted:
            return int(run.config.seed)
    return pick_seeds(None, 1)[0]


def _check_arguments(**args: Any) -> None:
    """Every argument's type and range, before anything is planned: one InvalidRequestError naming it."""
    def bad(name: str, what: str, example: str) -> InvalidRequestError:
        return InvalidRequestError(f"`{name}` must be {what}.", argument=name, value=args[name], hint=f"e.g. {example}")

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for name in ("trigger_word", "target_modules", "base"):
        if not isinstance(args[name], str):
            raise bad(name, "text", f"{name}=\"mk\"" if name == "trigger_word" else f"{name}=\"attention\"")
    for name in ("name", "gpu"):
        if args[name] is not None and not isinstance(args[name], str):
            raise bad(name, "text or None", f"{name}=\"my-style\"" if name == "name" else "gpu=\"t4\"")
    if args["name"] is not None:
        from masuka_nb.storage import safe_name

        if safe_name(args["name"], default="") != args["name"]:
            raise bad("name", "letters, digits, '.', '_' and '-' only", f"name=\"{safe_name(args['name'])}\"")
    limits = {"seed": (0, 2**32 - 1), "batch_size": (1, 64), "steps": (1, 100_000), "rank": (1, 256),
              "resolution": (16, 2048), "checkpoint_every": (1, 10**9), "sample_every": (0, 10**9)}
    for name, (lo, hi) in limits.items():
        value = args[name]
        if value is None and name != "batch_size":
            continue
        if not whole(value) or not lo <= value <= hi:
            raise bad(name, f"a whole number from {lo} to {hi}", f"{name}={max(lo, 1)}")
    lr = args["learning_rate"]
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < 1):
        raise bad("learning_rate", "a number between 0 and 1", "learning_rate=1e-4")
    for name, kind in (("sample_prompts", str), ("sample_seeds", int)):
        value = args[name]
        if value is None:
            continue
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not all(
                isinstance(v, kind) and not isinstance(v, bool) for v in value):
            raise bad(name, f"a list of {'prompts' if kind is str else 'whole numbers'}",
                      f"{name}=[\"a photo of mk\"]" if kind is str else f"{name}=[0, 1]")
    for name in ("gradient_checkpointing", "export_kohya"):
        if args[name] is not None and not isinstance(args[name], bool):
            raise bad(name, "True or False", f"{name}=True")


def _cuda_available() -> bool:
    """A CUDA GPU to train on, as the `device` setting allows (device="cpu" trains on the CPU)."""
    return torch_device() == "cuda"


def _trainer():
    return _Trainer
