"""Settings: where MASUKA keeps things and how it behaves, from `MASUKA_*` variables and `configure()`.

Resolved every time `settings()` is called (never at import), so a later notebook cell that mounts
Drive, sets an environment variable or calls `configure(...)` changes what the next call sees.
Precedence: `configure(**overrides)` > environment (`MASUKA_<KEY>`) > computed default.

Home defaults to ``/content/drive/MyDrive/MASUKA`` when Drive is mounted in Colab, else to
``/content/masuka`` in Colab, else ``~/masuka``. Every folder under it can be set on its own.
The local cache (tiny models, session copies of model files) never defaults to Drive: Drive is slow
and has no symlinks, so only the persistent copies live there.
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from masuka_nb.errors import ConfigError

__all__ = ["Settings", "configure", "reset_configuration", "settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEVICES = ("auto", "cpu", "cuda", "mps")
PROGRESS_MODES = ("auto", "tqdm", "off")


@dataclass(frozen=True)
class Settings:
    """A resolved snapshot of every setting. Paths are absolute."""

    home: Path
    outputs_dir: Path
    history_dir: Path
    loras_dir: Path
    datasets_dir: Path
    jobs_dir: Path
    models_dir: Path
    cache_dir: Path
    device: str
    offline: bool
    result_cache: bool
    log_level: str
    progress: str
    budget_usd: float | None
    strict: bool
    default_model: str

    def describe(self) -> str:
        width = max(len(f.name) for f in fields(self))
        return "\n".join(f"{f.name:<{width}}  {getattr(self, f.name)}" for f in fields(self))


# ---- parsing helpers: each takes (key, raw) and returns the typed value or raises ConfigError ----

def _bad(key: str, raw: Any, expected: str) -> ConfigError:
    return ConfigError(
        f"Setting `{key}` cannot be {raw!r}: expected {expected}.",
        argument=key,
        value=raw,
        hint=f"Use `masuka_nb.configure({key}=...)` or the environment variable MASUKA_{key.upper()} "
        f"with {expected}.",
    )


def _as_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _bad(key, raw, "true/false (1/0, yes/no, on/off)")


def _as_path(key: str, raw: Any) -> Path:
    if not isinstance(raw, (str, os.PathLike)) or not str(raw).strip():
        raise _bad(key, raw, "a folder path")
    return Path(os.path.expandvars(str(raw))).expanduser().resolve()


def _as_choice(choices: tuple[str, ...], upper: bool = False) -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        text = str(raw).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise _bad(key, raw, "one of " + ", ".join(repr(c) for c in choices))
        return text

    return parse


def _as_budget(key: str, raw: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "off")):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _bad(key, raw, "a number of US dollars (or None for no budget)") from None
    if value < 0 or value != value:
        raise _bad(key, raw, "a number of US dollars ≥ 0 (or None for no budget)")
    return value


def _as_model(key: str, raw: Any) -> str:
    text = str(raw).strip()
    if text == "auto":
        return text
    from masuka_nb.models.registry import get_model  # local: registry is data only, but keep config tiny

    return get_model(text).id


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "home": _as_path,
    "outputs_dir": _as_path,
    "history_dir": _as_path,
    "loras_dir": _as_path,
    "datasets_dir": _as_path,
    "jobs_dir": _as_path,
    "models_dir": _as_path,
    "cache_dir": _as_path,
    "device": _as_choice(DEVICES),
    "offline": _as_bool,
    "result_cache": _as_bool,
    "log_level": _as_choice(LOG_LEVELS, upper=True),
    "progress": _as_choice(PROGRESS_MODES),
    "budget_usd": _as_budget,
    "strict": _as_bool,
    "default_model": _as_model,
}
KEYS = tuple(sorted(_PARSERS))

_lock = threading.Lock()
_overrides: dict[str, Any] = {}


def _unknown(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, KEYS, n=3)
    maybe = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(
        f"Unknown setting `{key}`.{maybe}",
        argument=key,
        value=key,
        hint="Valid settings: " + ", ".join(KEYS) + ".",
    )


def configure(**overrides: Any) -> Settings:
    """Set settings for this process (they beat environment variables) and return the result.

    Pass ``None`` to drop an override. Every key and value is checked before any is applied, so a
    bad call changes nothing::

        masuka_nb.configure(home="/content/drive/MyDrive/MASUKA", result_cache=False)
    """
    parsed: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in _PARSERS:
            raise _unknown(key)
        parsed[key] = None if raw is None else _PARSERS[key](key, raw)
    with _lock:
        for key, value in parsed.items():
            if value is None:
                _overrides.pop(key, None)
            else:
                _overrides[key] = value
    if "log_level" in parsed:
        import logging

        # The package logger's level is set once on first use; a later configure() must still apply.
        logging.getLogger("masuka_nb").setLevel(parsed["log_level"] or settings().log_level)
    return settings()


def reset_configuration() -> None:
    """Forget every `configure()` override (tests and fresh notebook runs use it)."""
    with _lock:
        _overrides.clear()


def _default_home() -> Path:
    from masuka_nb import runtime  # stdlib-only module

    drive = runtime.drive_root()
    if drive is not None:
        return drive / "MASUKA"
    if runtime.in_colab():
        return Path("/content/masuka")
    return Path.home() / "masuka"


def _default_cache() -> Path:
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "masuka"
    return Path.home() / ".cache" / "masuka"


def _raw(key: str) -> Any:
    if key in _overrides:
        return _overrides[key]
    env = os.environ.get(f"MASUKA_{key.upper()}")
    if env is not None:
        return _PARSERS[key](key, env)
    return None


def settings() -> Settings:
    """Resolve every setting now. Raises `ConfigError` naming the variable if one is malformed."""
    with _lock:
        home = _raw("home") or _default_home().resolve()
        values: dict[str, Any] = {"home": home}
        for key, sub in (
            ("outputs_dir", "outputs"),
            ("history_dir", "history"),
            ("loras_dir", "loras"),
            ("datasets_dir", "datasets"),
            ("jobs_dir", "jobs"),
            ("models_dir", "models"),
        ):
            values[key] = _raw(key) or home / sub
        values["cache_dir"] = _raw("cache_dir") or _default_cache().resolve()
        defaults = {
            "device": "auto",
            "offline": _env_hub_offline(),
            "result_cache": True,
            "log_level": "WARNING",
            "progress": "auto",
            "budget_usd": None,
            "strict": False,
            "default_model": "auto",
        }
        for key, default in defaults.items():
            raw = _raw(key)
            values[key] = default if raw is None else raw
    return Settings(**values)


def _env_hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
