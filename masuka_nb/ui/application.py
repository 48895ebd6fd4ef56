"""The MASUKA app: a header with this runtime (live disk and RAM), the run queue, app-wide toasts, and
one tab per engine.

    import masuka_nb as mk
    mk.app()

Runs inside the notebook with stock widgets (no tunnels, no Gradio, no custom widget manager). Long work
goes through one `RunQueue` per app (`masuka_nb.ui.runs`): a worker thread with a visible queue where the
front end shows updates from threads (JupyterLab, Voila, VS Code), so Stop is heard mid-run; inline in
Colab, where Colab's own ■ stops it. Tabs are built once; switching tabs refreshes History, Dashboard and
Settings from disk, and the header's figures.

Starting is light: no torch, diffusers or transformers until the first piece of work (the header's
GPU facts come from `nvidia-smi`), and the app is shown exactly once, whether `mk.app()` is a cell's
last line or assigned.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.history import HistoryRecord
from masuka_nb.ui.components import Panel, Toasts, theme_widget
from masuka_nb.ui.dashboard import DashboardPanel, chips_html, runtime_chips
from masuka_nb.ui.gallery import HistoryPanel
from masuka_nb.ui.generate import GeneratePanel
from masuka_nb.ui.helpers import ErrorInfo, esc
from masuka_nb.ui.lora import LoraPanel
from masuka_nb.ui.runs import RunQueue
from masuka_nb.ui.settings import SettingsPanel
from masuka_nb.ui.video import VideoPanel

__all__ = ["MasukaApp", "app"]

NEWS_MARK = "•"  # after a tab's title: it has news you have not seen (a toast came from it)


class MasukaApp(widgets.VBox):
    """The whole app; it *is* a VBox, so it can be displayed, nested or inspected like any widget.

    `background`: True runs work on the app's worker thread (Stop works mid-run), False inline in the
    click (Colab's way), None (the default) picks by front end: inline in Colab, the worker elsewhere."""

    def __init__(self, *, model: str | None = None, video_generator: Any = None, background: bool | None = None,
                 dark: bool = False) -> None:
        from masuka_nb import __version__
        from masuka_nb.runtime import detect_quick

        self._shown_in: int | None = None
        self.runtime = info = detect_quick()  # nvidia-smi, not torch: building the app loads no engine
        self.toasts = Toasts()
        self.runner = RunQueue(mode=None if background is None else ("worker" if background else "inline"))
        common = {"notify": self._notify, "runner": self.runner}
        self.image = GeneratePanel(model=model, runtime=info, **common)
        self.video = VideoPanel(generator=video_generator, **common)
        self.lora = LoraPanel(runtime=info, **common)
        self.history = HistoryPanel(on_use_recipe=self.use_recipe, **common)
        self.dashboard = DashboardPanel(**common)
        self.settings = SettingsPanel(on_theme=self.set_theme, on_change=self._settings_changed, **common)
        self.settings.on_measured = self._show_runtime
        self.panels: list[Panel] = [self.image, self.lora, self.video, self.history, self.dashboard, self.settings]
        self.image.send_to_video = self._send_to_video
        self.image._set_actions(self.image.shown)
        self.lora.use_lora = self._use_lora
        for panel in self.panels:
            panel.open_tab = self.select
        self.tabs = widgets.Tab(children=self.panels)
        for i, panel in enumerate(self.panels):
            self.tabs.set_title(i, panel.title)
        self.tabs.observe(self._on_tab_change, names="selected_index")
        self._version = __version__
        self.header = widgets.HTML("")
        self._show_runtime(info)
        self.mode_note = widgets.HTML(
            '<div class="mk-muted mk-mode-note">Runs happen in this cell: press ■ (Interrupt) beside the cell to '
            "stop one.</div>" if self.runner.mode == "inline" else "")
        # the toasts come just before the tabs: they are drawn in the tab bar's row (right of the titles)
        super().__init__([theme_widget(), self.header, self.runner, self.mode_note, self.toasts, self.tabs],
                         layout=widgets.Layout(width="100%"))
        self.add_class("mk-app")
        self.add_class(f"mk-mode-{self.runner.mode}")
        if dark:
            self.set_theme("dark")

    # ---- shown once, small repr -------------------------------------------------------------------
    def __repr__(self) -> str:  # a widget's default repr is every trait of every child (≈33 KB)
        tabs = ", ".join(p.title for p in self.panels)
        return f"<MasukaApp tabs: {tabs}; display it in a notebook (Jupyter, Colab, Voila)>"

    def _already_shown(self) -> bool:
        """True while still in the cell that showed the app: the cell's own echo of `mk.app()` is skipped."""
        return self._shown_in is not None and self._shown_in == _execution_count()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:  # ipywidgets 8
        if self._already_shown():
            return None
        return super()._repr_mimebundle_(**kwargs)

    def _ipython_display_(self, **kwargs: Any) -> None:  # ipywidgets 7.7.1 (Colab)
        if self._already_shown():
            return
        parent = getattr(super(), "_ipython_display_", None)
        if parent is not None:
            parent(**kwargs)
        else:  # 8.x has no _ipython_display_: IPython uses the mimebundle
            from IPython.display import display

            display(super()._repr_mimebundle_(), raw=True)

    def show(self) -> None:
        """Display the app now (what `mk.app()` does); the same cell's echo then shows nothing more."""
        from IPython.display import display

        self._shown_in = None
        display(self)
        self._shown_in = _execution_count()

    def set_theme(self, theme: str) -> None:
        """"dark", "light" or "auto" (follow Colab's/JupyterLab's own theme). The page around the app
        follows too (theme.css: Voila's page turns dark with it)."""
        for cls in ("mk-dark", "mk-light"):
            if cls in self._dom_classes:
                self.remove_class(cls)
        if theme in ("dark", "light"):
            self.add_class(f"mk-{theme}")
        if self.settings.theme.value != theme and theme in ("dark", "light", "auto"):
            self.settings.theme.value = theme

    def _show_runtime(self, info: Any) -> None:
        """The header: name, version and this runtime's figures (measured again on every tab switch)."""
        self.runtime = info
        self.header.value = (
            '<div class="mk-header"><span class="mk-title">MASUKA</span>'
            f'<span class="mk-subtitle">images · LoRAs · video — v{esc(self._version)}</span>'
            f'<span class="mk-header-chips" data-testid="mk-runtime">{chips_html(runtime_chips(info))}</span></div>')

    def refresh_runtime(self) -> None:
        from masuka_nb.runtime import detect_quick

        self._show_runtime(detect_quick())

    def _settings_changed(self) -> None:
        self.refresh_runtime()

    def _send_to_video(self, path: str) -> None:
        self.video.image.value = str(path)
        self.select("Video")
        self.video.notice.show("The image is the start image of your clip.", "ok")

    def _use_lora(self, path: str, trigger: str) -> None:
        """The LoRA tab's "Use in Image tab": the LoRA goes into the Image tab's LoRAs, its trigger word
        into the prompt."""
        form = self.image
        lines = [ln for ln in form.loras.value.splitlines() if ln.strip() and ln.strip() != path]
        form.loras.value = "\n".join([*lines, f"{path}:1.0"])
        if trigger and trigger not in form.prompt.value:
            form.prompt.value = f"a photo of {trigger}" if not form.prompt.value.strip() else \
                f"{form.prompt.value.strip()}, {trigger}"
        if self.lora.base.value and form.model.value != self.lora.base.value:
            try:
                form.model.value = self.lora.base.value  # a LoRA works on the base it was trained on
            except Exception:  # not an image model here: keep the form's
                pass
        self.select("Image")
        form.notice.show("Your LoRA is in the LoRAs box and its trigger word in the prompt: press Generate.", "ok")

    def _notify(self, message: str | ErrorInfo, level: str = "info", *, source: Panel | None = None) -> None:
        """Toast what happened in a tab the user is not looking at (the visible tab shows it inline)."""
        index = self.tabs.selected_index
        if source is not None and index is not None and self.panels[index] is source:
            return
        self.toasts.push(message, level, source=source.title if source is not None else "")
        if source is not None and source in self.panels:  # the tab it came from is marked until it is opened
            self.tabs.set_title(self.panels.index(source), f"{source.title} {NEWS_MARK}")

    def _on_tab_change(self, change: dict[str, Any]) -> None:
        index = change["new"]
        if index is None:
            return
        panel = self.panels[index]
        self.toasts.drop_from(panel.title)
        self.tabs.set_title(index, panel.title)
        if panel is self.video:
            self.video.opened()
        if panel in (self.history, self.dashboard, self.settings):
            try:
                panel.refresh()
            except Exception as exc:  # a damaged file must not break the tab switch: say it there
                panel._fail("refresh", exc)
        if panel is not self.settings:
            self.refresh_runtime()  # disk and RAM change during a session

    def select(self, title: str) -> Panel:
        """Switch to the tab called `title` ("Image", "LoRA", "Video", "History", "Dashboard", "Settings")."""
        for i, panel in enumerate(self.panels):
            if panel.title.lower() == title.lower():
                self.tabs.selected_index = i
                return panel
        raise KeyError(title)

    def use_recipe(self, rec: HistoryRecord) -> None:
        """Fill the Image form from a recorded recipe and switch to it."""
        self.image.load_recipe({"model": rec.model, "prompt": rec.prompt, **(rec.recipe or {})})
        self.select("Image")
        self.image.notice.show("The recipe is in the form: press Generate to make it again.", "ok")


def app(*, model: str | None = None, background: bool | None = None, dark: bool = False, display: bool = True,
        video_generator: Any = None) -> MasukaApp:
    """Build the app and show it in the notebook (once, also as a cell's last line); returns it (its
    panels are attributes).

    ``background``: None (default) picks by front end: in Colab work runs in the click and Colab's ■
    stops it; in JupyterLab, Voila and VS Code it runs on the app's worker and Stop stops it mid-run.
    True or False forces one or the other.
    """
    ui = MasukaApp(model=model, video_generator=video_generator, background=background, dark=dark)
    if display and _execution_count() is not None:  # a notebook kernel; a plain interpreter gets the repr
        _colab_grow()
        ui.show()
    return ui


def _execution_count() -> int | None:
    """The running cell's number in an IPython kernel, else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return int(getattr(shell, "execution_count", 0) or 0)


def _colab_grow() -> None:
    """Let a tall app grow instead of scrolling inside Colab's output frame."""
    from masuka_nb.runtime import in_colab

    if not in_colab():
        return
    try:
        from google.colab import output  # type: ignore[import-not-found]

        output.no_vertical_scroll()
    except (ImportError, AttributeError):
        pass
