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

def test_the_plan_is_said_in_words_before_a_run():
    _ui, form = _image_form()
    assert "on this CPU: tiny-flux" in form.plan_info.value and "fp32" in form.plan_info.value


def test_human_numbers():
    assert fmt_number(3.5000000000000004) == "3.5" and fmt_number(0.30000000000000004) == "0.3"
    assert fmt_number(7) == "7" and fmt_number(1e-4) == "0.0001" and fmt_number([1.0, 0.7]) == "1, 0.7"
    assert fmt_number(True) == "yes"


# ---- History, Dashboard, Settings -------------------------------------------------------------------

# ---- LoRA tab -------------------------------------------------------------------------------------------

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

def test_the_simulators_clips_are_h264():
    from masuka_nb.testing.media import tiny_mp4

    data = tiny_mp4(frames=4, width=64, height=48)
    assert b"avc1" in data and b"avcC" in data and b"mp4v" not in data  # H.264, not Motion-JPEG
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: plays while downloading


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


def test_progress_shows_elapsed_time_and_a_steady_eta_from_an_injected_clock():
    from masuka_nb.progress import ProgressEvent

    now = [100.0]
    view = ProgressView(clock=lambda: now[0])
    view.start()
    now[0] = 103.0
    view(ProgressEvent("denoise", 1, 10, elapsed_s=1.0))
    assert view.status_text.startswith("denoise 1/10") and "3.0 s elapsed" in view.status_text
    view(ProgressEvent("denoise", 2, 10, elapsed_s=2.0))
    assert "ETA 8 s" in view.status_text  # 8 steps left at 1 s each
    view(ProgressEvent("denoise", 3, 10, elapsed_s=2.5))  # one quick step: the estimate moves a little
    assert "ETA 6 s" in view.status_text
    now[0] = 112.0
    view.finish("4 images")
    assert view.status_text == "4 images · 12 s"
    view.reset()
    assert view.layout.display == "none" and view.status_text == ""


def test_history_tiles_open_the_record_beside_them_with_delete_and_undo(masuka_home):
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
    tiles = {rec.kind: Image.open(__import__("io").BytesIO(cell.image.value))
             for rec, cell in zip(hist.records, hist.gallery.cells)}
    assert {t.size for t in tiles.values()} == {(320, 320)}  # square tiles of one size
    assert tiles["video"].getpixel((20, 160))[1] > 150 and max(tiles["video"].getpixel((132, 160))) < 60
    assert tiles["image"].getpixel((300, 26)) == (109, 74, 255)  # the count badge
    batch_rec = next(r for r in hist.records if r.kind == "image")
    assert "mk-has-run" not in hist.split_box._dom_classes  # nothing picked yet: tiles first everywhere
    hist.gallery.cells[hist.records.index(batch_rec)].hit.click()  # a click on the tile
    assert hist.selected is batch_rec and "mk-has-run" in hist.split_box._dom_classes
    assert hist.pane.kind == "image" and len(hist.detail_images.cells) == 2  # the others of the batch
    assert "3.5000000000000004" not in hist.detail.value and "3.5" in hist.detail.value
    assert hist.detail.value.index("status") < hist.detail.value.index("Details")  # key fields first
    assert history_stats(query()).images == 3  # a comparison is not counted as images
    hist.delete_button.click()
    assert not any(__import__("pathlib").Path(p).exists() for p in batch) and len(hist.records) == 2
    hist.notice.buttons["Undo"].click()
    assert all(__import__("pathlib").Path(p).exists() for p in batch) and len(hist.records) == 3


def test_dashboard_says_success_time_what_went_wrong_and_spend_in_readable_bars(masuka_home):
    record(HistoryRecord("image", "ok", model="tiny-flux", timings={"total": 2.0}, paths=[]))
    record(HistoryRecord("image", "ok", model="tiny-flux", timings={"total": 4.0}))
    record(HistoryRecord("image", "failed", model="flux1-dev", error={"code": "OUT_OF_MEMORY", "message": "x"}))
    record(HistoryRecord("video", "ok", model="veo3-pro", recipe={"provider": "cometapi"}, extra={"cost_usd": 3.2},
                         timings={"total": 30.0}))
    record(HistoryRecord("video", "failed", model="kling-v2.1", recipe={"provider": "kling"},
                         error={"code": "PROVIDER_REJECTED_CONTENT", "message": "policy"}, extra={"cost_usd": 0.0}))
    st = history_stats(query())
    assert st.success_rate == pytest.approx(3 / 5)
    assert st.seconds_by_model == {"tiny-flux": 3.0, "veo3-pro": 30.0}
    assert st.spend_by_provider == {"cometapi": 3.2} and sum(st.spend_by_day.values()) == pytest.approx(3.2)
    ui = mk.app(display=False)
    dash = ui.select("Dashboard")
    assert dash.last_error is None, dash.last_error
    # the share is said as a count of what: 3 of the 5 runs that ended finished without an error
    assert "<b>3 of 5</b><span>runs finished without an error</span>" in dash.stats_html.value
    assert "%" not in dash.stats_html.value
    record(HistoryRecord("image", "cancelled", model="tiny-flux"))
    dash.refresh()
    assert "<b>3 of 5</b><span>runs finished without an error</span>" in dash.stats_html.value
    assert "<b>6</b><span>runs, 1 stopped by you</span>" in dash.stats_html.value
    assert "ran out of memory" in dash.errors_html.value and "OUT_OF_MEMORY" not in dash.errors_html.value
    assert "prompt refused by the provider" in dash.errors_html.value
    assert "tiny-flux" in dash.time_html.value and "3.0 s" in dash.time_html.value
    assert "$3.20" in dash.spend_html.value and "cometapi" in dash.spend_html.value
    assert all("<img" not in w.value for w in (dash.time_html, dash.errors_html, dash.spend_html, dash.day_html))


