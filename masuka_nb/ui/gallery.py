"""The History tab: everything MASUKA made (images, videos, trainings, comparisons), searchable.

One clickable tile per record with a real thumbnail: a batch shows its first image with a count badge,
a comparison its grid, a video its poster frame with a play mark. A picked record opens in the pane
beside the tiles (first on a narrow screen, brought into view): the picture or the player, its key facts,
"Use in Image tab", and Delete with Undo (`history.trash`). The tab reads the history when opened.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.history import KINDS, HistoryRecord, query
from masuka_nb.ui.components import LABEL_STYLE, Gallery, Panel, button, card, field_row, show, split, wide
from masuka_nb.ui.helpers import engine_api, esc, fmt_duration, fmt_money, fmt_number, plain, record_title
from masuka_nb.ui.results import ResultPane

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
        self.trashed: Any = None
        self._on_use_recipe = on_use_recipe
        self.kind = widgets.Dropdown(options=[("everything", ""), *[(k, k) for k in KINDS]], value="",
                                     description="Show", style=LABEL_STYLE, layout=wide("240px"))
        self.status = widgets.Dropdown(options=[("any status", ""), ("made", "ok"), ("failed", "failed"),
                                                ("stopped", "cancelled")], value="", layout=wide("160px"))
        self.text = widgets.Text(placeholder="search prompts and recipes", layout=wide("260px"))
        self.refresh_button = button("Refresh", "refresh")
        self.more_button = button("Show more")
        show(self.more_button, False)
        self.count = widgets.HTML("")
        self.gallery = Gallery(thumb=150, empty="Nothing recorded yet: make something in another tab.")
        self.pane = ResultPane(title="Details", notice=self.notice, empty="Pick a record to see it here.",
                               reveal_with=self.reveal)
        self.detail_images = Gallery(thumb=110, empty="")
        self.use_button = button("Use in Image tab", "edit", primary=True)
        self.delete_button = button("Delete", "trash")
        self.delete_button.add_class("mk-quiet-danger")
        self.pane.extra.children = [self.detail_images]
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.more_button.on_click(self._on_more_button_click)
        self.use_button.on_click(self._on_use_button_click)
        self.delete_button.on_click(self._on_delete_button_click)
        for w in (self.kind, self.status):
            w.observe(self._on_filter_change, names="value")
        self.text.observe(self._on_filter_change, names="value")
        self.fields = {"kind": self.kind, "status": self.status, "text": self.text}
        filters = card(field_row(self.kind, self.status, self.text, self.refresh_button), self.count)
        tiles = widgets.VBox([filters, self.gallery, field_row(self.more_button)], layout=widgets.Layout(width="100%"))
        self.split_box = split(tiles, self.pane)
        self.children = [self.split_box]
        self.loaded = False

    @property
    def detail(self) -> widgets.HTML:
        return self.pane.details

    @property
    def player(self) -> widgets.Video:
        return self.pane.video

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self.refresh()

    def _on_more_button_click(self, _b: widgets.Button) -> None:
        self.page_size += 24
        self.refresh()

    def _on_filter_change(self, _change: dict[str, Any]) -> None:
        self.refresh()

    def _on_use_button_click(self, _b: widgets.Button) -> None:
        if self.selected is not None and self._on_use_recipe is not None:
            self._on_use_recipe(self.selected)

    def _on_delete_button_click(self, _b: widgets.Button) -> None:
        if self.selected is not None:
            self.delete(self.selected)

    def refresh(self) -> None:
        """Read the history now (quick: a few thousand records in well under a second) and show it."""
        recs = query(kind=self.kind.value or None, status=self.status.value or None,
                     text=self.text.value.strip() or None, limit=self.page_size + 1)
        show(self.more_button, len(recs) > self.page_size)
        self.records = recs[: self.page_size]
        items = [(_thumbnail(rec), _caption(rec)) for rec in self.records]
        self.gallery.set_items(items, on_open=lambda i: self.select(self.records[i], picked=True))
        self.count.value = f'<span class="mk-muted">{len(self.records)} shown</span>'
        self.loaded = True
        if self.records and (self.selected is None or self.selected.id not in {r.id for r in self.records}):
            self.select(self.records[0])
        elif not self.records:
            self.selected = None
            self.pane.clear()

    def select(self, rec: HistoryRecord, *, picked: bool = False) -> None:
        """Show `rec` in the pane; `picked` (a click) brings the pane into view (above the tiles on a narrow
        screen)."""
        self.selected = rec
        images = [p for p in rec.paths if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file()]
        clip = next((Path(p) for p in rec.paths if str(p).lower().endswith(".mp4") and Path(p).is_file()), None)
        caption = _caption(rec)
        if clip is not None and rec.kind == "video":
            self.pane.show_video(clip.read_bytes(), caption=caption, name=clip.name, details=record_html(rec))
            images = []
        elif images:
            from PIL import Image

            with Image.open(images[0]) as im:
                picture = im.convert("RGB")
            self.pane.show_image(picture, caption=caption, name=Path(images[0]).name,
                                 data=Path(images[0]).read_bytes(), details=record_html(rec))
        else:
            self.pane.clear()
            self.pane.placeholder.value = f'<div class="mk-empty mk-stage-empty">{esc(_no_picture(rec))}</div>'
            self.pane._stage("")
            self.pane.details.value = record_html(rec)
            self.pane.caption.value = f'<div class="mk-stage-caption">{esc(caption)}</div>'
        self.detail_images.set_items([(_file_png(p, 220), Path(p).name) for p in images[1:24]])
        actions = []
        if rec.kind == "image" and self._on_use_recipe is not None:
            actions.append(self.use_button)
        if rec.paths:
            actions.append(self.delete_button)
        self.pane.set_actions(actions)
        if picked:
            self.started()
            self.pane.reveal()

    def delete(self, rec: HistoryRecord) -> None:
        """Delete a record and its files, with Undo until the next Delete."""
        trash = engine_api("masuka_nb.history", "trash")
        if self.trashed is not None:
            self.trashed.purge()
        self.trashed = trash(rec.id)
        self.selected = None
        self.refresh()
        self.notice.show(f"Deleted: {record_title(rec, limit=40)}.", "info", actions={"Undo": self._undo})

    def _undo(self) -> None:
        if self.trashed is None:
            return
        rec = self.trashed.restore()
        self.trashed = None
        self.refresh()
        if rec is not None:
            self.select(rec)
        self.notice.show("Restored.", "ok")


KEY_FIELDS = (("status", "status"), ("when", "when"), ("model", "model"), ("prompt", "prompt"), ("seed", "seed"),
              ("seeds", "seeds"), ("size", "size"), ("steps", "steps"), ("guidance", "guidance"),
              ("seconds", "clip seconds"), ("provider", "made by"), ("took", "took"), ("cost", "cost"))
STATUS_WORDS = {"ok": "made", "failed": "failed", "cancelled": "stopped"}


def _no_picture(rec: HistoryRecord) -> str:
    if rec.status != "ok":
        return f"{rec.kind.capitalize()} {STATUS_WORDS.get(rec.status, rec.status)}: nothing to show."
    return f"A {rec.kind} record: no picture to show."


def record_html(rec: HistoryRecord) -> str:
    """Key fields first, in words and human numbers; what went wrong if anything (plain; its code in the
    details); files; the raw recipe collapsed."""
    recipe = rec.recipe or {}
    total = rec.seconds("total")  # the one timing schema; older records' names are read by the history
    extra = rec.extra or {}
    cost = extra.get("cost_usd")
    simulated = not cost and any(str(n).startswith("SIMULATOR") for n in extra.get("notes") or [])
    view = {**recipe, "status": STATUS_WORDS.get(rec.status, rec.status),
            "when": (rec.created_at or "")[:19].replace("T", " "), "model": rec.model or recipe.get("model"),
            "prompt": rec.prompt, "took": fmt_duration(total) if isinstance(total, (int, float)) else None,
            "cost": "$0 (offline simulator)" if simulated else fmt_money(cost) if isinstance(cost, (int, float))
            else None}
    if recipe.get("width") and recipe.get("height"):
        view["size"] = f"{recipe['width']}×{recipe['height']}"
    if recipe.get("duration") and "seconds" not in recipe:
        view["seconds"] = recipe["duration"]
    rows = [(label, fmt_number(view[k])) for k, label in KEY_FIELDS if view.get(k) not in (None, "", [], ())]
    tech = ""
    if rec.error:
        rows.append(("what happened", plain(str(rec.error.get("message") or ""))[0] or "it did not finish"))
        tech = f"<tr><td>code</td><td>{esc(rec.error.get('code'))}</td></tr>"
    files = [p for p in rec.paths if p]
    rows += [("file", Path(p).name) for p in files[:4]]
    if len(files) > 4:
        rows.append(("", f"…and {len(files) - 4} more files"))
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    raw = tech + "".join(f"<tr><td>{esc(k)}</td><td>{esc(fmt_number(v))}</td></tr>" for k, v in sorted(recipe.items()))
    return (f'<details class="mk-recipe-box"><summary>About this {esc(rec.kind)}</summary>'
            f'<table class="mk-kv" data-testid="mk-record">{body}</table>'
            f'<details><summary class="mk-muted">Details</summary><table class="mk-kv">{raw}</table></details>'
            "</details>")


def _caption(rec: HistoryRecord) -> str:
    when = (rec.created_at or "")[:16].replace("T", " ")
    status = "" if rec.status == "ok" else f" · {STATUS_WORDS.get(rec.status, rec.status)}"
    return f"{record_title(rec, limit=70)}{status} · {when}"


_PLACEHOLDER: dict[str, bytes] = {}


def _placeholder(kind: str) -> bytes:
    """A quiet tile for records without a picture (training, failures)."""
    if kind not in _PLACEHOLDER:
        from PIL import Image, ImageDraw

        from masuka_nb.ui.helpers import png_bytes

        img = Image.new("RGB", (TILE, TILE), (38, 40, 48))
        font = _font(34)
        draw = ImageDraw.Draw(img)
        left, top, right, bottom = draw.textbbox((0, 0), kind.upper(), font=font)
        draw.text(((TILE - right + left) / 2 - left, (TILE - bottom + top) / 2 - top), kind.upper(),
                  fill=(160, 167, 184), font=font)
        _PLACEHOLDER[kind] = png_bytes(img)
    return _PLACEHOLDER[kind]


def _images_of(rec: HistoryRecord) -> list[str]:
    """The record's pictures: its image files, else a thumbnail it names (a video's poster frame)."""
    files = [str(p) for p in rec.paths if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file()]
    extra = [str(v) for k, v in (rec.extra or {}).items() if "thumb" in k and isinstance(v, str) and Path(v).is_file()]
    return files + extra


def _file_png(path: str, side: int) -> bytes:
    from PIL import Image

    from masuka_nb.ui.helpers import png_bytes, upscale_for_display

    with Image.open(path) as img:
        img.load()
        return png_bytes(upscale_for_display(img.convert("RGB"), min_side=side), max_side=side * 2)


GROUND = (38, 40, 48)  # the tiles' neutral ground (dark in both themes: pictures read on it)
TILE = 320  # thumbnails are square tiles: a batch, a grid and a 16:9 clip line up in the grid


def _sheet_on_ground(picture: Any, ground: tuple[int, int, int]) -> Any:
    """A comparison or grid sheet is drawn on white (a file that prints and reads anywhere); on a tile its
    white ground becomes the tile's, so it is not a white block in a dark app. Only the white connected to
    the sheet's edge changes (filled from the corners): white inside a picture stays."""
    from PIL import ImageDraw

    picture = picture.copy()
    w, h = picture.size
    for corner in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)):
        if min(picture.getpixel(corner)) >= 235:
            ImageDraw.floodfill(picture, corner, ground, thresh=30)
    return picture


