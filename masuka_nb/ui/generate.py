"""The Image tab: a form for `masuka_nb.generate` beside the live result (progress with a preview,
the newest images, and a large view with actions on the one you pick).

The panel only reads the form, calls the image engine and shows what it returns. Defaults come
from the model registry, so switching the model resets steps, guidance and size to that model's.
Values outside a field's range are refused at the field, never clamped. Each run clears what the
previous one showed. `self.sections` is the list of form cards: another feature (batch & grid)
adds one card there and calls `relayout()`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError
from masuka_nb.models.registry import get_model, list_models
from masuka_nb.ui.batch import BatchPanel
from masuka_nb.ui.components import (
    LABEL_STYLE,
    Gallery,
    Panel,
    ProgressView,
    card,
    field_row,
    section,
    split,
    wide,
)
from masuka_nb.ui.helpers import engine_api, esc, fmt_duration, fmt_number, parse_loras, parse_seed
from masuka_nb.ui.recipe_loader import RecipeLoader

__all__ = ["GeneratePanel", "ResultView", "default_image_model", "plan_text"]


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
        return f"{where}: {spec.title} does not fit ({getattr(exc, 'message', exc)})"
    dtype = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(p.dtype, p.dtype)
    how = f"as {p.quantization.upper()} in {dtype}" if p.quantization != "none" else f"in {dtype}"
    if p.offload != "none":
        how += f", {p.offload} offload"
    peak = f"≈{p.peak_vram_gb:.0f} GB VRAM peak" if p.device == "cuda" else f"≈{max(p.ram_gb, 0.1):.1f} GB RAM"
    if p.seconds_per_step:
        peak += f", ≈{p.seconds_per_step:.1f} s/step (estimate)"
    return f"{where}: {spec.title} {how}, {peak}"


class ResultView(widgets.VBox):
    """One image large, its recipe in human numbers, and what you can do with it."""

    ACTIONS = ("download", "use_seed", "reuse", "new_seed", "variations", "upscale", "start_image", "to_video",
               "edit", "delete")

    def __init__(self) -> None:
        self.index: int | None = None
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%", height="auto"))
        self.image.add_class("mk-large")
        self.recipe_html = widgets.HTML("")
        self.download_html = widgets.HTML("")
        labels = {"use_seed": ("Use seed", "hashtag"), "reuse": ("Reuse settings", "sliders"),
                  "new_seed": ("New seed", "random"), "variations": ("Variations", "clone"),
                  "upscale": ("Upscale 2×", "expand"), "start_image": ("Use as start image", "level-up"),
                  "to_video": ("Send to Video", "film"), "edit": ("Edit", "pencil"), "delete": ("Delete", "trash")}
        self.buttons = {k: widgets.Button(description=d, icon=i, layout=widgets.Layout(width="auto"))
                        for k, (d, i) in labels.items()}
        self.buttons["delete"].button_style = "danger"
        self.close_button = widgets.Button(description="Close", icon="times", layout=widgets.Layout(width="auto"))
        self.close_button.on_click(lambda _b: self.hide())
        # "Edit": an instruction for FLUX.1 Kontext (masuka_nb.edit), e.g. "make it night"
        self.edit_instruction = widgets.Text(placeholder="Edit: an instruction, e.g. make it night, same person smiling",
                                             layout=widgets.Layout(width="100%"))
        row = field_row(self.download_html, *self.buttons.values(), self.close_button)
        super().__init__([self.image, row, field_row(self.edit_instruction), self.recipe_html],
                         layout=widgets.Layout(display="none", width="100%"))
        self.add_class("mk-result-view")

    def show(self, index: int, image_png: bytes, name: str, recipe_html: str) -> None:
        self.index = index
        self.image.value = image_png
        b64 = base64.b64encode(image_png).decode()
        self.download_html.value = (f'<a class="mk-link-button" download="{esc(name)}" '
                                    f'href="data:image/png;base64,{b64}">⬇ Download</a>')
        self.recipe_html.value = recipe_html
        self.buttons["delete"].description = "Delete"
        self.layout.display = ""

    def hide(self) -> None:
        self.index = None
        self.image.value = b""
        self.download_html.value = ""
        self.recipe_html.value = ""
        self.layout.display = "none"


class GeneratePanel(Panel):
    title = "Image"

    def __init__(self, *, model: str | None = None, runtime: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # 1. state
        self.runtime = runtime
        self.result: Any = None
        self.results: list[Any] = []
        self.send_to_video: Any = None  # the app sets it: path → the Video tab's start image
        # 2. children
        self.prompt = widgets.Textarea(placeholder="Describe the image: a lighthouse at dawn, film grain…",
                                       layout=widgets.Layout(width="100%", height="84px"))
        self.negative = widgets.Text(placeholder="(models with classifier-free guidance only)",
                                     description="Negative", style=LABEL_STYLE, layout=wide())
        self.model = widgets.Dropdown(options=[(m.title, m.id) for m in list_models()],
                                      value=get_model(model or default_image_model(runtime)).id,
                                      description="Model", style=LABEL_STYLE, layout=wide("100%"))
        self.model_info = widgets.HTML("")
        self.plan_info = widgets.HTML("")
        # free-number boxes (checked in `request`): bounded boxes and sliders clamp silently
        self.width = widgets.IntText(value=1024, description="Width", style=LABEL_STYLE, layout=wide("200px"))
        self.height = widgets.IntText(value=1024, description="Height", style=LABEL_STYLE, layout=wide("200px"))
        self.steps = widgets.IntText(value=4, description="Steps", style=LABEL_STYLE, layout=wide("200px"))
        self.guidance = widgets.FloatText(value=3.5, step=0.5, description="Guidance", style=LABEL_STYLE,
                                          layout=wide("200px"))
        self.seed = widgets.Text(value="", placeholder="random", description="Seed", style=LABEL_STYLE,
                                 layout=wide("200px"))
        self.count = widgets.IntText(value=1, description="Images", style=LABEL_STYLE, layout=wide("200px"))
        self.loras = widgets.Textarea(placeholder="one per line: my-style:0.8 · a/hub-repo · https://…",
                                      description="LoRAs", style=LABEL_STYLE,
                                      layout=widgets.Layout(width="100%", height="56px"))
        self.init_image = widgets.Text(placeholder="optional: a start image (path) for image-to-image",
                                       description="Start image", style=LABEL_STYLE, layout=wide("100%"))
        self.strength = widgets.FloatText(value=0.6, step=0.05, description="Strength", style=LABEL_STYLE,
                                          layout=wide("200px"))
        self.use_last = widgets.Button(description="Use last result", icon="level-up",
                                       layout=widgets.Layout(width="auto"))
        self.previews = widgets.Checkbox(value=True, description="Live preview", indent=False,
                                         layout=widgets.Layout(width="auto"))
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="magic",
                                              layout=widgets.Layout(width="160px"))
        self.generate_button.add_class("mk-primary")
        self.reuse_seed = widgets.Button(description="Reuse last seed", icon="refresh",
                                         layout=widgets.Layout(width="auto"))
        self.progress = ProgressView()
        self.gallery = Gallery(thumb=150, empty="Your images appear here.")
        self.view = ResultView()
        self.details = widgets.HTML("")
        self.warnings = widgets.HTML("")
        self.batch = BatchPanel(model=self.model.value)  # Batch & grid: its own form, run and grid
        self.recipe_loader = RecipeLoader(apply=self.load_recipe, set_loras=lambda t: setattr(self.loras, "value", t))
        self.fields = {"prompt": self.prompt, "negative_prompt": self.negative, "model": self.model,
                       "instruction": self.view.edit_instruction,
                       "width": self.width, "height": self.height, "steps": self.steps, "guidance": self.guidance,
                       "seed": self.seed, "num_images": self.count, "loras": self.loras, "image": self.init_image,
                       "strength": self.strength}
        # 3. wiring
        self.model.observe(self._on_model_change, names="value")
        for box in (self.width, self.height, self.count):
            box.observe(self._on_size_change, names="value")
        self.generate_button.on_click(self._on_generate_button_click)
        self.reuse_seed.on_click(self._on_reuse_seed_click)
        self.use_last.on_click(self._on_use_last_click)
        for name, button in self.view.buttons.items():
            button.on_click(lambda _b, name=name: self._on_action(name))
        self.sections = self._sections()
        self.relayout()
        self._busy_buttons = [self.generate_button, self.reuse_seed, *self.view.buttons.values()]
        self._apply_model_defaults(self.model.value)

    def _sections(self) -> list[widgets.Widget]:
        """The form's cards, top to bottom. Add one (e.g. batch & grid) and call `relayout()`."""
        return [
            card(section("Prompt"), self.prompt, self.negative,
                 field_row(self.generate_button, self.reuse_seed, self.cancel_button), self.stop_hint,
                 self.notice, self.plan_info),
            card(section("Model & settings"), self.model, self.model_info,
                 field_row(self.width, self.height, self.seed), field_row(self.steps, self.guidance, self.count),
                 field_row(self.previews), self.loras),
            card(section("Start image (image-to-image)"), self.init_image, field_row(self.strength, self.use_last)),
            card(section("Batch & grid"), self.batch),
            card(section("Load recipe from an image…"), self.recipe_loader),
        ]

    def relayout(self) -> None:
        form = widgets.VBox(list(self.sections), layout=widgets.Layout(width="100%"))
        live = card(section("Result"), self.progress, self.warnings, self.gallery, self.view, self.details)
        live.add_class("mk-live")
        self.split_box = split(form, live)
        self.children = [self.split_box]

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_model_change(self, change: dict[str, Any]) -> None:
        self._apply_model_defaults(change["new"])

    def _on_size_change(self, _change: dict[str, Any]) -> None:
        self._show_plan()

    def _on_generate_button_click(self, _button: widgets.Button) -> None:
        self._run("generation", self._generate)

    def _on_reuse_seed_click(self, _button: widgets.Button) -> None:
        if self.result is not None and getattr(self.result, "seeds", None):
            self.seed.value = str(self.result.seeds[0])

    def _on_use_last_click(self, _button: widgets.Button) -> None:
        paths = getattr(self.result, "paths", None) or []
        if paths:
            self.init_image.value = str(paths[0])

    def _on_action(self, name: str) -> None:
        self._run(name.replace("_", " "), lambda: self.act(name))

    # ---- work ---------------------------------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        """The keyword arguments the form stands for; out-of-range values are refused here, at the field."""
        spec = get_model(self.model.value)
        start = self.init_image.value.strip()
        width = _in_range("width", self.width.value, spec.min_size, spec.max_size, f"{spec.title} makes")
        height = _in_range("height", self.height.value, spec.min_size, spec.max_size, f"{spec.title} makes")
        steps = _in_range("steps", self.steps.value, 1, 150, "Steps go")
        guidance = _in_range("guidance", self.guidance.value, 0.0, 30.0, "Guidance goes")
        count = _in_range("num_images", self.count.value, 1, 8, "One run makes")
        img2img = {}
        if start:
            img2img = {"image": start, "strength": _in_range("strength", self.strength.value, 0.05, 1.0,
                                                               "Strength goes")}
        return {
            **img2img,
            "prompt": self.prompt.value,
            "model": spec.id,
            "negative_prompt": self.negative.value.strip() or None,
            "width": int(width),
            "height": int(height),
            "steps": int(steps),
            "guidance": float(guidance),
            "seed": parse_seed(self.seed.value),
            "num_images": int(count),
            "loras": parse_loras(self.loras.value),
        }

    def clear_results(self) -> None:
        """Nothing of the previous run stays on screen looking current."""
        self.gallery.set_items([])
        self.view.hide()
        self.details.value = ""
        self.warnings.value = ""
        self.progress.reset()

    def _generate(self, **overrides: Any) -> None:
        kwargs = {**self.request(), **overrides}  # form errors first: no reason to load torch for a typo
        generate = engine_api("masuka_nb.image", "generate")  # the engine (and torch) load on first click

        self.clear_results()
        self.started()
        self.progress.start(f"loading {kwargs['model']}…")
        try:
            result = generate(**kwargs, progress=self.progress, cancel=self.cancel_token,
                              previews=bool(self.previews.value))
        except BaseException:
            self.progress.finish("stopped", ok=False)
            raise
        self.result = result
        self.results.append(result)
        self._show(result)

    def _show(self, result: Any) -> None:
        spec = get_model(self.model.value)
        paths = [str(p) for p in (getattr(result, "paths", None) or [])]
        seeds = list(getattr(result, "seeds", None) or [])
        items, opens = [], []
        for i, img in enumerate(result.images):
            bits = [f"seed {seeds[i]}" if i < len(seeds) else "", f"{img.size[0]}×{img.size[1]}"]
            items.append((img, " · ".join(b for b in bits if b)))
            button = widgets.Button(description="Open", icon="search-plus", layout=widgets.Layout(width="auto"))
            button.on_click(lambda _b, i=i: self.open_result(i))
            opens.append(button)
        self.gallery.set_items(items, extra=opens)
        total = getattr(result, "elapsed_s", None)
        took = f" in {fmt_duration(total)}" if total else ""
        cached = " (from the result cache)" if getattr(result, "cached", False) else ""
        plural = "s" if len(items) != 1 else ""
        self.progress.finish(f"{len(items)} image{plural}{took}{cached}")
        where = f" · saved to {paths[0].rsplit('/', 1)[0]}" if paths else ""
        self._say(f"{len(items)} image{plural} from {result.recipe.get('model', spec.id)}{took}{cached}{where}")
        notes = list(getattr(result, "warnings", None) or [])
        for key in ("auto_model", "label"):
            if result.recipe.get(key):
                notes.append(result.recipe[key])
        self.warnings.value = "".join(f'<div class="mk-notice mk-warning">{esc(n)}</div>' for n in notes)
        if items:
            self.open_result(0)

    def open_result(self, index: int) -> None:
        """The large view of image `index` of the last run, with its own recipe."""
        from masuka_nb.ui.helpers import png_bytes

        result = self.result
        if result is None or not 0 <= index < len(result.images):
            return
        paths = [str(p) for p in (getattr(result, "paths", None) or [])]
        path = paths[index] if index < len(paths) else ""
        data = Path(path).read_bytes() if path and Path(path).is_file() else png_bytes(result.images[index])
        name = Path(path).name if path else f"masuka-{index}.png"
        self.view.show(index, data, name, recipe_html(result.recipe, index=index, path=path,
                                                      seeds=list(getattr(result, "seeds", None) or [])))

    def act(self, name: str) -> None:
        """One of `ResultView.ACTIONS` on the image in the large view."""
        result, index = self.result, self.view.index
        if result is None or index is None:
            raise InvalidRequestError("Open an image first.", argument="action", value=name,
                                      hint="Click Open under an image.")
        seeds = list(getattr(result, "seeds", None) or [])
        paths = [str(p) for p in (getattr(result, "paths", None) or [])]
        seed = seeds[index] if index < len(seeds) else None
        path = paths[index] if index < len(paths) else ""
        if name == "use_seed":
            self.seed.value = "" if seed is None else str(seed)
            self._say(f"Seed {seed} is in the form.", "info")
        elif name == "reuse":
            self.load_recipe({**result.recipe, "seed": seed})
            self._say("Settings of this image are in the form.", "info")
        elif name == "new_seed":
            self.load_recipe({**result.recipe, "seed": None})
            self._generate(seed=None, num_images=1)
        elif name == "variations":
            self.load_recipe({**result.recipe, "seed": None})
            self._generate(seed=None, image=path or result.images[index], strength=0.5, num_images=4)
        elif name == "upscale":
            self._upscale(result, index, path)
        elif name == "start_image":
            self.init_image.value = path
            self._say("It is the start image now (image-to-image).", "info")
        elif name == "to_video":
            if self.send_to_video is not None and path:
                self.send_to_video(path)
        elif name == "edit":
            self._edit(result, index, path)
        elif name == "delete":
            self._delete(result, index, path)

    def _upscale(self, result: Any, index: int, path: str) -> None:
        upscale = engine_api("masuka_nb.image", "upscale")
        self.progress.start("upscaling 2×…")
        big = upscale(path or result.images[index], factor=2.0, save=True)  # a result, saved and recorded
        image = big.images[0]
        out = big.paths[0] if big.paths else None
        self.progress.finish(f"upscaled to {image.size[0]}×{image.size[1]}")
        result.images.append(image)
        if out is not None:
            result.paths.append(out)
        if getattr(result, "seeds", None) and len(result.seeds) > index:
            result.seeds.append(result.seeds[index])
        self._show(result)
        self.open_result(len(result.images) - 1)

    def _edit(self, result: Any, index: int, path: str) -> None:
        """The picked image edited by its instruction (FLUX.1 Kontext; its tiny twin without a GPU): a new run."""
        instruction = self.view.edit_instruction.value.strip()
        if not instruction:
            raise InvalidRequestError("Type what to change first.", argument="instruction", value="",
                                      hint="e.g. make it night · same person, new pose · add snow")
        edit = engine_api("masuka_nb", "edit")
        source = path or result.images[index]
        self.clear_results()
        self.started()
        self.progress.start(f"editing: {instruction}…")
        try:
            edited = edit(source, instruction, progress=self.progress, cancel=self.cancel_token)
        except BaseException:
            self.progress.finish("stopped", ok=False)
            raise
        self.result = edited
        self.results.append(edited)
        self._show(edited)

    def _delete(self, result: Any, index: int, path: str) -> None:
        button = self.view.buttons["delete"]
        if button.description != "Confirm delete":  # the first click asks
            button.description = "Confirm delete"
            self.notice.show("Click Confirm delete to remove this image from disk and history.", "warning")
            return
        from masuka_nb.history import forget_path

        if path:
            Path(path).unlink(missing_ok=True)
            forget_path(getattr(result, "history_id", ""), path)
            if self.init_image.value.strip() == path:  # a start image that no longer exists
                self.init_image.value = ""
        del result.images[index]
        if index < len(result.paths):
            del result.paths[index]
        if index < len(result.seeds):
            del result.seeds[index]
        self.view.hide()
        self._show(result) if result.images else self.clear_results()
        self._say("Image deleted.", "info")

    def load_recipe(self, recipe: dict[str, Any]) -> None:
        """Fill the form from a recipe (a result's or a history record's)."""
        try:
            self.model.value = get_model(recipe.get("model") or self.model.value).id
        except Exception:  # an unknown model in an old record: keep the current one
            pass
        if recipe.get("prompt") is not None:
            self.prompt.value = recipe["prompt"]
        if recipe.get("negative_prompt") and not self.negative.disabled:
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
        self.negative.disabled = not spec.supports_negative_prompt
        if not spec.supports_negative_prompt:
            self.negative.value = ""
        chips = [spec.family.upper(), f"{spec.default_steps} steps", f"{spec.default_width}px",
                 f"sizes {spec.min_size}–{spec.max_size}"]
        if spec.licence:
            chips.append(f"licence: {spec.licence}")
        if spec.gated:
            chips.append("gated: accept the licence on the Hub and set HF_TOKEN")
        if spec.tiny:
            chips.append("offline test model: outputs noise")
        self.model_info.value = "".join(f'<span class="mk-chip">{esc(c)}</span>' for c in chips)
        self._show_plan()

    def _show_plan(self) -> None:
        try:
            text = plan_text(self.model.value, self.runtime, width=int(self.width.value),
                             height=int(self.height.value), num_images=max(1, min(8, int(self.count.value))))
        except Exception:  # the plan line is advice: a form mid-edit must not fail on it
            return
        self.plan_info.value = f'<div class="mk-plan" data-testid="mk-plan">Plan {esc(text)}</div>'


