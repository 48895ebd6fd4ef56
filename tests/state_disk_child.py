"""Run by tests/test_fault_matrix_state.py in a child process: generate, batch, dataset import and training
on a disk that fills up half way, then on a read-only one, with a result line (JSON) per scenario.

    unshare -rm sh -c 'mount -t tmpfs -o size=8m tmpfs MNT && exec python state_disk_child.py MNT tmpfs'
    python state_disk_child.py MNT rlimit        # where no mount namespace is allowed

`tmpfs`: a real small file system, filled with a filler file (ENOSPC), remounted read-only (EROFS).
`rlimit`: RLIMIT_FSIZE 0 with SIGXFSZ ignored (every growing write fails with EFBIG, which MASUKA files
under DISK_FULL too) and, when not root, chmod a-w for read-only. Between scenarios the space is freed,
and every file that existed before a scenario must still be there with the same bytes afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import traceback
from pathlib import Path

MNT = Path(sys.argv[1])
MODE = sys.argv[2]
HOME = MNT / "home"
FILLER = MNT / "filler.bin"
os.environ["MASUKA_HOME"] = str(HOME)
os.environ["MASUKA_RESULT_CACHE"] = "0"
os.environ["MASUKA_PROGRESS"] = "off"
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import masuka_nb as mk  # noqa: E402
from masuka_nb.errors import MasukaError  # noqa: E402

RESULTS: dict[str, dict] = {}
ARGS = {"model": "tiny-flux", "width": 64, "height": 64, "steps": 1}


def png(k: int) -> bytes:
    arr = np.random.default_rng(k).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def fill() -> None:
    if MODE == "rlimit":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        return
    with open(FILLER, "ab", buffering=0) as fh:  # unbuffered: nothing left to fail at close
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            while True:
                try:
                    fh.write(b"\0" * size)
                except OSError:
                    break


def free() -> None:
    if MODE == "rlimit":
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        return
    FILLER.unlink(missing_ok=True)


def read_only(on: bool, folder: Path = MNT) -> bool:
    if MODE == "tmpfs":
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(folder)], check=True)
        return True
    if os.geteuid() == 0:
        return False  # root ignores permissions: no read-only place to make here
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555 if on else 0o755)
    return True


def snapshot() -> dict[str, str]:
    out = {}
    for p in HOME.rglob("*"):
        if p.is_file():
            out[str(p.relative_to(HOME))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def half_written() -> list[str]:
    """Temporary files left behind, and state files that do not parse."""
    bad = [str(p) for p in HOME.rglob("*") if ".incomplete" in p.name or p.name.endswith(".part")]
    for p in HOME.rglob("*.json"):
        try:
            json.loads(p.read_bytes())
        except ValueError:
            bad.append(str(p))
    for p in HOME.rglob("*.png"):
        try:
            with Image.open(p) as im:
                im.load()
        except OSError:
            bad.append(str(p))
    return bad


def scenario(name: str, fn) -> None:
    before = snapshot()
    out: dict = {"raised": None}
    try:
        out.update(fn() or {})
    except MasukaError as exc:
        out.update(raised="masuka", code=exc.code, message=str(exc))
    except BaseException as exc:  # what the matrix counts as a raw exception
        out.update(raised="raw", type=type(exc).__name__, message=str(exc)[:500], tb=traceback.format_exc()[-2000:])
    finally:
        free()
    after = snapshot()
    out["lost"] = sorted(k for k, v in before.items() if after.get(k) != v and not _may_change(k))
    out["half_written"] = half_written()
    RESULTS[name] = out


def _may_change(rel: str) -> bool:
    # files a scenario rewrites on purpose (the dataset manifest grows; its .bak is the copy before)
    return rel.endswith(("dataset.json", "dataset.json.bak", "run.json", "run.json.bak"))


def setup() -> None:
    mk.generate("an earlier picture", seed=1, **ARGS)
    from masuka_nb.lora import Dataset

    Dataset.create("ds").import_files([("earlier.png", png(0))])


def generate_full():
    fill()
    mk.generate("a red fox", seed=2, **ARGS)


def batch_full():
    filled = []

    def progress(event):
        if event.step >= 3 and not filled:  # group 1 (2 steps) saved and recorded; group 2 starts
            fill()
            filled.append(True)

    res = mk.batch(["a fox", "a hen", "a cow"], seeds=[5], chunk=1, progress=progress, resume=False,
                   **{**ARGS, "steps": 2})
    return {"status": res.status}


def import_full():
    from masuka_nb.lora import Dataset

    def files():
        yield ("one.png", png(1))
        fill()  # the disk fills after the first image is in
        yield ("two.png", png(2))
        yield ("three.png", png(3))

    Dataset.load("ds").import_files(files())


def train_full():
    from masuka_nb import lora
    from masuka_nb.lora import Dataset

    filled = []

    def progress(event):
        if event.data.get("global_step", 0) >= 3 and not filled:
            fill()
            filled.append(True)

    lora.train(Dataset.load("ds"), base="tiny-flux", trigger_word="mk", steps=6, checkpoint_every=2, resolution=32,
               target_modules="double-blocks", name="full-run", progress=progress)


def history_read_only():
    hist = MNT / "hist"
    hist.mkdir(exist_ok=True)
    if MODE == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(hist)], check=True)
    if not read_only(True, hist):
        return {"skipped": "no read-only place"}
    mk.configure(history_dir=str(hist))
    try:
        res = mk.generate("only the history is read-only", seed=9, **ARGS)
    finally:
        mk.configure(history_dir=None)
    return {"warnings": res.warnings, "paths": [str(p) for p in res.paths],
            "saved": all(Path(p).is_file() for p in res.paths) and bool(res.paths)}


def ro(fn):
    def run():
        if not read_only(True):
            return {"skipped": "no read-only place"}
        try:
            return fn()
        finally:
            read_only(False)
    return run


def generate_ro():
    mk.generate("a read-only fox", seed=3, **ARGS)


def batch_ro():
    mk.batch(["a fox", "a hen"], seeds=[6], chunk=1, resume=False, **ARGS)


def import_ro():
    from masuka_nb.lora import Dataset

    Dataset.load("ds").import_files([("four.png", png(4))])


def train_ro():
    from masuka_nb import lora
    from masuka_nb.lora import Dataset

    lora.train(Dataset.load("ds"), base="tiny-flux", trigger_word="mk", steps=2, resolution=32,
               target_modules="double-blocks", name="ro-run")


def after_train_full():
    """What the full-disk training left: the step-2 checkpoint must read whole."""
    from masuka_nb.lora.checkpoints import read_checkpoint

    ckpts = sorted((HOME / "training" / "full-run" / "checkpoints").glob("step-*"))
    data = read_checkpoint(ckpts[-1]) if ckpts else None
    return {"checkpoints": [c.name for c in ckpts], "intact_step": data.step if data else None}


if __name__ == "__main__":
    setup()
    for name, fn in (("generate_full", generate_full), ("batch_full", batch_full), ("import_full", import_full),
                     ("train_full", train_full), ("after_train_full", after_train_full),
                     ("history_read_only", history_read_only), ("generate_ro", ro(generate_ro)),
                     ("batch_ro", ro(batch_ro)), ("import_ro", ro(import_ro)), ("train_ro", ro(train_ro))):
        scenario(name, fn)
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    print("RESULTS " + json.dumps(RESULTS, default=str))