def _thumbnail(rec: HistoryRecord) -> bytes:
    """A square tile: the picture fitted on a neutral ground, a count badge for a batch, a play mark
    for a video; a labelled placeholder when the record has no picture."""
    from PIL import Image, ImageDraw

    from masuka_nb.ui.helpers import png_bytes

    pictures = _images_of(rec)
    for p in pictures:
        try:
            with Image.open(p) as img:
                img.load()
                picture = img.convert("RGB")
        except OSError:
            continue
        if rec.kind in ("comparison", "grid"):
            picture = _sheet_on_ground(picture, GROUND)
        scale = TILE / max(picture.size)
        resample = Image.NEAREST if scale >= 2 else Image.LANCZOS  # tiny outputs stay honest pixels
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 resample)
        tile = Image.new("RGB", (TILE, TILE), GROUND)
        tile.paste(picture, ((TILE - picture.width) // 2, (TILE - picture.height) // 2))
        draw = ImageDraw.Draw(tile)
        count = len([q for q in rec.paths if Path(q).suffix.lower() in IMAGE_SUFFIXES])
        if rec.kind == "video":
            c = TILE // 2
            draw.ellipse([c - 34, c - 34, c + 34, c + 34], fill=(20, 20, 28))
            draw.polygon([(c - 11, c - 18), (c - 11, c + 18), (c + 20, c)], fill=(255, 255, 255))
        elif count > 1 and rec.kind != "comparison":
            _badge(draw, f"{count} images")
        elif rec.kind == "comparison":
            _badge(draw, "grid")
        return png_bytes(tile)
    return _placeholder(rec.kind if rec.status == "ok" else STATUS_WORDS.get(rec.status, rec.status))


def _badge(draw: Any, text: str) -> None:
    font = _font(26)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 20, bottom - top + 12
    draw.rounded_rectangle([TILE - w - 10, 10, TILE - 10, 10 + h], radius=h // 2, fill=(109, 74, 255))
    draw.text((TILE - w - 10 + 10 - left, 10 + 6 - top), text, fill=(255, 255, 255), font=font)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()
