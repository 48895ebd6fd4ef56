"""The Settings tab: what can be changed here (API keys for this session, the budget, MASUKA's home
folder, the look), then this runtime and its GPU, MASUKA's folders and what each model has cached.

Keys typed here go into this session only (`secrets.set_secret`): never shown again, never written to
disk, redacted from every message. Budget and home go through `masuka_nb.configure`. Disk and RAM are
measured again each time the tab is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import LABEL_STYLE, Notice, Panel, button, card, field_row, section, wide
from masuka_nb.ui.helpers import esc, fmt_bytes, fmt_money

__all__ = ["API_KEYS", "SettingsPanel", "folder_bytes"]

# The keys MASUKA's providers read (Colab Secrets or the environment), and what each one unlocks.
API_KEYS: tuple[tuple[str, str], ...] = (
    ("HF_TOKEN", "gated Hub models (FLUX.1-dev, SD3.5) and pushing LoRAs"),
    ("FAL_KEY", "fal: video models and cloud LoRA training"),
    ("REPLICATE_API_TOKEN", "Replicate: cloud LoRA training"),
    ("COMETAPI_KEY", "CometAPI: Veo / Sora video"),
    ("KLING_ACCESS_KEY", "Kling video (with KLING_SECRET_KEY)"),
    ("KLING_SECRET_KEY", "Kling video (with KLING_ACCESS_KEY)"),
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

    def __init__(self, *, on_theme: Callable[[str], None] | None = None,
                 on_change: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_theme = on_theme
        self._on_change = on_change
        # what can be changed
        self.key_name = widgets.Dropdown(options=[n for n, _ in API_KEYS], value="FAL_KEY", description="Key",
                                         style=LABEL_STYLE, layout=wide("300px"))
        self.key_value = widgets.Password(placeholder="paste the key (kept for this session only)",
                                          layout=wide("320px"))
        self.key_button = button("Use this key", "key", primary=True)
        self.keys_html = widgets.HTML("")
        self.budget = widgets.FloatText(value=0.0, step=1.0, description="Budget $", style=LABEL_STYLE,
                                        layout=wide("220px"))
        self.budget_button = button("Set budget", "check")
        self.budget_note = widgets.HTML("")
        self.home = widgets.Text(placeholder="/content/drive/MyDrive/MASUKA", description="Home folder",
                                 style=LABEL_STYLE, layout=wide("100%"))
        self.home_button = button("Use this folder", "folder-open")
        self.theme = widgets.Dropdown(options=THEMES, value="auto", description="Theme", style=LABEL_STYLE,
                                      layout=wide("320px"))
        self.form_notice = Notice()
        # what is measured
        self.runtime_html = widgets.HTML("")
        self.folders_html = widgets.HTML("")
        self.cache_html = widgets.HTML('<div class="mk-empty">Open this tab to measure the caches.</div>')
        self.refresh_button = button("Measure again", "refresh")
        self.fields = {"budget_usd": self.budget, "home": self.home, "key": self.key_value}
        self.labels = {"budget_usd": "Budget", "home": "Home folder"}
        self.theme.observe(self._on_theme_change, names="value")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.key_button.on_click(self._on_key_button_click)
        self.budget_button.on_click(self._on_budget_button_click)
        self.home_button.on_click(self._on_home_button_click)
        self.children = [
            card(section("API keys", "for this session; Colab's Secrets panel keeps them for good"),
                 field_row(self.key_name, self.key_value, self.key_button), self.keys_html),
            card(section("Budget", "paid video and cloud training"), field_row(self.budget, self.budget_button),
                 self.budget_note),
            card(section("Home folder", "outputs, LoRAs, history"), self.home, field_row(self.home_button)),
            card(section("Look"), self.theme),
            self.form_notice,
            card(section("This runtime"), self.runtime_html, field_row(self.refresh_button)),
            card(section("Folders"), self.folders_html),
            card(section("Model cache"), self.cache_html),
        ]
        self.notice = self.form_notice
        self.loaded = False

    def _on_theme_change(self, change: dict[str, Any]) -> None:
        if self._on_theme is not None:
            self._on_theme(change["new"])

    def _on_key_button_click(self, _b: widgets.Button) -> None:
        from masuka_nb.secrets import set_secret

        name, value = self.key_name.value, self.key_value.value
        self.key_value.value = ""  # the field never keeps (or echoes) it
        if not value.strip():
            self.form_notice.show("Paste a key into the field first.", "warning")
            return
        set_secret(name, value)
        self._keys()
        self.form_notice.show(f"{name} is set for this session.", "ok")
        self._changed()

    def _on_budget_button_click(self, _b: widgets.Button) -> None:
        from masuka_nb.config import configure

        value = float(self.budget.value or 0)
        if not 0 <= value <= 100000:
            self.form_notice.show("A budget is 0 (no limit) or a dollar amount.", "warning")
            return
        try:
            configure(budget_usd=value if value > 0 else None)
        except Exception as exc:  # a ConfigError: say it in words
            self._fail("budget", exc)
            return
        self._budget()
        self.form_notice.show("No budget: each paid run still asks first." if value <= 0 else
                              f"Budget set: paid runs stop at {fmt_money(value)} this session.", "ok")
        self._changed()

    def _on_home_button_click(self, _b: widgets.Button) -> None:
        from masuka_nb.config import configure

        text = self.home.value.strip()
        if not text:
            self.form_notice.show("Type a folder first (it is created if missing).", "warning")
            return
        try:
            folder = Path(text).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            configure(home=str(folder))
        except Exception as exc:  # not writable, a bad path: in words, at the field
            self._fail("home", exc)
            return
        self.refresh()
        self.form_notice.show(f"MASUKA now keeps everything in {folder}.", "ok")
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _keys(self) -> None:
        keys = []
        for name, what in API_KEYS:
            ok = _key_set(name)
            badge = '<span class="mk-chip mk-ok">set</span>' if ok else '<span class="mk-chip">not set</span>'
            keys.append(f'<div class="mk-key-row"><code>{esc(name)}</code>{badge}<span class="mk-muted">'
                        f"{esc(what)}</span></div>")
        self.keys_html.value = (f'<div class="mk-keys" data-testid="mk-keys">{"".join(keys)}</div>'
                                '<div class="mk-muted">Values are never shown.</div>')

    def _budget(self) -> None:
        from masuka_nb.config import settings
        from masuka_nb.hosted.pricing import session_spent

        budget = settings().budget_usd
        self.budget.value = float(budget or 0.0)
        self.budget_note.value = (f'<div class="mk-muted">Spent this session: {esc(fmt_money(session_spent()))}'
                                  + (f" of {esc(fmt_money(budget))}" if budget is not None else " (no budget set)")
                                  + ". Simulator and local runs are free.</div>")

    def refresh(self) -> None:
        from masuka_nb.config import settings
        from masuka_nb.runtime import detect_quick, meaning

        info = detect_quick()  # measured now: disk and RAM change during a session
        s = settings()
        gpu = (f"{info.gpu_name} ×{info.gpu_count} · {info.vram_gb:.0f} GiB · "
               + ("bf16" if info.bf16 else "fp16 (no bf16 hardware)")) if info.has_gpu else "none"
        rows = [("where", "Google Colab" if info.colab else "Jupyter / Voila"), ("Python", info.python),
                ("GPU", gpu), ("RAM", f"{info.ram_gb:.1f} GiB"), ("disk free", f"{info.disk_free_gb:.0f} GiB"),
                ("Drive", "mounted" if info.drive_mounted else "not mounted"),
                ("offline", "yes" if s.offline else "no")]
        notes = "".join(f'<div class="mk-muted">{esc(m)}</div>' for m in meaning(info))
        self.runtime_html.value = _kv(rows) + notes
        self._keys()
        self._budget()
        self.home.value = str(s.home)
        folders = [("home", s.home), ("outputs", s.outputs_dir), ("LoRAs", s.loras_dir),
                   ("datasets", s.datasets_dir), ("history", s.history_dir), ("hosted jobs", s.jobs_dir),
                   ("models (persistent)", s.models_dir), ("cache (this session)", s.cache_dir)]
        self.folders_html.value = _kv([(k, str(v)) for k, v in folders])
        self.cache_html.value = _cache_table(s)
        self.loaded = True
        self._changed_live(info)

    def _changed_live(self, info: Any) -> None:
        """Hook the app uses to refresh its header figures from the same measurement."""
        cb = getattr(self, "on_measured", None)
        if cb is not None:
            cb(info)


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
