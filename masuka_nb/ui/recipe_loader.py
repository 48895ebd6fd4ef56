"""“Load recipe from an image…”: an upload or a path in, the Image form filled with what the image says.

`recipe_form_values` is the work (no widgets: it calls `masuka_nb.read_recipe` and shapes the answer for
the form); `RecipeLoader` is the small widget the Image tab shows. Any image another tool wrote (A1111/Forge,
ComfyUI, SwarmUI, InvokeAI, Civitai) or MASUKA itself works; what could not be mapped is listed under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError, MasukaError
from masuka_nb.ui.helpers import engine_api, error_info, esc, upload_items

__all__ = ["RecipeFormValues", "RecipeLoader", "recipe_form_values"]


@dataclass
class RecipeFormValues:
    """What goes into the Image form (keys of `GeneratePanel.load_recipe`), the LoRA lines, and notes."""

    values: dict[str, Any]
    loras_text: str = ""
    notes: list[str] = field(default_factory=list)
    dialect: str = ""


def recipe_form_values(source: Any = None, *, text: str | None = None) -> RecipeFormValues:
    """Read the recipe of `source` (a path, URL, bytes or PIL image) or of pasted `text`, shaped for the form."""
    read = engine_api("masuka_nb.image.recipes", "read_recipe")
    recipe = read(text=text) if text is not None else read(source)
    values = {k: getattr(recipe, k) for k in ("model", "prompt", "negative_prompt", "width", "height", "steps",
                                             "guidance", "seed") if getattr(recipe, k) is not None}
    lines, notes = [], list(recipe.unmapped)
    for lr in recipe.loras:
        source_text = lr.source or (f"civitai:{lr.civitai_version}" if lr.civitai_version else None)
        if source_text is None:
            notes.append(f"LoRA `{lr.name}` has no source the form can load (Reproduce looks it up by hash)")
            continue
        lines.append(f"{source_text} @ {lr.weight:g}")
    if recipe.model is None:
        notes.append(f"model `{recipe.model_name}` is not one MASUKA knows: the form keeps its current model")
    return RecipeFormValues(values, "\n".join(lines), notes, recipe.dialect)


class RecipeLoader(widgets.VBox):
    """An upload button and a path box; "Load recipe" fills the form through `apply(values)` and `set_loras(text)`."""

    def __init__(self, *, apply: Callable[[dict[str, Any]], None],
                 set_loras: Callable[[str], None] | None = None) -> None:
        # 1. state
        self._apply, self._set_loras = apply, set_loras
        self.last: RecipeFormValues | None = None
        # 2. children
        self.upload = widgets.FileUpload(accept=".png,.jpg,.jpeg,.webp", multiple=False,
                                         description="Image…", layout=widgets.Layout(width="auto"))
        self.path = widgets.Text(placeholder="or a path / URL / gs:// object of a PNG, JPEG or WebP",
                                 layout=widgets.Layout(flex="1 1 auto", width="auto"))
        self.load_button = widgets.Button(description="Load recipe", icon="file-import",
                                          layout=widgets.Layout(width="auto"))
        self.status = widgets.HTML("")
        # 3. wiring
        self.load_button.on_click(self._on_load_button_click)
        self.upload.observe(self._on_upload_change, names="value")
        super().__init__([widgets.HBox([self.upload, self.path, self.load_button]), self.status])

    def _on_upload_change(self, _change: dict[str, Any]) -> None:
        if upload_items(self.upload.value):
            self.load(upload=True)

    def _on_load_button_click(self, _button: widgets.Button) -> None:
        self.load()

    def load(self, *, upload: bool = False) -> RecipeFormValues | None:
        """Read the typed path (else the uploaded file; `upload=True`: the file just uploaded) and fill the form.
        Failures are shown under the loader, never raised, and change nothing in the form."""
        try:
            items = upload_items(self.upload.value)
            if self.path.value.strip() and not upload:
                source: Any = self.path.value.strip()
            elif items:
                source = items[-1].content
            else:
                raise InvalidRequestError("Choose an image or type its path first.", argument="image", value=None,
                                          hint="Any PNG, JPEG or WebP another tool (or MASUKA) wrote.")
            found = recipe_form_values(source)
            self._apply(found.values)
            if self._set_loras is not None and found.loras_text:
                self._set_loras(found.loras_text)
        except MasukaError as exc:
            self.status.value = error_info(exc).to_html()
            return None
        self.last = found
        notes = "".join(f"<li>{esc(n)}</li>" for n in found.notes)
        self.status.value = (f'<div class="mk-notice" data-testid="mk-recipe-loaded">Recipe loaded ({esc(found.dialect)})'
                             + (f"; not mapped:<ul>{notes}</ul>" if notes else ".") + "</div>")
        return found
