"""Training checkpoints as data, never as pickles: safetensors for every tensor, JSON for everything else.

One checkpoint is one folder ``checkpoints/step-NNNNNNN/``::

    lora.safetensors       the LoRA weights (peft layout)
    trainer.safetensors    every tensor of the optimizer, scheduler, grad scaler and RNG states
    trainer.json           the rest of those states, with references into trainer.safetensors
    state.json             step, data order, losses, config fingerprint, and the SHA-256 of the three files above

It is written into ``.step-NNNNNNN.incomplete`` and renamed into place whole, and `state.json` is written
last, so a folder named ``step-*`` with a `state.json` was complete once. Reading it runs no code
(`torch.load` with pickles could: a planted ``rng.pt`` would run whatever it held), and a checkpoint whose
files no longer match their hashes, or do not parse, is moved to ``checkpoints/quarantine/`` so resume
takes the newest intact one. Checkpoints written by earlier versions (``*.pt``) are still read, with
``torch.load(weights_only=True)`` and an allow-list that admits numpy's RNG state and nothing else.

Depends on torch, safetensors and numpy only when called (the training extra).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masuka_nb.errors import TrainingFailedError
from masuka_nb.log import get_logger
from masuka_nb.storage import atomic_write_bytes, atomic_write_json, ensure_dir, quarantine

__all__ = ["CheckpointData", "Damaged", "decode_tree", "encode_tree", "read_checkpoint", "write_checkpoint"]

log = get_logger(__name__)

FORMAT = 2  # 1: torch.save pickles (read-only support), 2: safetensors + JSON
STATE_FILES = ("lora.safetensors", "trainer.safetensors", "trainer.json")


class Damaged(Exception):
    """Internal: why one checkpoint cannot be used (the caller quarantines it and tries an older one)."""


@dataclass
class CheckpointData:
    """Everything one checkpoint holds, read and checked, applied to nothing yet."""

    path: Path
    state: dict[str, Any]
    lora: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def step(self) -> int:
        return int(self.state["step"])


# ---- a tree of states <-> (JSON, tensors) ----

def encode_tree(tree: Any) -> tuple[Any, dict[str, Any]]:
    """(JSON-able skeleton, {key: tensor}) for a state dict of tensors, numpy arrays, tuples and scalars."""
    import numpy as np
    import torch

    tensors: dict[str, Any] = {}

    def enc(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = value.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(value, np.ndarray):
            key = f"t{len(tensors)}"
            arr = value.astype(np.int64) if value.dtype == np.uint32 else value  # safetensors has no uint32 in torch<2.3
            tensors[key] = torch.from_numpy(np.ascontiguousarray(arr)).clone()
            return {"__ndarray__": key, "dtype": str(value.dtype)}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, tuple):
            return {"__tuple__": [enc(v) for v in value]}
        if isinstance(value, list):
            return [enc(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: enc(v) for k, v in value.items()}
            return {"__dict__": [[enc(k), enc(v)] for k, v in value.items()]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"a training state holds a {type(value).__name__}, which a checkpoint cannot store")

    return enc(tree), tensors


def decode_tree(skeleton: Any, tensors: dict[str, Any]) -> Any:
    """The inverse of `encode_tree`; `Damaged` when the skeleton names a tensor that is not there."""
    import numpy as np

    def dec(value: Any) -> Any:
        if isinstance(value, list):
            return [dec(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "__tensor__" in value or "__ndarray__" in value:
            key = value.get("__tensor__", value.get("__ndarray__"))
            if key not in tensors:
                raise Damaged(f"the state names a tensor {key!r} that trainer.safetensors does not hold")
            if "__tensor__" in value:
                return tensors[key]
            return tensors[key].numpy().astype(np.dtype(str(value.get("dtype", "int64"))))
        if "__tuple__" in value:
            return tuple(dec(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_hashable(dec(k)): dec(v) for k, v in value["__dict__"]}
        return {k: dec(v) for k, v in value.items()}

    try:
        return dec(skeleton)
    except (TypeError, ValueError) as exc:
        raise Damaged(f"trainer.json does not describe a training state ({exc})") from exc


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# ---- writing ----

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def write_checkpoint(folder: Path, step: int, *, lora: dict[str, Any], optimizer: dict[str, Any],
                     scheduler: dict[str, Any], scaler: dict[str, Any] | None, rng: dict[str, Any],
                     state: dict[str, Any]) -> Path:
    """Write ``folder/step-NNNNNNN`` whole (temporary sibling, renamed), `state.json` last."""
    from safetensors.torch import save

    ensure_dir(folder)
    final = folder / f"step-{step:07d}"
    tmp = folder / f".step-{step:07d}.incomplete"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        ensure_dir(tmp)
        atomic_write_bytes(tmp / "lora.safetensors",
                           save({k: v.detach().float().cpu().contiguous() for k, v in lora.items()}))
        skeleton, tensors = encode_tree({"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "rng": rng})
        atomic_write_bytes(tmp / "trainer.safetensors", save(tensors, metadata={"format": str(FORMAT)}))
        atomic_write_json(tmp / "trainer.json", {"format": FORMAT, "tree": skeleton})
        files = {name: _sha256(tmp / name) for name in STATE_FILES}
        atomic_write_json(tmp / "state.json", {**state, "step": step, "format": FORMAT, "files": files})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written checkpoint never stays behind
        raise
    return final


# ---- reading ----

def read_state(ckpt: Path) -> dict[str, Any]:
    """A checkpoint's `state.json`, checked: `Damaged` when it does not parse or has no whole step."""
    try:
        state = json.loads((ckpt / "state.json").read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise Damaged("state.json is missing") from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise Damaged(f"state.json does not parse ({exc})") from exc
    if not isinstance(state, dict):
        raise Damaged(f"state.json holds a {type(state).__name__}, not a mapping")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise Damaged(f"state.json's step is {step!r}")
    losses = state.get("losses", [])
    if not isinstance(losses, list) or not all(isinstance(h, dict) and isinstance(h.get("loss"), (int, float))
                                               for h in losses):
        raise Damaged("state.json's losses are not a list of {step, loss}")
    return state


def read_checkpoint(ckpt: Path) -> CheckpointData:
    """Read and check every file of one checkpoint (nothing is applied); `Damaged` says why not."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    state = read_state(ckpt)
    if state.get("format") != FORMAT:
        return _read_legacy(ckpt, state)
    files = state.get("files")
    if not isinstance(files, dict):
        raise Damaged("state.json lists no file hashes")
    for name in STATE_FILES:
        path = ckpt / name
        if not path.is_file():
            raise Damaged(f"{name} is missing")
        if _sha256(path) != files.get(name):
            raise Damaged(f"{name} does not match the hash recorded when it was written")
    try:
        lora = load_file(str(ckpt / "lora.safetensors"))
        tensors = load_file(str(ckpt / "trainer.safetensors"))
        meta = json.loads((ckpt / "trainer.json").read_bytes().decode("utf-8"))
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise Damaged(f"a state file does not parse ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise Damaged("trainer.json is not a format-2 training state")
    tree = decode_tree(meta.get("tree"), tensors)
    if not isinstance(tree, dict) or not isinstance(tree.get("optimizer"), dict) \
            or not isinstance(tree.get("scheduler"), dict) or not isinstance(tree.get("rng"), dict):
        raise Damaged("trainer.json lacks the optimizer, scheduler or RNG state")
    return CheckpointData(ckpt, state, lora, tree["optimizer"], tree["scheduler"], tree.get("scaler"), tree["rng"])


def _read_legacy(ckpt: Path, state: dict[str, Any]) -> CheckpointData:
    """A checkpoint from before format 2 (``*.pt`` pickles), read with weights_only=True: data, never code."""
    import numpy as np
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    # numpy's RNG state pickles as an ndarray: allow exactly the constructors that rebuild one
    allowed: list[Any] = [np.ndarray, np.dtype]
    with contextlib.suppress(AttributeError, ImportError):
        from numpy._core.multiarray import _reconstruct

        allowed.append(_reconstruct)
    with contextlib.suppress(AttributeError, ImportError):
        from numpy.core.multiarray import _reconstruct as _old_reconstruct  # numpy < 2

        allowed.append(_old_reconstruct)
    allowed += [type(np.dtype(t)) for t in ("uint32", "int64", "float64", "uint8")]

    def load(name: str) -> Any:
        scoped = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5; 2.4 has only the global list
        if scoped is None:
            torch.serialization.add_safe_globals(allowed)
            return torch.load(ckpt / name, map_location="cpu", weights_only=True)
        with scoped(allowed):
            return torch.load(ckpt / name, map_location="cpu", weights_only=True)

    try:
        lora = load_file(str(ckpt / "lora.safetensors"))
        optimizer, scheduler, rng = load("optimizer.pt"), load("scheduler.pt"), load("rng.pt")
        scaler = load("scaler.pt") if (ckpt / "scaler.pt").is_file() else None
    except (SafetensorError, FileNotFoundError) as exc:
        raise Damaged(f"a state file is missing or does not parse ({exc})") from exc
    except Exception as exc:  # torch's unpickler refuses anything outside the allow-list with its own errors
        raise Damaged(f"a .pt state file does not load as plain data ({type(exc).__name__}: {exc})") from exc
    if not all(isinstance(x, dict) for x in (optimizer, scheduler, rng)):
        raise Damaged("a .pt state file does not hold a state dict")
    return CheckpointData(ckpt, state, lora, optimizer, scheduler, scaler, rng, ["read a format-1 (.pt) checkpoint"])


def newest_intact(checkpoints: list[Path], check: Any = None) -> CheckpointData | None:
    """The newest checkpoint that reads whole (and passes `check(data)`, which raises `Damaged` otherwise).

    Every newer one that does not is moved to ``checkpoints/quarantine/`` with one warning each, so the
    next resume does not meet it again; None when no checkpoint is intact.
    """
    for ckpt in reversed(checkpoints):
        try:
            data = read_checkpoint(ckpt)
            if check is not None:
                check(data)
            return data
        except Damaged as exc:
            quarantine(ckpt, reason=f"damaged checkpoint: {exc}")
    return None


def damaged_run_error(run_name: str, why: str) -> TrainingFailedError:
    return TrainingFailedError(f"The training run {run_name!r} cannot be read: {why}.", argument="name",
                               value=run_name, hint="Its damaged files were moved to quarantine/; start a new run "
                               "with `train(..., name=...)` if no intact copy is left.")
