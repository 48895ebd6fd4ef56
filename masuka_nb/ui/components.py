"""Widget building blocks every panel uses: theme, notices, toasts, progress with preview, gallery, Panel.

Only stock widgets from the API shared by ipywidgets 7.7.1 (Colab) and 8.x. `Panel._run` is the one
place a click handler's work happens: ipywidgets swallows exceptions raised in click handlers, so
every failure (a `MasukaError`, Colab's stop button as `KeyboardInterrupt`, or a bug) is caught
there and shown in the panel with its code, message and hint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import MasukaError
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressEvent
from masuka_nb.ui.helpers import (
    ErrorInfo,
    error_info,
    esc,
    fmt_duration,
    png_bytes,
    progress_text,
    upscale_for_display,
)

__all__ = ["Gallery", "Notice", "Panel", "ProgressView", "Toasts", "field_row", "fill_upload", "section", "split",
           "theme_widget"]

log = get_logger(__name__)


def theme_css() -> str:
    return resources.files("masuka_nb.ui").joinpath("theme.css").read_text(encoding="utf-8")


def theme_widget() -> widgets.HTML:
    """A `<style>` block: HTML widgets inject it into the page in Colab, Jupyter and Voila alike."""
    return widgets.HTML(f"<style>{theme_css()}</style>", layout=widgets.Layout(height="0px", margin="0"))


def section(title: str) -> widgets.HTML:
    return widgets.HTML(f'<div class="mk-section">{esc(title)}</div>')


def card(*children: widgets.Widget, **layout: Any) -> widgets.VBox:
    box = widgets.VBox(list(children), layout=widgets.Layout(**layout))
    box.add_class("mk-card")
    return box


def chart_image(chart: Any, image: widgets.Image | None = None) -> widgets.Image:
    """Show a `charts.Chart` at the size it was drawn for (never stretched; narrower screens shrink it)."""
    image = image or widgets.Image(format="png")
    image.value = chart.png
    image.layout.width = f"{chart.width}px"
    image.layout.max_width = "100%"
    image.layout.height = "auto"
    image.layout.display = ""
    image.add_class("mk-chart")
    return image


def field_row(*children: widgets.Widget) -> widgets.HBox:
    return widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="center",
                                                               grid_gap="8px"))


def wide(width: str = "100%") -> widgets.Layout:
    """A field that takes `width` on a wide screen and never more than its card on a narrow one."""
    return widgets.Layout(width=width, max_width="100%")


def split(form: widgets.Widget, live: widgets.Widget) -> widgets.Box:
    """Form and live result side by side on a wide screen; stacked on a narrow one, where the live
    column comes first once a run has started (`mk-has-run`, set by `Panel._run`). Both in CSS."""
    form.add_class("mk-form-col")
    live.add_class("mk-live-col")
    box = widgets.Box([form, live], layout=widgets.Layout(width="100%"))
    box.add_class("mk-split")
    return box


LABEL_STYLE = {"description_width": "96px"}


class Notice(widgets.HTML):
    """One line of status under a form: info / ok / warning / error (with code and hint)."""

    def __init__(self) -> None:
        super().__init__("")
        self.info: ErrorInfo | None = None
        self.level = ""
        self.text = ""

    def show(self, text: str, level: str = "info", *, code: str | None = None) -> None:
        badge = f'<span class="mk-code">{esc(code)}</span> ' if code else ""
        self.level, self.text, self.info = level, text, None
        self.value = f'<div class="mk-notice mk-{level}" data-testid="mk-notice">{badge}{esc(text)}</div>'

    def show_error(self, info: ErrorInfo) -> None:
        self.level, self.text, self.info = info.level, f"[{info.code}] {info.message}", info
        self.value = info.to_html()

    def clear(self) -> None:
        self.level, self.text, self.info = "", "", None
        self.value = ""


class Toasts(widgets.VBox):
    """App-wide messages (newest first, a few kept) so a failure in one tab is seen from any tab."""

    def __init__(self, *, keep: int = 3) -> None:
        self._keep = keep
        self.messages: list[tuple[str, str]] = []  # (level, html)
        self._html = widgets.HTML("")
        self._dismiss = widgets.Button(description="Dismiss", icon="times",
                                       layout=widgets.Layout(width="auto", align_self="flex-end", display="none"))
        self._dismiss.on_click(self._on_dismiss_click)
        super().__init__([self._html, self._dismiss])

    def push(self, text_or_info: str | ErrorInfo, level: str = "info") -> None:
        if isinstance(text_or_info, ErrorInfo):
            level, body = text_or_info.level, text_or_info.to_html()
        else:
            body = f'<div class="mk-notice mk-{level}" data-testid="mk-toast">{esc(text_or_info)}</div>'
        self.messages = [(level, body), *self.messages][: self._keep]
        self._render()

    def clear(self) -> None:
        self.messages = []
        self._render()

    def _on_dismiss_click(self, _button: widgets.Button) -> None:
        self.clear()

    def _render(self) -> None:
        self._html.value = "".join(body for _, body in self.messages)
        self._dismiss.layout.display = "" if self.messages else "none"


class ProgressView(widgets.VBox):
    """A progress bar, a status line and an optional live preview; call it with `ProgressEvent`s.

    It *is* an engine's ``progress=`` callback. Updates are plain trait assignments, which the
    kernel sends as they happen, so the bar moves while the work runs inside the click callback.
    """

    def __init__(self, *, preview_size: int = 192, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started: float | None = None
        self.bar = widgets.IntProgress(value=0, min=0, max=1000, layout=widgets.Layout(width="100%"))
        self.status = widgets.HTML('<span class="mk-status"></span>')
        self.preview = widgets.Image(format="png", layout=widgets.Layout(
            width=f"{preview_size}px", height=f"{preview_size}px", display="none"))
        self.preview.add_class("mk-thumb")
        self.events: list[ProgressEvent] = []  # kept for the history of this run and for tests
        self._preview_size = preview_size
        super().__init__([self.bar, self.status, self.preview], layout=widgets.Layout(display="none"))

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)
        self.layout.display = ""
        self.bar.value = round(1000 * event.fraction)
        self._set_status(progress_text(event.stage, event.step, event.total, eta_s=event.eta_s,
                                       message=event.message, elapsed_s=self.elapsed_s))
        if event.preview is not None:
            try:
                img = upscale_for_display(event.preview, min_side=self._preview_size)
                self.preview.value = png_bytes(img, max_side=self._preview_size * 2)
                self.preview.layout.display = ""
            except (AttributeError, OSError, ValueError) as exc:  # a preview must never stop the run
                log.debug("ui.preview_failed", error=str(exc))

    @property
    def elapsed_s(self) -> float | None:
        return None if self._started is None else max(0.0, self._clock() - self._started)

    def start(self, text: str = "starting…") -> None:
        self._started = self._clock()
        self.events = []
        self.layout.display = ""
        self.bar.value = 0
        self.bar.bar_style = ""
        self.preview.layout.display = "none"
        self._set_status(text)

    def finish(self, text: str = "done", *, ok: bool = True) -> None:
        if ok:
            self.bar.value = 1000
            self.preview.layout.display = "none"  # the results replace the preview (a failure keeps its last one)
        self.bar.bar_style = "success" if ok else "warning"
        elapsed = self.elapsed_s
        self._set_status(text + (f" · {fmt_duration(elapsed)} elapsed" if elapsed is not None else ""))
        self._started = None

    def reset(self) -> None:
        """Hide everything from the last run."""
        self.events = []
        self._started = None
        self.bar.value = 0
        self.preview.layout.display = "none"
        self.layout.display = "none"
        self._set_status("")

    @property
    def status_text(self) -> str:
        return self._status_text

    def _set_status(self, text: str) -> None:
        self._status_text = text
        self.status.value = f'<span class="mk-status" data-testid="mk-progress">{esc(text)}</span>'


class Gallery(widgets.VBox):
    """A grid of images (PIL or PNG/JPEG bytes) with captions; `items` keeps what is shown."""

    def __init__(self, *, columns: int = 4, thumb: int = 220, empty: str = "Nothing here yet.") -> None:
        self._columns = columns
        self._thumb = thumb
        self._empty = empty
        self.items: list[tuple[Any, str]] = []
        self.cells: list[widgets.VBox] = []
        self.grid = widgets.GridBox([], layout=widgets.Layout(
            grid_template_columns=f"repeat(auto-fill, minmax({thumb}px, 1fr))", grid_gap="12px", width="100%"))
        self.placeholder = widgets.HTML(f'<div class="mk-empty">{esc(empty)}</div>')
        super().__init__([self.placeholder, self.grid])

    def set_items(self, items: Sequence[tuple[Any, str]], *, extra: Sequence[widgets.Widget] | None = None) -> None:
        """Show `(image, caption)` pairs; `extra` is one widget per item placed under its caption."""
        self.items = list(items)
        self.cells = [self._cell(img, cap, extra[i] if extra else None) for i, (img, cap) in enumerate(items)]
        self.grid.children = self.cells
        self.placeholder.layout.display = "none" if self.cells else ""

    def _cell(self, image: Any, caption: str, extra: widgets.Widget | None) -> widgets.VBox:
        data = image if isinstance(image, (bytes, bytearray)) else png_bytes(
            upscale_for_display(image, min_side=self._thumb), max_side=self._thumb * 2)
        img = widgets.Image(value=bytes(data), format="png", layout=widgets.Layout(width="100%", height="auto"))
        img.add_class("mk-thumb")
        children: list[widgets.Widget] = [img, widgets.HTML(f'<div class="mk-caption">{esc(caption)}</div>')]
        if extra is not None:
            children.append(extra)
        return widgets.VBox(children, layout=widgets.Layout(width="100%"))


INVALID_CLASS = "mk-invalid"
FOREGROUND_STOP = ("Runs in this cell: to stop, press the cell's stop button (■) in Colab, or Interrupt the kernel "
                   "in Jupyter. The run stops cleanly at the next step.")


class Panel(widgets.VBox):
    """Base of every tab. Subclasses build their form, then call `self._run(what, fn)` from handlers.

    ``background=True`` runs the work in a worker thread so a Cancel button can be clicked (Jupyter,
    Voila). In Colab keep the default: updates from threads do not render there, and the stop button
    (KeyboardInterrupt) cancels instead.
    """

    title = "Panel"

    def __init__(self, *, notify: Callable[..., None] | None = None, background: bool = False) -> None:
        self._notify = notify
        self.background = background
        self.busy = False
        self.last_error: ErrorInfo | None = None
        self.cancel_token = CancelToken()
        self._busy_buttons: list[widgets.Button] = []
        self._thread: threading.Thread | None = None
        self.notice = Notice()
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="danger",
                                            tooltip="Stop at the next step" if background else FOREGROUND_STOP,
                                            layout=widgets.Layout(width="auto", display="none"))
        self.cancel_button.on_click(self._on_cancel_button_click)
        self.stop_hint = widgets.HTML("")
        self.fields: dict[str, widgets.Widget] = {}  # argument name → the widget that sets it (errors mark it)
        self.marked: list[widgets.Widget] = []
        self.split_box: widgets.Box | None = None
        super().__init__([])
        self.add_class("mk-panel")

    # ---- the one place work happens --------------------------------------------------------------
    def _run(self, what: str, fn: Callable[[], Any]) -> None:
        if self.busy:
            self.notice.show(f"Still busy with the previous {what}; wait for it to finish.", "warning")
            return
        self.busy = True
        self.last_error = None
        self.cancel_token.reset()
        self.notice.clear()
        self.unmark_fields()
        for b in self._busy_buttons:
            b.disabled = True
        self._set_locked(True)
        self.cancel_button.layout.display = ""
        if not self.background:  # the kernel is busy: the button cannot be clicked, so say what stops it
            self.stop_hint.value = f'<div class="mk-muted mk-stop-hint">{esc(FOREGROUND_STOP)}</div>'
        if self.background:
            self._thread = threading.Thread(target=self._guarded, args=(what, fn), name=f"masuka-{what}",
                                            daemon=True)
            self._thread.start()
        else:
            self._guarded(what, fn)

    def _guarded(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except KeyboardInterrupt as exc:  # Colab's stop button: the engine has cleaned up already
            self._fail(what, exc)
        except Exception as exc:  # click handlers swallow exceptions: show every one
            if not isinstance(exc, MasukaError):
                log.error("ui.unexpected_error", what=what, error=repr(exc), exc_info=exc)
            self._fail(what, exc)
        finally:
            self.busy = False
            for b in self._busy_buttons:
                b.disabled = False
            self._set_locked(False)
            self.cancel_button.layout.display = "none"
            self.stop_hint.value = ""
            self._after_run()

    def _fail(self, what: str, exc: BaseException) -> None:
        info = error_info(exc)
        self.last_error = info
        self.notice.show_error(info)
        argument = getattr(exc, "argument", None)
        if isinstance(exc, MasukaError) and argument in self.fields:
            self.mark_field(argument, info.message)
        self._on_failed(info)
        if self._notify is not None:
            self._notify(ErrorInfo(info.code, f"{self.title}: {info.message}", info.hint, info.level, info.where),
                         source=self)

    def _on_failed(self, info: ErrorInfo) -> None:
        """Hook: a subclass resets its progress view and the like."""

    def _set_locked(self, locked: bool) -> None:
        """Hook: a subclass locks the inputs a run depends on (a dataset while it trains)."""

    def _after_run(self) -> None:
        """Hook: a subclass re-checks what its buttons may do (e.g. Train needs kept images)."""

    # ---- errors at the field ------------------------------------------------------------------------
    def mark_field(self, argument: str, message: str = "") -> None:
        box = self.fields.get(argument)
        if box is None:
            return
        box.add_class(INVALID_CLASS)
        if hasattr(box, "tooltip"):
            box.tooltip = message
        self.marked.append(box)

    def unmark_fields(self) -> None:
        for box in self.marked:
            box.remove_class(INVALID_CLASS)
            if hasattr(box, "tooltip"):
                box.tooltip = ""
        self.marked = []

    def started(self) -> None:
        """A run has begun: on a narrow screen the live column moves above the form."""
        if self.split_box is not None and "mk-has-run" not in self.split_box._dom_classes:
            self.split_box.add_class("mk-has-run")

    def wait(self, timeout: float | None = None) -> None:
        """Block until background work ends (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _on_cancel_button_click(self, _button: widgets.Button) -> None:
        self.cancel_token.cancel("cancelled from the app")
        self.notice.show("Cancelling at the next step…", "warning")

    def _say(self, text: str, level: str = "ok") -> None:
        self.notice.show(text, level)
        if self._notify is not None and level in ("ok", "warning"):
            self._notify(f"{self.title}: {text}", level, source=self)

    def refresh(self) -> None:
        """Hook: re-read state that may have changed in another tab (history, jobs)."""



def fill_upload(upload: widgets.FileUpload, files: Sequence[tuple[str, bytes]]) -> None:
    """Put files into a FileUpload the way a browser would, under either ipywidgets version
    (scripts and tests use it; the app never needs it)."""
    if isinstance(upload.value, dict):  # 7.7.1: the front end sends metadata + data, then bumps a counter
        upload.metadata = [{"name": n, "type": "", "size": len(b), "lastModified": 0} for n, b in files]
        upload.data = [bytes(b) for _, b in files]
        upload._counter += 1
    else:
        from datetime import datetime, timezone

        upload.value = tuple({"name": n, "type": "", "size": len(b),
                              "last_modified": datetime.fromtimestamp(0, timezone.utc),
                              "content": memoryview(bytes(b))} for n, b in files)
