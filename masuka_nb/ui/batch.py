"""The Batch & grid section of the Image tab: prompt templates × seeds, or an X/Y/Z grid, with style presets,
an estimate before anything runs, one progress bar over the whole run, and the grid shown when done.

A standalone widget (`BatchPanel()` is a VBox: display it or nest it). It only reads its form and calls
`masuka_nb.batch` / `masuka_nb.grid`; the work runs inside the click handler, as Colab needs, and the
Stop button (or Colab's own stop) cancels it between steps.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.ui.helpers import error_info, esc, png_bytes

__all__ = ["BatchPanel", "parse_axis_values"]

NUMERIC = {"steps": int, "seed": int, "width": int, "height": int, "guidance": float, "lora_weight": float}
_NONE = "(none)"


def parse_axis_values(field: str, text: str) -> list[Any]:
    """`"2, 4, 8"` → [2, 4, 8] for numeric fields; comma-separated text otherwise (prompt_sr, model, size...)."""
    from masuka_nb.errors import InvalidRequestError

    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    kind = NUMERIC.get(field)
    if kind is None:
        return parts
    out = []
    for p in parts:
        try:
            out.append(kind(float(p)) if kind is int and float(p).is_integer() else kind(p))
        except ValueError:
            raise InvalidRequestError(f"{p!r} is not a number (axis field {field}).", argument=field, value=p,
                                      hint="Separate numbers with commas, e.g. 2, 4, 8") from None
    return out


class BatchPanel(widgets.VBox):
    """Batch & grid: a form, Estimate / Run / Stop, one progress bar, the grid image and a status line."""

    def __init__(self, *, model: str | None = None, **kwargs: Any) -> None:
        from masuka_nb.creative import presets as preset_store
        from masuka_nb.creative.grids import FIELDS
        from masuka_nb.models.registry import get_model, list_models

        # 1. state
        self.result: Any = None
        self.cancel_token: Any = None
        # 2. children
        self.mode = widgets.ToggleButtons(options=[("Batch", "batch"), ("Grid", "grid")], value="batch")
        self.prompts = widgets.Textarea(
            placeholder="One prompt per line. Templates: a {red|blue} car, __style__ (a wildcard file)",
            layout=widgets.Layout(width="100%", height="72px"))
        default = model or _default_model()
        self.model = widgets.Dropdown(options=[(m.title, m.id) for m in list_models()], value=get_model(default).id,
                                      description="Model")
        self.seeds = widgets.Text(value="1", description="Seeds", placeholder="1, 2, 3")
        self.width = widgets.BoundedIntText(value=0, min=0, max=4096, step=16, description="Width",
                                            layout=widgets.Layout(width="180px"))
        self.height = widgets.BoundedIntText(value=0, min=0, max=4096, step=16, description="Height",
                                             layout=widgets.Layout(width="180px"))
        self.steps = widgets.BoundedIntText(value=0, min=0, max=150, description="Steps",
                                            layout=widgets.Layout(width="180px"))
        self.presets = widgets.SelectMultiple(options=[p.name for p in preset_store.list()], description="Presets",
                                              rows=4)
        self.axes = {}
        for name in ("x", "y", "z"):
            field = widgets.Dropdown(options=([] if name == "x" else [_NONE]) + list(FIELDS),
                                     value="steps" if name == "x" else _NONE, description=f"{name.upper()} axis",
                                     layout=widgets.Layout(width="240px"))
            values = widgets.Text(placeholder="values, comma-separated", layout=widgets.Layout(width="320px"))
            self.axes[name] = (field, values)
        self.axes["x"][1].value = "2, 4"
        self.estimate_button = widgets.Button(description="Estimate", icon="clock-o")
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="th")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.bar = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="100%"))
        self.bar_label = widgets.HTML("")
        self.estimate = widgets.HTML("")
        self.status = widgets.HTML("")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", display="none"))
        self.grid_box = widgets.VBox([widgets.HBox(list(self.axes[n])) for n in ("x", "y", "z")])
        # 3. wiring
        self.mode.observe(self._on_mode_change, names="value")
        self.estimate_button.on_click(self._on_estimate_button_click)
        self.run_button.on_click(self._on_run_button_click)
        self.stop_button.on_click(self._on_stop_button_click)
        self._on_mode_change()
        super().__init__([
            self.mode, self.prompts,
            widgets.HBox([self.model, self.seeds]), widgets.HBox([self.width, self.height, self.steps]),
            self.presets, self.grid_box,
            widgets.HBox([self.estimate_button, self.run_button, self.stop_button]), self.estimate,
            self.bar, self.bar_label, self.status, self.image,
        ], **kwargs)

    # ---- reading the form ----

    def request(self) -> dict[str, Any]:
        """The keyword arguments the form stands for (shared by batch and grid)."""
        from masuka_nb.ui.helpers import parse_number_list

        out: dict[str, Any] = {"model": self.model.value, "presets": list(self.presets.value)}
        for name in ("width", "height", "steps"):
            value = getattr(self, name).value
            if value:
                out[name] = int(value)
        seeds = [int(s) for s in parse_number_list(self.seeds.value, argument="seeds", integer=True)]
        out["seeds"] = seeds
        return out

    def _prompt_lines(self) -> list[str]:
        return [ln.strip() for ln in self.prompts.value.splitlines() if ln.strip()]

    def _grid_axes(self) -> dict[str, Any]:
        axes = {}
        for name, (field, values) in self.axes.items():
            if field.value == _NONE:
                continue
            axes[name] = (field.value, parse_axis_values(field.value, values.value))
        return axes

    # ---- actions ----

    def run_estimate(self) -> str:
        """Show (and return) the size and time estimate for what the form describes."""
        from masuka_nb.creative.runner import estimate

        try:
            req = self.request()
            seeds = req.pop("seeds")
            if self.mode.value == "batch":
                text = str(estimate(self._prompt_lines(), seeds=seeds, **req))
            else:
                axes = self._grid_axes()
                first = self._prompt_lines()[:1] or [""]
                per = estimate(first, seeds=seeds[:1], **req)
                cells = 1
                for _, values in axes.values():
                    cells *= max(1, len(values))
                text = f"{cells} cell(s), about {per.per_image_s * cells:.0f} s ({per.basis})"
        except Exception as exc:  # shown, never swallowed
            self._show_error(exc)
            return ""
        self.estimate.value = f'<span data-testid="mk-estimate">{esc(text)}</span>'
        return text

    def run(self) -> Any:
        """Run the batch or the grid the form describes; the grid image is shown when it is done."""
        from masuka_nb.progress import CancelToken

        self.cancel_token = CancelToken()
        self.status.value = ""
        self.bar.value, self.bar.max = 0, 1
        self.run_button.disabled, self.stop_button.disabled = True, False
        try:
            req = self.request()
            if self.mode.value == "batch":
                from masuka_nb.creative.runner import batch

                res = batch(self._prompt_lines(), progress=self._on_progress, cancel=self.cancel_token, **req)
                sheet, what = res.grid(), f"{len(res.items)} image(s), {res.resumed} resumed"
            else:
                from masuka_nb.creative.grids import grid

                lines = self._prompt_lines()
                seeds = req.pop("seeds")
                res = grid(lines[0] if lines else "", seed=seeds[0], progress=self._on_progress,
                           cancel=self.cancel_token, **self._grid_axes(), **req)
                sheet, what = res.sheet, f"{len(res.cells)} cell(s)"
            self.result = res
            self.image.value = png_bytes(sheet, max_side=2048)
            self.image.layout.display = ""
            self.bar.value = self.bar.max
            self.status.value = f'<span data-testid="mk-batch-done">done: {esc(what)}</span>'
            return res
        except (Exception, KeyboardInterrupt) as exc:
            self._show_error(exc)
            return None
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    # ---- handlers ----

    def _on_mode_change(self, change: Any = None) -> None:
        self.grid_box.layout.display = "" if self.mode.value == "grid" else "none"

    def _on_estimate_button_click(self, _button: Any) -> None:
        self.run_estimate()

    def _on_run_button_click(self, _button: Any) -> None:
        self.run()

    def _on_stop_button_click(self, _button: Any) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel("stopped from the Batch & grid panel")

    def _on_progress(self, event: Any) -> None:
        self.bar.max = max(1, event.total)
        self.bar.value = min(event.step, self.bar.max)
        eta = f" · about {event.eta_s:.0f} s left" if event.eta_s else ""
        self.bar_label.value = f"{esc(event.message)} ({event.step}/{event.total}){eta}"

    def _show_error(self, exc: BaseException) -> None:
        self.status.value = error_info(exc).to_html()


def _default_model() -> str:
    from masuka_nb.image.generation import resolve_model

    return resolve_model(None)[0]
