"""When the embedded tiny models stand in for the real ones, decided once for every engine.

The rule (generate, curate, caption, train and compare all ask `use_embedded_models()`):

- ``MASUKA_OFFLINE`` / ``HF_HUB_OFFLINE`` set, or no reachable Hugging Face Hub, **and** no CUDA GPU →
  the tiny models (their outputs are noise, labelled so). Said once per process, at INFO.
- a CUDA GPU → the real models. Their files come from a local copy; when none is there and the Hub
  cannot be reached, `require_hub()` raises `MODEL_FILES_MISSING` at once (naming the model, the files
  and the offline switch) instead of letting huggingface_hub / transformers retry for minutes.

Whether the Hub answers is probed once with a short timeout (`PROBE_TIMEOUT_S`) and cached: a
positive answer for the session, a negative one for `NEGATIVE_TTL_S` (a user may come back online).
The probe honours ``HF_ENDPOINT`` and the usual proxy variables. Stdlib + httpx only; no torch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from masuka_nb.config import settings
from masuka_nb.errors import ModelFilesMissingError
from masuka_nb.log import get_logger
from masuka_nb.runtime import detect

__all__ = [
    "EMBEDDED_NOTE",
    "hub_endpoint",
    "hub_reachable",
    "local_only_kwargs",
    "require_hub",
    "reset_probe",
    "use_embedded_models",
]

log = get_logger(__name__)

PROBE_TIMEOUT_S = 3.0
NEGATIVE_TTL_S = 60.0
EMBEDDED_NOTE = ("no CUDA GPU and no Hugging Face Hub here, so MASUKA uses its embedded tiny models "
                 "(their outputs are noise, for trying things out)")

_lock = threading.Lock()
_cache: dict[str, tuple[bool, float]] = {}
_said: set[str] = set()
# The cache's clock; a test may swap it for a fake one.
clock: Callable[[], float] = time.monotonic


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _probe(endpoint: str, timeout: float) -> bool:
    """Any HTTP answer from the Hub's API counts as reachable; a DNS, connect or read failure does not."""
    import httpx

    try:
        httpx.head(f"{endpoint}/api/models", timeout=timeout, follow_redirects=False)
        return True
    except (httpx.HTTPError, OSError, ValueError):
        return False


def hub_reachable(*, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when the Hugging Face Hub answers (cached; False at once when MASUKA is offline)."""
    if settings().offline:
        return False
    endpoint = hub_endpoint()
    now = clock()
    with _lock:
        hit = _cache.get(endpoint)
        if hit is not None and (hit[0] or now - hit[1] < NEGATIVE_TTL_S):
            return hit[0]
    ok = _probe(endpoint, timeout)
    with _lock:
        _cache[endpoint] = (ok, clock())
    if not ok:
        log.info("hub.unreachable", endpoint=endpoint, timeout_s=timeout)
    return ok


def reset_probe() -> None:
    """Forget the probe's answer and the notes already given (tests; after a network change)."""
    with _lock:
        _cache.clear()
        _said.clear()


def _has_gpu() -> bool:
    if settings().device == "cpu":
        return False
    return detect().has_gpu


def use_embedded_models(*, engine: str = "") -> bool:
    """True where the real models cannot be had (no CUDA GPU, and offline or no Hub): the tiny twins stand in.

    `engine` names the caller in the one INFO line said per process the first time the answer is True.
    """
    if _has_gpu():
        return False
    if not settings().offline and hub_reachable():
        return False
    with _lock:
        first = "embedded" not in _said
        _said.add("embedded")
    if first:
        log.info("embedded.models", engine=engine or "-", reason=EMBEDDED_NOTE)
    return True


def require_hub(*, model: str, repo: str, files: str = "its files", argument: str = "model") -> None:
    """Raise `MODEL_FILES_MISSING` now when `repo` would have to be downloaded and the Hub cannot be reached."""
    offline = settings().offline
    if not offline and hub_reachable():
        return
    why = "MASUKA is offline (MASUKA_OFFLINE / HF_HUB_OFFLINE)" if offline else \
        f"the Hugging Face Hub ({hub_endpoint()}) cannot be reached"
    raise ModelFilesMissingError(
        f"{model} needs {files} from {repo}, which are not on this machine, and {why}.",
        argument=argument, value=model,
        hint=f"Connect this runtime to the internet once to download {repo} (then it loads from the local copy), "
             f"copy the files into `masuka_nb.settings().models_dir`, or pick a tiny model (e.g. model='tiny-flux'). "
             "Without a GPU the tiny models are picked by themselves; `masuka_nb.configure(offline=True)` "
             "(or MASUKA_OFFLINE=1) says you are offline on purpose.",
    )


def _cached(repo: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, filename), str)
    except Exception:  # a damaged cache index is the same as no local copy
        return False


def local_only_kwargs(*, model: str, repo: str, probe_file: str = "config.json", files: str = "its files",
                      argument: str = "model") -> dict[str, bool]:
    """`from_pretrained` keywords for a Hub repo: `{}` when the Hub answers; `{"local_files_only": True}`
    when it does not but a local copy exists (no retries against a dead network); else `MODEL_FILES_MISSING`."""
    from pathlib import Path

    if Path(repo).is_dir() or (not settings().offline and hub_reachable()):
        return {}
    if _cached(repo, probe_file):
        return {"local_files_only": True}
    require_hub(model=model, repo=repo, files=files, argument=argument)
    return {"local_files_only": True}
