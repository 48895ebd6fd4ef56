"""“Load recipe from an image…” in the Image tab: an upload or a path fills the form, with what did not map."""

from __future__ import annotations

import io

from PIL import Image
from PIL.PngImagePlugin import PngInfo

import masuka_nb as mk
from masuka_nb.ui.components import fill_upload
from masuka_nb.ui.recipe_loader import recipe_form_values

A1111 = ("a copper teapot on a shelf <lora:copper:0.7>\nNegative prompt: blurry\n"
         "Steps: 12, Sampler: Euler a, CFG scale: 4.5, Seed: 777, Size: 1024x768, Model: sd3.5_large, "
         'Civitai resources: [{"type":"lora","weight":0.7,"modelVersionId":4242,"modelName":"Copper"}]')


def _png(text: str) -> bytes:
    info = PngInfo()
    info.add_text("parameters", text)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_the_values_are_engine_free_and_say_what_did_not_map():
    found = recipe_form_values(_png(A1111))
    assert found.dialect == "civitai" and found.values["model"] == "sd35-large" and found.values["seed"] == 777
    assert found.loras_text == "civitai:4242 @ 0.7"
    assert any("Euler a" in n for n in found.notes)


def test_an_upload_fills_the_image_form(masuka_home, tmp_path):
    ui = mk.app(display=False, model="tiny-flux", background=False)
    form = ui.image
    fill_upload(form.recipe_loader.upload, [("found.png", _png(A1111))])
    assert form.model.value == "sd35-large" and form.prompt.value == "a copper teapot on a shelf"
    assert (form.width.value, form.height.value, form.steps.value, form.guidance.value, form.seed.value) == \
        (1024, 768, 12, 4.5, "777")
    assert form.negative.value == "blurry" and form.loras.value == "civitai:4242 @ 0.7"
    assert 'data-testid="mk-recipe-loaded"' in form.recipe_loader.status.value
    assert "Euler a" in form.recipe_loader.status.value
    (tmp_path / "plain.png").write_bytes(_png(""))
    form.recipe_loader.path.value = str(tmp_path / "plain.png")
    form.recipe_loader.load_button.click()
    assert 'data-code="RECIPE_UNSUPPORTED"' in form.recipe_loader.status.value
    assert form.prompt.value == "a copper teapot on a shelf"  # a failed load changes nothing
