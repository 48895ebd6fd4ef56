"""Widget building blocks every tab uses: theme, notices (plain words, fixes, Undo), toasts, progress with
a live preview and Stop, clickable tiles, and `Panel`, the base of every tab.

Only stock widgets from the API shared by ipywidgets 7.7.1 (Colab) and 8.x. Long work goes through the
app's `RunQueue` (`masuka_nb.ui.runs`): `Panel._run` checks the form at the click, queues the work, and
shows how it ended (done, stopped, failed) in the tab. ipywidgets swallows exceptions raised in click
handlers and threads, so every failure is caught there and shown in plain words, its technical part
inside a closed "Details".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import MasukaError
from masuka_nb.log import get_logger
from masuka_nb.progress import CancelToken, ProgressEvent
from masuka_nb.ui.helpers import (
    ErrorInfo,
    EtaSmoother,
    error_info,
    esc,
    fmt_duration,
    png_bytes,
    progress_text,
    upscale_for_display,
)
from masuka_nb.ui.runs import Run, RunQueue

__all__ = ["COMPACT_LABEL", "Gallery", "Notice", "Panel", "ProgressView", "Tile", "Toasts", "field_row", "fill_upload", "section",
           "split", "theme_widget"]

log = get_logger(__name__)


def theme_css() -> str:
    return resources.files("masuka_nb.ui").joinpath("theme.css").read_text(encoding="utf-8")


def theme_widget() -> widgets.HTML:
    """A `<style>` block: HTML widgets inject it into the page in Colab, Jupyter and Voila alike."""
    box = widgets.HTML(f"<style>{theme_css()}</style>", layout=widgets.Layout(height="0px", margin="0"))
    box.add_class("mk-style")
    return box


def section(title: str, note: str = "") -> widgets.HTML:
    extra = f'<span class="mk-section-note">{esc(note)}</span>' if note else ""
    return widgets.HTML(f'<div class="mk-section">{esc(title)}{extra}</div>')


def card(*children: widgets.Widget, **layout: Any) -> widgets.VBox:
    box = widgets.VBox(list(children), layout=widgets.Layout(**layout))
    box.add_class("mk-card")
    return box


def field_row(*children: widgets.Widget) -> widgets.HBox:
    row = widgets.HBox(list(children), layout=widgets.Layout(flex_flow="row wrap", align_items="center",
                                                             grid_gap="8px"))
    row.add_class("mk-row")
    return row


def wide(width: str = "100%") -> widgets.Layout:
    """A field that takes `width` on a wide screen and never more than its card on a narrow one."""
    return widgets.Layout(width=width, max_width="100%")


def button(description: str, icon: str = "", *, primary: bool = False, style: str = "",
           tooltip: str = "") -> widgets.Button:
    b = widgets.Button(description=description, icon=icon, button_style="primary" if primary else style,
                       tooltip=tooltip, layout=widgets.Layout(width="auto"))
    if primary:
        b.add_class("mk-primary")
    return b


def split(form: widgets.Widget, live: widgets.Widget) -> widgets.Box:
    """Form and result pane side by side on a wide screen (the pane pinned while the form scrolls); on a
    narrow one the pane comes first, and each run brings it into view. Both in CSS (theme.css)."""
    form.add_class("mk-form-col")
    live.add_class("mk-live-col")
    box = widgets.Box([form, live], layout=widgets.Layout(width="100%"))
    box.add_class("mk-split")
    return box


def show(widget: widgets.Widget, visible: bool = True) -> None:
    """Show or hide a widget without leaving an empty gap (a control that cannot act is not shown)."""
    widget.layout.display = "" if visible else "none"


LABEL_STYLE = {"description_width": "96px"}
COMPACT_LABEL = {"description_width": "52px"}  # a field to the right of another in a row (Height beside Width)


class Notice(widgets.VBox):
    """One message under a form: info / ok / warning / error in plain words, with the one-click fixes the
    tab offers for it (Undo, Resume, Switch model, Use the default) as buttons right under it."""

    def __init__(self) -> None:
        self.info: ErrorInfo | None = None
        self.level = ""
        self.text = ""
        self.html = widgets.HTML("")
        self.actions = field_row()
        show(self.actions, False)
        super().__init__([self.html, self.actions])
        self.add_class("mk-notice-box")

    def show(self, text: str, level: str = "info", *, actions: Mapping[str, Callable[[], Any]] | None = None) -> None:
        self.level, self.text, self.info = level, text, None
        self.html.value = f'<div class="mk-notice mk-{level}" data-testid="mk-notice">{esc(text)}</div>'
        self._actions(actions)

    def show_error(self, info: ErrorInfo, *, actions: Mapping[str, Callable[[], Any]] | None = None) -> None:
        self.level, self.text, self.info = info.level, info.message, info
        self.html.value = info.to_html()
        self._actions(actions)

    def clear(self) -> None:
        self.level, self.text, self.info = "", "", None
        self.html.value = ""
        self._actions(None)

    @property
    def buttons(self) -> dict[str, widgets.Button]:
        return {b.description: b for b in self.actions.children}

    def _actions(self, actions: Mapping[str, Callable[[], Any]] | None) -> None:
        rows = []
        for label, fn in (actions or {}).items():
            b = button(label, tooltip=label)
            b.add_class("mk-fix")
            b.on_click(lambda _b, fn=fn: fn())
            rows.append(b)
        self.actions.children = rows
        show(self.actions, bool(rows))


class Toasts(widgets.VBox):
    """App-wide news from a tab you are not looking at. It sits in the tab bar's own row, right of the tab
    titles (space that holds no control, at every width where it fits), as one line with a ✕: it never
    covers a result's actions and never pushes the layout down. Where the tab bar fills its row (narrow
    screens) the app marks the tab the news came from instead (see `MasukaApp._notify`)."""

    def __init__(self, *, keep: int = 3, hide_after_s: float | None = 12.0) -> None:
        self._keep = keep
        self._hide_after_s = hide_after_s
        self._timer: Any = None
        self.messages: list[tuple[str, str]] = []  # (level, html), newest first
        self._html = widgets.HTML("")
        self._html.add_class("mk-toast-text")
        self._dismiss = widgets.Button(icon="times", tooltip="Dismiss", layout=widgets.Layout(width="30px"))
        self._dismiss.add_class("mk-toast-close")
        self._dismiss.on_click(self._on_dismiss_click)
        inner = widgets.HBox([self._html, self._dismiss])
        inner.add_class("mk-toast-card")
        super().__init__([inner], layout=widgets.Layout(display="none"))
        self.add_class("mk-toasts")

    def push(self, text_or_info: str | ErrorInfo, level: str = "info", *, source: str = "") -> None:
        if isinstance(text_or_info, ErrorInfo):  # one line: the sentence (its tab shows the details)
            level, text_or_info = text_or_info.level, text_or_info.message
        body = (f'<div class="mk-notice mk-{level}" data-testid="mk-toast" title="{esc(text_or_info)}">'
                f'{esc(text_or_info)}</div>')
        self.messages = [(level, body), *self.messages][: self._keep]
        self._sources = [source, *getattr(self, "_sources", [])][: self._keep]
        self._render_toasts()
        if self._hide_after_s and level != "error":  # news fades; an error stays until dismissed
            import threading

            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._hide_after_s, self.clear)
            self._timer.daemon = True
            self._timer.start()

    def clear(self) -> None:
        self.messages = []
        self._sources = []
        self._render_toasts()

    def drop_from(self, source: str) -> None:
        """Forget the toasts of a tab that has come into view (it shows them itself)."""
        keep = [(m, s) for m, s in zip(self.messages, getattr(self, "_sources", [])) if s != source]
        self.messages, self._sources = [m for m, _ in keep], [s for _, s in keep]
        self._render_toasts()

    def _on_dismiss_click(self, _button: widgets.Button) -> None:
        self.clear()

    def _render_toasts(self) -> None:
        self._html.value = self.messages[0][1] if self.messages else ""  # the newest: one line, no pile
        show(self, bool(self.messages))


class ProgressView(widgets.VBox):
    """A progress bar with Stop beside it, a status line (steady ETA, elapsed) and an optional live preview;
    call it with `ProgressEvent`s: it *is* an engine's ``progress=`` callback."""

    def __init__(self, *, preview_size: int = 192, clock: Callable[[], float] = time.monotonic,
                 stop: widgets.Widget | None = None) -> None:
        self._clock = clock
        self._started: float | None = None
        self._eta = EtaSmoother()
        self.bar = widgets.IntProgress(value=0, min=0, max=1000, layout=widgets.Layout(width="100%"))
        self.bar.add_class("mk-bar")
        self.status = widgets.HTML('<span class="mk-status"></span>')
        self.preview = widgets.Image(format="png", layout=widgets.Layout(
            width=f"{preview_size}px", height=f"{preview_size}px", display="none"))
        self.preview.add_class("mk-thumb")
        self.events: list[ProgressEvent] = []  # kept for the history of this run and for tests
        self._preview_size = preview_size
        self._status_text = ""
        top = widgets.HBox([self.bar, *([stop] if stop is not None else [])],
                           layout=widgets.Layout(align_items="center", grid_gap="8px", width="100%"))
        top.add_class("mk-progress-row")
        super().__init__([top, self.status, self.preview], layout=widgets.Layout(display="none"))
        self.add_class("mk-progress")

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)
        self.layout.display = ""
        self.bar.value = round(1000 * event.fraction)
        eta = self._eta(event.stage, event.step, event.total, event.elapsed_s)
        self._set_status(progress_text(event.stage, event.step, event.total, eta_s=eta,
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
        self._eta = EtaSmoother()
        self.events = []
        self.layout.display = ""
        self.bar.value = 0
        self.bar.bar_style = ""
        self.preview.layout.display = "none"
        self._set_status(text)

    def finish(self, text: str = "done", *, ok: bool = True) -> None:
        self.bar.value = 1000 if ok else self.bar.value
        self.preview.layout.display = "none"  # the result (or nothing, after a stop) replaces the preview
        self.preview.value = b""
        self.bar.bar_style = "success" if ok else "warning"
        elapsed = self.elapsed_s
        self._set_status(text + (f" · {fmt_duration(elapsed)}" if elapsed is not None else ""))
        self._started = None

    def reset(self) -> None:
        """Hide everything from the last run."""
        self.events = []
        self._started = None
        self.bar.value = 0
        self.preview.layout.display = "none"
        self.layout.display = "none"
        self._set_status("")

    def say(self, text: str) -> None:
        """Replace the status line (e.g. "Stopping…")."""
        self._set_status(text)

    @property
    def status_text(self) -> str:
        return self._status_text

    def _set_status(self, text: str) -> None:
        self._status_text = text
        self.status.value = f'<span class="mk-status" data-testid="mk-progress">{esc(text)}</span>'


class Tile(widgets.Box):
    """A clickable picture: an Image with a transparent button laid over it (stock widgets have no
    clickable image), a caption under it, and an optional badge or dimmed state with its reason."""

    def __init__(self, data: bytes, caption: str = "", *, on_click: Callable[[], Any] | None = None,
                 tooltip: str = "", badge: str = "", dimmed: str = "", size: int = 120) -> None:
        self.image = widgets.Image(value=bytes(data), format="png", layout=widgets.Layout(width="100%",
                                                                                         height="auto"))
        self.image.add_class("mk-tile-img")
        parts: list[widgets.Widget] = [self.image]
        self.hit: widgets.Button | None = None
        if on_click is not None:
            self.hit = widgets.Button(description="", tooltip=tooltip or caption or "Open",
                                      layout=widgets.Layout(width="100%", height="100%"))
            self.hit.add_class("mk-overlay")
            self.hit.on_click(lambda _b: on_click())
            parts.append(self.hit)
        over = ""
        if badge:
            over += f'<span class="mk-badge">{esc(badge)}</span>'
        if dimmed:
            over += f'<span class="mk-dim-reason">{esc(dimmed)}</span>'
        if over:
            parts.append(widgets.HTML(over, layout=widgets.Layout(margin="0")))
        self.frame = widgets.Box(parts, layout=widgets.Layout(width="100%"))
        self.frame.add_class("mk-tile-frame")
        if dimmed:
            self.frame.add_class("mk-dimmed")
        self.caption = widgets.HTML(f'<div class="mk-caption">{esc(caption)}</div>' if caption else "")
        super().__init__([self.frame, self.caption], layout=widgets.Layout(
            width=f"{size}px", max_width="100%", flex_flow="column"))
        self.add_class("mk-tile")


class Gallery(widgets.VBox):
    """A grid of images (PIL or PNG bytes) with captions; `items` keeps what is shown. With `on_open` each
    picture is a clickable tile; `extra` puts one widget per item under its caption."""

    def __init__(self, *, columns: int = 4, thumb: int = 220, empty: str = "Nothing here yet.") -> None:
        self._columns = columns
        self._thumb = thumb
        self._empty = empty
        self.items: list[tuple[Any, str]] = []
        self.cells: list[widgets.Widget] = []
        self.grid = widgets.GridBox([], layout=widgets.Layout(
            grid_template_columns=f"repeat(auto-fill, minmax(min({thumb}px, 100%), 1fr))", grid_gap="12px",
            width="100%"))
        self.grid.add_class("mk-gallery")
        self.placeholder = widgets.HTML(f'<div class="mk-empty">{esc(empty)}</div>' if empty else "")
        super().__init__([self.placeholder, self.grid])

    def set_items(self, items: Sequence[tuple[Any, str]], *, extra: Sequence[widgets.Widget] | None = None,
                  on_open: Callable[[int], Any] | None = None, dimmed: Sequence[str] | None = None,
                  badges: Sequence[str] | None = None) -> None:
        """Show `(image, caption)` pairs; `extra` is one widget per item placed under its caption."""
        self.items = list(items)
        cells = []
        for i, (img, cap) in enumerate(items):
            data = img if isinstance(img, (bytes, bytearray)) else png_bytes(
                upscale_for_display(img, min_side=self._thumb), max_side=self._thumb * 2)
            tile = Tile(bytes(data), cap, on_click=(lambda i=i: on_open(i)) if on_open else None,
                        badge=badges[i] if badges else "", dimmed=dimmed[i] if dimmed else "", size=self._thumb)
            tile.layout.width = "100%"
            if extra is not None:
                tile.children = [*tile.children, extra[i]]
            cells.append(tile)
        self.cells = cells
        self.grid.children = cells
        self.placeholder.layout.display = "none" if cells or not self._empty else ""


INVALID_CLASS = "mk-invalid"
STOPPED_WORDS = "Nothing half-made was kept; run it again when you are ready."
COLAB_STOP = "Running in this cell: to stop, press ■ (Interrupt execution) beside the cell. It stops cleanly at " \
             "the next step."


class Panel(widgets.VBox):
    """Base of every tab. A subclass builds its form, then calls `self._run(what, work, check=...)`.

    `check()` runs at the click (form errors show at once, nothing queued) and returns the arguments;
    `work(args)` runs where Stop can reach it (the app's worker, or inline in Colab). `labels` names each
    form argument as the form shows it, so errors read "Width 9000 is too large", not "`width` = 9000".
    """

    title = "Panel"

    def __init__(self, *, notify: Callable[..., None] | None = None, runner: RunQueue | None = None,
                 background: bool | None = None) -> None:
        self._notify = notify
        mode = None if background is None else ("worker" if background else "inline")
        self.runner = runner or RunQueue(mode=mode)
        self.busy = False
        self.last_error: ErrorInfo | None = None
        self.current: Run | None = None
        self.cancel_token = CancelToken()  # the running run's token (engines read it)
        self._busy_buttons: list[widgets.Button] = []
        self.notice = Notice()
        self.stop_button = button("Stop", "stop", style="danger", tooltip="Stop this run; what is finished is kept")
        self.stop_button.add_class("mk-stop")
        show(self.stop_button, False)
        self.stop_button.on_click(self._on_stop_button_click)
        self.stop_hint = widgets.HTML("")
        self.fields: dict[str, widgets.Widget] = {}  # argument name → the widget that sets it (errors mark it)
        self.labels: dict[str, str] = {}  # argument name → its label in the form
        self.defaults: dict[str, Any] = {}  # argument name → the value "Use the default" puts back
        self.marked: list[widgets.Widget] = []
        self.split_box: widgets.Box | None = None
        self.open_tab: Callable[[str], Any] | None = None  # the app sets it: a fix may lead to another tab
        self._pending_reveal: widgets.Widget | None = None
        super().__init__([])
        self.add_class("mk-panel")

    @property
    def background(self) -> bool:
        return self.runner.mode == "worker"

    @property
    def cancel_button(self) -> widgets.Button:  # the name older scripts use
        return self.stop_button

    # ---- the one place work happens --------------------------------------------------------------
    def _run(self, what: str, work: Callable[..., Any], *, check: Callable[[], Any] | None = None,
             check_failed: Callable[[str, BaseException], Any] | None = None) -> Run | None:
        """Check at the click, then queue `work` (inline in Colab). Returns the Run (None: the check failed)."""
        self.unmark_fields()
        if check is not None:
            try:
                args = check()
            except Exception as exc:  # a form error: shown at its field, nothing runs
                (check_failed or self._check_failed)(what, exc)
                return None
            fn: Callable[[], Any] = lambda: work(args)  # noqa: E731
        else:
            fn = work
        run = Run(what, fn, owner=self)
        queued = self.runner.mode == "worker" and not self.runner.idle()
        self.runner.submit(run)
        if queued and run.state == "waiting":
            ahead = self.runner.ahead_of(run)
            self.notice.show(f"Queued: starts after {ahead} run{'s' if ahead != 1 else ''} before it.", "info")
        return run

    def _run_started(self, run: Run) -> None:
        self.current = run
        self.cancel_token = run.token
        self.busy = True
        self.last_error = None
        self.notice.clear()
        for b in self._busy_buttons:
            b.disabled = self.runner.mode == "inline"  # in the worker, a click queues the next run
        self._set_locked(True)
        if self.runner.mode == "worker":
            show(self.stop_button)
            self.stop_button.disabled = False
            self.stop_button.description = "Stop"
        else:  # the kernel is busy: no button could be clicked, so say what stops it
            self.stop_hint.value = f'<div class="mk-muted mk-stop-hint">{esc(COLAB_STOP)}</div>'

    def _run_ended(self, run: Run, error: BaseException | None) -> None:
        self.busy = False
        self.current = None
        show(self.stop_button, False)
        self.stop_hint.value = ""
        for b in self._busy_buttons:
            b.disabled = False
        self._set_locked(False)
        if run.state == "stopped":
            info = error_info(error) if error is not None else None
            self.notice.show(self._stopped_text(run, info), "warning")
            self.notice.html.value = self.notice.html.value.replace('data-testid="mk-notice"',
                                                                    'data-testid="mk-stopped"')
            self.last_error = info
            self._on_stopped(run)
        elif error is not None:
            if not isinstance(error, MasukaError):
                log.error("ui.unexpected_error", what=run.label, error=repr(error), exc_info=error)
            self._fail(run.label, error)
        self._after_run()
        if run.state != "done":
            self._pending_reveal = None

    def _run_settled(self, run: Run) -> None:
        """Called once the app's queue strip is drawn again: what the run made comes into view now, after
        every change of layout the run caused (a preview gone, a notice, the strip)."""
        pending, self._pending_reveal = self._pending_reveal, None
        if pending is not None and run.state == "done":
            reveal(pending)

    def reveal(self, target: widgets.Widget | None) -> None:
        """Bring `target` (what a run made) into view: at once outside a run; inside one, once the run has
        ended and settled, so no later change of layout (a hidden preview, a notice, the queue strip) pushes
        it out of view again."""
        if self.busy:
            self._pending_reveal = target
        else:
            reveal(target)

    def _stopped_text(self, run: Run, info: ErrorInfo | None) -> str:
        """The stop notice: how long it ran and what was kept (a subclass that can count what it made says
        that instead: "Stopped after 4 of 16 images; …")."""
        took = fmt_duration((run.ended_at or 0) - (run.started_at or 0))
        return f"Stopped after {took}. {self._stopped_words(run, info)}"

    def _stopped_words(self, run: Run, info: ErrorInfo | None) -> str:
        """What a stop kept, in one sentence (a subclass says it for its own runs: a training's checkpoint)."""
        return (info.hint if info is not None and info.hint else "") or STOPPED_WORDS

    def _run_removed(self, run: Run) -> None:
        if not self.runner.waiting(self) and not self.busy:
            self.notice.show(f"Removed from the queue: {run.label}.", "info")

    def _fail(self, what: str, exc: BaseException) -> None:
        info = error_info(exc, labels=self.labels)
        self.last_error = info
        argument = getattr(exc, "argument", None)
        self.notice.show_error(info, actions=self._fixes(info))
        if isinstance(exc, MasukaError) and argument in self.fields:
            self.mark_field(argument, info.message)
        self._on_failed(info)
        if self._notify is not None:
            self._notify(ErrorInfo(info.code, f"{self.title}: {info.message}", info.hint, info.level, info.details),
                         source=self)

    def _check_failed(self, what: str, exc: BaseException) -> None:
        """Hook: where a form error shows (a subclass may show it at the form rather than the result)."""
        self._fail(what, exc)

    def _fixes(self, info: ErrorInfo) -> dict[str, Callable[[], Any]]:
        """The one-click fixes this tab can act on for `info` (a subclass adds Resume, Switch model…)."""
        from masuka_nb.ui.helpers import FIX_DEFAULT

        out: dict[str, Callable[[], Any]] = {}
        if FIX_DEFAULT in info.fixes and info.argument in self.defaults and info.argument in self.fields:
            out["Use the default"] = lambda arg=info.argument: self._use_default(arg)
        if info.code in ("SECRET_MISSING", "PROVIDER_AUTH") and self.open_tab is not None:
            out["Add the key in Settings"] = lambda: self.open_tab("Settings")
        return out

    def _use_default(self, argument: str) -> None:
        box = self.fields[argument]
        box.value = self.defaults[argument]
        self.unmark_fields()
        self.notice.show(f"{self.labels.get(argument, argument)} is back to its default.", "info")

    def _on_failed(self, info: ErrorInfo) -> None:
        """Hook: a subclass resets its progress view and the like."""

    def _on_stopped(self, run: Run) -> None:
        """Hook: a subclass marks its progress view stopped."""

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
        """A run has begun: on a narrow screen the result pane moves above the form."""
        if self.split_box is not None and "mk-has-run" not in self.split_box._dom_classes:
            self.split_box.add_class("mk-has-run")

    def wait(self, timeout: float | None = None) -> None:
        """Block until this app's queued work has ended (tests, scripts)."""
        self.runner.wait_idle(timeout)

    def _on_stop_button_click(self, _button: widgets.Button) -> None:
        run = self.current
        if run is None:
            return
        run.stop()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping…"
        self._stopping()

    def _stopping(self) -> None:
        """Hook: say at once that the stop was heard (the engine stops inside the step in flight)."""
        self.notice.show("Stopping…", "warning")

    def _say(self, text: str, level: str = "ok", *, actions: Mapping[str, Callable[[], Any]] | None = None) -> None:
        self.notice.show(text, level, actions=actions)
        if self._notify is not None and level in ("ok", "warning"):
            self._notify(f"{self.title}: {text}", level, source=self)

    def refresh(self) -> None:
        """Hook: re-read state that may have changed in another tab (history, jobs)."""


def reveal(target: widgets.Widget | None) -> None:
    """Bring `target` into the viewport (its centre), by focusing it: ipywidgets 8 sends the browser a
    focus message, and a browser scrolls a focused element into view. ipywidgets 7.7.1 (Colab) has no
    focus(): there the result pane simply comes first on a narrow screen."""
    focus = getattr(target, "focus", None)
    if callable(focus):
        try:
            focus()
        except Exception as exc:  # no front end (a script, a test): nothing to scroll
            log.debug("ui.reveal_failed", error=str(exc))


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
