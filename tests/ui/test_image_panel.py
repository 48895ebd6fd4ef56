"""The Image tab against the real image engine on tiny-flux / tiny-sd3 (offline, CPU, 32 px): runs, the
result pane and the session feed, the actions on the shown image, Stop in both run modes, the queue."""

from __future__ import annotations

import threading

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


def test_generate_streams_progress_and_puts_the_newest_image_on_the_stage(masuka_home):
    ui, form = _form(seed="5", count=2)
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    result = form.result
    assert result.seeds == [5, 6] and len(result.images) == 2
    steps = [e.step for e in form.progress.events if e.stage == "generate"]
    assert steps[-1] == 2 and steps == sorted(steps)
    assert any(e.preview is not None for e in form.progress.events)
    assert form.progress.bar.value == 1000 and form.progress.preview.layout.display == "none"
    # the first image is on the stage with its own facts and its actions under it; both are in the feed
    assert form.pane.kind == "image" and form.pane.image.value[:4] == b"\x89PNG"
    assert "seed 5 · 32×32" in form.pane.caption.value and str(result.paths[0]) in form.pane.details.value
    assert "download=" in form.pane.download.value
    labels = [b.description for b in form.pane.actions.children]
    assert {"New seed", "Variations", "Upscale 2×", "Edit…", "Delete"} <= set(labels)
    assert len(form.feed.runs) == 1 and len(form.feed.runs[0].items) == 2
    assert "noise" in form.pane.notes.value  # tiny models are labelled as such
    # a second run keeps the first in the feed (nothing is wiped); picking it shows it again
    form.seed.value = "7"
    form.count.value = 1
    form.generate_button.click()
    assert len(form.feed.runs) == 2 and "seed 7" in form.pane.caption.value
    # the details describe the shown image only (whole table cells: a seed's digits also occur in paths and times)
    assert "<td>seed</td><td>7</td>" in form.pane.details.value
    assert "<td>seed</td><td>5</td>" not in form.pane.details.value and "<td>seeds</td><td>5, 6</td>" not in form.pane.details.value
    form.feed.runs[1].items[1].pick()
    assert "seed 6" in form.pane.caption.value and form.shown.seed == 6
    ui.select("History")
    assert ui.history.records[0].kind == "image" and ui.history.records[0].model == "tiny-flux"


def test_actions_act_on_the_shown_image(masuka_home):
    ui, form = _form(seed="21", count=2)
    form.guidance.value = 3.5000000000000004
    form.generate_button.click()
    form.feed.runs[0].items[1].pick()
    assert form.shown.seed == 22 and "3.5000000000000004" not in form.pane.details.value
    form.seed.value = ""
    form.act("use_seed")
    assert form.seed.value == "22"
    form.prompt.value = "something else"
    form.act("reuse")
    assert form.prompt.value == "a lighthouse at dawn" and form.seed.value == "22"
    form.act("start_image")
    assert form.init_image.value == str(form.result.paths[1]) and form.init_thumb.layout.display == ""
    form.act("to_video")
    assert ui.video.image.value == str(form.result.paths[1]) and ui.tabs.selected_index == 2
    form.act("new_seed")
    assert form.last_error is None, form.last_error
    assert len(form.result.images) == 1 and form.result.seeds[0] != 22 and len(form.feed.runs) == 2


def test_upscale_is_its_own_file_and_record_and_the_stage_says_its_true_size(masuka_home):
    _ui, form = _form(seed="3")
    form.generate_button.click()
    source = form.shown
    form.act("upscale")
    assert form.last_error is None, form.last_error
    shown = form.shown
    assert shown.kind == "upscale" and shown.size == (64, 64) and "64×64" in form.pane.caption.value
    assert "64×64" in form.pane.details.value and "32×32" not in form.pane.details.value
    assert shown.path != source.path and "Upscaled to 64×64" in form.notice.text
    rec = next(r for r in query() if r.kind == "upscale")
    assert rec.paths == [shown.path] and rec.recipe["width"] == 64 and rec.model == "tiny-flux"
    assert rec.id == shown.history_id and len(query(kind="image")) == 1  # the source's record is untouched


def test_delete_has_undo_and_deletes_the_right_record(masuka_home):
    _ui, form = _form(seed="31", count=2)
    form.generate_button.click()
    form.act("upscale")
    up = form.shown
    form.act("delete")
    assert not __import__("pathlib").Path(up.path).exists() and not [r for r in query() if r.kind == "upscale"]
    assert len(query(kind="image")[0].paths) == 2  # the image it came from keeps both of its files
    assert form.feed.find(up.path) is None and "Undo" in form.notice.buttons
    assert "upscaled" not in form.progress.status_text  # no status line left about what is gone
    form.notice.buttons["Undo"].click()
    assert __import__("pathlib").Path(up.path).exists() and [r for r in query() if r.kind == "upscale"]
    assert form.feed.find(up.path) is not None and form.shown is up
    # deleting one image of a run of two keeps the record with the other
    form.feed.runs[-1].items[1].pick()
    gone = form.shown.path
    form.act("delete")
    rec = query(kind="image")[0]
    assert gone not in rec.paths and len(rec.paths) == 1


