"""Settings: where MASUKA keeps things and how it behaves, from `MASUKA_*` variables and `configure()`.

Resolved every time `settings()` is called (never at import), so a later notebook cell that mounts
Drive, sets an environment variable or calls `configure(...)` changes what the next call sees.
Precedence: `configure(**overrides)` > environment (`MASUKA_<KEY>`) > computed default.

Home defaults to ``/content/drive/MyDrive/MASUKA`` when Drive is mounted in Colab, else to
``/content/masuka`` in Colab, else ``~/masuka``. Every folder under it can be set on its own.
The local cache (tiny models, session copies of model files) never defaults to Drive: Drive is slow
and has no symlinks, so only the persistent copies live there.

This is the one settings table: every ``MASUKA_*`` variable MASUKA reads is a field here, parsed by
the same strict parsers (a malformed value is an ``INVALID_SETTING`` error naming the variable), listed
by ``settings().describe()`` and settable with ``configure()``. Hosted-API timing travels as one small
value object, ``settings().http`` (an `HttpTiming`, in the style of ``httpx.Timeout``).
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from masuka_nb import runtime
from masuka_nb.errors import ConfigError

__all__ = ["HttpTiming", "Settings", "check_url", "configure", "reset_configuration", "settings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEVICES = ("auto", "cpu", "cuda", "mps")
PROGRESS_MODES = ("auto", "tqdm", "off")
DRIVE_ROOT = Path("/content/drive/MyDrive")


@dataclass(frozen=True)
class HttpTiming:
    """How hosted-API calls are timed: one value object, like ``httpx.Timeout``.

        HttpTiming()                          # 30 s per read, 5 tries, backoff 0.5 s doubling to 20 s
        HttpTiming(timeout=5, retries=2)      # impatient
        masuka_nb.configure(http_timeout=60)  # the same through the settings table

    `connect` is the connect timeout (never above `timeout`); `backoff` × 2^n with full jitter, capped
    at `backoff_max`, spaces retries (`delay(n)`); a provider's Retry-After longer than `max_retry_after` is
    not waited. It is what every hosted-API client runs on (`hosted.http.ProviderClient(timing=...)`), and
    `configure(http=HttpTiming(...))` sets it for the process.
    """

    timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 20.0
    connect: float = 10.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "connect", min(self.connect, self.timeout))

    def delay(self, attempt: int) -> float:
        """Seconds before retry `attempt` (0 first): full jitter, uniform in [0, min(cap, backoff·2^attempt)],
        which spreads many clients apart."""
        import random

        return random.uniform(0, min(self.backoff_max, self.backoff * (2**attempt)))


# Provider base URLs that may be pointed elsewhere (the offline simulator, a proxy).
PROVIDER_URLS = ("cometapi", "fal", "fal_storage", "kling", "replicate", "runway", "civitai")


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
    training_dir: Path
    presets_dir: Path
    wildcards_dir: Path
    inbox_dir: Path
    cache_dir: Path
    device: str
    offline: bool
    result_cache: bool
    log_level: str
    progress: str
    budget_usd: float | None
    strict: bool
    default_model: str
    drive_root: Path
    http_timeout: float
    http_retries: int
    http_backoff: float
    http_backoff_max: float
    poll_interval: float | None
    job_not_found_grace: float
    breaker_threshold: int
    breaker_cooldown: float
    allow_private_redirects: bool
    cometapi_base_url: str | None
    fal_base_url: str | None
    fal_storage_base_url: str | None
    kling_base_url: str | None
    replicate_base_url: str | None
    runway_base_url: str | None
    civitai_base_url: str | None
    gcs_endpoint_url: str | None
    s3_endpoint_url: str | None

    @property
    def http(self) -> HttpTiming:
        """The hosted-API timing as one value object."""
        return HttpTiming(timeout=self.http_timeout, retries=self.http_retries, backoff=self.http_backoff,
                          backoff_max=self.http_backoff_max)

    def base_url(self, provider: str) -> str | None:
        """The base URL set for `provider` (`MASUKA_<PROVIDER>_BASE_URL`), or None for its own."""
        return getattr(self, f"{provider}_base_url", None)

    def describe(self) -> str:
        """Every setting, its value and the environment variable that sets it, one per line."""
        width = max(len(f.name) for f in fields(self))
        return "\n".join(f"{f.name:<{width}}  {getattr(self, f.name)!s:<40}  MASUKA_{f.name.upper()}"
                         for f in fields(self))


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


def _as_number(kind: type, *, minimum: float, allow_none: bool = False, what: str = "seconds"):
    def parse(key: str, raw: Any) -> Any:
        if allow_none and (raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "auto"))):
            return None
        expected = f"{'a whole number' if kind is int else 'a number'} of {what} ≥ {minimum:g}" + (
            " (or None for the provider's own)" if allow_none else "")
        if isinstance(raw, bool):
            raise _bad(key, raw, expected)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise _bad(key, raw, expected) from None
        if kind is int and not number.is_integer():
            raise _bad(key, raw, expected)
        value = int(number) if kind is int else number
        if value != value or value < minimum or value == float("inf"):
            raise _bad(key, raw, expected)
        return value

    return parse


def _as_url(key: str, raw: Any) -> str | None:
    text = str(raw).strip() if raw is not None else ""
    if not text:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(key, raw, "an http(s) URL such as 'http://127.0.0.1:8000'")
    return text.rstrip("/")


def check_url(argument: str, value: Any) -> str | None:
    """`value` as an http(s) base URL (None when empty), or an `INVALID_SETTING` error naming `argument`:
    the rule every base URL follows, in the settings table and wherever a call takes one."""
    return _as_url(argument, value)


def _as_model(key: str, raw: Any) -> str:
    """A model id or "auto". Which ids exist is the registry's to say, where the setting is used
    (`image.generation.resolve_model`): settings sit below the registry and do not import it."""
    text = str(raw).strip() if isinstance(raw, str) else ""
    if not text:
        raise _bad(key, raw, "a model id such as 'flux1-schnell', or 'auto'")
    return text


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "home": _as_path,
    "outputs_dir": _as_path,
    "history_dir": _as_path,
    "loras_dir": _as_path,
    "datasets_dir": _as_path,
    "jobs_dir": _as_path,
    "models_dir": _as_path,
    "training_dir": _as_path,
    "presets_dir": _as_path,
    "wildcards_dir": _as_path,
    "inbox_dir": _as_path,
    "cache_dir": _as_path,
    "device": _as_choice(DEVICES),
    "offline": _as_bool,
    "result_cache": _as_bool,
    "log_level": _as_choice(LOG_LEVELS, upper=True),
    "progress": _as_choice(PROGRESS_MODES),
    "budget_usd": _as_budget,
    "strict": _as_bool,
    "default_model": _as_model,
    "drive_root": _as_path,
    "http_timeout": _as_number(float, minimum=0.01),
    "http_retries": _as_number(int, minimum=1, what="attempts"),
    "http_backoff": _as_number(float, minimum=0),
    "http_backoff_max": _as_number(float, minimum=0),
    "poll_interval": _as_number(float, minimum=0, allow_none=True),
    "job_not_found_grace": _as_number(float, minimum=0),
    "breaker_threshold": _as_number(int, minimum=1, what="failures"),
    "breaker_cooldown": _as_number(float, minimum=0),
    "allow_private_redirects": _as_bool,
    **{f"{name}_base_url": _as_url for name in PROVIDER_URLS},
    "gcs_endpoint_url": _as_url,
    "s3_endpoint_url": _as_url,
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

    Pass ``None`` to drop an override; ``http=HttpTiming(...)`` sets the four ``http_*`` settings at once.
    Every key and value is checked before any is applied, so a bad call changes nothing::

        masuka_nb.configure(home="/content/drive/MyDrive/MASUKA", result_cache=False)
    """
    parsed: dict[str, Any] = {}
    timing = overrides.pop("http", None)
    if timing is not None:  # one value object for the four http_* settings
        if not isinstance(timing, HttpTiming):
            raise _bad("http", timing, "an HttpTiming, e.g. HttpTiming(timeout=60, retries=3)")
        overrides = {"http_timeout": timing.timeout, "http_retries": timing.retries, "http_backoff": timing.backoff,
                     "http_backoff_max": timing.backoff_max, **overrides}
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


