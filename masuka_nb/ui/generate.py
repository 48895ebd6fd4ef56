"""The Image tab: a form for `masuka_nb.generate`, live progress with a preview, and a result gallery.

The panel only reads the form, calls the image engine and shows what it returns. Defaults come
from the model registry, so switching the model resets steps, guidance and size to that model's.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from masuka_nb.models.registry import get_model, list_models
from masuka_nb.ui.components import LABEL_STYLE, Gallery, Panel, ProgressView, card, field_row, section, wide
from masuka_nb.ui.helpers import engine_api, esc, fmt_duration, parse_loras, parse_seed

__all__ = ["GeneratePanel", "default_image_model"]


def default_image_model() -> str:
    """The model `generate(model=None)` would use: the configured default, else FLUX.1-schnell on a GPU
    and tiny-flux without one (the engine's own rule, so the form never disagrees with it)."""
    from masuka_nb.image.generation import resolve_model

    return resolve_model(None)[0]


class GeneratePanel(Panel):
    title = "Image"

    def __init__(self, *, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # 1. state
        self.result: Any = None
        self.results: list[Any] = []
        # 2. children
        self.prompt = widgets.Textarea(placeholder="Describe the image: a lighthouse at dawn, film grain…",
                                       layout=widgets.Layout(width="100%", height="84px"))
        self.negative = widgets.Text(placeholder="(models with classifier-free guidance only)",
                                     description="Negative", style=LABEL_STYLE, layout=wide())
        self.model = widgets.Dropdown(options=[(m.title, m.id) for m in list_models()],
                                      value=get_model(model or default_image_model()).id,
                                      description="Model", style=LABEL_STYLE, layout=wide("420px"))
        self.model_info = widgets.HTML("")
        self.width = widgets.BoundedIntText(value=1024, min=16, max=4096, step=16, description="Width",
                                            style=LABEL_STYLE, layout=wide("210px"))
        self.height = widgets.BoundedIntText(value=1024, min=16, max=4096, step=16, description="Height",
                                             style=LABEL_STYLE, layout=wide("210px"))
        self.steps = widgets.IntSlider(value=4, min=1, max=80, description="Steps", style=LABEL_STYLE,
                                       layout=wide("420px"))
        self.guidance = widgets.FloatSlider(value=3.5, min=0.0, max=15.0, step=0.5, description="Guidance",
                                            style=LABEL_STYLE, layout=wide("420px"))
        self.seed = widgets.Text(value="", placeholder="random", description="Seed", style=LABEL_STYLE,
                                 layout=wide("260px"))
        self.count = widgets.IntSlider(value=1, min=1, max=8, description="Images", style=LABEL_STYLE,
                                       layout=wide("420px"))
        self.loras = widgets.Textarea(placeholder="one per line: my-style:0.8 · a/hub-repo · https://…",
                                      description="LoRAs", style=LABEL_STYLE,
                                      layout=widgets.Layout(width="100%", height="56px"))
        self.init_image = widgets.Text(placeholder="optional: a start image (path) for image-to-image",
                                       description="Start image", style=LABEL_STYLE, layout=wide("72%"))
        self.strength = widgets.FloatSlider(value=0.6, min=0.05, max=1.0, step=0.05, description="Strength",
                                            style=LABEL_STYLE, layout=wide("320px"))
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
        self.gallery = Gallery(empty="Your images appear here.")
        self.details = widgets.HTML("")
        self.warnings = widgets.HTML("")
        # 3. wiring
        self.model.observe(self._on_model_change, names="value")
        self.generate_button.on_click(self._on_generate_button_click)
        self.reuse_seed.on_click(self._on_reuse_seed_click)
        self.use_last.on_click(self._on_use_last_click)
        self.children = self._layout()
        self._busy_buttons = [self.generate_button, self.reuse_seed]
        self._apply_model_defaults(self.model.value)

    def _layout(self) -> list[widgets.Widget]:
        form = card(
            section("Prompt"), self.prompt, self.negative,
            section("Model & settings"), field_row(self.model), self.model_info,
            field_row(self.width, self.height, self.seed), field_row(self.steps, self.guidance),
            field_row(self.count, self.previews), self.loras,
            field_row(self.init_image, self.use_last), field_row(self.strength),
            field_row(self.generate_button, self.reuse_seed, self.cancel_button),
        )
        return [form, self.notice, self.warnings, self.progress, section("Results"), self.gallery, self.details]

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_model_change(self, change: dict[str, Any]) -> None:
        self._apply_model_defaults(change["new"])

    def _on_generate_button_click(self, _button: widgets.Button) -> None:
        self._run("generation", self._generate)

    def _on_reuse_seed_click(self, _button: widgets.Button) -> None:
        if self.result is not None and getattr(self.result, "seeds", None):
            self.seed.value = str(self.result.seeds[0])

    def _on_use_last_click(self, _button: widgets.Button) -> None:
        paths = getattr(self.result, "paths", None) or []
        if paths:
            self.init_image.value = str(paths[0])

    # ---- work ---------------------------------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        """The keyword arguments the form stands for (checked here where widgets cannot check)."""
        spec = get_model(self.model.value)
        start = self.init_image.value.strip()
        img2img = {"image": start, "strength": float(self.strength.value)} if start else {}
        return {
            **img2img,
            "prompt": self.prompt.value,
            "model": spec.id,
            "negative_prompt": self.negative.value.strip() or None,
            "width": int(self.width.value),
            "height": int(self.height.value),
            "steps": int(self.steps.value),
            "guidance": float(self.guidance.value),
            "seed": parse_seed(self.seed.value),
            "num_images": int(self.count.value),
            "loras": parse_loras(self.loras.value),
        }

    def _generate(self) -> None:
        kwargs = self.request()  # form errors first: no reason to load torch for a typo
        generate = engine_api("masuka_nb.image", "generate")  # the engine (and torch) load on first click

        self.warnings.value = ""
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
        items = []
        for i, img in enumerate(result.images):
            bits = [f"seed {seeds[i]}" if i < len(seeds) else "", f"{img.size[0]}×{img.size[1]}"]
            items.append((img, " · ".join(b for b in bits if b)))
        self.gallery.set_items(items)
        total = (getattr(result, "timings", None) or {}).get("total")
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
        self.details.value = _recipe_html(getattr(result, "recipe", None), paths)

    def _apply_model_defaults(self, model_id: str) -> None:
        spec = get_model(model_id)
        for box in (self.width, self.height):
            # widen first: traitlets refuses a min above the current max (and the reverse)
            box.max = max(box.max, spec.max_size)
            box.min = min(box.min, spec.min_size)
            box.min, box.max = spec.min_size, spec.max_size
        self.width.value, self.height.value = spec.default_width, spec.default_height
        self.steps.value = min(spec.default_steps, self.steps.max)
        self.guidance.value = spec.default_guidance
        self.negative.disabled = not spec.supports_negative_prompt
        if not spec.supports_negative_prompt:
            self.negative.value = ""
        chips = [spec.family.upper(), f"{spec.default_steps} steps", f"{spec.default_width}px"]
        if spec.gated:
            chips.append("gated: accept the licence on the Hub and set HF_TOKEN")
        if spec.tiny:
            chips.append("offline test model: outputs noise")
        self.model_info.value = "".join(f'<span class="mk-chip">{esc(c)}</span>' for c in chips)


def _recipe_html(recipe: Any, paths: list[str]) -> str:
    if not recipe and not paths:
        return ""
    rows = []
    if isinstance(recipe, dict):
        for key in ("model", "prompt", "negative_prompt", "steps", "guidance", "width", "height", "seed",
                    "seeds", "loras", "scheduler", "plan", "dtype"):
            if recipe.get(key) not in (None, "", [], ()):
                rows.append((key, recipe[key]))
    rows += [("file", p) for p in paths[:8]]
    body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<details><summary class="mk-muted">Recipe and files</summary><table class="mk-kv">{body}</table></details>'
