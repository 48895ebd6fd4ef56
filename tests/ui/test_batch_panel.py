"""The Batch & grid panel, driven like a user: fill the form, estimate, run, see one bar fill and the grid."""

from __future__ import annotations

import io

from PIL import Image

from masuka_nb.history import query
from masuka_nb.ui.batch import BatchPanel, parse_axis_values


def small(panel: BatchPanel) -> BatchPanel:
    panel.width.value = panel.height.value = 32
    panel.steps.value = 1
    return panel


def test_a_template_batch_estimates_then_runs_with_one_bar_and_shows_the_sheet():
    panel = small(BatchPanel(model="tiny-flux"))
    panel.prompts.value = "a {red|blue} kite"
    panel.seeds.value = "1, 2"
    panel.estimate_button.click()
    assert "4 image(s)" in panel.estimate.value
    seen = []
    panel.bar.observe(lambda ch: seen.append(ch["new"]), names="value")
    panel.run_button.click()
    assert "done: 4 image(s)" in panel.status.value, panel.status.value
    assert panel.bar.value == panel.bar.max and seen == sorted(seen)
    assert panel.image.layout.display == "" and Image.open(io.BytesIO(panel.image.value)).width > 2 * 32
    assert len(query(kind="image")) == 4 and len(query(kind="batch")) == 1
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_grid_mode_with_a_model_axis_shows_the_labelled_grid():
    panel = small(BatchPanel(model="tiny-flux"))
    panel.mode.value = "grid"
    assert panel.grid_box.layout.display == ""
    panel.prompts.value = "a red car"
    x_field, x_values = panel.axes["x"]
    y_field, y_values = panel.axes["y"]
    x_field.value, x_values.value = "model", "tiny-flux, tiny-sd3"
    y_field.value, y_values.value = "prompt_sr", "red, blue"
    panel.estimate_button.click()
    assert "4 cell(s)" in panel.estimate.value
    panel.run_button.click()
    assert "done: 4 cell(s)" in panel.status.value, panel.status.value
    assert len(panel.result.cells) == 4 and query(kind="grid")[0].paths == [str(panel.result.path)]


def test_bad_input_is_shown_with_its_code_and_nothing_runs():
    panel = small(BatchPanel(model="tiny-flux"))
    panel.prompts.value = "a {red kite"
    panel.run_button.click()
    assert 'data-code="INVALID_REQUEST"' in panel.status.value and "unbalanced" in panel.status.value
    panel.mode.value = "grid"
    panel.prompts.value = "a kite"
    panel.axes["x"][1].value = ""
    panel.run_button.click()
    assert "has no values" in panel.status.value
    panel.axes["x"][1].value = "two, four"
    panel.run_button.click()
    assert "not a number" in panel.status.value
    assert query(kind="image") == [] and query(kind="grid") == []


def test_axis_values_are_parsed_by_field():
    assert parse_axis_values("steps", "2, 4, 8") == [2, 4, 8]
    assert parse_axis_values("guidance", "1.5,3") == [1.5, 3.0]
    assert parse_axis_values("prompt_sr", "red, dark blue") == ["red", "dark blue"]
