"""The Dashboard tab: what has been made (counts, success rate, time per model), what went wrong (in
words), what has been spent (per provider, over time, against the budget; simulator and local runs are
free), and the hosted jobs. The bars are HTML in the app's own type and colours, light or dark. The runtime chips live in
the app's header (one place); the Settings tab has the runtime in full.

Nothing here runs when the app is built: the tab reads the history when it is opened.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import Panel, button, card, section
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
        self.time_html = widgets.HTML("")
        self.errors_html = widgets.HTML("")
        self.spend_html = widgets.HTML("")
        self.day_html = widgets.HTML("")
        self.jobs_html = widgets.HTML("")
        self.refresh_button = button("Refresh", "refresh")
        self.refresh_button.on_click(self._on_refresh_button_click)
        charts = widgets.Box([card(section("Time per run", "mean, by model"), self.time_html),
                              card(section("What went wrong"), self.errors_html),
                              card(section("Spent per provider"), self.spend_html),
                              card(section("Spent per day", "last 14 days"), self.day_html)])
        charts.add_class("mk-tiles")
        # Refresh sits in the first card's title row (alone above the cards it read as a stray button)
        head = widgets.HBox([section("Made so far"), self.refresh_button],
                            layout=widgets.Layout(justify_content="space-between", align_items="center"))
        head.add_class("mk-title-row")  # the title takes what the button leaves, at every width (theme.css)
        self.children = [
            card(head, self.stats_html),
            charts,
            card(section("Hosted jobs"), self.jobs_html),
            self.notice,
        ]

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self.refresh()

    def refresh(self) -> None:
        from masuka_nb.config import settings
        from masuka_nb.history import history
        from masuka_nb.ui.charts import html_bars
        from masuka_nb.ui.helpers import code_words

        s = settings()
        self.stats = st = history_stats(history().all())
        budget = f" of your {fmt_money(s.budget_usd)} budget" if s.budget_usd is not None else ""
        # "94% succeeded" left open what of what: say it as a count, and that stopped runs are left out
        ok, failed = st.by_status.get("ok", 0), st.by_status.get("failed", 0)
        stopped = st.by_status.get("cancelled", 0)
        finished = ("–", "runs finished: none yet") if not ok + failed else (
            f"{ok} of {ok + failed}", "runs finished without an error")
        # the stopped runs are told with the runs: inside the label beside it they made one card five lines tall
        runs = (str(st.total), f"runs, {stopped} stopped by you" if stopped else "runs")
        tiles = [runs, finished, (str(st.images), "images")]
        tiles += [(str(st.made_by_kind.get(k, 0)), label) for k, label in (("video", "videos"), ("training", "LoRAs trained"),
                                                                      ("comparison", "comparisons"))]
        tiles += [(str(st.by_status.get("failed", 0)), "failed"), (fmt_money(st.spend_usd), "spent" + budget)]
        self.stats_html.value = '<div class="mk-stats" data-testid="mk-stats">' + "".join(
            f'<div class="mk-stat"><b>{esc(v)}</b><span>{esc(label)}</span></div>' for v, label in tiles) + "</div>"
        self.time_html.value = html_bars(list(st.seconds_by_model.items())[:8], fmt_fn=fmt_duration) or \
            '<div class="mk-empty">No finished runs yet.</div>'
        errors = [(code_words(code), n) for code, n in st.errors_by_code.items()][:8]
        self.errors_html.value = html_bars(errors, fmt_fn=lambda v: f"{v:g}×") or \
            '<div class="mk-empty">Nothing failed.</div>'
        self.spend_html.value = html_bars(list(st.spend_by_provider.items())[:8], fmt_fn=fmt_money) or \
            '<div class="mk-empty">Nothing spent yet (simulator and local runs are free).</div>'
        days = list(st.spend_by_day.items())[-14:]
        self.day_html.value = html_bars([(d[5:], v) for d, v in days], fmt_fn=fmt_money) or \
            '<div class="mk-empty">Nothing spent yet.</div>'
        self.jobs_html.value = _jobs_summary()
        if "mk-refreshed" not in self._dom_classes:  # the last update of a refresh: a browser can wait on it
            self.add_class("mk-refreshed")


def _jobs_summary() -> str:
    try:
        from masuka_nb import jobs
    except ImportError:
        return '<div class="mk-empty">The hosted-jobs engine is not installed.</div>'
    from masuka_nb.ui.video import jobs_cards_html

    return jobs_cards_html(list(jobs.list()), limit=10)