def test_settings_take_keys_for_the_session_a_budget_a_home_and_a_theme(monkeypatch, masuka_home, tmp_path):
    secret = "fal-canary-3b1d9e77aa"
    monkeypatch.delenv("FAL_KEY", raising=False)
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    ui = mk.app(display=False)
    tab = ui.select("Settings")
    assert tab.last_error is None, tab.last_error
    assert "FAL_KEY</code><span class=\"mk-chip\">not set" in tab.keys_html.value
    tab.key_name.value = "FAL_KEY"
    tab.key_value.value = secret
    tab.key_button.click()
    assert tab.key_value.value == "" and __import__("os").environ["FAL_KEY"] == secret  # used, never kept shown
    keys = tab.keys_html.value
    assert secret not in keys + tab.runtime_html.value + tab.folders_html.value + tab.form_notice.html.value
    assert "FAL_KEY</code><span class=\"mk-chip mk-ok\">set" in keys
    from masuka_nb.secrets import redact

    assert secret not in redact(f"the key is {secret}")  # redacted from every message from now on
    tab.budget.value = 5
    tab.budget_button.click()
    assert mk.settings().budget_usd == 5.0 and "$5.00" in tab.form_notice.text
    new_home = tmp_path / "elsewhere"
    tab.home.value = str(new_home)
    tab.home_button.click()
    assert mk.settings().home == new_home and new_home.is_dir() and str(new_home) in tab.folders_html.value
    tab.theme.value = "dark"
    assert "mk-dark" in ui._dom_classes
    tab.theme.value = "light"
    assert "mk-light" in ui._dom_classes and "mk-dark" not in ui._dom_classes
    assert 'data-testid="mk-cache"' in tab.cache_html.value


def test_the_header_figures_are_measured_again(masuka_home, monkeypatch):
    import masuka_nb.runtime as runtime

    ui = mk.app(display=False)
    real = runtime.detect_quick()
    monkeypatch.setattr(runtime, "detect_quick", lambda: __import__("dataclasses").replace(real, disk_free_gb=3.0))
    ui.select("History")  # any tab switch measures disk and RAM again
    assert "disk 3 GiB free" in ui.header.value
    ui.select("Settings")
    assert "3 GiB" in ui.settings.runtime_html.value and "disk 3 GiB free" in ui.header.value


def test_lora_dataset_controls_are_locked_during_a_run(masuka_home):
    pytest.importorskip("masuka_nb.lora")
    ui = mk.app(display=False, background=False)
    lora = ui.lora
    assert lora.base.value == "tiny-flux"  # no GPU here: the base that can train on this runtime
    lora.name.value = "locks"
    lora.open_button.click()
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
    assert not lora.name.disabled and len(lora.dataset.items) == 1


def test_lora_out_of_range_training_values_are_refused_at_the_field(masuka_home):
    pytest.importorskip("masuka_nb.lora")
    ui = mk.app(display=False, background=False)
    lora = ui.lora
    lora.trigger.value = "mksubject"
    lora.rank.value = 999
    lora.train_button.disabled = False  # the field check comes first anyway
    lora.train_button.click()
    assert lora.last_error is not None and lora.last_error.code == "INVALID_REQUEST"
    assert lora.rank.value == 999 and INVALID_CLASS in lora.rank._dom_classes
    assert "Rank 999 is out of range" in lora.form_notice.text and "Use the default" in lora.form_notice.buttons


def test_a_comparison_sheet_tile_takes_the_tiles_ground_not_a_white_block(masuka_home):
    import io

    from masuka_nb.ui.gallery import GROUND, TILE, _thumbnail

    sheet = Image.new("RGB", (120, 60), (255, 255, 255))  # the engine's sheet: white, a label, a picture
    sheet.paste((0, 0, 0), (4, 24, 20, 30))
    sheet.paste((200, 30, 30), (40, 5, 110, 55))
    sheet.paste((255, 255, 255), (70, 25, 80, 35))  # white inside the picture is the picture's
    path = masuka_home / "outputs" / "comparison.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    for kind in ("comparison", "grid"):
        tile = Image.open(io.BytesIO(_thumbnail(HistoryRecord(kind, "ok", paths=[str(path)])))).convert("RGB")
        scale = TILE / 120
        top = (TILE - round(60 * scale)) // 2

        def at(x, y, tile=tile, scale=scale, top=top):
            return tile.getpixel((int(x * scale), top + int(y * scale)))

        assert at(2, 2) == GROUND and at(30, 50) == GROUND  # the sheet's white ground is the tile's
        assert at(50, 10) == (200, 30, 30) and at(75, 30) == (255, 255, 255)  # the pictures are untouched
