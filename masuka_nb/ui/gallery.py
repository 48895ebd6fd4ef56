"""The History tab: everything MASUKA made (images, videos, trainings, comparisons), searchable, with
thumbnails, each record's recipe, and "Use in Image tab" to start again from a recipe.

It reads `masuka_nb.history` only; it never writes to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.history import KINDS, HistoryRecord, query
from masuka_nb.ui.components import LABEL_STYLE, Gallery, Panel, card, field_row, wide
from masuka_nb.ui.helpers import esc, record_title

__all__ = ["HistoryPanel"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class HistoryPanel(Panel):
    title = "History"

    def __init__(self, *, page_size: int = 24, on_use_recipe: Callable[[HistoryRecord], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size
        self.records: list[HistoryRecord] = []
        self.selected: HistoryRecord | None = None
        self._on_use_recipe = on_use_recipe
        self.kind = widgets.Dropdown(options=[("everything", ""), *[(k, k) for k in KINDS]], value="",
                                     description="Show", style=LABEL_STYLE, layout=wide("240px"))
        self.status = widgets.Dropdown(options=[("any status", ""), ("ok", "ok"), ("failed", "failed"),
                                                ("cancelled", "cancelled")], value="",
                                       layout=wide("140px"))
        self.text = widgets.Text(placeholder="search prompts and recipes", layout=wide("260px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="auto"))
        self.more_button = widgets.Button(description="Show more", layout=widgets.Layout(width="auto", display="none"))
        self.count = widgets.HTML("")
        self.gallery = Gallery(thumb=180, empty="Nothing recorded yet: make something in another tab.")
        self.detail = widgets.HTML("")
        self.player = widgets.Video(format="mp4", autoplay=False, controls=True,
                                    layout=widgets.Layout(width="480px", display="none"))
        self.use_button = widgets.Button(description="Use in Image tab", icon="edit",
                                         layout=widgets.Layout(width="auto", display="none"))
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.more_button.on_click(self._on_more_button_click)
        self.use_button.on_click(self._on_use_button_click)
        for w in (self.kind, self.status):
            w.observe(self._on_filter_change, names="value")
        self.text.observe(self._on_filter_change, names="value")
        filters = card(field_row(self.kind, self.status, self.text, self.refresh_button), self.count)
        self.children = [filters, self.notice, self.gallery, self.more_button, card(self.detail, self.player, self.use_button)]
        self.refresh()

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self._run("refresh", self.refresh)

    def _on_more_button_click(self, _b: widgets.Button) -> None:
        self.page_size += 24
        self._run("refresh", self.refresh)

    def _on_filter_change(self, _change: dict[str, Any]) -> None:
        self._run("search", self.refresh)

    def _on_use_button_click(self, _b: widgets.Button) -> None:
        if self.selected is not None and self._on_use_recipe is not None:
            self._on_use_recipe(self.selected)

    def refresh(self) -> None:
        recs = query(kind=self.kind.value or None, status=self.status.value or None,
                     text=self.text.value.strip() or None, limit=self.page_size + 1)
        self.more_button.layout.display = "" if len(recs) > self.page_size else "none"
        self.records = recs[: self.page_size]
        items, buttons = [], []
        for rec in self.records:
            items.append((_thumbnail(rec), _caption(rec)))
            button = widgets.Button(description="Details", layout=widgets.Layout(width="auto"))
            button.on_click(lambda _b, rec=rec: self.select(rec))
            buttons.append(button)
        self.gallery.set_items(items, extra=buttons)
        self.count.value = f'<span class="mk-muted">{len(self.records)} shown</span>'
        if self.selected is None and self.records:
            self.select(self.records[0])

    def select(self, rec: HistoryRecord) -> None:
        self.selected = rec
        rows = [("kind", rec.kind), ("status", rec.status), ("when", rec.created_at), ("model", rec.model),
                ("prompt", rec.prompt)]
        rows += [(k, v) for k, v in sorted((rec.recipe or {}).items()) if k not in ("prompt", "model")]
        if rec.error:
            rows.append(("error", f"[{rec.error.get('code')}] {rec.error.get('message')}"))
        rows += [("file", p) for p in rec.paths[:8]]
        body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows if v not in ("", None))
        self.detail.value = f'<table class="mk-kv" data-testid="mk-record">{body}</table>'
        self.use_button.layout.display = "" if rec.kind == "image" and self._on_use_recipe else "none"
        clip = next((Path(p) for p in rec.paths if str(p).lower().endswith(".mp4") and Path(p).is_file()), None)
        if clip is not None and rec.kind == "video":
            self.player.value = clip.read_bytes()
            self.player.layout.display = ""
        else:
            self.player.layout.display = "none"


def _caption(rec: HistoryRecord) -> str:
    when = (rec.created_at or "")[:16].replace("T", " ")
    status = "" if rec.status == "ok" else f" · {rec.status.upper()}"
    return f"{record_title(rec, limit=70)}{status} · {when}"


_PLACEHOLDER: dict[str, bytes] = {}


def _placeholder(kind: str) -> bytes:
    """A flat tile for records without a picture (training, failures)."""
    if kind not in _PLACEHOLDER:
        from PIL import Image, ImageDraw, ImageFont

        from masuka_nb.ui.helpers import png_bytes

        img = Image.new("RGB", (240, 240), (58, 52, 92))
        try:
            font = ImageFont.load_default(size=30)
        except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
            font = ImageFont.load_default()
        draw = ImageDraw.Draw(img)
        left, top, right, bottom = draw.textbbox((0, 0), kind.upper(), font=font)
        draw.text(((240 - right + left) / 2, (240 - bottom + top) / 2), kind.upper(), fill=(225, 220, 255), font=font)
        _PLACEHOLDER[kind] = png_bytes(img)
    return _PLACEHOLDER[kind]


def _thumbnail(rec: HistoryRecord) -> bytes:
    candidates = [*rec.paths, *[str(v) for k, v in (rec.extra or {}).items() if "thumb" in k and v]]
    for p in candidates:
        path = Path(p)
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            try:
                from PIL import Image

                from masuka_nb.ui.helpers import png_bytes, upscale_for_display

                with Image.open(path) as img:
                    img.load()
                    return png_bytes(upscale_for_display(img.convert("RGB"), min_side=180), max_side=360)
            except OSError:
                continue
    return _placeholder(rec.kind if rec.status == "ok" else rec.status)