def test_edit_shows_before_and_after(masuka_home):
    _ui, form = _form(seed="41")
    form.generate_button.click()
    form.act("edit")
    assert form.edit_row.layout.display == ""
    form.edit_apply.click()  # no instruction: refused at the field, nothing runs
    assert form.last_error is not None and "Type what to change" in form.form_notice.text
    form.edit_instruction.value = "make it night"
    form.edit_apply.click()
    assert form.last_error is None, form.last_error
    assert form.pane.kind == "pair" and form.pane.before.value and form.pane.after.value
    assert "make it night" in form.pane.caption.value


def test_a_refused_request_keeps_the_last_good_result(masuka_home):
    _ui, form = _form(seed="11")
    form.generate_button.click()
    good = form.shown
    form.width.value = 99999
    form.generate_button.click()
    assert form.last_error.code == "INVALID_REQUEST" and "mk-invalid" in form.width._dom_classes
    assert form.width.value == 99999  # never silently clamped
    assert "Width 99999 is too large" in form.field_note.value and "`" not in form.field_note.value
    assert "Use the default" in form.form_notice.buttons
    assert form.shown is good and form.pane.kind == "image"  # the result is still there
    form.form_notice.buttons["Use the default"].click()
    assert form.width.value == mk.get_model("tiny-flux").default_width


def test_engine_errors_show_in_words_in_the_result_pane(masuka_home):
    _ui, form = _form(model="tiny-sd3")
    form.width.value = 40  # not a multiple of 16: the engine refuses, the panel shows why
    form.generate_button.click()
    assert form.last_error is not None and form.last_error.code == "INVALID_REQUEST"
    assert "INVALID_REQUEST</" not in form.notice.html.value and form.last_error.details
    assert not form.busy


def test_colab_stop_button_keyboard_interrupt_mid_run_is_handled_cleanly(masuka_home):
    ui, form = _form(steps=4)
    assert ui.runner.mode == "inline" and "Interrupt" in ui.mode_note.value
    fired = []

    def stop_button(change):  # Colab's ■ raises KeyboardInterrupt wherever the kernel is
        if change["new"] >= 500 and not fired:
            fired.append(1)
            raise KeyboardInterrupt

    form.progress.bar.observe(stop_button, names="value")
    form.generate_button.click()
    assert fired and form.last_error is not None and form.last_error.code == "CANCELLED"
    assert "Stopped after" in form.notice.text and not form.busy
    assert form.stop_button.layout.display == "none"  # in Colab no Stop button is shown: it could not act
    assert form.result is None and form.progress.preview.layout.display == "none"
    assert not list((masuka_home / "outputs").rglob("*.png"))  # nothing half-finished was kept
    form.progress.bar.unobserve(stop_button, names="value")
    form.generate_button.click()
    assert form.last_error is None and len(form.result.images) == 1


def test_worker_stop_ends_the_run_at_the_next_step_and_says_so(masuka_home):
    ui, form = _form(steps=60, background=True)
    assert ui.runner.mode == "worker" and ui.mode_note.value == ""
    seen = []

    def click_stop(change):
        if change["new"] > 0 and not seen:
            seen.append(form.stop_button.layout.display)
            form.stop_button.click()

    form.progress.bar.observe(click_stop, names="value")
    form.generate_button.click()
    form.wait(300)
    assert seen == [""]  # Stop was shown while the run ran
    run = ui.runner.history[-1]
    assert run.state == "stopped" and run.stop_asked_at is not None
    steps = [e.step for e in form.progress.events if e.stage == "generate"]
    assert steps and max(steps) < 60  # it did not run to the end
    assert "Stopped after" in form.notice.text and 'data-testid="mk-stopped"' in form.notice.html.value
    assert form.stop_button.layout.display == "none" and form.result is None


def test_runs_queue_on_one_worker_and_a_waiting_run_can_be_removed(masuka_home):
    ui, form = _form(steps=2, background=True)
    gate = threading.Event()
    started = threading.Event()

    def slow() -> None:
        started.set()
        gate.wait(60)

    first = form._run("slow", slow)
    started.wait(60)
    second = form._run("generation", form._generate, check=form.request)
    third = form._run("generation", form._generate, check=form.request)
    assert ui.runner.layout.display == "" and "Running: Image · slow" in ui.runner.label.value
    assert [r.state for r in (first, second, third)] == ["running", "waiting", "waiting"]
    assert "Queued" in form.notice.text
    ui.runner.remove(third)  # its ✕ in the queue strip
    gate.set()
    form.wait(300)
    assert [first.state, second.state, third.state] == ["done", "done", "removed"]
    assert ui.runner.layout.display == "none" and len(form.feed.runs) == 1
