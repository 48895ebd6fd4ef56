"""Batch & grid inside the Image tab: the tab's model and size, an honest estimate with every check first,
the results in the result pane and the feed, and the tab's Stop."""

from __future__ import annotations

import masuka_nb as mk
from masuka_nb.history import query
from masuka_nb.ui.batch import parse_axis_values


def _form(background: bool = False):
    ui = mk.app(display=False, model="tiny-flux", background=background)
    form = ui.image
    form.width.value = form.height.value = 32
    form.steps.value = 1
    return ui, form


def test_a_batch_uses_the_image_tabs_model_and_size_and_lands_in_the_result_pane(masuka_home):
    _ui, form = _form()
    section = form.batch
    assert not hasattr(section, "model") and not hasattr(section, "width")  # one set of controls: the tab's
    section.prompts.value = "a {red|blue} kite"
    section.seeds.value = "1, 2"
    section.estimate_button.click()
    assert "4 images" in section.estimate.value and "rough guess" in section.estimate.value  # nothing measured yet
    section.run_button.click()
    assert form.last_error is None, form.last_error
    assert "Done: batch · 4 images" in form.notice.text
    assert form.shown.kind == "sheet" and form.pane.kind == "grid"  # every image on the stage, labelled
    assert len(form.pane.grid.children) == 4 and "seed 1" in form.pane.grid.children[0].children[1].value
    assert len(form.feed.runs) == 1 and len(form.feed.runs[0].items) == 5  # the sheet and each image
    items = query(kind="image")
    assert len(items) == 4 and {r.recipe["width"] for r in items} == {32} and len(query(kind="batch")) == 1
    form.feed.runs[0].items[1].pick()  # one image of the batch, with its own actions
    assert form.shown.kind == "image" and "Upscale 2×" in [b.description for b in form.pane.actions.children]
    # now the same model, size and steps have been measured: the estimate says it comes from them
    section.estimate_button.click()
    assert "from comparable runs" in section.estimate.value


def test_grid_mode_checks_every_axis_before_estimating_and_shows_the_grid(masuka_home):
    _ui, form = _form()
    section = form.batch
    section.mode.value = "grid"
    assert section.grid_box.layout.display == "" and section.run_button.description == "Run grid"
    section.prompts.value = "a red car"
    x_field, x_values = section.axes["x"]
    y_field, y_values = section.axes["y"]
    x_values.value = ""
    section.estimate_button.click()  # an empty axis is refused, not estimated
    assert section.estimate.value == "" and "X axis (steps) has no values" in section.form_notice.text
    assert "mk-invalid" in x_values._dom_classes
    x_values.value = "2, 300"  # a value the image engine refuses (steps go to 150): said before any estimate
    section.estimate_button.click()
    assert section.estimate.value == "" and "X axis, steps 300" in section.form_notice.text
    assert "between 1 and 150" in section.form_notice.text and "mk-invalid" in x_values._dom_classes
    assert "mk-invalid" not in form.steps._dom_classes  # the form's own Steps is fine: the axis is marked
    x_field.value, x_values.value = "model", "tiny-flux, tiny-sd3"
    y_field.value, y_values.value = "prompt_sr", "red, blue"
    section.estimate_button.click()
    assert "4 cells" in section.estimate.value
    section.run_button.click()
    assert form.last_error is None, form.last_error
    assert "grid · 4 cells" in form.notice.text and form.shown.kind == "sheet"
    assert query(kind="grid")[0].paths == [form.shown.path]


def test_bad_input_is_shown_in_words_and_nothing_runs(masuka_home):
    _ui, form = _form()
    section = form.batch
    section.prompts.value = "a {red kite"
    section.run_button.click()
    assert "unbalanced" in section.form_notice.text.lower() or "{" in section.form_notice.text
    section.mode.value = "grid"
    section.prompts.value = "a kite"
    section.axes["x"][1].value = "two, four"
    section.run_button.click()
    assert "not a number" in section.form_notice.text and "`" not in section.form_notice.html.value
    assert query(kind="image") == [] and query(kind="grid") == []


def test_the_tabs_stop_ends_a_batch(masuka_home):
    ui, form = _form(background=True)
    form.steps.value = 8
    section = form.batch
    section.prompts.value = "a kite"
    section.seeds.value = ", ".join(str(i) for i in range(1, 13))

    def click_stop(change):
        if change["new"] > 0 and form.stop_button.layout.display == "":
            form.stop_button.click()

    form.progress.bar.observe(click_stop, names="value")
    section.run_button.click()
    form.wait(300)
    run = ui.runner.history[-1]
    assert run.label == "batch" and run.state == "stopped", (run.state, form.last_error)
    kept = len(query(kind="image"))
    assert kept < 12
    # the notice counts what this batch made and kept (not only how long it ran)
    if kept:
        assert f"Stopped after {kept} of 12 images" in form.notice.text, form.notice.text
        assert ("the finished one is saved" if kept == 1 else f"the {kept} finished ones are saved") in form.notice.text
    else:
        assert "Stopped before any of the 12 images was finished; nothing was saved" in form.notice.text
    assert "half-made" not in form.notice.text


def test_a_stopped_batch_counts_only_its_own_images(masuka_home):
    _ui, form = _form()
    section = form.batch
    section.prompts.value = "a kite"
    section.seeds.value = "1, 2"
    section.run_button.click()  # an earlier, finished batch: its 2 images are not this run's
    assert len(query(kind="image")) == 2
    plan = section.check()
    section.seeds.value = "1, 2, 3, 4, 5"
    plan = section.check()
    section._stop_count = {"mode": "batch", "total": plan["estimate"].images,
                           "before": {r.id for r in query(kind="image")}}
    assert section.stopped_text() == ("Stopped before any of the 5 images was finished; nothing was saved. "
                                      "Run it again when you are ready.")


def test_axis_values_are_parsed_by_field():
    assert parse_axis_values("steps", "2, 4, 8") == [2, 4, 8]
    assert parse_axis_values("guidance", "1.5,3") == [1.5, 3.0]
    assert parse_axis_values("prompt_sr", "red, dark blue") == ["red", "dark blue"]


def test_a_stop_that_kept_nothing_says_the_result_shown_is_an_earlier_one(masuka_home):
    from types import SimpleNamespace

    _ui, form = _form()
    stopped_grid = SimpleNamespace(label="grid", started_at=0.0, ended_at=1.2)
    assert "earlier run" not in form._stopped_text(stopped_grid, None)  # nothing shown: nothing to misread
    form.prompt.value = "a kite"
    form.generate_button.click()  # an earlier, finished image is now beside the form
    assert form.shown is not None
    text = form._stopped_text(stopped_grid, None)
    assert text.startswith("Stopped after 1.2 s.") and text.endswith("The result shown is from an earlier run."), text
