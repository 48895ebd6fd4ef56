"""MASUKA's in-notebook app (ipywidgets). `masuka_nb.app()` builds and shows it.

Importing this package loads no widgets: `app` and the panels resolve on first use, so
`import masuka_nb.ui.helpers` (pure functions) stays cheap and widget-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from masuka_nb._lazy import attach

__all__ = ["DashboardPanel", "GeneratePanel", "HistoryPanel", "LoraPanel", "MasukaApp", "SettingsPanel", "VideoPanel",
           "app"]

_LAZY = {
    "app": "masuka_nb.ui.application",
    "MasukaApp": "masuka_nb.ui.application",
    "GeneratePanel": "masuka_nb.ui.generate",
    "VideoPanel": "masuka_nb.ui.video",
    "LoraPanel": "masuka_nb.ui.lora",
    "HistoryPanel": "masuka_nb.ui.gallery",
    "DashboardPanel": "masuka_nb.ui.dashboard",
    "SettingsPanel": "masuka_nb.ui.settings",
}


__getattr__, __dir__ = attach(globals(), _LAZY)


if TYPE_CHECKING:
    from masuka_nb.ui.application import MasukaApp, app
    from masuka_nb.ui.dashboard import DashboardPanel
    from masuka_nb.ui.gallery import HistoryPanel
    from masuka_nb.ui.generate import GeneratePanel
    from masuka_nb.ui.lora import LoraPanel
    from masuka_nb.ui.settings import SettingsPanel
    from masuka_nb.ui.video import VideoPanel
