"""The MASUKA app: a header with this runtime, app-wide toasts, and one tab per engine.

    import masuka_nb as mk
    mk.app()

Runs inside the notebook with stock widgets (no tunnels, no Gradio, no custom widget manager).
Tabs are built once; switching tabs refreshes the History, Dashboard and Settings from disk.

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
from masuka_nb.ui.settings import SettingsPanel
from masuka_nb.ui.video import VideoPanel

__all__ = ["MasukaApp", "app"]


class MasukaApp(widgets.VBox):
    """The whole app; it *is* a VBox, so it can be displayed, nested or inspected like any widget."""

    def __init__(self, *, model: str | None = None, video_generator: Any = None, background: bool = False,
                 dark: bool = False) -> None:
        from masuka_nb import __version__
        from masuka_nb.runtime import detect_quick

        self._shown_in: int | None = None
        self.runtime = info = detect_quick()  # nvidia-smi, not torch: building the app loads no engine
        self.toasts = Toasts()
        common = {"notify": self._notify, "background": background}
        self.image = GeneratePanel(model=model, runtime=info, **common)
        self.video = VideoPanel(generator=video_generator, **common)
        self.lora = LoraPanel(runtime=info, **common)
        self.history = HistoryPanel(on_use_recipe=self.use_recipe, **common)
        self.dashboard = DashboardPanel(**common)
        self.settings = SettingsPanel(on_theme=self.set_theme, **common)
        self.panels: list[Panel] = [self.image, self.lora, self.video, self.history, self.dashboard, self.settings]
        self.image.send_to_video = self._send_to_video
        self.tabs = widgets.Tab(children=self.panels)
        for i, panel in enumerate(self.panels):
            self.tabs.set_title(i, panel.title)
        self.tabs.observe(self._on_tab_change, names="selected_index")
        self.header = widgets.HTML(
            '<div class="mk-header"><span class="mk-title">MASUKA</span>'
            f'<span class="mk-subtitle">images · LoRAs · video — v{esc(__version__)}</span>'
            f'<span class="mk-header-chips" data-testid="mk-runtime">{chips_html(runtime_chips(info))}</span></div>')
        super().__init__([theme_widget(), self.header, self.toasts, self.tabs],
                         layout=widgets.Layout(width="100%"))
        self.add_class("mk-app")
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
        """"dark", "light" or "auto" (follow Colab's/JupyterLab's own theme)."""
        for cls in ("mk-dark", "mk-light"):
            if cls in self._dom_classes:
                self.remove_class(cls)
        if theme in ("dark", "light"):
            self.add_class(f"mk-{theme}")
        if self.settings.theme.value != theme and theme in ("dark", "light", "auto"):
            self.settings.theme.value = theme

    def _send_to_video(self, path: str) -> None:
        self.video.image.value = str(path)
        self.select("Video")
        self._notify("Start image set in the Video tab.", "ok")

    def _notify(self, message: str | ErrorInfo, level: str = "info", *, source: Panel | None = None) -> None:
        """Toast what happened in a tab the user is not looking at (the visible tab shows it inline)."""
        index = self.tabs.selected_index
        if source is not None and index is not None and self.panels[index] is source:
            return
        self.toasts.push(message, level)

    def _on_tab_change(self, change: dict[str, Any]) -> None:
        index = change["new"]
        if index is not None and self.panels[index] is self.video:
            self.video.opened()
        if index is not None and self.panels[index] in (self.history, self.dashboard, self.settings):
            self.panels[index]._run("refresh", self.panels[index].refresh)

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
        self._notify("Recipe loaded into the Image tab.", "ok")


def app(*, model: str | None = None, background: bool = False, dark: bool = False, display: bool = True,
        video_generator: Any = None) -> MasukaApp:
    """Build the app and show it in the notebook (once, also as a cell's last line); returns it (its
    panels are attributes).

    ``background=True`` runs work in a thread with a Cancel button (Jupyter/Voila); keep it False in
    Colab, where updates from threads do not render and the stop button cancels instead.
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