def _default_home(drive_root: Path) -> Path:
    drive = runtime.drive_root(drive_root)
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
        drive_root = _raw("drive_root") or DRIVE_ROOT
        home = _raw("home") or _default_home(drive_root).resolve()
        values: dict[str, Any] = {"home": home, "drive_root": drive_root}
        for key, sub in (
            ("outputs_dir", "outputs"),
            ("history_dir", "history"),
            ("loras_dir", "loras"),
            ("datasets_dir", "datasets"),
            ("jobs_dir", "jobs"),
            ("models_dir", "models"),
            ("training_dir", "training"),
            ("presets_dir", "presets"),
            ("wildcards_dir", "wildcards"),
            ("inbox_dir", "inbox"),
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
            "http_timeout": HttpTiming.timeout,
            "http_retries": HttpTiming.retries,
            "http_backoff": HttpTiming.backoff,
            "http_backoff_max": HttpTiming.backoff_max,
            "poll_interval": None,
            "job_not_found_grace": 10.0,
            "breaker_threshold": 5,
            "breaker_cooldown": 30.0,
            # A public URL that redirects to loopback / private / link-local addresses is refused unless this
            # is on (a file server on your own network): a link someone sent must not reach into your network.
            "allow_private_redirects": False,
            **{f"{name}_base_url": None for name in PROVIDER_URLS},
            "gcs_endpoint_url": None,  # gs:// elsewhere (an emulator); None: Google Cloud Storage
            "s3_endpoint_url": None,  # s3:// elsewhere (MinIO, R2, a local server); None: AWS
        }
        for key, default in defaults.items():
            raw = _raw(key)
            values[key] = default if raw is None else raw
    return Settings(**values)


def _env_hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
