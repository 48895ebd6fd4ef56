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


# ---- theme-aware charts as inline SVG / HTML (their colours come from the app's CSS, light or dark) ----

def svg_line(values: Sequence[float], *, width: int = 480, height: int = 200, smooth: int = 0,
             xlabel: str = "step", ylabel: str = "loss") -> str:
    """A line of `values` as inline SVG that scales to its box; axis labels in the page's own font and
    colours (classes styled in theme.css), so it reads in light and dark."""
    vals = [float(v) for v in values]
    if len(vals) < 2:
        return ""
    pad_l, pad_b, pad_t, pad_r = 56, 26, 16, 10  # room for tick labels drawn larger on a narrow screen
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        hi = lo + 1.0
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def pt(i: int, v: float) -> str:
        return f"{pad_l + w * i / (len(vals) - 1):.1f},{pad_t + h * (1 - (v - lo) / (hi - lo)):.1f}"

    raw = " ".join(pt(i, v) for i, v in enumerate(vals))
    lines = f'<polyline class="mk-svg-line{" mk-svg-faint" if smooth else ""}" points="{raw}"/>'
    if smooth and len(vals) > smooth:
        avg = [sum(vals[max(0, i - smooth + 1):i + 1]) / len(vals[max(0, i - smooth + 1):i + 1])
               for i in range(len(vals))]
        lines += f'<polyline class="mk-svg-line" points="{" ".join(pt(i, v) for i, v in enumerate(avg))}"/>'
    ticks = ""
    for frac in (0.0, 0.5, 1.0):
        y = pad_t + h * (1 - frac)
        ticks += (f'<line class="mk-svg-grid" x1="{pad_l}" x2="{pad_l + w}" y1="{y:.1f}" y2="{y:.1f}"/>'
                  f'<text class="mk-svg-text" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">'
                  f"{lo + (hi - lo) * frac:.3g}</text>")
    ticks += (f'<text class="mk-svg-text" x="{pad_l}" y="{height - 6}">1</text>'
              f'<text class="mk-svg-text" x="{pad_l + w}" y="{height - 6}" text-anchor="end">{len(vals)}</text>'
              f'<text class="mk-svg-text" x="{pad_l + w / 2:.0f}" y="{height - 6}" text-anchor="middle">{xlabel}</text>'
              f'<text class="mk-svg-text mk-svg-ylabel" x="12" y="{pad_t + h / 2:.0f}" text-anchor="middle" '
              f'transform="rotate(-90 12 {pad_t + h / 2:.0f})">{ylabel}</text>')
    return (f'<svg class="mk-svg" data-testid="mk-loss" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{ylabel} per {xlabel}">{ticks}{lines}</svg>')


def html_bars(items: Sequence[tuple[str, float]], *, fmt_fn: Callable[[float], str] = "{:g}".format) -> str:
    """Horizontal bars as HTML (label, bar, value): crisp at any size, readable in light and dark."""
    if not items:
        return ""
    top = max([float(v) for _, v in items] + [0.0]) or 1.0
    rows = "".join(
        f'<div class="mk-bar-row"><span class="mk-bar-label" title="{_attr(k)}">{_attr(k)}</span>'
        f'<span class="mk-bar-track"><span class="mk-bar-fill" style="width:{max(2.0, 100 * float(v) / top):.1f}%">'
        f'</span></span><span class="mk-bar-value">{_attr(fmt_fn(v))}</span></div>' for k, v in items)
    return f'<div class="mk-bars">{rows}</div>'


def _attr(text: object) -> str:
    import html

    return html.escape(str(text), quote=True)
