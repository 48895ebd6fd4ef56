"""API keys: read from Colab Secrets, then the environment; never printed, logged or stored.

Every value `get_secret` returns is registered with the redactor, so it is blanked out of error
messages, log records, job records and history entries from then on.
"""

from __future__ import annotations

import os

from masuka_nb._redact import redact, register_secret
from masuka_nb.errors import SecretMissingError

__all__ = ["get_secret", "has_secret", "redact", "register_secret", "set_secret"]


def _from_colab(name: str) -> str | None:
    if "google.colab" not in __import__("sys").modules:
        return None
    try:
        from google.colab import userdata  # type: ignore[import-not-found]

        return userdata.get(name) or None
    except Exception:  # missing secret or notebook access not granted: fall through to env
        return None


def get_secret(name: str, *, required: bool = True, purpose: str | None = None) -> str | None:
    """The secret `name` from Colab Secrets or the environment variable of that name.

    Raises `SecretMissingError` (code SECRET_MISSING) that says where to add it, unless
    ``required=False`` (then returns None).
    """
    value = _from_colab(name) or os.environ.get(name) or None
    if value:
        value = value.strip()
        register_secret(value)
        return value
    if not required:
        return None
    why = f" (needed for {purpose})" if purpose else ""
    raise SecretMissingError(
        f"The secret `{name}` is not set{why}.",
        argument="name",
        value=name,
        hint=(
            f"In Colab: open the key icon (Secrets) in the left bar, add `{name}` and switch on notebook "
            f"access. Elsewhere: `export {name}=...` before starting Python, or `os.environ['{name}'] = ...`."
        ),
    )


def has_secret(name: str) -> bool:
    return get_secret(name, required=False) is not None


def set_secret(name: str, value: str | None) -> None:
    """Use `value` as the secret `name` for the rest of this session (the app's Settings tab: typed, never
    shown); it is redacted from then on. Nothing is written to disk. None or "" forgets it."""
    if not value or not str(value).strip():
        os.environ.pop(name, None)
        return
    value = str(value).strip()
    register_secret(value)
    os.environ[name] = value
