"""The MASUKA app: a header with this runtime, app-wide toasts, and one tab per engine.

    import masuka_nb as mk
    mk.app()

Runs inside the notebook with stock widgets (no tunnels, no Gradio, no custom widget manager).
Tabs are built once; switching tabs refreshes the History and Dashboard from disk.
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
from masuka_nb.ui.video import VideoPanel

__all__ = ["MasukaApp", "app"]


class MasukaApp(widgets.VBox):
    """The whole app; it *is* a VBox, so it can be displayed, nested or inspected like any widget."""

    def __init__(self, *, model: str | None = None, video_generator: Any = None, background: bool = False,
                 dark: bool = False) -> None:
        from masuka_nb import __version__
        from masuka_nb.runtime import detect

        self.toasts = Toasts()
        common = {"notify": self._notify, "background": background}
        self.image = GeneratePanel(model=model, **common)
        self.video = VideoPanel(generator=video_generator, **common)
        self.lora = LoraPanel(**common)
        self.history = HistoryPanel(on_use_recipe=self.use_recipe, **common)
        self.dashboard = DashboardPanel(**common)
        self.panels: list[Panel] = [self.image, self.lora, self.video, self.history, self.dashboard]
        self.tabs = widgets.Tab(children=self.panels)
        for i, panel in enumerate(self.panels):
            self.tabs.set_title(i, panel.title)
        self.tabs.observe(self._on_tab_change, names="selected_index")
        info = detect()
        self.header = widgets.HTML(
            '<div class="mk-header"><span class="mk-title">MASUKA</span>'
            f'<span class="mk-subtitle">images · LoRAs · video — v{esc(__version__)}</span></div>'
            f"<div>{chips_html(runtime_chips(info))}</div>")
        super().__init__([theme_widget(), self.header, self.toasts, self.tabs],
                         layout=widgets.Layout(width="100%"))
        self.add_class("mk-app")
        if dark:
            self.add_class("mk-dark")

    def _notify(self, message: str | ErrorInfo, level: str = "info", *, source: Panel | None = None) -> None:
        """Toast what happened in a tab the user is not looking at (the visible tab shows it inline)."""
        index = self.tabs.selected_index
        if source is not None and index is not None and self.panels[index] is source:
            return
        self.toasts.push(message, level)

    def _on_tab_change(self, change: dict[str, Any]) -> None:
        index = change["new"]
        if index is not None and self.panels[index] in (self.history, self.dashboard):
            self.panels[index]._run("refresh", self.panels[index].refresh)

    def select(self, title: str) -> Panel:
        """Switch to the tab called `title` ("Image", "LoRA", "Video", "History", "Dashboard")."""
        for i, panel in enumerate(self.panels):
            if panel.title.lower() == title.lower():
                self.tabs.selected_index = i
                return panel
        raise KeyError(title)

    def use_recipe(self, rec: HistoryRecord) -> None:
        """Fill the Image form from a recorded recipe and switch to it."""
        recipe = {**(rec.recipe or {})}
        form = self.image
        from masuka_nb.models.registry import get_model

        try:
            form.model.value = get_model(recipe.get("model") or rec.model).id
        except Exception:  # an unknown model in an old record: keep the current one
            pass
        form.prompt.value = recipe.get("prompt") or rec.prompt or ""
        if recipe.get("negative_prompt") and not form.negative.disabled:
            form.negative.value = recipe["negative_prompt"]
        for key, box in (("width", form.width), ("height", form.height), ("steps", form.steps),
                         ("guidance", form.guidance)):
            if isinstance(recipe.get(key), (int, float)):
                box.value = recipe[key]
        seed = recipe.get("seed", (recipe.get("seeds") or [None])[0])
        form.seed.value = "" if seed is None else str(seed)
        self.select("Image")
        self._notify("Recipe loaded into the Image tab.", "ok")


def app(*, model: str | None = None, background: bool = False, dark: bool = False, display: bool = True,
        video_generator: Any = None) -> MasukaApp:
    """Build the app and show it in the notebook; returns it (its panels are attributes).

    ``background=True`` runs work in a thread with a Cancel button (Jupyter/Voila); keep it False in
    Colab, where updates from threads do not render and the stop button cancels instead.
    """
    ui = MasukaApp(model=model, video_generator=video_generator, background=background, dark=dark)
    if display:
        from IPython.display import display as show

        _colab_grow()
        show(ui)
    return ui


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
