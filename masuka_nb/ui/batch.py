"""The Batch & grid card of the Image tab: prompt templates × seeds, or an X/Y/Z grid, with style presets.

It has no model, size or steps of its own: it uses the Image tab's form above it (one set of controls),
runs through the tab's run queue (so the tab's Stop stops it), and its results land in the tab's result
pane: the contact sheet or grid on the stage, every image in the feed. The estimate runs every check the
run would (an empty axis is refused before it is estimated) and says when it is rough.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError
from masuka_nb.ui.components import LABEL_STYLE, Notice, button, field_row, show, wide
from masuka_nb.ui.helpers import engine_api, esc, fmt_duration

__all__ = ["BatchSection", "estimate_text", "parse_axis_values"]

NUMERIC = {"steps": int, "seed": int, "width": int, "height": int, "guidance": float, "lora_weight": float}
_NONE = "none"
AXIS_FIELDS = ("steps", "guidance", "seed", "size", "model", "preset", "lora_weight", "prompt_sr")


def parse_axis_values(field: str, text: str, *, axis: str = "x") -> list[Any]:
    """`"2, 4, 8"` → [2, 4, 8] for numeric fields; comma-separated text otherwise (prompt_sr, model, size...).
    An axis with a field but no values is refused here, with the axis named."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not parts:
        raise InvalidRequestError(f"The {axis.upper()} axis ({field}) has no values.", argument=f"axis_{axis}",
                                  value=text, hint="Type values separated by commas, e.g. 2, 4, 8; or set the "
                                                   "axis to none.")
    kind = NUMERIC.get(field)
    if kind is None:
        return parts
    out = []
    for p in parts:
        try:
            out.append(kind(float(p)) if kind is int and float(p).is_integer() else kind(p))
        except ValueError:
            raise InvalidRequestError(f"“{p}” on the {axis.upper()} axis is not a number.", argument=f"axis_{axis}",
                                      value=p, hint="Separate numbers with commas, e.g. 2, 4, 8") from None
    return out


def estimate_text(est: Any, noun: str = "image") -> str:
    """ "6 images, about 3 s (0.5 s each, from comparable runs)" / "… (rough: …)"."""
    basis = {"history": "from comparable runs here (same model, size and steps)",
             "rough": "rough: scaled from runs at other sizes or steps",
             "guess": "rough guess: no run of this model here yet"}.get(est.basis, est.basis)
    plural = "s" if est.images != 1 else ""
    return (f"{est.images} {noun}{plural}, about {fmt_duration(est.seconds)} "
            f"({fmt_duration(est.per_image_s)} each, {basis})")