def _in_range(argument: str, value: Any, low: float, high: float, what: str) -> float:
    if value is None or not low <= value <= high:
        raise InvalidRequestError(
            f"`{argument}` = {fmt_number(value)} is outside {fmt_number(low)} … {fmt_number(high)}.",
            argument=argument, value=value, hint=f"{what} {fmt_number(low)} to {fmt_number(high)}; "
                                                 "type a value in that range.")
    return value


RECIPE_FIRST = (("prompt", "prompt"), ("negative_prompt", "negative"), ("model", "model"), ("seed", "seed"),
                ("steps", "steps"), ("guidance", "guidance"), ("size", "size"), ("loras", "LoRAs"),
                ("strength", "strength"))


def recipe_html(recipe: Any, *, index: int = 0, path: str = "", seeds: list[int] | None = None) -> str:
    """Key fields of one image first (its own seed, numbers as people write them); the raw recipe
    collapsed below."""
    recipe = dict(recipe or {})
    seeds = seeds or list(recipe.get("seeds") or [])
    view = {**recipe, "seed": seeds[index] if index < len(seeds) else recipe.get("seed")}
    if recipe.get("width") and recipe.get("height"):
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
    return (f'<table class="mk-kv" data-testid="mk-recipe">{body}</table>'
            f'<details><summary class="mk-muted">Full recipe</summary><table class="mk-kv">{raw}</table></details>')
