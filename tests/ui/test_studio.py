"""The studio's state rules, in plain Python under either ipywidgets version: no stale results after a
new run, errors at the field (marked, never clamped), result actions wired, one history tile per
record, dashboard sums and charts, the Settings tab, the LoRA tab's locks, the Video tab's confirm.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

import masuka_nb as mk
from masuka_nb.history import HistoryRecord, query, record
from masuka_nb.ui.components import INVALID_CLASS, ProgressView
from masuka_nb.ui.helpers import fmt_number, history_stats


def _png(path, color=(30, 120, 200), size=(48, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return str(path)


def _image_form(**values):
    ui = mk.app(display=False, model="tiny-flux")
    form = ui.image
    form.prompt.value = "a lighthouse at dawn"
    form.steps.value = 2
    form.width.value = form.height.value = 32
    for key, value in values.items():
        getattr(form, key).value = value
    return ui, form


# ---- starting light, shown once -------------------------------------------------------------------

def test_building_the_app_imports_no_torch_and_has_a_short_repr():
    code = ("import sys, masuka_nb as mk; ui = mk.app(); "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)); print(repr(ui))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[]", out.stdout
    # a plain interpreter prints nothing more than one short line (not the 33 KB widget repr)
    assert lines[1].startswith("<MasukaApp tabs: Image, LoRA, Video, History, Dashboard, Settings")
    assert len(out.stdout) < 400, out.stdout
    assert "auto_model" not in out.stderr  # no red log block at launch


def test_app_as_a_cells_last_line_is_shown_exactly_once(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import masuka_nb as mk\nmk.app()"),
                nbformat.v4.new_code_cell("ui = mk.app()"),
                nbformat.v4.new_code_cell("ui")]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    def views(cell):
        return sum(1 for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))

    assert [views(c) for c in nb.cells] == [1, 1, 1]  # last line, assigned, and shown again on purpose


# ---- Image tab: state, field errors, actions --------------------------------------------------------

def test_out_of_range_values_are_refused_at_the_field_not_clamped():
    _ui, form = _image_form()
    form.width.value = 99999
    form.generate_button.click()
    assert form.last_error is not None and form.last_error.code == "INVALID_REQUEST"
    assert form.width.value == 99999  # never silently clamped
    assert INVALID_CLASS in form.width._dom_classes and "`width`" in form.notice.value
    assert form.result is None and form.gallery.cells == []  # nothing ran, nothing looks current
    form.width.value = 32
    form.count.value = 0
    form.generate_button.click()
    assert INVALID_CLASS not in form.width._dom_classes and INVALID_CLASS in form.count._dom_classes


def test_the_plan_is_said_in_words_before_a_run():
    _ui, form = _image_form()
    assert "on this CPU: tiny-flux" in form.plan_info.value and "fp32" in form.plan_info.value


def test_a_second_run_leaves_nothing_of_the_first(masuka_home):
    _ui, form = _image_form(seed="11", count=2)
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    first = list(form.gallery.cells)
    assert len(first) == 2 and form.view.layout.display == ""  # the newest image opens large
    form.seed.value = "12"
    form.count.value = 1
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    assert len(form.gallery.cells) == 1 and not set(map(id, first)) & set(map(id, form.gallery.cells))
    assert "seed 12" in form.gallery.cells[0].children[1].value
    assert "12" in form.view.recipe_html.value and "11" not in form.view.recipe_html.value
    # an engine failure clears the results it replaced: the bar says stopped over an empty gallery
    form.loras.value = "/nowhere/missing.safetensors"
    form.generate_button.click()
    assert form.last_error is not None
    assert form.gallery.cells == [] and form.view.layout.display == "none"
    assert form.progress.bar.bar_style == "warning"


def test_result_actions_are_wired(masuka_home):
    ui, form = _image_form(seed="21", count=2)
    form.guidance.value = 3.5000000000000004
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    form.open_result(1)
    assert form.view.index == 1 and "22" in form.view.recipe_html.value  # the image's own seed
    assert "3.5000000000000004" not in form.view.recipe_html.value  # human numbers
    assert 'download="' in form.view.download_html.value and "data:image/png;base64," in form.view.download_html.value
    form.seed.value = ""
    form.view.buttons["use_seed"].click()
    assert form.seed.value == "22"
    form.prompt.value = "something else"
    form.view.buttons["reuse"].click()
    assert form.prompt.value == "a lighthouse at dawn" and form.seed.value == "22"
    form.view.buttons["start_image"].click()
    assert form.init_image.value == str(form.result.paths[1])
    form.view.buttons["to_video"].click()
    assert ui.video.image.value == str(form.result.paths[1]) and ui.tabs.selected_index == 2
    # delete asks first, then removes the file and forgets it in the history
    path = form.result.paths[1]
    form.open_result(1)
    form.view.buttons["delete"].click()
    assert path.is_file() and form.view.buttons["delete"].description == "Confirm delete"
    form.view.buttons["delete"].click()
    assert form.last_error is None, form.last_error
    assert not path.is_file() and len(form.gallery.cells) == 1
    assert form.init_image.value == ""  # it was the start image: the form forgets it too
    rec = query(kind="image")[0]
    assert str(path) not in rec.paths and len(rec.paths) == 1
    # new seed runs again with a fresh seed, one image
    form.open_result(0)
    form.view.buttons["new_seed"].click()
    assert form.last_error is None, form.last_error
    assert len(form.result.images) == 1 and form.result.seeds[0] != 21


def test_cancel_is_visible_in_both_run_modes_and_explains_colabs_stop_button(masuka_home):
    for background in (False, True):
        ui, form = _image_form(seed=str(31 + background))
        ui.background = form.background = background
        seen = []  # what the user sees while the real engine reports progress
        form.progress.bar.observe(lambda _c, f=form, seen=seen: seen.append((f.cancel_button.layout.display,
                                                                             f.stop_hint.value)), names="value")
        form.generate_button.click()
        form.wait(120)
        assert form.last_error is None, form.last_error
        display, hint = seen[-1]
        assert display == ""
        assert ("stop button" in hint) is (not background)
        assert form.cancel_button.layout.display == "none" and form.stop_hint.value == ""


def test_progress_shows_elapsed_time_from_an_injected_clock():
    from masuka_nb.progress import ProgressEvent

    now = [100.0]
    view = ProgressView(clock=lambda: now[0])
    view.start()
    now[0] = 103.0
    view(ProgressEvent("denoise", 1, 4, eta_s=9.0))
    assert "denoise 1/4" in view.status_text and "ETA 9.0 s" in view.status_text and "3.0 s elapsed" in view.status_text
    now[0] = 112.0
    view.finish("4 images")
    assert view.status_text == "4 images · 12 s elapsed"
    view.reset()
    assert view.layout.display == "none" and view.status_text == ""


def test_human_numbers():
    assert fmt_number(3.5000000000000004) == "3.5" and fmt_number(0.30000000000000004) == "0.3"
    assert fmt_number(7) == "7" and fmt_number(1e-4) == "0.0001" and fmt_number([1.0, 0.7]) == "1, 0.7"
    assert fmt_number(True) == "yes"


# ---- History, Dashboard, Settings -------------------------------------------------------------------

def test_history_shows_one_tile_per_record_with_badges_and_all_images_in_details(masuka_home):
    batch = [_png(masuka_home / "outputs" / f"b{i}.png", (40 * i, 90, 160)) for i in range(3)]
    record(HistoryRecord("image", "ok", model="tiny-flux", prompt="a batch", paths=batch,
                         recipe={"prompt": "a batch", "seeds": [1, 2, 3], "guidance": 3.5000000000000004}))
    grid = _png(masuka_home / "outputs" / "grid.png", (200, 200, 200), (96, 64))
    record(HistoryRecord("comparison", "ok", model="tiny-flux", prompt="p", paths=[grid],
                         recipe={"seeds": [1, 2], "weights": [0.7, 1.0]}))
    poster = masuka_home / "outputs" / "clip.jpg"
    Image.new("RGB", (64, 36), (10, 200, 10)).save(poster)
    record(HistoryRecord("video", "ok", model="veo3-fast", prompt="waves",
                         paths=[str(masuka_home / "outputs" / "clip.mp4"), str(poster)]))
    ui = mk.app(display=False)
    hist = ui.select("History")
    assert len(hist.records) == 3 and len(hist.gallery.cells) == 3  # one tile per record
    tiles = {rec.kind: Image.open(__import__("io").BytesIO(cell.children[0].value))
             for rec, cell in zip(hist.records, hist.gallery.cells)}
    assert {t.size for t in tiles.values()} == {(320, 320)}  # square tiles of one size
    # the video tile is its poster (green) with a dark play disc in the middle
    assert tiles["video"].getpixel((20, 160))[1] > 150 and max(tiles["video"].getpixel((132, 160))) < 60
    assert tiles["image"].getpixel((300, 26)) == (109, 74, 255)  # the count badge
    batch_rec = next(r for r in hist.records if r.kind == "image")
    assert "mk-has-run" not in hist.split_box._dom_classes  # nothing picked yet: tiles first everywhere
    index = hist.records.index(batch_rec)
    hist.gallery.cells[index].children[2].click()  # its Details button
    assert hist.selected is batch_rec and "mk-has-run" in hist.split_box._dom_classes
    assert len(hist.detail_images.cells) == 3  # every image of the batch
    assert "3.5000000000000004" not in hist.detail.value and "3.5" in hist.detail.value
    assert hist.detail.value.index("status") < hist.detail.value.index("Raw recipe")  # key fields first
    stats = history_stats(query())
    assert stats.images == 3  # a comparison is not counted as images


def test_dashboard_reports_success_time_errors_and_spend_with_charts(masuka_home):
    record(HistoryRecord("image", "ok", model="tiny-flux", timings={"total": 2.0}, paths=[]))
    record(HistoryRecord("image", "ok", model="tiny-flux", timings={"total": 4.0}))
    record(HistoryRecord("image", "failed", model="flux1-dev", error={"code": "OUT_OF_MEMORY", "message": "x"}))
    record(HistoryRecord("video", "ok", model="veo3-pro", recipe={"provider": "cometapi"}, extra={"cost_usd": 3.2},
                         timings={"total": 30.0}))
    record(HistoryRecord("video", "failed", model="kling-v2.1", recipe={"provider": "kling"},
                         error={"code": "PROVIDER_REJECTED", "message": "policy"}, extra={"cost_usd": 0.0}))
    st = history_stats(query())
    assert st.success_rate == pytest.approx(3 / 5)
    assert st.seconds_by_model == {"tiny-flux": 3.0, "veo3-pro": 30.0}
    assert st.errors_by_code == {"OUT_OF_MEMORY": 1, "PROVIDER_REJECTED": 1}
    assert st.spend_by_provider == {"cometapi": 3.2} and sum(st.spend_by_day.values()) == pytest.approx(3.2)
    ui = mk.app(display=False)
    dash = ui.select("Dashboard")
    assert dash.last_error is None, dash.last_error
    assert "60%" in dash.stats_html.value and "succeeded" in dash.stats_html.value
    for chart in (dash.time_chart, dash.errors_chart, dash.provider_chart, dash.day_chart):
        assert chart.value[:4] == b"\x89PNG" and chart.layout.display == ""
        shown = int(chart.layout.width.rstrip("px"))
        assert Image.open(__import__("io").BytesIO(chart.value)).size[0] == 2 * shown  # drawn for its size


def test_settings_tab_says_which_keys_are_set_never_their_values(monkeypatch, masuka_home):
    secret = "fal-canary-3b1d9e77aa"
    monkeypatch.setenv("FAL_KEY", secret)
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    ui = mk.app(display=False)
    tab = ui.select("Settings")
    assert tab.last_error is None, tab.last_error
    keys = tab.keys_html.value
    assert secret not in keys and secret not in tab.runtime_html.value + tab.folders_html.value
    fal_row = keys[keys.index("FAL_KEY"):keys.index("</tr>", keys.index("FAL_KEY"))]
    rep_row = keys[keys.index("REPLICATE_API_TOKEN"):keys.index("</tr>", keys.index("REPLICATE_API_TOKEN"))]
    assert ">set<" in fal_row and "not set" in rep_row
    assert str(masuka_home) in tab.folders_html.value and 'data-testid="mk-cache"' in tab.cache_html.value
    tab.theme.value = "dark"
    assert "mk-dark" in ui._dom_classes
    tab.theme.value = "light"
    assert "mk-light" in ui._dom_classes and "mk-dark" not in ui._dom_classes


# ---- LoRA tab -------------------------------------------------------------------------------------------

def test_lora_tab_defaults_locks_and_train_needs_kept_images(masuka_home):
    pytest.importorskip("masuka_nb.lora")
    ui = mk.app(display=False)
    lora = ui.lora
    assert lora.base.value == "tiny-flux"  # no GPU here: the base that can train on this runtime
    lora.name.value = "empty-set"
    lora.open_button.click()
    assert lora.last_error is None, lora.last_error
    assert lora.train_button.disabled and lora.cloud_button.disabled  # 0 kept images
    # the inbox: drop files, check them (status per file, previews), import
    inbox = lora.inbox
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        Image.new("RGB", (600, 600), (60 * i, 120, 90)).save(inbox / f"photo{i}.png")
    (inbox / "notes.txt").write_text("not a photo")
    lora.scan_inbox_button.click()
    assert lora.last_error is None, lora.last_error
    assert lora.inbox_html.value.count("ready") == 2 and "skipped" in lora.inbox_html.value
    assert len(lora.inbox_gallery.cells) == 2 and not lora.import_inbox_button.disabled
    lora.import_inbox_button.click()
    assert lora.last_error is None, lora.last_error
    assert len(lora.dataset.items) == 2 and not lora.train_button.disabled
    # during a run the dataset controls are locked, and unlocked after
    more = masuka_home / "more"
    more.mkdir()
    Image.new("RGB", (600, 600), (200, 30, 30)).save(more / "photo9.png")
    seen = []
    lora.dataset_info.observe(lambda _c: seen.append((lora.name.disabled, lora.trigger.disabled,
                                                      lora.train_button.disabled)), names="value")
    lora.source.value = str(more)
    lora.import_path_button.click()
    assert lora.last_error is None, lora.last_error
    assert seen and seen[0] == (True, True, True)
    assert not lora.name.disabled and not lora.train_button.disabled and len(lora.dataset.items) == 3


def test_lora_out_of_range_training_values_are_refused_at_the_field(masuka_home):
    pytest.importorskip("masuka_nb.lora")
    ui = mk.app(display=False)
    lora = ui.lora
    lora.trigger.value = "mksubject"
    lora.rank.value = 999
    lora.train_button.disabled = False  # as if images were kept: the field check comes first anyway
    lora.train_button.click()
    assert lora.last_error is not None and lora.last_error.code == "INVALID_REQUEST"
    assert lora.rank.value == 999 and INVALID_CLASS in lora.rank._dom_classes


def test_comparison_legend_names_rows_and_columns():
    from masuka_nb.lora.comparison import Cell
    from masuka_nb.ui.lora import comparison_legend

    class Result:
        cells = [Cell(None, 0.0, "a cat", 1, None), Cell(None, 0.0, "a cat", 2, None),
                 Cell("mycat", 0.7, "a cat", 1, None), Cell("mycat", 0.7, "a cat", 2, None)]

    html = comparison_legend(Result())
    assert "row 1: base model" in html and "row 2: mycat at weight 0.7" in html
    assert "column 2: “a cat” · seed 2" in html


# ---- Video tab ----------------------------------------------------------------------------------------

def test_video_controls_follow_the_model():
    pytest.importorskip("masuka_nb.video")
    ui = mk.app(display=False)
    video = ui.video
    video.model.value = "gen4.5" if "gen4.5" in [v for _, v in video.model.options] else video.model.value
    if video.model.value == "gen4.5":
        assert [v for _, v in video.duration.options] == list(range(2, 11))
    video.model.value = "veo3-fast"
    assert [v for _, v in video.duration.options] == [8] and list(video.resolution.options) == ["1080p"]
    assert video.motion.disabled  # no provider contract has a motion control


def test_a_paid_run_asks_to_confirm_once_and_sends_nothing_before(monkeypatch):
    pytest.importorskip("masuka_nb.video")
    # a real (non-loopback) provider address: this is a paid run. Nothing may be sent before the yes.
    monkeypatch.setenv("MASUKA_COMETAPI_BASE_URL", "https://cometapi.invalid")
    monkeypatch.setenv("COMETAPI_KEY", "sk-test-not-used")
    ui = mk.app(display=False)
    video = ui.video
    video.prompt.value = "waves at night"
    video.model.value = "veo3-fast"
    video.generate_button.click()
    assert video.last_error is None, video.last_error
    assert video.confirm_button.layout.display == "" and "$" in video.confirm_html.value
    assert video.result is None and not query(kind="video")
    video.prompt.value = "waves at dawn"  # a changed request needs a new yes
    assert video.confirm_button.layout.display == "none"


def test_a_new_video_run_clears_the_old_clip(masuka_home, tmp_path):
    pytest.importorskip("masuka_nb.video")
    from masuka_nb.testing.media import tiny_mp4
    from masuka_nb.ui.video import clip_fallback_html

    ui = mk.app(display=False)
    video = ui.video
    video.player.value = tiny_mp4()
    video.player.layout.display = ""
    video.result_info.value = "old"
    video.clear_result()
    assert video.player.value == b"" and video.player.layout.display == "none" and video.result_info.value == ""
    clip = tmp_path / "c.mp4"
    clip.write_bytes(tiny_mp4())
    html = clip_fallback_html(clip, clip.read_bytes())
    assert 'download="c.mp4"' in html and "cannot decode" in html


def test_the_simulators_clips_are_h264():
    from masuka_nb.testing.media import tiny_mp4

    data = tiny_mp4(frames=4, width=64, height=48)
    assert b"avc1" in data and b"avcC" in data and b"mp4v" not in data  # H.264, not Motion-JPEG
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: plays while downloading


def test_upscale_and_variations_make_new_images_from_the_open_one(masuka_home):
    _ui, form = _image_form(seed="41")
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    small = form.result.images[0].size
    form.open_result(0)
    form.view.buttons["upscale"].click()
    assert form.last_error is None, form.last_error
    assert form.result.images[-1].size == (2 * small[0], 2 * small[1]) and form.result.paths[-1].is_file()
    assert form.view.index == len(form.result.images) - 1  # the new one is the one in view
    form.open_result(0)
    form.view.buttons["variations"].click()
    assert form.last_error is None, form.last_error
    assert len(form.result.images) == 4 and form.result.recipe.get("strength") == 0.5  # image-to-image of it
    assert len(form.gallery.cells) == 4


def test_gpu_facts_come_from_nvidia_smi_and_the_plan_is_said_for_that_gpu(tmp_path, monkeypatch):
    """A stand-in `nvidia-smi` program on PATH (what a T4 runtime answers): no torch is asked."""
    from masuka_nb.runtime import detect_quick
    from masuka_nb.ui.generate import default_image_model, plan_text

    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 'Tesla T4, 15360, 7.5'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{smi.parent}:{__import__('os').environ['PATH']}")
    info = detect_quick()
    assert (info.gpu_name, info.vram_gb, info.compute_capability, info.bf16) == ("Tesla T4", 15.0, (7, 5), False)
    mk.configure(default_model="auto")
    assert default_image_model(info) == "flux1-schnell"  # the engine's own auto rule, fed the probe
    text = plan_text("flux1-schnell", info)
    assert text.startswith("on this Tesla T4: ") and "as NF4 in fp16" in text and "GB VRAM peak" in text
    ui = mk.app(display=False)
    assert "Tesla T4 · 15 GiB" in ui.header.value and "fp16 (no bf16)" in ui.header.value


def test_edit_on_a_result_makes_a_new_run_with_the_instruction_and_refuses_an_empty_one(masuka_home):
    _ui, form = _image_form(seed="5")
    form.generate_button.click()
    assert form.last_error is None, form.last_error
    first = form.result
    form.open_result(0)
    form.view.buttons["edit"].click()  # no instruction: refused at its field, nothing run
    assert form.last_error is not None and form.last_error.code == "INVALID_REQUEST"
    assert INVALID_CLASS in form.view.edit_instruction._dom_classes and form.result is first
    form.view.edit_instruction.value = "make it night"
    form.view.buttons["edit"].click()
    assert form.last_error is None, form.last_error
    assert form.result is not first and form.result.recipe["kind"] == "edit"
    assert form.result.recipe["prompt"] == "make it night" and len(form.gallery.cells) == 1


def test_the_image_tab_holds_the_batch_and_grid_section(masuka_home):
    from masuka_nb.ui.batch import BatchPanel

    _ui, form = _image_form()
    assert isinstance(form.batch, BatchPanel)
    form_cards = form.split_box.children[0].children
    assert any(form.batch in card.children for card in form_cards)
