"""The behaviour behind the stand-in `google.colab` package that `masuka_nb.testing.colab` writes.

Each function follows Colab's documented behaviour (see that module) and reads the rehearsal's
settings from the JSON file named by ``COLAB_STANDIN_CONFIG``; every call is appended to the
rehearsal's call log so a test can check what a notebook asked of Colab.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "NotebookAccessError",
    "SecretNotFoundError",
    "TimeoutException",
    "clear",
    "download",
    "enable_custom_widget_manager",
    "eval_js",
    "flush_and_unmount",
    "get",
    "mount",
    "no_vertical_scroll",
    "upload",
]


class SecretNotFoundError(Exception):
    """Colab's `google.colab.userdata.SecretNotFoundError`."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Secret {key} does not exist.")


class NotebookAccessError(Exception):
    """Colab's `google.colab.userdata.NotebookAccessError`."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Notebook does not have access to secret {key}")


class TimeoutException(Exception):
    """Colab's `google.colab.userdata.TimeoutException` (the Secrets request went unanswered)."""


def _config() -> dict[str, Any]:
    path = os.environ.get("COLAB_STANDIN_CONFIG")
    if not path:
        raise RuntimeError("google.colab here is MASUKA's rehearsal stand-in, and COLAB_STANDIN_CONFIG is not set.")
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _record(api: str, **fields: Any) -> None:
    with open(_config()["calls"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"api": api, **fields}) + "\n")


def _local(path: str | os.PathLike) -> Path:
    """Colab's `/content/...` inside the rehearsal's content folder; other paths as they are."""
    content = Path(_config()["content"])
    p = Path(path)
    if p == Path("/content") or Path("/content") in p.parents:
        return content / p.relative_to("/content")
    return p if p.is_absolute() else Path.cwd() / p


# ---- drive ----

def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    cfg = _config()
    _record("drive.mount", mountpoint=str(mountpoint), force_remount=force_remount)
    if not cfg.get("drive_consent", True):
        raise ValueError("mount failed")
    target = _local(mountpoint)
    if (target / "MyDrive").is_dir() and not force_remount:
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              f'drive.mount("{mountpoint}", force_remount=True).')
        return
    (target / "MyDrive").mkdir(parents=True, exist_ok=True)
    _refuse_symlinks(target)
    print(f"Mounted at {mountpoint}")


def _refuse_symlinks(drive: Path) -> None:
    """Drive has no symlinks: make `os.symlink` into the mount fail as it does there."""
    if getattr(os.symlink, "_masuka_rehearsal", False):
        return
    real = os.symlink

    def symlink(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        where = Path(dst).absolute()
        if where == drive or drive in where.parents:
            raise OSError(95, "Operation not supported (Google Drive has no symlinks)", str(dst))
        real(src, dst, *args, **kwargs)

    symlink._masuka_rehearsal = True  # type: ignore[attr-defined]
    os.symlink = symlink


def flush_and_unmount(timeout_ms: int = 86400000) -> None:
    _record("drive.flush_and_unmount")


# ---- userdata ----

def get(key: str) -> str:
    cfg = _config()
    _record("userdata.get", key=key)
    if key not in cfg.get("secrets", {}):
        raise SecretNotFoundError(key)
    if key in cfg.get("no_access", []):
        raise NotebookAccessError(key)
    return cfg["secrets"][key]


# ---- files ----

def upload(target_dir: str = "") -> dict[str, bytes]:
    cfg = _config()
    out = {name: bytes.fromhex(data) for name, data in cfg.get("uploads", {}).items()}
    folder = Path.cwd() / target_dir if target_dir else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in out.items():
        (folder / name).write_bytes(data)
        print(f"Saving {name} to {folder / name}")
    _record("files.upload", names=sorted(out), target_dir=target_dir)
    return out


def download(filename: str) -> None:
    path = Path(filename)
    if not path.exists():
        raise FileNotFoundError(f"Cannot find file: {filename}")
    _record("files.download", path=str(path.resolve()))


# ---- output ----

def no_vertical_scroll() -> None:
    _record("output.no_vertical_scroll")


def enable_custom_widget_manager() -> None:
    _record("output.enable_custom_widget_manager")


def clear(wait: bool = False, output_tags: Any = ()) -> None:
    _record("output.clear")


def eval_js(script: str, ignore_result: bool = False, timeout_sec: float | None = None) -> Any:
    _record("output.eval_js", script=script[:200])
    return None
