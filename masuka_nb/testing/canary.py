"""A canary API key and a scanner that proves it never landed anywhere it should not.

    key = make_canary()                      # looks like a key, unique per run
    os.environ["RUNWAYML_API_SECRET"] = key
    ...                                      # run the flows
    assert find_canary(key, [home, log_file, "notebook.ipynb"]) == []

The scan reads every file under the given paths as bytes and looks for the key as written, URL-encoded,
base64-encoded and JSON-escaped, so a key hidden in a header dump or a notebook output is found too.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

__all__ = ["find_canary", "make_canary"]


def make_canary(prefix: str = "sk-canary") -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _forms(key: str) -> list[bytes]:
    raw = key.encode()
    return [raw, quote(key, safe="").encode(), base64.b64encode(raw)[:-4] or raw,
            key.replace("-", "\\u002d").encode()]


def find_canary(key: str, paths: Iterable[str | os.PathLike[str]], *, texts: Iterable[str] = ()) -> list[str]:
    """Where the canary appears: file paths (and 'text #n' for in-memory texts such as log records)."""
    forms = _forms(key)
    hits: list[str] = []
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
        for f in files:
            try:
                data = f.read_bytes()
            except OSError:
                continue
            if any(form in data for form in forms):
                hits.append(str(f))
    for i, text in enumerate(texts):
        if any(form.decode() in text for form in forms):
            hits.append(f"text #{i}")
    return hits
