"""The Dashboard tab: this runtime (GPU, RAM, disk, Drive), where MASUKA keeps things, what has been
made (history counts), what has been spent against the budget, and the hosted jobs."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.components import Panel, card, field_row, section
from masuka_nb.ui.helpers import esc, fmt_money, history_stats

__all__ = ["DashboardPanel", "runtime_chips"]


def runtime_chips(info: Any) -> list[tuple[str, str]]:
    """(text, level) chips for a `RuntimeInfo`: what a user checks first in a new session."""
    chips = [("Colab" if info.colab else "local Jupyter", "")]
    if info.has_gpu:
        chips.append((f"{info.gpu_name} · {info.vram_gb:.0f} GB", "ok"))
        chips.append(("bf16" if info.bf16 else "fp16 (no bf16)", ""))
    else:
        chips.append(("no GPU: tiny models only", "warn"))
    chips.append((f"RAM {info.ram_gb:.1f} GB", "warn" if info.ram_gb and info.ram_gb < 13 else ""))
    chips.append((f"disk {info.disk_free_gb:.0f} GB free", "warn" if info.disk_free_gb < 20 else ""))
    chips.append(("Drive mounted" if info.drive_mounted else "Drive not mounted",
                  "ok" if info.drive_mounted else "warn"))
    return chips


def chips_html(chips: list[tuple[str, str]]) -> str:
    return "".join(f'<span class="mk-chip {"mk-" + lvl if lvl else ""}">{esc(t)}</span>' for t, lvl in chips)


class DashboardPanel(Panel):
    title = "Dashboard"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.info: Any = None
        self.stats: Any = None
        self.runtime_html = widgets.HTML("")
        self.paths_html = widgets.HTML("")
        self.stats_html = widgets.HTML("")
        self.jobs_html = widgets.HTML("")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="auto"))
        self.refresh_button.on_click(self._on_refresh_button_click)
        self.children = [
            field_row(self.refresh_button),
            card(section("Runtime"), self.runtime_html, self.paths_html),
            card(section("Made so far"), self.stats_html),
            card(section("Hosted jobs"), self.jobs_html),
            self.notice,
        ]
        self._busy_buttons = [self.refresh_button]
        self._run("refresh", self.refresh)

    def _on_refresh_button_click(self, _b: widgets.Button) -> None:
        self._run("refresh", self.refresh)

    def refresh(self) -> None:
        from masuka_nb.config import settings
        from masuka_nb.history import history
        from masuka_nb.runtime import detect, meaning

        self.info = info = detect()
        s = settings()
        notes = "".join(f'<div class="mk-muted">• {esc(m)}</div>' for m in meaning(info))
        self.runtime_html.value = f'<div data-testid="mk-runtime">{chips_html(runtime_chips(info))}</div>{notes}'
        rows = [("home", s.home), ("outputs", s.outputs_dir), ("LoRAs", s.loras_dir), ("models", s.models_dir)]
        self.paths_html.value = '<table class="mk-kv">' + "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"
        self.stats = st = history_stats(history().all())
        budget = f" of {fmt_money(s.budget_usd)} budget" if s.budget_usd is not None else ""
        tiles = [(str(st.total), "records")]
        tiles += [(str(st.by_kind.get(k, 0)), k) for k in ("image", "video", "training")]
        tiles += [(str(st.by_status.get("failed", 0)), "failed"), (fmt_money(st.spend_usd), "spent" + budget)]
        self.stats_html.value = '<div data-testid="mk-stats">' + "".join(
            f'<div class="mk-stat"><b>{esc(v)}</b><span>{esc(label)}</span></div>' for v, label in tiles) + "</div>"
        self.jobs_html.value = _jobs_summary()


def _jobs_summary() -> str:
    try:
        from masuka_nb import jobs
    except ImportError:
        return '<div class="mk-empty">The hosted-jobs engine is not installed.</div>'
    from masuka_nb.ui.video import jobs_table_html

    return jobs_table_html(list(jobs.list()), limit=10)
