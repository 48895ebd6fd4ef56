"""Process-wide set of secret values and the function that blanks them out of any text.

Kept in its own tiny module (no imports from the package) so that errors, logging, the job store
and the HTTP layer can all redact without import cycles.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_secrets: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember `value` so that `redact` removes it from every message from now on."""
    # Very short values would mask ordinary words; real API keys are long.
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def redact(text: object) -> str:
    """Return `text` as a string with every registered secret replaced by `***`."""
    out = str(text)
    if not _secrets:
        return out
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in out:
            out = out.replace(value, MASK)
    return out


def known_secret_count() -> int:
    return len(_secrets)
