"""Small charts for the app (loss curve, dashboard), drawn with matplotlib (on Colab's image).

Each chart is a PNG drawn for the size it is shown at (`width` × `height` CSS pixels, rendered at
2× for sharp text on high-density screens), so labels stay legible: nothing is squeezed or
stretched. matplotlib loads on the first chart, never when the app starts. `Figure` objects are
used directly (no pyplot state), so a chart may be drawn from a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Chart", "bar_chart", "line_chart"]

SCALE = 2  # device pixels per CSS pixel
LIGHT = {"fg": "#1f2330", "muted": "#667085", "grid": "#e3e6ee", "accent": "#6d4aff", "bg": "#ffffff"}


@dataclass(frozen=True)
class Chart:
    png: bytes
    width: int  # CSS pixels to show it at
    height: int


def _figure(width: int, height: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100 * SCALE)
    fig.patch.set_alpha(0.0)  # transparent: the card's colour shows through, light or dark
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("none")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#8a90a0")
    ax.tick_params(colors="#8a90a0", labelsize=8)
    ax.grid(True, color="#8a90a0", alpha=0.25, linewidth=0.6)
    return fig, ax


def _png(fig, width: int, height: int) -> Chart:
    buf = io.BytesIO()
    fig.tight_layout(pad=0.6)
    fig.savefig(buf, format="png", transparent=True)
    return Chart(buf.getvalue(), width, height)


def line_chart(values: Sequence[float], *, title: str = "", xlabel: str = "", ylabel: str = "",
               width: int = 520, height: int = 240, smooth: int = 0) -> Chart:
    """A line of `values` (e.g. training loss per step), optionally with a moving average."""
    fig, ax = _figure(width, height)
    xs = list(range(1, len(values) + 1))
    ax.plot(xs, list(values), color=LIGHT["accent"], linewidth=1.0, alpha=0.45 if smooth else 1.0)
    if smooth and len(values) > smooth:
        avg = [sum(values[max(0, i - smooth + 1):i + 1]) / len(values[max(0, i - smooth + 1):i + 1])
               for i in range(len(values))]
        ax.plot(xs, avg, color=LIGHT["accent"], linewidth=1.8, label=f"mean of {smooth}")
        ax.legend(fontsize=8, frameon=False, labelcolor="#8a90a0")
    _labels(ax, title, xlabel, ylabel)
    return _png(fig, width, height)


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str = "", ylabel: str = "",
              width: int = 340, height: int = 220, fmt_fn: Callable[[float], str] = "{:g}".format,
              color: str = LIGHT["accent"]) -> Chart:
    """Horizontal bars, one per label, each with its value written at its end (by `fmt_fn`)."""
    fig, ax = _figure(width, height)
    labels = [str(x) if len(str(x)) <= 22 else str(x)[:21] + "…" for x in labels]
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, list(values), color=color, height=0.6)
    ax.set_yticks(ys, labels)
    ax.grid(True, axis="x")
    ax.grid(False, axis="y")
    top = max([float(v) for v in values] + [0.0])
    for y, v in zip(ys, values):
        ax.text(float(v) + top * 0.02, y, fmt_fn(v), va="center", fontsize=8, color="#8a90a0")
    ax.set_xlim(0, top * 1.3 or 1)
    if all(float(v).is_integer() for v in values):  # counts: whole-number ticks only
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _labels(ax, title, ylabel, "")
    return _png(fig, width, height)


def _labels(ax, title: str, xlabel: str, ylabel: str) -> None:
    if title:
        ax.set_title(title, fontsize=10, color="#8a90a0", loc="left")
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=8, color="#8a90a0")
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8, color="#8a90a0")
