"""The Dashboard tab: what has been made (counts, success rate, time per model), what went wrong
(errors by code), what has been spent (per provider, over time, against the budget), and the
hosted jobs. Small charts drawn by matplotlib at the size they are shown. The runtime chips live in
the app's header (one place); the Settings tab has the runtime in full.

Nothing here runs when the app is built: the tab reads the history when it is opened.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import Panel, card, chart_image, field_row, section
from masuka_nb.ui.helpers import esc, fmt_duration, fmt_money, history_stats

__all__ = ["DashboardPanel", "runtime_chips"]


def runtime_chips(info: Any) -> list[tuple[str, str]]:
    """(text, level) chips for a `RuntimeInfo`: what a user checks first in a new session."""
    chips = [("Colab" if info.colab else "local Jupyter", "")]
    if info.has_gpu:
        chips.append((f"{info.gpu_name} · {info.vram_gb:.0f} GiB", "ok"))
        chips.append(("bf16" if info.bf16 else "fp16 (no bf16)", ""))
    else:
        chips.append(("no GPU: tiny models only", "warn"))
    chips.append((f"RAM {info.ram_gb:.1f} GiB", "warn" if info.ram_gb and info.ram_gb < 13 else ""))
    chips.append((f"disk {info.disk_free_gb:.0f} GiB free", "warn" if info.disk_free_gb < 20 else ""))
    chips.append(("Drive mounted" if info.drive_mounted else "Drive not mounted",
                  "ok" if info.drive_mounted else "warn"))
    return chips


def chips_html(chips: list[tuple[str, str]]) -> str:
    return "".join(f'<span class="mk-chip {"mk-" + lvl if lvl else ""}">{esc(t)}</span>' for t, lvl in chips)


class DashboardPanel(Panel):
    title = "Dashboard"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stats: Any = None
        self.stats_html = widgets.HTML('<div class="mk-empty">Open this tab to read the history.</div>')
        self.time_chart = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.errors_chart = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.provider_chart = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.day_chart = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        for chart in (self.time_chart, self.errors_chart, self.provider_chart, self.day_chart):
            chart.add_class("mk-chart")  # the browser test waits for drawn charts by this class
        self.errors_html = widgets.HTML("")
        self.spend_html = widgets.HTML("")
        self.jobs_html = widgets.HTML("")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="auto"))
        self.refresh_button.on_click(self._on_refresh_button_click)
        charts = widgets.Box([card(section("Time per model"), self.time_chart),
                              card(section("Errors by code"), self.errors_chart, self.errors_html),
                              card(section("Spend per provider"), self.provider_chart, self.spend_html),
                              card(section("Spend over time"), self.day_chart)])
        charts.add_class("mk-tiles")
        self.children = [
            field_row(self.refresh_button),
            card(section("Made so far"), self.stats_html),
            charts,
            card(section("Hosted jobs"), self.jobs_html),
            self.notice,
        ]
        self._busy_buttons = [self.refresh_button]

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self._run("refresh", self.refresh)

    def refresh(self) -> None:
        from masuka_nb.config import settings
        from masuka_nb.history import history
        s = settings()
        self.stats = st = history_stats(history().all())
        budget = f" of {fmt_money(s.budget_usd)} budget" if s.budget_usd is not None else ""
        rate = "–" if st.success_rate is None else f"{100 * st.success_rate:.0f}%"
        tiles = [(str(st.total), "records"), (rate, "succeeded")]
        tiles += [(str(st.images), "images")]
        tiles += [(str(st.by_kind.get(k, 0)), label) for k, label in (("video", "videos"), ("training", "trainings"),
                                                                      ("comparison", "comparisons"))]
        tiles += [(str(st.by_status.get("failed", 0)), "failed"), (fmt_money(st.spend_usd), "spent" + budget)]
        self.stats_html.value = '<div class="mk-stats" data-testid="mk-stats">' + "".join(
            f'<div class="mk-stat"><b>{esc(v)}</b><span>{esc(label)}</span></div>' for v, label in tiles) + "</div>"
        self._chart(self.time_chart, st.seconds_by_model, "mean seconds per run", lambda v: fmt_duration(v))
        self._chart(self.errors_chart, st.errors_by_code, "failed runs", lambda v: f"{v:g}")
        self._chart(self.provider_chart, st.spend_by_provider, "USD", fmt_money)
        days = dict(list(st.spend_by_day.items())[-14:])
        self._chart(self.day_chart, {d[5:]: v for d, v in days.items()}, "USD per day (last 14)", fmt_money)
        self.errors_html.value = "" if st.errors_by_code else '<div class="mk-empty">No failures.</div>'
        self.spend_html.value = "" if st.spend_by_provider else '<div class="mk-empty">Nothing spent yet.</div>'
        self.jobs_html.value = _jobs_summary()
        if "mk-refreshed" not in self._dom_classes:  # the last update of a refresh: a browser can wait on it
            self.add_class("mk-refreshed")

    @staticmethod
    def _chart(image: widgets.Image, data: dict[str, float], label: str, fmt: Any) -> None:
        if not data:
            image.layout.display = "none"
            image.value = b""
            return
        from masuka_nb.ui.charts import bar_chart

        height = 70 + 26 * min(len(data), 8)
        items = list(data.items())[:8]
        chart = bar_chart([k for k, _ in items], [v for _, v in items], ylabel=label, width=340, height=height,
                          fmt_fn=fmt)
        chart_image(chart, image)


def _jobs_summary() -> str:
    try:
        from masuka_nb import jobs
    except ImportError:
        return '<div class="mk-empty">The hosted-jobs engine is not installed.</div>'
    from masuka_nb.ui.video import jobs_table_html

    return jobs_table_html(list(jobs.list()), limit=10)
