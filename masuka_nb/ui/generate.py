"""The Image tab: a form for `masuka_nb.generate` (and, in its Batch & grid card, `batch` / `grid` with the
same model and size) beside the result pane: the newest image large with its actions under it, and this
session's runs in the feed so nothing is wiped.

The tab only reads the form, calls the engines and shows what they return: upscale (`image.upscale`:
its own file and history record), edit (`edit`), delete with Undo (`history.trash`). Defaults come from
the model registry, so switching the model resets steps, guidance and size to that model's. Values
outside a field's range are refused at the field, never clamped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError
from masuka_nb.models.registry import get_model, list_models
from masuka_nb.ui.batch import BatchSection
from masuka_nb.ui.components import (
    COMPACT_LABEL,
    LABEL_STYLE,
    STOPPED_WORDS,
    Notice,
    Panel,
    button,
    card,
    field_row,
    section,
    show,
    split,
    wide,
)
from masuka_nb.ui.helpers import (
    FIX_SWITCH_MODEL,
    engine_api,
    esc,
    fmt_duration,
    fmt_number,
    parse_loras,
    parse_seed,
)
from masuka_nb.ui.recipe_loader import RecipeLoader
from masuka_nb.ui.results import FeedItem, FeedRun, ResultPane, Shown, mosaic_png, thumb_png

__all__ = ["GeneratePanel", "Shown", "default_image_model", "plan_text"]


def default_image_model(runtime: Any = None) -> str:
    """The model `generate(model=None)` would use (the engine's own `resolve_model`, so the form never
    disagrees with it). Pass a `RuntimeInfo` (the app passes `detect_quick()`) to keep torch unloaded."""
    from masuka_nb.image.generation import resolve_model

    return resolve_model(None, runtime=runtime)[0]


def plan_text(model_id: str, runtime: Any, *, width: int | None = None, height: int | None = None,
              num_images: int = 1) -> str:
    """The memory plan in words: "on this T4: FLUX.1-schnell as NF4 in fp16, ≈12 GB peak"."""
    from masuka_nb.memory import plan

    spec = get_model(model_id)
    prof = runtime.as_profile() if runtime is not None else None
    where = f"on this {runtime.gpu_name}" if runtime is not None and runtime.has_gpu else "on this CPU"
    try:
        p = plan(spec.id, gpu=prof, width=width, height=height, num_images=num_images)
    except Exception as exc:  # a plan that does not fit is said here, before anything loads
        from masuka_nb.ui.helpers import plain

        why = plain(str(getattr(exc, "message", exc)))[0]
        return f"{where}: {spec.title} does not fit" + (f" ({why})" if why else "")
    dtype = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(p.dtype, p.dtype)
    how = f"as {p.quantization.upper()} in {dtype}" if p.quantization != "none" else f"in {dtype}"
    if p.offload != "none":
        how += f", {p.offload} offload"
    peak = f"≈{p.peak_vram_gb:.0f} GB VRAM peak" if p.device == "cuda" else f"≈{max(p.ram_gb, 0.1):.1f} GB RAM"
    if p.seconds_per_step:
        peak += f", ≈{p.seconds_per_step:.1f} s/step (estimate)"
    return f"{where}: {spec.title} {how}, {peak}"


def fitting_model(runtime: Any, *, width: int, height: int, exclude: str = "") -> str | None:
    """The first registry model whose memory plan fits this runtime at this size (for "Switch to a model
    that fits"); None when none does."""
    from masuka_nb.memory import plan

    prof = runtime.as_profile() if runtime is not None else None
    for spec in list_models():
        if spec.id == exclude or spec.task != "text-to-image":
            continue
        try:
            plan(spec.id, gpu=prof, width=width, height=height)
        except Exception:  # does not fit: try the next
            continue
        return spec.id
    return None


class GeneratePanel(Panel):
    title = "Image"

    def __init__(self, *, model: str | None = None, runtime: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # 1. state
        self.runtime = runtime
        self.result: Any = None  # the last GenerationResult (scripts read it)
        self.results: list[Any] = []
        self.shown: Shown | None = None
        self.trashed: Any = None  # the last Delete, until Undo or the next Delete
        self.send_to_video: Any = None  # the app sets it: path → the Video tab's start image
        self.use_lora: Any = None
        # 2. children
        self.prompt = widgets.Textarea(placeholder="Describe the image: a lighthouse at dawn, film grain…",
                                       layout=widgets.Layout(width="100%", height="84px"))
        self.negative = widgets.Text(placeholder="what to leave out, e.g. blurry, text",
                                     description="Negative", style=LABEL_STYLE, layout=wide())
        self.model = widgets.Dropdown(options=[(m.title, m.id) for m in list_models()],
                                      value=get_model(model or default_image_model(runtime)).id,
                                      description="Model", style=LABEL_STYLE, layout=wide("100%"))
        self.model_info = widgets.HTML("")
        self.plan_info = widgets.HTML("")
        # free-number boxes (checked in `request`): bounded boxes and sliders clamp silently
        self.width = widgets.IntText(value=1024, description="Width", style=LABEL_STYLE, layout=wide("180px"))
        # Height and Steps sit to the right of Width: short labels keep the three in one row in JupyterLab's
        # narrower form column at 1400 px (theme.css gives them the full label again where the row wraps)
        self.height = widgets.IntText(value=1024, description="Height", style=COMPACT_LABEL, layout=wide("136px"))
        self.steps = widgets.IntText(value=4, description="Steps", style=COMPACT_LABEL, layout=wide("136px"))
        for box in (self.height, self.steps):
            box.add_class("mk-compact")
        self.guidance = widgets.FloatText(value=3.5, step=0.5, description="Guidance", style=LABEL_STYLE,
                                          layout=wide("200px"))
        self.seed = widgets.Text(value="", placeholder="random", description="Seed", style=LABEL_STYLE,
                                 layout=wide("200px"))
        self.count = widgets.IntText(value=1, description="Images", style={"description_width": "52px"},
                                     layout=wide("124px"))
        self.loras = widgets.Textarea(placeholder="one per line: my-style:0.8 · a/hub-repo · https://…",
                                      description="LoRAs", style=LABEL_STYLE,
                                      layout=widgets.Layout(width="100%", height="56px"))
        self.init_image = widgets.Text(placeholder="optional: a start image (path) for image-to-image",
                                       description="Start image", style=LABEL_STYLE, layout=wide("100%"))
        self.init_thumb = widgets.Image(format="png", layout=widgets.Layout(width="96px", height="auto",
                                                                            display="none"))
        self.init_thumb.add_class("mk-thumb")
        self.strength = widgets.FloatText(value=0.6, step=0.05, description="Strength", style=LABEL_STYLE,
                                          layout=wide("200px"))
        self.use_last = button("Use the shown image", "level-up")
        self.previews = widgets.Checkbox(value=True, description="Live preview", indent=False,
                                         layout=widgets.Layout(width="auto"))
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="magic",
                                              layout=widgets.Layout(width="160px"))
        self.generate_button.add_class("mk-primary")
        self.form_notice = Notice()
        self.field_note = widgets.HTML("")
        self.pane = ResultPane(stop=self.stop_button, notice=self.notice, empty="Your images appear here.",
                               reveal_with=self.reveal)
        self.progress = self.pane.progress
        self.feed = self.pane.feed
        self.edit_instruction = widgets.Text(placeholder="what to change, e.g. make it night, add snow",
                                             layout=widgets.Layout(width="100%"))
        self.edit_apply = button("Apply edit", "pencil", primary=True)
        self.edit_row = field_row(self.edit_instruction, self.edit_apply)
        self.edit_row.add_class("mk-edit-row")
        show(self.edit_row, False)
        self.pane.extra.children = [self.edit_row]
        labels = {"download": None, "new_seed": ("New seed", "random"), "variations": ("Variations", "clone"),
                  "upscale": ("Upscale 2×", "expand"), "edit": ("Edit…", "pencil"),
                  "use_seed": ("Use seed", "hashtag"), "reuse": ("Reuse settings", "sliders"),
                  "start_image": ("As start image", "level-up"), "to_video": ("To Video", "film"),
                  "delete": ("Delete", "trash")}
        self.actions = {k: button(*v) for k, v in labels.items() if v}
        self.actions["delete"].add_class("mk-quiet-danger")
        self.batch = BatchSection(self)  # Batch & grid: the model, size and steps of this form
        self.recipe_loader = RecipeLoader(apply=self.load_recipe,
                                          set_loras=lambda t: setattr(self.loras, "value", t))
        self.fields = {"prompt": self.prompt, "negative_prompt": self.negative, "model": self.model,
                       "instruction": self.edit_instruction, "width": self.width, "height": self.height,
                       "steps": self.steps, "guidance": self.guidance, "seed": self.seed, "num_images": self.count,
                       "loras": self.loras, "image": self.init_image, "strength": self.strength, **self.batch.fields}
        self.labels = {"prompt": "The prompt", "negative_prompt": "Negative", "width": "Width", "height": "Height",
                       "steps": "Steps", "guidance": "Guidance", "seed": "Seed", "num_images": "Images",
                       "loras": "LoRAs", "image": "Start image", "strength": "Strength", "model": "Model",
                       "instruction": "The edit", **self.batch.labels}
        # 3. wiring
        self.model.observe(self._on_model_change, names="value")
        for box in (self.width, self.height, self.count):
            box.observe(self._on_size_change, names="value")
        self.init_image.observe(self._on_init_image_change, names="value")
        self.generate_button.on_click(self._on_generate_button_click)
        self.use_last.on_click(self._on_use_last_click)
        self.edit_apply.on_click(self._on_edit_apply_click)
        for name, b in self.actions.items():
            b.on_click(lambda _b, name=name: self._on_action(name))
        self.sections = self._sections()
        self.relayout()
        self._busy_buttons = []
        self._apply_model_defaults(self.model.value)
        self._set_actions(None)

    @property
    def view(self) -> ResultPane:  # the name older scripts use
        return self.pane

    @property
    def gallery(self) -> Any:
        return self.feed

    def _sections(self) -> list[widgets.Widget]:
        """The form's cards, top to bottom."""
        return [
            card(section("Prompt"), self.prompt, self.negative,
                 field_row(self.generate_button, self.count), self.form_notice, self.plan_info),
            card(section("Model & size"), self.model, self.model_info,
                 field_row(self.width, self.height, self.steps), field_row(self.guidance, self.seed),
                 self.field_note, field_row(self.previews), self.loras),
            card(section("Start image", "image-to-image"), self.init_image,
                 field_row(self.init_thumb, self.strength, self.use_last)),
            card(section("Batch & grid", "uses the model, size and steps above"), self.batch),
            card(section("Load recipe from an image…"), self.recipe_loader),
        ]

    def relayout(self) -> None:
        form = widgets.VBox(list(self.sections), layout=widgets.Layout(width="100%"))
        self.split_box = split(form, self.pane)
        self.children = [self.split_box]

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_model_change(self, change: dict[str, Any]) -> None:
        self._apply_model_defaults(change["new"])

    def _on_size_change(self, _change: dict[str, Any]) -> None:
        self._show_plan()

    def _on_init_image_change(self, change: dict[str, Any]) -> None:
        path = Path(str(change["new"]).strip()) if str(change["new"]).strip() else None
        if path is not None and path.is_file():
            try:
                from PIL import Image

                with Image.open(path) as im:
                    self.init_thumb.value = thumb_png(im.convert("RGB"), 96)
                show(self.init_thumb)
                return
            except OSError:
                pass
        show(self.init_thumb, False)

    def _on_generate_button_click(self, _button: widgets.Button) -> None:
        self._run("generation", self._generate, check=self.request)

    def _on_use_last_click(self, _button: widgets.Button) -> None:
        if self.shown is not None and self.shown.path:
            self.init_image.value = self.shown.path

    def _on_edit_apply_click(self, _button: widgets.Button) -> None:
        self._run("edit", self._edit, check=self._edit_check)

    def _on_action(self, name: str) -> None:
        shown = self.shown
        if shown is None:
            return
        if name == "use_seed":
            self.seed.value = "" if shown.seed is None else str(shown.seed)
            self.notice.show(f"Seed {shown.seed} is in the form.", "info")
        elif name == "reuse":
            self.load_recipe({**shown.recipe, "seed": shown.seed})
            self.notice.show("The settings of this image are in the form.", "info")
        elif name == "new_seed":
            self._run("new seed", self._generate, check=lambda: {**self._recipe_request(shown), "seed": None,
                                                                 "num_images": 1})
        elif name == "variations":
            self._run("variations", self._generate, check=lambda: {
                **self._recipe_request(shown), "seed": None, "image": shown.path or shown.image, "strength": 0.5,
                "num_images": 4})
        elif name == "upscale":
            self._run("upscale", self._upscale, check=lambda: shown)
        elif name == "start_image":
            self.init_image.value = shown.path
            self.notice.show("It is the start image now (image-to-image).", "info")
        elif name == "to_video":
            if self.send_to_video is not None and shown.path:
                self.send_to_video(shown.path)
        elif name == "edit":
            show(self.edit_row, self.edit_row.layout.display == "none")
        elif name == "delete":
            self.delete(shown)

    def act(self, name: str) -> None:
        """One of the pane's actions on the shown image (scripts and tests: same as clicking it)."""
        self._on_action(name)

    # ---- reading the form -------------------------------------------------------------------------
    def request_base(self) -> dict[str, Any]:
        """The model and its settings (what Batch & grid shares), checked at their fields."""
        spec = get_model(self.model.value)
        width = _in_range("width", "Width", self.width.value, spec.min_size, spec.max_size, f"{spec.title} makes")
        height = _in_range("height", "Height", self.height.value, spec.min_size, spec.max_size,
                           f"{spec.title} makes")
        steps = _in_range("steps", "Steps", self.steps.value, 1, 150, "Steps go")
        guidance = _in_range("guidance", "Guidance", self.guidance.value, 0.0, 30.0, "Guidance goes")
        return {
            "model": spec.id,
            "negative_prompt": (self.negative.value.strip() or None) if spec.supports_negative_prompt else None,
            "width": int(width),
            "height": int(height),
            "steps": int(steps),
            "guidance": float(guidance),
            "loras": parse_loras(self.loras.value),
        }

    def request(self) -> dict[str, Any]:
        """The keyword arguments the form stands for; out-of-range values are refused here, at the field."""
        if not self.prompt.value.strip():
            raise InvalidRequestError("Type a prompt first: what should the image show?", argument="prompt",
                                      value="", hint="e.g. a lighthouse at dawn, film grain")
        base = self.request_base()
        count = _in_range("num_images", "Images", self.count.value, 1, 8, "One run makes")
        start = self.init_image.value.strip()
        img2img = {}
        if start:
            if not Path(start).expanduser().is_file() and not start.startswith(("http://", "https://")):
                raise InvalidRequestError(f"There is no image at {start}.", argument="image", value=start,
                                          hint="Give the path of an image file, or clear the start image.")
            img2img = {"image": start, "strength": _in_range("strength", "Strength", self.strength.value, 0.05,
                                                               1.0, "Strength goes")}
        return {**img2img, "prompt": self.prompt.value, **base, "seed": parse_seed(self.seed.value),
                "num_images": int(count)}

    def _recipe_request(self, shown: Shown) -> dict[str, Any]:
        r = shown.recipe
        return {"prompt": r.get("prompt") or self.prompt.value, "model": r.get("model") or self.model.value,
                "negative_prompt": r.get("negative_prompt"), "width": r.get("width") or int(self.width.value),
                "height": r.get("height") or int(self.height.value), "steps": r.get("steps") or int(self.steps.value),
                "guidance": r.get("guidance", float(self.guidance.value)),
                "loras": [(x["source"], x["weight"]) if isinstance(x, dict) else x for x in r.get("loras") or []]}

    def _edit_check(self) -> tuple[Shown, str]:
        shown = self.shown
        instruction = self.edit_instruction.value.strip()
        if shown is None:
            raise InvalidRequestError("Make or pick an image first.", argument="instruction", value="")
        if not instruction:
            raise InvalidRequestError("Type what to change first.", argument="instruction", value="",
                                      hint="e.g. make it night · same person, new pose · add snow")
        return shown, instruction

    # ---- work (runs where Stop can reach it) ------------------------------------------------------
    def _begin(self, text: str) -> None:
        self.started()
        self.progress.start(text)
        self.pane.reveal_status()

    def _generate(self, kwargs: dict[str, Any]) -> None:
        generate = engine_api("masuka_nb.image", "generate")  # the engine (and torch) load on first click
        self._begin(f"loading {kwargs['model']}…")
        result = generate(**kwargs, progress=self.progress, cancel=self.cancel_token,
                          previews=bool(self.previews.value))
        self.result = result
        self.results.append(result)
        paths = [str(p) for p in (getattr(result, "paths", None) or [])]
        seeds = list(getattr(result, "seeds", None) or [])
        notes = list(getattr(result, "warnings", None) or [])
        for key in ("auto_model", "label"):
            if result.recipe.get(key):
                notes.append(result.recipe[key])
        outputs = [Shown(img, paths[i] if i < len(paths) else "", seeds[i] if i < len(seeds) else None,
                         result.recipe, result.history_id, notes=_plain_notes(notes))
                   for i, img in enumerate(result.images)]
        total = getattr(result, "elapsed_s", None)
        took = f" in {fmt_duration(total)}" if total else ""
        cached = " (from the result cache)" if getattr(result, "cached", False) else ""
        n = len(outputs)
        what = "variations" if "image" in kwargs and kwargs.get("num_images", 1) > 1 else f"image{'s' if n != 1 else ''}"
        self._publish(outputs, f"{n} {what} · {result.recipe.get('model', '')}{took}")
        self.progress.finish(f"{n} {what}{cached}")

    def _publish(self, outputs: list[Shown], title: str) -> None:
        """A run's outputs go into the feed (one group) and the first onto the stage, in view."""
        import time as _time

        items = [FeedItem(mosaic_png([c for c, _ in s.cells]) if s.kind == "sheet" else thumb_png(s.image),
                          s.caption(), pick=(lambda s=s: self.present(s)), key=s.path or id(s)) for s in outputs]
        self.feed.add(FeedRun(f"{_time.strftime('%H:%M')} · {title}", items))
        if outputs:
            self.present(outputs[0])
            self.pane.reveal()

    def present(self, shown: Shown) -> None:
        """Put `shown` on the stage with its own recipe and actions."""
        self.shown = shown
        data = Path(shown.path).read_bytes() if shown.path and Path(shown.path).is_file() else None
        name = Path(shown.path).name if shown.path else "masuka.png"
        details = recipe_html(shown.recipe, seed=shown.seed, path=shown.path, size=shown.size)
        self.pane.set_notes(shown.notes)
        if shown.kind == "sheet":
            raw = Path(shown.path).read_bytes() if shown.path and Path(shown.path).is_file() else None
            self.pane.show_grid(shown.cells, columns=shown.columns, column_labels=shown.column_labels,
                                row_labels=shown.row_labels, caption=shown.caption(),
                                download=(raw, name) if raw else None, details="")
        elif shown.kind == "edit" and shown.before is not None:
            self.pane.show_pair(shown.before, shown.image, caption=shown.caption(), name=name, data=data,
                                details=details)
        else:
            self.pane.show_image(shown.image, caption=shown.caption(), name=name, data=data, details=details)
        self._set_actions(shown)

    def _set_actions(self, shown: Shown | None) -> None:
        if shown is None:
            self.pane.set_actions([])
            return
        keys = ["new_seed", "variations", "upscale", "edit", "use_seed", "reuse", "start_image", "to_video", "delete"]
        if shown.kind == "sheet":
            keys = ["delete"] if shown.path else []
        if not shown.path:
            keys = [k for k in keys if k not in ("start_image", "to_video", "delete", "upscale")]
        if shown.seed is None:
            keys = [k for k in keys if k != "use_seed"]
        if self.send_to_video is None:
            keys = [k for k in keys if k != "to_video"]
        self.pane.set_actions([self.actions[k] for k in keys])
        if "edit" not in keys:
            show(self.edit_row, False)

    def _upscale(self, shown: Shown) -> None:
        upscale = engine_api("masuka_nb.image", "upscale")
        source = shown.path
        if not source:
            raise InvalidRequestError("This image has no file to upscale.", argument="image", value="")
        self._begin("upscaling 2×…")
        out = upscale(source, factor=2.0, save=True, progress=self.progress, cancel=self.cancel_token)
        image = out.images[0]  # saved as its own file with its own record, carrying the source's recipe
        path = str(out.paths[0]) if out.paths else ""
        big = Shown(image, path, shown.seed, {**shown.recipe, **out.recipe}, out.history_id, "upscale")
        w, h = image.size
        self._publish([big], f"upscale 2× · {w}×{h}")
        self.progress.finish(f"upscaled to {w}×{h}")
        self.notice.show(f"Upscaled to {w}×{h}: saved as {Path(path).name}." if path else f"Upscaled to {w}×{h}.",
                         "ok")

    def _edit(self, args: tuple[Shown, str]) -> None:
        """The shown image edited by its instruction (FLUX.1 Kontext; its tiny twin without a GPU): a new run,
        shown before and after."""
        shown, instruction = args
        edit = engine_api("masuka_nb", "edit")
        self._begin(f"editing: {instruction}…")
        edited = edit(shown.path or shown.image, instruction, progress=self.progress, cancel=self.cancel_token)
        self.result = edited
        self.results.append(edited)
        paths = [str(p) for p in edited.paths]
        outputs = [Shown(img, paths[i] if i < len(paths) else "", (edited.seeds or [None])[min(i, len(edited.seeds) - 1)]
                         if edited.seeds else None, {**edited.recipe, "instruction": instruction},
                         edited.history_id, "edit", shown.image,
                         notes=_plain_notes([*(edited.warnings or []), edited.recipe.get("auto_model") or ""]))
                   for i, img in enumerate(edited.images)]
        self._publish(outputs, f"edit · “{instruction}”")
        self.progress.finish("edited")

    def delete(self, shown: Shown) -> None:
        """Delete the shown output (file and history), with Undo until the next Delete."""
        trash = engine_api("masuka_nb.history", "trash")
        if self.trashed is not None:
            self.trashed.purge()  # one Undo at a time: the previous delete becomes final
        found = self.feed.find(shown.path or id(shown))
        self.trashed = trash(shown.history_id, [shown.path] if shown.path else [])
        if shown.path and self.init_image.value.strip() == shown.path:  # a start image that no longer exists
            self.init_image.value = ""
        self.feed.drop(shown.path or id(shown))
        nxt = next((it for run in self.feed.runs for it in run.items), None)
        self.shown = None
        self.pane.clear()
        if self.progress.elapsed_s is None:  # no run going on: the last run's status described what is gone
            self.progress.reset()
        if nxt is not None:
            nxt.pick()
        undo = (lambda: self._undo(shown, found)) if found is not None else None
        self.notice.show(f"Deleted {Path(shown.path).name if shown.path else 'the image'}.", "info",
                         actions={"Undo": undo} if undo else None)

    def _undo(self, shown: Shown, found: Any) -> None:
        if self.trashed is None:
            return
        self.trashed.restore()
        self.trashed = None
        run, item, index = found
        self.feed.restore(run, item, index)
        self.present(shown)
        self.notice.show("Restored.", "ok")

    # ---- outcomes -----------------------------------------------------------------------------------
    def _stopped_text(self, run: Any, info: Any) -> str:
        words = (self.batch.stopped_text() if run.label == "batch" else None) or super()._stopped_text(run, info)
        kept_nothing = "nothing was saved" in words or STOPPED_WORDS in words  # a batch's count, or any other run
        if kept_nothing and self.shown is not None:
            words += " The result shown is from an earlier run."  # so the kept image or sheet beside it is not misread
        return words

    def _on_stopped(self, run: Any) -> None:
        self.progress.finish("stopped", ok=False)
        self.pane.reveal_status()

    def _on_failed(self, info: Any) -> None:
        if self.progress.layout.display != "none" and self.progress.bar.bar_style != "success":
            self.progress.finish("did not finish", ok=False)
            self.pane.reveal_status()

    def _fixes(self, info: Any) -> dict[str, Any]:
        out = super()._fixes(info)
        if FIX_SWITCH_MODEL in info.fixes:
            other = fitting_model(self.runtime, width=int(self.width.value), height=int(self.height.value),
                                  exclude=self.model.value)
            if other is not None:
                title = get_model(other).title
                out[f"Switch to {title}"] = lambda other=other: self._switch_model(other)
        return out

    def _switch_model(self, model_id: str) -> None:
        self.model.value = model_id
        self.notice.show(f"Switched to {get_model(model_id).title}, which fits here.", "ok")

    def _check_failed(self, what: str, exc: BaseException) -> None:
        """A form error shows at the form, next to what to fix (a run's failure shows in the result pane)."""
        keep, self.notice = self.notice, self.form_notice
        try:
            self._fail(what, exc)
        finally:
            self.notice = keep
        self._field_note()

    def _field_note(self) -> None:
        info = self.last_error
        size_fields = {"width", "height", "steps", "guidance", "seed"}
        if info is not None and info.argument in size_fields:
            self.field_note.value = f'<div class="mk-field-error">{esc(info.message)}</div>'
        else:
            self.field_note.value = ""

    def unmark_fields(self) -> None:
        super().unmark_fields()
        self.field_note.value = ""
        self.form_notice.clear()

    # ---- the form follows the model -----------------------------------------------------------------
    def load_recipe(self, recipe: dict[str, Any]) -> None:
        """Fill the form from a recipe (a result's or a history record's)."""
        try:
            self.model.value = get_model(recipe.get("model") or self.model.value).id
        except Exception:  # an unknown model in an old record: keep the current one
            pass
        if recipe.get("prompt") is not None:
            self.prompt.value = recipe["prompt"]
        if recipe.get("negative_prompt") and get_model(self.model.value).supports_negative_prompt:
            self.negative.value = recipe["negative_prompt"]
        for key, box in (("width", self.width), ("height", self.height), ("steps", self.steps),
                         ("guidance", self.guidance)):
            if isinstance(recipe.get(key), (int, float)) and not isinstance(recipe.get(key), bool):
                box.value = type(box.value)(recipe[key])
        seed = recipe.get("seed", (recipe.get("seeds") or [None])[0])
        self.seed.value = "" if seed is None else str(seed)

    def _apply_model_defaults(self, model_id: str) -> None:
        spec = get_model(model_id)
        self.width.value, self.height.value = spec.default_width, spec.default_height
        self.steps.value = spec.default_steps
        self.guidance.value = spec.default_guidance
        self.defaults = {"width": spec.default_width, "height": spec.default_height, "steps": spec.default_steps,
                         "guidance": spec.default_guidance, "num_images": 1, "seed": "", "strength": 0.6}
        show(self.negative, spec.supports_negative_prompt)  # a field the model ignores is not shown
        if not spec.supports_negative_prompt:
            self.negative.value = ""
        chips = [f"{spec.default_steps} steps", f"{spec.default_width}×{spec.default_height}",
                 f"sizes {spec.min_size}–{spec.max_size}"]
        if spec.licence:
            chips.append(f"licence: {spec.licence}")
        if spec.gated:
            chips.append("needs the licence accepted on the Hub and HF_TOKEN")
        if spec.tiny:
            chips.append("offline test model: makes noise")
        self.model_info.value = "".join(f'<span class="mk-chip">{esc(c)}</span>' for c in chips)
        self._show_plan()

    def _show_plan(self) -> None:
        try:
            text = plan_text(self.model.value, self.runtime, width=int(self.width.value),
                             height=int(self.height.value), num_images=max(1, min(8, int(self.count.value))))
        except Exception:  # the plan line is advice: a form mid-edit must not fail on it
            return
        self.plan_info.value = f'<div class="mk-plan" data-testid="mk-plan">Plan {esc(text)}</div>'


def _in_range(argument: str, label: str, value: Any, low: float, high: float, what: str) -> float:
    if value is None or not low <= value <= high:
        side = "small" if value is not None and value < low else "large"
        raise InvalidRequestError(
            f"{label} {fmt_number(value)} is too {side}: {what} {fmt_number(low)} to {fmt_number(high)}.",
            argument=argument, value=value, hint=f"Type a value from {fmt_number(low)} to {fmt_number(high)}.")
    return value


def _plain_notes(notes: list[str]) -> list[str]:
    from masuka_nb.ui.helpers import plain

    return [text for text in (plain(n)[0] for n in notes) if text]


RECIPE_FIRST = (("prompt", "prompt"), ("instruction", "edit"), ("negative_prompt", "negative"), ("model", "model"),
                ("seed", "seed"), ("steps", "steps"), ("guidance", "guidance"), ("size", "size"),
                ("loras", "LoRAs"), ("strength", "strength"))


def recipe_html(recipe: Any, *, seed: int | None = None, path: str = "", size: tuple[int, int] | None = None) -> str:
    """The shown image's own facts (its seed, the size of the file shown), numbers as people write them;
    the raw recipe collapsed below."""
    recipe = dict(recipe or {})
    view = {**recipe, "seed": seed if seed is not None else recipe.get("seed")}
    if size is not None:
        view["size"] = f"{size[0]}×{size[1]}"
    elif recipe.get("width") and recipe.get("height"):
        view["size"] = f"{recipe['width']}×{recipe['height']}"
    rows = []
    for key, label in RECIPE_FIRST:
        value = view.get(key)
        if value in (None, "", [], ()):
            continue
        if key == "loras":
            value = ", ".join(f"{(x.get('source') or x.get('name')) if isinstance(x, dict) else x}" for x in value)
        rows.append((label, fmt_number(value)))
    if path:
        rows.append(("file", path))
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    raw = "".join(f"<tr><td>{esc(k)}</td><td>{esc(fmt_number(v))}</td></tr>" for k, v in sorted(recipe.items()))
    return (f'<details class="mk-recipe-box"><summary>About this image</summary>'
            f'<table class="mk-kv" data-testid="mk-recipe">{body}</table>'
            f'<details><summary class="mk-muted">Full recipe</summary><table class="mk-kv">{raw}</table></details>'
            "</details>")
