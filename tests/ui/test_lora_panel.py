"""The LoRA tab against the real LoRA studio: uploads from either ipywidgets version, folder/zip
imports, curation with keep overrides, tiny offline captioning, and training on tiny-flux."""

from __future__ import annotations

import io
import zipfile

from PIL import Image

import masuka_nb as mk
from masuka_nb.ui.components import fill_upload


def _png(color, size=(320, 288)) -> bytes:
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 16):  # some texture so blur/hash scores are not degenerate
        for y in range(0, size[1], 16):
            img.putpixel((x, y), (255 - color[0], 255 - color[1], (x * y) % 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _panel(name="cat"):
    ui = mk.app(display=False)
    panel = ui.lora
    panel.name.value = name
    return ui, panel


def test_upload_import_rejects_and_dedupes_with_reasons(tmp_path):
    _ui, panel = _panel()
    fill_upload(panel.upload, [("a.png", _png((200, 40, 40))), ("b.png", _png((40, 200, 40))),
                               ("notes.jpg", b"this is text, not a jpeg")])
    panel.import_upload_button.click()
    assert panel.last_error is None, panel.last_error
    assert len(panel.dataset.items) == 2 and "Imported 2" in panel.notice.text and "rejected 1" in panel.notice.text
    assert "notes.jpg" in panel.report.value and 'class="mk-code"' in panel.report.value
    assert len(panel.items_gallery.cells) == 2 and "2 images" in panel.dataset_info.value
    assert mk.lora.Dataset.load("cat").items[0].sha256  # on disk, in the contract layout
    # uploaded bytes are dropped from the widget once imported
    assert not panel.upload.value
    # the same photo again (from a zip this time) is skipped as a duplicate
    zpath = tmp_path / "more.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("again.png", _png((200, 40, 40)))
        zf.writestr("new.png", _png((40, 40, 200)))
    panel.source.value = str(zpath)
    panel.import_path_button.click()
    assert "Imported 1, skipped 1 duplicate" in panel.notice.text
    assert len(panel.dataset.items) == 3


def test_folder_import_curate_keep_override_and_caption(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, color in enumerate([(220, 30, 30), (30, 220, 30), (30, 30, 220)]):
        (folder / f"p{i}.png").write_bytes(_png(color, size=(512, 512)))
    _ui, panel = _panel("dog")
    panel.source.value = str(folder)
    panel.import_path_button.click()
    assert panel.last_error is None, panel.last_error
    assert len(panel.dataset.items) == 3
    panel.curate_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.last_curation is not None and "to keep" in panel.report.value
    # the user overrules one verdict with its checkbox: saved in dataset.json at once
    toggle, caption_box = panel.items_gallery.cells[0].children[2].children
    first = panel.dataset.items[0]
    toggle.value = not first.keep
    assert mk.lora.Dataset.load("dog").items[0].keep == toggle.value
    panel.trigger.value = "mkdog"
    panel.caption_button.click()
    assert panel.last_error is None, panel.last_error
    items = mk.lora.Dataset.load("dog").items
    assert all(it.caption.startswith("mkdog") for it in items)
    caption_box = panel.items_gallery.cells[0].children[2].children[1]
    assert caption_box.value.startswith("mkdog")
    # a caption typed by the user is saved at once and survives re-captioning
    caption_box.value = "mkdog, my own words"
    assert mk.lora.Dataset.load("dog").items[0].caption == "mkdog, my own words"
    panel.caption_button.click()
    assert mk.lora.Dataset.load("dog").items[0].caption == "mkdog, my own words"


def test_train_on_tiny_flux_shows_the_lora_and_loss(tmp_path):
    _ui, panel = _panel("tiny-set")
    fill_upload(panel.upload, [(f"{i}.png", _png(c)) for i, c in enumerate([(200, 60, 60), (60, 200, 60)])])
    panel.import_upload_button.click()
    panel.trigger.value = "mktok"
    panel.base.value = "tiny-flux"
    panel.steps.value = 2
    panel.rank.value = 4
    panel.resolution.value = 64
    panel.train_button.click()
    assert panel.last_error is None, panel.last_error
    run = panel.run
    assert run.lora_path is not None and run.lora_path.is_file()
    assert str(run.lora_path) in panel.train_info.value and 'data-testid="mk-lora"' in panel.train_info.value
    assert any(e.stage for e in panel.progress.events) and panel.progress.bar.value == 1000
    # the new LoRA is ready to compare against the base model
    assert panel.compare_lora.value == str(run.lora_path) and "mktok" in panel.compare_prompt.value
    panel.compare_seeds.value = "1"
    panel.compare_weights.value = "1.0"
    panel.compare_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.comparison.cells and panel.compare_image.value[:4] == b"\x89PNG"
    # the grid at its native size (never stretched), its rows and columns named in words
    assert panel.compare_image.layout.width == f"{panel.comparison.grid.size[0]}px"
    assert "row 1: base model" in panel.compare_legend.value and "seed 1" in panel.compare_legend.value
    # the loss curve is drawn for the size it is shown at
    assert panel.loss_image.layout.display == "" and panel.loss_image.layout.width == "480px"
    assert Image.open(io.BytesIO(panel.loss_image.value)).size == (960, 440)
    # training again clears what belonged to the last run (its comparison above all)
    panel.train_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.compare_image.layout.display == "none" and panel.compare_legend.value == ""
    assert str(run.lora_path) in panel.train_info.value
    panel.compare_seeds.value = "one"
    panel.compare_button.click()
    assert panel.last_error.code == "INVALID_REQUEST" and panel.last_error.hint


def test_training_without_a_trigger_word_or_dataset_images_says_why():
    _ui, panel = _panel("empty-set")
    panel.base.value = "tiny-flux"
    panel.train_button.click()
    assert panel.last_error is not None and panel.last_error.code != "UNEXPECTED", panel.last_error
    assert panel.last_error.hint
