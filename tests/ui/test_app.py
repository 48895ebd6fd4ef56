"""The app as a user meets it: tabs, history gallery, dashboard, toasts, uploads, errors in the UI.

These run under ipywidgets 8.x (system) and 7.7.1 (Colab's; `.ci/widgets77.sh`).
"""

from __future__ import annotations

import ipywidgets as widgets
from PIL import Image

import masuka_nb as mk
from masuka_nb.history import HistoryRecord, record
from masuka_nb.ui.components import Gallery, ProgressView, fill_upload
from masuka_nb.ui.helpers import upload_items


def _png(path, color=(30, 120, 200), size=(48, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return str(path)


def test_app_builds_six_titled_tabs_without_display():
    ui = mk.app(display=False)
    assert isinstance(ui, widgets.VBox)
    titles = [ui.tabs.get_title(i) for i in range(len(ui.tabs.children))]
    assert titles == ["Image", "LoRA", "Video", "History", "Dashboard", "Settings"]
    assert "mk-app" in ui._dom_classes
    # the theme is the first child and carries the dark-mode selector Colab uses
    assert "html[theme=dark]" in ui.children[0].value
    # nothing failed while building (each panel's refresh ran through the guarded runner)
    assert all(p.last_error is None for p in ui.panels), [p.last_error for p in ui.panels]


def test_bad_form_input_is_shown_with_code_and_hint_not_swallowed():
    ui = mk.app(display=False)
    form = ui.image
    form.prompt.value = "a lighthouse"
    form.seed.value = "not-a-seed"
    form.generate_button.click()  # ipywidgets would swallow an exception: the panel must show it
    assert ui.toasts.messages == []  # the visible tab shows it inline; no duplicate toast
    ui.select("History")
    form.generate_button.click()
    assert form.last_error is not None and form.last_error.code == "INVALID_REQUEST"
    shown = form.form_notice.html.value  # a form error shows at the form, next to the Generate button
    assert 'data-code="INVALID_REQUEST"' in shown and "INVALID_REQUEST</" not in shown  # the code is not shown
    assert "0 to 4294967295" in shown  # the hint
    assert "mk-invalid" in form.seed._dom_classes
    assert not form.busy and not form.generate_button.disabled
    # the app-wide toast names the tab
    assert ui.toasts.messages and "Image:" in ui.toasts.messages[0][1]
    # one line in the tab bar's row (the full text in its tooltip), and the tab it came from is marked
    assert ui.toasts._html.value.count('data-testid="mk-toast"') == 1 and "title=" in ui.toasts._html.value
    assert ui.children.index(ui.toasts) == ui.children.index(ui.tabs) - 1
    assert ui.tabs.get_title(0) == "Image •" and ui.tabs.get_title(3) == "History"
    ui.toasts._dismiss.click()
    assert ui.toasts.messages == []
    assert ui.tabs.get_title(0) == "Image •"  # unseen news: marked until the tab is opened
    ui.select("Image")
    assert ui.tabs.get_title(0) == "Image"


def test_model_switch_applies_registry_defaults():
    ui = mk.app(display=False, model="tiny-sd3")
    form = ui.image
    spec = mk.get_model("tiny-sd3")
    assert (form.width.value, form.height.value, form.steps.value) == (spec.default_width, spec.default_height,
                                                                       spec.default_steps)
    assert form.negative.layout.display != "none"
    form.model.value = "flux1-dev"
    dev = mk.get_model("flux1-dev")
    assert form.width.value == dev.default_width
    assert form.negative.layout.display == "none"  # FLUX.1-dev has no negative prompt: no field for one
    assert "licence" in form.model_info.value
    form.model.value = "tiny-flux"
    assert form.width.value == mk.get_model("tiny-flux").default_width


def test_history_tab_shows_records_filters_and_sends_a_recipe_to_the_image_tab(masuka_home):
    png = _png(masuka_home / "outputs" / "a.png")
    record(HistoryRecord("image", "ok", model="tiny-sd3", prompt="a red lighthouse",
                         recipe={"prompt": "a red lighthouse", "model": "tiny-sd3", "steps": 3, "seed": 1234,
                                 "width": 48, "height": 32, "guidance": 4.5, "negative_prompt": "blurry"},
                         paths=[png]))
    record(HistoryRecord("video", "ok", model="veo3-pro", prompt="waves", extra={"cost_usd": 2.5}))
    record(HistoryRecord("image", "failed", model="tiny-flux", prompt="broken",
                         error={"code": "OUT_OF_MEMORY", "message": "no memory"}))
    ui = mk.app(display=False)
    hist = ui.history
    ui.tabs.selected_index = 3  # switching to the tab re-reads the history
    assert len(hist.records) == 3 and len(hist.gallery.cells) == 3
    hist.kind.value = "image"
    assert {r.prompt for r in hist.records} == {"a red lighthouse", "broken"}
    hist.status.value = "failed"
    assert [r.prompt for r in hist.records] == ["broken"]
    hist.select(hist.records[0])
    assert "No memory" in hist.detail.value and "OUT_OF_MEMORY" in hist.detail.value.split("<details>")[1]
    hist.status.value = ""
    hist.text.value = "lighthouse"
    assert [r.prompt for r in hist.records] == ["a red lighthouse"]
    # its thumbnail is the real PNG, enlarged for display
    thumb = hist.gallery.cells[0].image
    assert thumb.value[:4] == b"\x89PNG"
    hist.gallery.cells[0].hit.click()  # a click on the tile opens it beside the tiles
    assert "seed" in hist.detail.value and "1234" in hist.detail.value
    hist.use_button.click()
    form = ui.image
    assert form.model.value == "tiny-sd3" and form.prompt.value == "a red lighthouse"
    assert (form.steps.value, form.seed.value, form.width.value, form.guidance.value) == (3, "1234", 48, 4.5)
    assert form.negative.value == "blurry"
    assert ui.tabs.selected_index == 0


def test_history_pages(masuka_home):
    for i in range(5):
        record(HistoryRecord("image", "ok", model="tiny-flux", prompt=f"p{i}"))
    ui = mk.app(display=False)
    ui.history.page_size = 2
    ui.history.refresh()
    assert len(ui.history.records) == 2 and ui.history.more_button.layout.display == ""
    ui.history.more_button.click()
    assert len(ui.history.records) == 5 and ui.history.more_button.layout.display == "none"


def test_dashboard_counts_history_and_spend(masuka_home):
    mk.configure(budget_usd=20)
    record(HistoryRecord("image", "ok", model="tiny-flux", prompt="x"))
    record(HistoryRecord("video", "ok", model="veo3-pro", prompt="y", extra={"cost_usd": 3.5}))
    record(HistoryRecord("training", "failed", model="tiny-flux"))
    ui = mk.app(display=False)
    dash = ui.dashboard
    dash.refresh_button.click()
    assert dash.stats.total == 3 and dash.stats.by_kind["video"] == 1 and dash.stats.spend_usd == 3.5
    assert "$3.50" in dash.stats_html.value and "$20.00 budget" in dash.stats_html.value
    assert "mk-bar-row" in dash.errors_html.value and "Nothing failed" not in dash.errors_html.value
    settings = ui.select("Settings")  # the runtime and folders live in the Settings tab now
    assert "none" in settings.runtime_html.value  # this machine has no GPU
    assert str(masuka_home) in settings.folders_html.value
    assert "no GPU" in ui.header.value  # the one place for runtime chips


def test_progress_view_follows_engine_events():
    from masuka_nb.progress import ProgressReporter

    view = ProgressView()
    view.start()
    rep = ProgressReporter("denoise", 4, progress=view)
    for step in range(1, 5):
        rep.update(step, preview=Image.new("RGB", (16, 16), (step * 40, 0, 0)))
    assert view.bar.value == 1000 and len(view.events) == 4
    assert view.status_text.startswith("denoise 4/4 · 100%")
    assert view.preview.layout.display == "" and view.preview.value[:4] == b"\x89PNG"
    view.finish("stopped", ok=False)
    assert view.bar.bar_style == "warning" and view.preview.layout.display == "none"  # no stale preview stays
    assert view.preview.value == b"" and view.status_text.startswith("stopped")


def test_gallery_shows_images_and_bytes():
    g = Gallery()
    assert g.placeholder.layout.display != "none"
    g.set_items([(Image.new("RGB", (32, 32)), "seed 1"), (b"\x89PNG fake", "raw")])
    assert len(g.grid.children) == 2 and g.placeholder.layout.display == "none"
    assert "seed 1" in g.cells[0].caption.value


def test_file_upload_roundtrip_in_this_ipywidgets_version(widgets_major):
    up = widgets.FileUpload(multiple=True)
    fill_upload(up, [("a.png", b"\x89PNGa"), ("b.zip", b"PK..")])
    assert isinstance(up.value, dict if widgets_major == 7 else tuple)
    assert [(u.name, u.content) for u in upload_items(up.value)] == [("a.png", b"\x89PNGa"), ("b.zip", b"PK..")]
    from masuka_nb.ui.lora import _clear_upload

    _clear_upload(up)
    assert upload_items(up.value) == []


def test_background_mode_shows_cancel_and_reports_errors_from_the_thread():
    ui = mk.app(display=False, background=True)
    form = ui.image
    form.prompt.value = "x"
    form.seed.value = "-5"
    form.generate_button.click()
    form.wait(10)
    assert form.last_error is not None and form.last_error.code == "INVALID_REQUEST"
    assert form.stop_button.layout.display == "none" and not form.busy  # nothing ran: nothing to stop


def test_panels_override_no_widget_internals():
    """A panel method named like an ipywidgets internal (`_compare`, `_repr_keys`…) breaks repr and sync
    in one version or the other: keep our names apart."""
    from masuka_nb.ui import (
        batch,
        components,
        dashboard,
        gallery,
        generate,
        lora,
        results,
        runs,
        settings,
        video,
    )
    from masuka_nb.ui.application import MasukaApp

    widget_names = set(dir(widgets.VBox)) | set(dir(widgets.HTML)) | set(dir(widgets.Box))
    classes = [components.Panel, components.Notice, components.Toasts, components.ProgressView, components.Gallery,
               components.Tile, generate.GeneratePanel, results.ResultPane, results.SessionFeed, runs.RunQueue,
               batch.BatchSection, lora.LoraPanel, video.VideoPanel, gallery.HistoryPanel,
               dashboard.DashboardPanel, settings.SettingsPanel, MasukaApp]
    # MasukaApp overrides the display hooks on purpose: `mk.app()` as a cell's last line shows it once
    allowed = {MasukaApp: {"_repr_mimebundle_", "_ipython_display_"}}
    for cls in classes:
        clashes = {name for name, value in vars(cls).items() if callable(value) and name in widget_names
                   and not name.startswith("__")} - allowed.get(cls, set())
        assert not clashes, (cls.__name__, clashes)
    ui = mk.app(display=False)
    assert "MasukaApp" in repr(ui) and "LoraPanel" in repr(ui.lora)
