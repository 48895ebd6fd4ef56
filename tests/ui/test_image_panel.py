"""The Image tab against the real image engine on tiny-flux / tiny-sd3 (offline, CPU, 32 px)."""

from __future__ import annotations

import masuka_nb as mk
from masuka_nb.history import query


def _form(**values):
    ui = mk.app(display=False, model=values.pop("model", "tiny-flux"), background=values.pop("background", False))
    form = ui.image
    form.prompt.value = "a lighthouse at dawn"
    form.width.value = form.height.value = 32
    form.steps.value = 2
    for key, value in values.items():
        getattr(form, key).value = value
    return ui, form


def test_generate_streams_progress_with_previews_and_fills_the_gallery(masuka_home):
    ui, form = _form(seed="5", count=2)
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    result = form.result
    assert result.seeds == [5, 6] and len(result.images) == 2
    # progress streamed step by step, with previews, into the bar
    steps = [e.step for e in form.progress.events if e.stage == "generate"]
    assert steps[-1] == 2 and steps == sorted(steps)
    assert any(e.preview is not None for e in form.progress.events)
    assert form.progress.bar.value == 1000 and form.progress.preview.value[:4] == b"\x89PNG"
    assert form.progress.preview.layout.display == "none"  # the gallery replaces the live preview
    # the gallery shows both images with their seeds; the recipe and files are listed
    captions = [c.children[1].value for c in form.gallery.cells]
    assert "seed 5" in captions[0] and "seed 6" in captions[1]
    assert str(result.paths[0]) in form.view.recipe_html.value  # the first image opens large with its recipe
    assert form.notice.level == "ok" and "2 images from tiny-flux" in form.notice.text
    assert "noise" in form.warnings.value  # tiny models are labelled as such
    # "Reuse last seed" puts it back in the form; the History tab sees the new record
    form.seed.value = ""
    form.reuse_seed.click()
    assert form.seed.value == "5"
    ui.select("History")
    assert ui.history.records[0].kind == "image" and ui.history.records[0].model == "tiny-flux"
    assert ui.history.gallery.cells[0].children[0].value[:4] == b"\x89PNG"


def test_image_to_image_from_the_last_result(masuka_home):
    _ui, form = _form(seed="9")
    form.generate_button.click()
    first = form.result
    form.use_last.click()
    assert form.init_image.value == str(first.paths[0])
    form.strength.value = 0.5
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    assert form.result.recipe["strength"] == 0.5 and form.result.recipe["image_sha256"]
    form.init_image.value = str(masuka_home / "missing.png")
    form.generate_button.click()
    assert form.last_error is not None and form.last_error.code != "UNEXPECTED", form.last_error


def test_engine_errors_show_code_message_and_hint(masuka_home):
    _ui, form = _form(model="tiny-sd3")
    form.width.value = 40  # not a multiple of 16: the engine refuses, the panel shows why
    form.generate_button.click()
    assert form.last_error is not None and form.last_error.code == "INVALID_REQUEST"
    assert "width" in form.notice.value and form.last_error.hint
    assert form.progress.bar.bar_style == "warning" and not form.busy


def test_stop_button_keyboard_interrupt_mid_run_is_handled_cleanly(masuka_home):
    _ui, form = _form(steps=4)
    fired = []

    def stop_button(change):  # Colab's stop button raises KeyboardInterrupt wherever the kernel is
        if change["new"] >= 500 and not fired:
            fired.append(1)
            raise KeyboardInterrupt

    form.progress.bar.observe(stop_button, names="value")
    form.generate_button.click()
    assert fired and form.last_error is not None and form.last_error.code == "CANCELLED"
    assert form.notice.level == "warning" and not form.busy and not form.generate_button.disabled
    assert form.result is None
    assert not list((masuka_home / "outputs").rglob("*.png"))  # nothing half-finished was kept
    assert not query(kind="image", status="ok")
    # the panel still works afterwards
    form.progress.bar.unobserve(stop_button, names="value")
    form.generate_button.click()
    assert form.last_error is None and len(form.result.images) == 1


def test_background_mode_cancel_button_stops_at_the_next_step(masuka_home):
    _ui, form = _form(steps=4, background=True)

    def click_cancel(change):
        if change["new"] > 0:
            form.cancel_button.click()

    form.progress.bar.observe(click_cancel, names="value")
    form.generate_button.click()
    form.wait(120)
    assert form.last_error is not None and form.last_error.code == "CANCELLED", form.last_error
    assert form.cancel_button.layout.display == "none" and form.result is None