class BatchSection(widgets.VBox):
    """Batch or grid over the Image tab's settings: a form, Estimate and Run, a line for the estimate."""

    def __init__(self, panel: Any) -> None:
        from masuka_nb.creative import presets as preset_store

        self.panel = panel
        self.result: Any = None
        self.mode = widgets.ToggleButtons(options=[("Batch", "batch"), ("Grid", "grid")], value="batch")
        self.mode.add_class("mk-toggle")
        self.prompts = widgets.Textarea(
            placeholder="One prompt per line (empty: the prompt above). Templates: a {red|blue} car, __style__",
            layout=widgets.Layout(width="100%", height="72px"))
        self.seeds = widgets.Text(value="1, 2", description="Seeds", placeholder="1, 2, 3", style=LABEL_STYLE,
                                  layout=wide("260px"))
        self.presets = widgets.SelectMultiple(options=[p.name for p in preset_store.list()], description="Presets",
                                              rows=4, style=LABEL_STYLE, layout=wide("320px"))
        self.axes: dict[str, tuple[widgets.Dropdown, widgets.Text]] = {}
        rows = []
        for name in ("x", "y"):
            fieldbox = widgets.Dropdown(options=([] if name == "x" else [_NONE]) + list(AXIS_FIELDS),
                                        value="steps" if name == "x" else _NONE, description=f"{name.upper()} axis",
                                        style=LABEL_STYLE, layout=wide("240px"))
            values = widgets.Text(placeholder="values, comma-separated", layout=wide("260px"))
            self.axes[name] = (fieldbox, values)
            rows.append(field_row(fieldbox, values))
        self.axes["x"][1].value = "2, 4"
        self.estimate_button = button("Estimate", "clock-o")
        self.run_button = button("Run batch", "th", primary=True)
        self.estimate = widgets.HTML("")
        self.form_notice = Notice()
        self.grid_box = widgets.VBox(rows)
        # the grid engine names an axis "x" / "y"; the form's own checks "axis_x" / "axis_y"
        self.fields = {"prompts": self.prompts, "seeds": self.seeds, "axis_x": self.axes["x"][1],
                       "axis_y": self.axes["y"][1], "x": self.axes["x"][1], "y": self.axes["y"][1]}
        self.labels = {"prompts": "Prompts", "seeds": "Seeds", "axis_x": "X axis", "axis_y": "Y axis",
                       "x": "X axis", "y": "Y axis"}
        self.mode.observe(self._on_mode_change, names="value")
        self.estimate_button.on_click(self._on_estimate_button_click)
        self.run_button.on_click(self._on_run_button_click)
        super().__init__([self.mode, self.prompts, field_row(self.seeds), self.presets, self.grid_box,
                          field_row(self.estimate_button, self.run_button), self.estimate, self.form_notice])
        self._on_mode_change()

    # ---- reading the form (the Image tab's model, size, steps, guidance, negative, LoRAs) ----
    def request(self) -> dict[str, Any]:
        from masuka_nb.ui.helpers import parse_number_list

        base = dict(self.panel.request_base())
        base["presets"] = list(self.presets.value)
        seeds = [int(s) for s in parse_number_list(self.seeds.value, argument="seeds", integer=True)]
        base["seeds"] = seeds
        return base

    def prompt_lines(self) -> list[str]:
        lines = [ln.strip() for ln in self.prompts.value.splitlines() if ln.strip()]
        if not lines and self.panel.prompt.value.strip():
            lines = [self.panel.prompt.value.strip()]
        if not lines:
            raise InvalidRequestError("Type a prompt (here, or the one above) first.", argument="prompts",
                                      value="", hint="One prompt per line; {a|b} picks each option in turn.")
        return lines

    def grid_axes(self) -> dict[str, Any]:
        axes = {}
        for name, (fieldbox, values) in self.axes.items():
            if fieldbox.value == _NONE:
                continue
            axes[name] = (fieldbox.value, parse_axis_values(fieldbox.value, values.value, axis=name))
        return axes

    def check(self) -> dict[str, Any]:
        """Everything the run needs, checked, with its estimate: what Run and Estimate both start from."""
        req = self.request()
        lines = self.prompt_lines()
        if self.mode.value == "batch":
            est = engine_api("masuka_nb.creative.runner", "estimate")(
                lines, seeds=req["seeds"], model=req["model"], presets=req["presets"], width=req["width"],
                height=req["height"], steps=req["steps"])
            return {"mode": "batch", "lines": lines, "req": req, "estimate": est}
        axes = self.grid_axes()
        grid_req = {k: v for k, v in req.items() if k != "seeds"}
        est = engine_api("masuka_nb.creative.grids", "estimate_grid")(
            lines[0], seed=req["seeds"][0], **axes, **grid_req)
        return {"mode": "grid", "lines": lines, "req": grid_req, "seed": req["seeds"][0], "axes": axes,
                "estimate": est}

    # ---- handlers ----
    def _on_mode_change(self, change: Any = None) -> None:
        grid = self.mode.value == "grid"
        show(self.grid_box, grid)
        self.run_button.description = "Run grid" if grid else "Run batch"
        self.estimate.value = ""

    def _on_estimate_button_click(self, _button: Any) -> None:
        self.form_notice.clear()
        self.panel.unmark_fields()
        try:
            plan = self.check()
        except Exception as exc:  # shown at the field, in plain words
            self._show_error(exc)
            return
        self.estimate.value = f'<div class="mk-estimate" data-testid="mk-estimate">{esc(estimate_text(plan["estimate"], "image" if plan["mode"] == "batch" else "cell"))}</div>'

    def _on_run_button_click(self, _button: Any) -> None:
        self.form_notice.clear()
        self.estimate.value = ""
        self.panel._run(self.mode.value, self.run, check=self.check,
                        check_failed=lambda _what, exc: self._show_error(exc))

    def _show_error(self, exc: BaseException) -> None:
        from masuka_nb.ui.helpers import error_info

        labels = {**self.panel.labels, **self.labels}
        info = error_info(exc, labels=labels)
        self.form_notice.show_error(info)
        argument = getattr(exc, "argument", None)
        if argument in self.panel.fields:
            self.panel.mark_field(argument, info.message)

    # ---- the run (on the tab's worker; the tab's Stop cancels it) ----
    def run(self, plan: dict[str, Any]) -> Any:
        from masuka_nb.ui.results import Shown

        panel = self.panel
        est = plan["estimate"]
        # what a stop says it kept: the batch's own image records, counted against those there before
        self._stop_count = {"mode": plan["mode"], "total": int(getattr(est, "images", 0) or 0),
                            "before": _batch_image_ids()} if plan["mode"] == "batch" else None
        panel._begin(f"{plan['mode']}: {estimate_text(est, 'image' if plan['mode'] == 'batch' else 'cell')}")
        if plan["mode"] == "batch":
            batch = engine_api("masuka_nb.creative.runner", "batch")
            res = batch(plan["lines"], progress=panel.progress, cancel=panel.cancel_token, **plan["req"])
            items = [Shown(it.load(), str(it.path or ""), it.seed, {"prompt": it.prompt, "model": res.model,
                                                                     **_size(plan["req"])}, it.history_id)
                     for it in res.items]
            what = f"batch · {len(items)} image{'s' if len(items) != 1 else ''}"
            if res.resumed:
                what += f" ({res.resumed} from an earlier run)"
            columns = min(4, max(1, round(len(items) ** 0.5 + 0.49)))
            sheet = Shown(items[0].image if items else None, "", None, {"model": res.model,
                                                                         "prompt": plan["lines"][0]}, "", "sheet",
                          note=what, cells=[(s.image, _label(s, items)) for s in items], columns=columns,
                          notes=list(res.warnings or []))
        else:
            grid = engine_api("masuka_nb.creative.grids", "grid")
            res = grid(plan["lines"][0], seed=plan["seed"], progress=panel.progress, cancel=panel.cancel_token,
                       **plan["axes"], **plan["req"])
            items = [Shown(c.image, "", c.recipe.get("seed"), c.recipe) for c in res.cells]
            what = f"grid · {len(items)} cells"
            xs = list(res.labels.get("x") or [])
            ys = list(res.labels.get("y") or [])
            sheet = Shown(res.sheet, str(res.path or ""), None, {"model": plan["req"].get("model"),
                                                                  "prompt": plan["lines"][0]}, res.history_id,
                          "sheet", note=what, cells=[(c.image, "") for c in res.cells], columns=max(1, len(xs)),
                          column_labels=xs, row_labels=ys)
        self.result = res
        panel._publish([sheet, *items], what)
        panel.progress.finish(f"done: {what}")
        panel.notice.show(f"Done: {what}.", "ok")
        panel.notice.html.value = panel.notice.html.value.replace('data-testid="mk-notice"',
                                                                  'data-testid="mk-batch-done"')
        return res


    def stopped_text(self) -> str | None:
        """After a stopped batch: how many of its images were finished and saved, in one sentence (None when
        the stopped run was not a batch)."""
        counted, self._stop_count = getattr(self, "_stop_count", None), None
        if not counted:
            return None
        kept = len(_batch_image_ids() - counted["before"])
        total = counted["total"]
        of = f" of {total}" if total else ""
        if not kept:
            return (f"Stopped before any of the {total} images was finished" if total > 1 else
                    "Stopped before the image was finished") + "; nothing was saved. Run it again when you are ready."
        noun = "image" if (total or kept) == 1 else "images"
        ones = "the finished one is" if kept == 1 else f"the {kept} finished ones are"
        return f"Stopped after {kept}{of} {noun}; {ones} saved (History shows them)."


def _batch_image_ids() -> set[str]:
    """The ids of the image records a batch wrote (each image of a batch has its own)."""
    from masuka_nb.history import query

    return {r.id for r in query(kind="image") if isinstance(r.recipe, dict) and r.recipe.get("batch")}


def _label(shown: Any, items: list[Any]) -> str:
    """A batch image's label: its seed, and its prompt where the prompts differ (a template's choices)."""
    prompts = {s.recipe.get("prompt") for s in items}
    text = str(shown.recipe.get("prompt") or "")
    return f"seed {shown.seed}" if len(prompts) <= 1 else f"{text[:28] + ('…' if len(text) > 28 else '')} · seed {shown.seed}"


def _size(req: dict[str, Any]) -> dict[str, Any]:
    return {k: req[k] for k in ("width", "height", "steps") if req.get(k)}
