"""The result pane every making tab shares, and the session feed under it.

The pane is one place for the newest output (an image, a batch's contact sheet, a grid, an edit's before
and after, a clip, a LoRA's samples), with its actions directly under it. It is pinned beside the form on
a wide screen; on a narrow one it comes first, and each run brings it into view (`reveal`). Nothing is
wiped: every run of this session stays in the feed (newest first, one group per run), and a click on any
thumbnail shows it in the pane again with its own actions.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import ProgressView, Tile, card, field_row, reveal, section, show
from masuka_nb.ui.helpers import esc, png_bytes, upscale_for_display

__all__ = ["FeedItem", "FeedRun", "ResultPane", "SessionFeed", "Shown", "anchored", "mosaic_png", "stage_png"]

STAGE_MIN = 512  # small outputs (the tiny models' 64 px) are shown enlarged, pixel for pixel


@dataclass(eq=False)
class Shown:
    """One output the pane can show and act on (an image of a run, a batch item, an upscale, an edit)."""

    image: Any
    path: str = ""
    seed: int | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    history_id: str = ""
    kind: str = "image"  # image | edit | upscale | sheet
    before: Any = None  # an edit's source
    note: str = ""
    notes: list[str] = field(default_factory=list)  # what the engine said about this output, in words
    cells: list[tuple[Any, str]] = field(default_factory=list)  # a sheet's pictures and their labels
    columns: int = 1
    column_labels: list[str] = field(default_factory=list)
    row_labels: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.size)  # type: ignore[return-value]

    def caption(self) -> str:
        w, h = self.size
        if self.kind == "sheet":
            return " · ".join(b for b in (self.note, str(self.recipe.get("model") or "")) if b)
        bits = [{"edit": "edit", "upscale": "upscale"}.get(self.kind, ""),
                f"seed {self.seed}" if self.seed is not None else "", f"{w}×{h}",
                str(self.recipe.get("model") or "")]
        if self.kind == "edit" and self.recipe.get("instruction"):
            bits.append(f"“{self.recipe['instruction']}”")
        return " · ".join(b for b in bits if b)



def stage_png(image: Any, *, side: int = STAGE_MIN) -> bytes:
    """PNG bytes to show `image` large: tiny images enlarged with nearest-neighbour (honest pixels), big
    ones capped so a 4K upscale does not travel to the browser whole."""
    return png_bytes(upscale_for_display(image, min_side=side), max_side=2048)


def thumb_png(image: Any, side: int = 96) -> bytes:
    return png_bytes(upscale_for_display(image, min_side=side), max_side=side * 2)


def mosaic_png(images: Sequence[Any], side: int = 96) -> bytes:
    """A feed thumbnail for several pictures (a batch, a grid, a comparison): up to four of them, 2×2, on a
    transparent ground, so the card's own colour shows between them (never a white sheet in a dark app)."""
    from PIL import Image

    pics = [im for im in images if im is not None][:4]
    if len(pics) <= 1:
        return thumb_png(pics[0], side) if pics else b""
    out = side * 2
    half, gap = out // 2, 4
    canvas = Image.new("RGBA", (out, half * ((len(pics) + 1) // 2)), (0, 0, 0, 0))
    for i, im in enumerate(pics):
        cell = im.convert("RGB").resize((half - gap, half - gap), Image.Resampling.NEAREST
                                        if min(im.size) < half else Image.Resampling.LANCZOS)
        canvas.paste(cell, ((i % 2) * half + gap // 2, (i // 2) * half + gap // 2))
    return png_bytes(canvas)


def anchored(content: widgets.Widget) -> tuple[widgets.Box, widgets.Button]:
    """`content` with an invisible button laid over it (clicks pass through): focusing the button makes the
    browser scroll `content` into view, centred (`components.reveal`)."""
    target = widgets.Button(description="", tooltip="", layout=widgets.Layout(width="100%", height="100%"))
    target.add_class("mk-overlay")
    target.add_class("mk-focus-target")
    box = widgets.Box([content, target], layout=widgets.Layout(width="100%"))
    box.add_class("mk-anchor")
    return box, target


@dataclass(eq=False)
class FeedItem:
    """One output in the feed: its thumbnail, a caption, and what to do when it is picked."""

    thumb: bytes
    caption: str
    pick: Callable[[], Any]
    key: Any = None  # what the tab uses to find it again (a path, an index)
    dimmed: str = ""


@dataclass(eq=False)
class FeedRun:
    """One run of this session: a title ("12:03 · 4 images · tiny-flux") and its outputs."""

    title: str
    items: list[FeedItem] = field(default_factory=list)
    at: float = field(default_factory=time.time)


class SessionFeed(widgets.VBox):
    """This session's runs, newest first, grouped per run; each thumbnail a click away from the pane."""

    def __init__(self, *, keep: int = 40, thumb: int = 88, empty: str = "") -> None:
        self.runs: list[FeedRun] = []
        self.after_pick: Callable[[], Any] | None = None  # the pane brings the picked output into view
        self._keep = keep
        self._thumb = thumb
        self.header = section("This session")
        self.body = widgets.VBox([])
        self.empty = widgets.HTML(f'<div class="mk-empty">{esc(empty)}</div>' if empty else "")
        super().__init__([self.header, self.empty, self.body])
        self.add_class("mk-feed")
        show(self.header, False)

    def add(self, run: FeedRun) -> None:
        self.runs = [run, *self.runs][: self._keep]
        self._draw()

    def drop(self, key: Any) -> None:
        """Take the item with `key` out of every group (it was deleted); empty groups go."""
        for run in self.runs:
            run.items = [it for it in run.items if it.key != key]
        self.runs = [r for r in self.runs if r.items]
        self._draw()

    def restore(self, run: FeedRun, item: FeedItem, index: int) -> None:
        """Put an item back where it was (Undo)."""
        if run not in self.runs:
            self.runs = sorted([run, *self.runs], key=lambda r: -r.at)
        run.items.insert(min(index, len(run.items)), item)
        self._draw()

    def find(self, key: Any) -> tuple[FeedRun, FeedItem, int] | None:
        for run in self.runs:
            for i, it in enumerate(run.items):
                if it.key == key:
                    return run, it, i
        return None

    def _pick(self, item: FeedItem) -> None:
        item.pick()
        if self.after_pick is not None:
            self.after_pick()

    def _draw(self) -> None:
        groups = []
        for run in self.runs:
            tiles = [Tile(it.thumb, "", on_click=lambda it=it: self._pick(it), tooltip=it.caption, dimmed=it.dimmed,
                          size=self._thumb) for it in run.items[:24]]
            strip = widgets.Box(tiles)
            strip.add_class("mk-feed-strip")
            head = widgets.HTML(f'<div class="mk-feed-title">{esc(run.title)}</div>')
            group = widgets.VBox([head, strip])
            group.add_class("mk-feed-run")
            groups.append(group)
        self.body.children = groups
        show(self.header, bool(groups))
        show(self.empty, not groups)


class ResultPane(widgets.VBox):
    """Progress (with Stop) and the tab's message, the newest output large, its caption, its actions right
    under it, its details (closed), then the session feed.

    `show_image`, `show_pair` (before/after), `show_grid` (a batch or a grid, labelled in the app's own
    colours) and `show_video` put one output on the stage; the owning tab fills `actions`. `reveal()`
    brings the stage into view; `reveal_status()` the progress and message (a run starting or stopping)."""

    def __init__(self, *, title: str = "Result", stop: widgets.Widget | None = None, notice: widgets.Widget | None = None,
                 empty: str = "Your results appear here.", feed_empty: str = "",
                 reveal_with: Callable[[widgets.Widget], Any] | None = None) -> None:
        self._reveal_with = reveal_with or reveal  # a tab's `Panel.reveal`: at the end of its run
        self.progress = ProgressView(stop=stop)
        self.notes = widgets.HTML("")
        self.placeholder = widgets.HTML(f'<div class="mk-empty mk-stage-empty">{esc(empty)}</div>' if empty else "")
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="auto", height="auto"))
        self.image.add_class("mk-stage-img")
        self.figure = widgets.Box([self.image])
        self.figure.add_class("mk-figure")
        self.before = widgets.Image(format="png", layout=widgets.Layout(width="auto", height="auto"))
        self.after = widgets.Image(format="png", layout=widgets.Layout(width="auto", height="auto"))
        self.before.add_class("mk-pair-img")
        self.after.add_class("mk-pair-img")
        self.pair = widgets.Box([
            widgets.VBox([self.before, widgets.HTML('<div class="mk-caption mk-center">Before</div>')]),
            widgets.VBox([self.after, widgets.HTML('<div class="mk-caption mk-center">After</div>')])])
        self.pair.add_class("mk-pair")
        self.grid = widgets.GridBox([], layout=widgets.Layout(width="100%"))
        self.grid.add_class("mk-grid-stage")
        self.video = widgets.Video(format="mp4", autoplay=False, loop=False, controls=True,
                                   layout=widgets.Layout(width="100%"))
        self.video.add_class("mk-player")
        inner = widgets.Box([self.placeholder, self.figure, self.pair, self.grid, self.video],
                            layout=widgets.Layout(width="100%"))
        inner.add_class("mk-stage")
        # an invisible button laid over the stage (clicks pass through): focusing it makes the browser scroll
        # the whole stage into view (`reveal`)
        self.stage, self.focus_target = anchored(inner)
        self.stage_inner = inner
        status = widgets.VBox([self.progress, *([notice] if notice is not None else []), self.notes])
        self.status_box, self.status_target = anchored(status)
        self.caption = widgets.HTML("")
        self.download = widgets.HTML("")
        self.actions = field_row()
        self.actions.add_class("mk-actions")
        self.extra = widgets.VBox([])
        self.details = widgets.HTML("")
        self.feed = SessionFeed(empty=feed_empty)
        self.feed.after_pick = self.reveal
        self.kind = ""  # what the stage shows: "" | "image" | "pair" | "grid" | "video"
        for w in (self.figure, self.pair, self.grid, self.video, self.download):
            show(w, False)
        show(self.stage, bool(self.placeholder.value))
        # the stage is always there (its placeholder when nothing is shown), so `reveal` always has a target
        self.box = card(section(title), self.status_box, self.stage, self.caption,
                        field_row(self.download, self.actions), self.extra, self.details, self.feed)
        self.box.add_class("mk-live")
        self.box.add_class("mk-result-pane")
        super().__init__([self.box])

    # ---- what the stage shows --------------------------------------------------------------------------
    def show_image(self, image: Any, *, caption: str = "", name: str = "masuka.png", data: bytes | None = None,
                   details: str = "") -> None:
        """One picture large; `data` (the file's own bytes) is what Download gives."""
        self._stage("image")
        self.image.value = stage_png(image)
        tiny = min(getattr(image, "size", (STAGE_MIN, STAGE_MIN))) < 160  # tiny outputs: honest pixels
        (self.image.add_class if tiny else self.image.remove_class)("mk-pixelated")
        self._caption(caption)
        raw = data if data is not None else png_bytes(image)
        self._download(_download_link(raw, name, "image/png"))
        self.details.value = details

    def show_pair(self, before: Any, after: Any, *, caption: str = "", name: str = "masuka-edit.png",
                  data: bytes | None = None, details: str = "") -> None:
        """An edit: before and after side by side (stacked on a narrow screen)."""
        self._stage("pair")
        self.before.value = thumb_png(before, 320)
        self.after.value = thumb_png(after, 320)
        self._caption(caption)
        self._download(_download_link(data if data is not None else png_bytes(after), name, "image/png"))
        self.details.value = details

    def show_grid(self, cells: Sequence[tuple[Any, str]], *, columns: int, column_labels: Sequence[str] = (),
                  row_labels: Sequence[str] = (), caption: str = "", download: tuple[bytes, str] | None = None,
                  details: str = "") -> None:
        """Several pictures as one labelled grid (a batch, an X/Y grid): drawn by the page in the app's own
        colours, each picture with its label under it, never a white sheet in a dark app."""
        self._stage("grid")
        rows = max(1, -(-len(cells) // max(1, columns)))
        lead = bool(row_labels)
        children: list[widgets.Widget] = []
        if column_labels:
            children += [widgets.HTML("")] if lead else []
            children += [widgets.HTML(f'<div class="mk-grid-head">{esc(c)}</div>') for c in column_labels]
        for r in range(rows):
            if lead:
                label = row_labels[r] if r < len(row_labels) else ""
                children.append(widgets.HTML(f'<div class="mk-grid-row">{esc(label)}</div>'))
            for c in range(columns):
                i = r * columns + c
                if i >= len(cells):
                    children.append(widgets.HTML(""))
                    continue
                img, label = cells[i]
                pic = widgets.Image(value=thumb_png(img, 256), format="png",
                                    layout=widgets.Layout(width="100%", height="auto"))
                pic.add_class("mk-grid-img")
                parts: list[widgets.Widget] = [pic]
                if label and not column_labels:
                    parts.append(widgets.HTML(f'<div class="mk-caption mk-center">{esc(label)}</div>'))
                children.append(widgets.VBox(parts, layout=widgets.Layout(min_width="0")))
        self.grid.layout.grid_template_columns = ("minmax(48px, max-content) " if lead else "") + \
            f"repeat({columns}, minmax(0, 1fr))"
        # never taller than the window leaves room for: the grid narrows as rows are added
        self.grid.layout.max_width = f"min(100%, calc(46vh * {columns} / {rows}))"
        self.grid.children = children
        self._caption(caption)
        self._download(_download_link(download[0], download[1], "image/png") if download else "")
        self.details.value = details

    def show_video(self, data: bytes, *, caption: str = "", name: str = "masuka.mp4", details: str = "",
                   size: tuple[int, int] | None = None) -> None:
        """A clip with its player; `size` (its frame, e.g. from the poster) shapes the player before the
        browser has read the file, so nothing moves when it has."""
        self._stage("video")
        ratio = size[0] / size[1] if size and size[1] else 16 / 9
        shape = "mk-ar-wide" if ratio >= 1.2 else "mk-ar-tall" if ratio <= 0.83 else "mk-ar-square"
        for cls in ("mk-ar-wide", "mk-ar-tall", "mk-ar-square"):
            (self.video.add_class if cls == shape else self.video.remove_class)(cls)
        self.video.value = data
        self._caption(caption)
        self._download(_download_link(data, name, "video/mp4") if len(data) <= 40 * 1024**2 else "")
        self.details.value = details

    def clear(self) -> None:
        """Nothing on the stage (the shown output was deleted, or there is none yet)."""
        self._stage("")
        self.image.value = b""
        self.video.value = b""
        self.grid.children = []
        self.caption.value = ""
        self._download("")
        self.details.value = ""
        self.notes.value = ""
        self.set_actions([])

    def set_actions(self, buttons: Sequence[widgets.Widget]) -> None:
        self.actions.children = list(buttons)

    def set_notes(self, notes: Sequence[str]) -> None:
        """What the engine said about the shown output, each sentence once (a warning and the recipe's
        note often say the same thing)."""
        unique = list(dict.fromkeys(n.strip() for n in notes if n and n.strip()))
        self.notes.value = "".join(f'<div class="mk-notice mk-warning mk-note">{esc(n)}</div>' for n in unique)

    def reveal(self) -> None:
        """Bring the stage into view (the whole of it, centred): the output, or what stands in for it."""
        self._reveal_with(self.focus_target if self.stage.layout.display != "none" else self.status_target)

    def reveal_status(self) -> None:
        """Bring the progress and the message into view (a run has started, stopped or failed)."""
        reveal(self.status_target)

    def _stage(self, kind: str) -> None:
        self.kind = kind
        show(self.placeholder, kind == "")
        show(self.stage, kind != "" or bool(self.placeholder.value))
        if kind:  # the output replaces the live preview (hidden now, not after the output is in view)
            self.progress.preview.layout.display = "none"
        (self.stage_inner.add_class if kind == "" else self.stage_inner.remove_class)("mk-stage-idle")
        show(self.figure, kind == "image")
        show(self.pair, kind == "pair")
        show(self.grid, kind == "grid")
        show(self.video, kind == "video")

    def _download(self, html_text: str) -> None:
        self.download.value = html_text
        show(self.download, bool(html_text))  # an empty slot would leave a gap before the actions

    def _caption(self, caption: str) -> None:
        self.caption.value = f'<div class="mk-stage-caption" data-testid="mk-stage-caption">{esc(caption)}</div>' \
            if caption else ""


def _download_link(data: bytes, name: str, mime: str) -> str:
    b64 = base64.b64encode(data).decode()
    return (f'<a class="mk-link-button" download="{esc(name)}" href="data:{mime};base64,{b64}" '
            f'data-testid="mk-download">⬇ Download</a>')
