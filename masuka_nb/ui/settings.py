"""The Settings tab: this runtime and its GPU, which API keys are set (never their values), MASUKA's
folders, what each model has cached locally and on Drive, and the app's theme.

Reads settings, the runtime probe, secrets (presence only) and folder sizes; it changes nothing but
the theme class on the app.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import LABEL_STYLE, Panel, card, section, wide
from masuka_nb.ui.helpers import esc, fmt_bytes

__all__ = ["API_KEYS", "SettingsPanel", "folder_bytes"]

# The keys MASUKA's providers read (Colab Secrets or the environment), and what each one unlocks.
API_KEYS: tuple[tuple[str, str], ...] = (
    ("HF_TOKEN", "gated Hub models (FLUX.1-dev, SD3.5) and pushing LoRAs"),
    ("FAL_KEY", "fal: video models and cloud LoRA training"),
    ("REPLICATE_API_TOKEN", "Replicate: cloud LoRA training"),
    ("COMETAPI_KEY", "CometAPI: Veo / Sora video"),
    ("KLING_ACCESS_KEY", "Kling video (with KLING_SECRET_KEY)"),
    ("RUNWAYML_API_SECRET", "Runway video"),
)
THEMES = (("follow the notebook", "auto"), ("light", "light"), ("dark", "dark"))


def folder_bytes(path: Path) -> int | None:
    """Bytes under `path` (None when it does not exist). Symlinks are not followed."""
    if not path.exists():
        return None
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def _key_set(name: str) -> bool:
    from masuka_nb.secrets import has_secret

    try:
        return has_secret(name)
    except Exception:  # a Secrets panel that refuses access counts as "not set"
        return False


class SettingsPanel(Panel):
    title = "Settings"

    def __init__(self, *, on_theme: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_theme = on_theme
        self.runtime_html = widgets.HTML("")
        self.keys_html = widgets.HTML("")
        self.folders_html = widgets.HTML("")
        self.cache_html = widgets.HTML('<div class="mk-empty">Open this tab to measure the caches.</div>')
        self.theme = widgets.Dropdown(options=THEMES, value="auto", description="Theme", style=LABEL_STYLE,
                                      layout=wide("320px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="auto"))
        self.theme.observe(self._on_theme_change, names="value")
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.children = [
            card(section("Runtime"), self.runtime_html),
            card(section("API keys"), self.keys_html),
            card(section("Folders"), self.folders_html),
            card(section("Model cache"), self.cache_html, self.refresh_button),
            card(section("Look"), self.theme),
            self.notice,
        ]
        self._busy_buttons = [self.refresh_button]
        self.loaded = False

    def _on_theme_change(self, change: dict[str, Any]) -> None:
        if self._on_theme is not None:
            self._on_theme(change["new"])

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self._run("refresh", self.refresh)

    def refresh(self) -> None:
        from masuka_nb.config import settings
        from masuka_nb.runtime import detect_quick, meaning

        info = detect_quick()
        s = settings()
        gpu = (f"{info.gpu_name} ×{info.gpu_count} · {info.vram_gb:.0f} GiB · "
               + ("bf16" if info.bf16 else "fp16 (no bf16 hardware)")) if info.has_gpu else "none"
        rows = [("where", "Google Colab" if info.colab else "Jupyter / Voila"), ("Python", info.python),
                ("GPU", gpu), ("RAM", f"{info.ram_gb:.1f} GiB"), ("disk free", f"{info.disk_free_gb:.0f} GiB"),
                ("Drive", "mounted" if info.drive_mounted else "not mounted"),
                ("offline", "yes" if s.offline else "no")]
        notes = "".join(f'<div class="mk-muted">{esc(m)}</div>' for m in meaning(info))
        self.runtime_html.value = _kv(rows) + notes
        keys = []
        for name, what in API_KEYS:
            ok = _key_set(name)
            badge = '<span class="mk-chip mk-ok">set</span>' if ok else '<span class="mk-chip">not set</span>'
            keys.append(f"<tr><td><code>{esc(name)}</code></td><td>{badge}</td><td>{esc(what)}</td></tr>")
        self.keys_html.value = (f'<table class="mk-kv" data-testid="mk-keys">{"".join(keys)}</table>'
                                '<div class="mk-muted">Values are never shown. In Colab add keys in the Secrets '
                                "panel (key icon) and allow notebook access.</div>")
        folders = [("home", s.home), ("outputs", s.outputs_dir), ("LoRAs", s.loras_dir),
                   ("datasets", s.datasets_dir), ("history", s.history_dir), ("hosted jobs", s.jobs_dir),
                   ("models (persistent)", s.models_dir), ("cache (this session)", s.cache_dir)]
        self.folders_html.value = _kv([(k, str(v)) for k, v in folders])
        self.cache_html.value = _cache_table(s)
        self.loaded = True


def _cache_table(s: Any) -> str:
    from masuka_nb.models.registry import list_models

    rows = []
    for spec in list_models():
        if spec.tiny or not getattr(spec, "repo", ""):
            continue
        rel = spec.repo.replace("/", "--")
        local = folder_bytes(s.cache_dir / "models" / rel)
        drive = folder_bytes(s.models_dir / rel)
        rows.append(f"<tr><td>{esc(spec.title)}</td><td>{esc(fmt_bytes(local) if local else '–')}</td>"
                    f"<td>{esc(fmt_bytes(drive) if drive else '–')}</td></tr>")
    head = "<tr><td><b>model</b></td><td><b>this session</b></td><td><b>persistent (Drive)</b></td></tr>"
    return f'<table class="mk-kv" data-testid="mk-cache">{head}{"".join(rows)}</table>'


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows if v not in ("", None))
    return f'<table class="mk-kv">{body}</table>'
