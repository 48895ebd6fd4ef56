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


def _panel(name="cat", base=None):
    ui = mk.app(display=False, background=False)  # runs in the click: each step done when it returns
    panel = ui.lora
    if base:
        panel.base.value = base
    assert panel.steps_box.layout.display == "none"  # nothing to add photos to yet: the steps wait
    panel.name.value = name
    panel.open_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.steps_box.layout.display == "" and panel.dataset.name == name
    return ui, panel


def test_a_dataset_must_be_named_first():
    ui = mk.app(display=False, background=False)  # runs in the click: each step done when it returns
    panel = ui.lora
    assert panel.name.value == ""  # photos never go silently into a default dataset
    panel.open_button.click()
    assert panel.last_error is not None and "Name the dataset" in panel.form_notice.text
    assert "mk-invalid" in panel.name._dom_classes and panel.dataset is None
    assert "Open a dataset first" in panel.train_why.value and panel.train_button.disabled


def test_upload_import_groups_rejections_and_dedupes(tmp_path):
    _ui, panel = _panel()
    fill_upload(panel.upload, [("a.png", _png((200, 40, 40))), ("b.png", _png((40, 200, 40))),
                               ("notes.jpg", b"this is text, not a jpeg"), ("tiny.png", _png((9, 9, 9), (16, 16)))])
    panel.import_upload_button.click()
    assert panel.last_error is None, panel.last_error
    assert len(panel.dataset.items) == 2 and "Added 2 photos" in panel.notice.text
    assert "2 not added" in panel.notice.text  # one line for the import, not one banner per file
    assert "notes.jpg" in panel.report.value and "tiny.png" in panel.report.value  # each file's reason, in details
    assert "<details" in panel.report.value
    assert len(panel.items_gallery.cells) == 2 and "2 photos" in panel.dataset_info.value
    assert "a.png" in panel.items_gallery.cells[0].caption.value  # the photo's own name, not its hash
    assert mk.lora.Dataset.load("cat").items[0].sha256  # on disk, in the contract layout
    assert not panel.upload.value  # uploaded bytes are dropped from the widget once imported
    zpath = tmp_path / "more.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("again.png", _png((200, 40, 40)))
        zf.writestr("new.png", _png((40, 40, 200)))
    panel.source.value = str(zpath)
    panel.import_path_button.click()
    assert "Added 1 photo, 1 already in the dataset" in panel.notice.text
    assert len(panel.dataset.items) == 3


def test_the_inbox_is_the_datasets_own_folder_and_imports_the_apps_own_small_images(masuka_home):
    from masuka_nb.config import settings

    _ui, panel = _panel("mine", base="tiny-flux")
    inbox = panel.dataset.inbox
    assert inbox == settings().inbox_dir / "mine" and inbox.is_dir() and str(inbox) in panel.inbox_html.value
    (inbox / "one.png").write_bytes(_png((200, 40, 40), (64, 64)))  # the size the tiny model makes
    (inbox / "two.png").write_bytes(_png((40, 200, 40), (64, 64)))
    (inbox / "readme.txt").write_text("not a photo")
    panel.scan_inbox_button.click()
    assert "2 files ready" in panel.notice.text and not panel.import_inbox_button.disabled
    assert "readme.txt" in panel.inbox_html.value and "not an image" in panel.inbox_html.value
    panel.import_inbox_button.click()
    assert panel.last_error is None, panel.last_error
    assert len(panel.dataset.items) == 2 and "Added 2 photos" in panel.notice.text
    assert not (inbox / "one.png").exists() and (inbox / ".done" / "one.png").exists()  # not imported twice
    assert panel.import_inbox_button.disabled


def test_folder_import_curate_dims_drops_with_their_reason_and_caption(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, color in enumerate([(220, 30, 30), (30, 220, 30), (30, 30, 220)]):
        (folder / f"p{i}.png").write_bytes(_png(color, size=(512, 512)))
    (folder / "p0-copy.png").write_bytes(_png((221, 30, 30), size=(512, 512)))  # a near duplicate
    _ui, panel = _panel("dog")
    panel.source.value = str(folder)
    panel.import_path_button.click()
    assert panel.last_error is None, panel.last_error
    assert len(panel.dataset.items) == 4
    panel.curate_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.last_curation is not None and "Curated:" in panel.notice.text
    dropped = [c for c in panel.items_gallery.cells if "mk-dimmed" in c.frame._dom_classes]
    if panel.last_curation.drop:  # each dropped photo is dimmed, its reason on the tile in its own names
        assert dropped and all("images/" not in c.frame.children[-1].value for c in dropped)
    toggle, caption_box = panel.items_gallery.cells[0].children[2].children
    first = panel.dataset.items[0]
    toggle.value = not first.keep  # the user overrules a verdict: saved at once, the tile follows
    assert mk.lora.Dataset.load("dog").items[0].keep == toggle.value
    panel.trigger.value = "mkdog"
    panel.caption_button.click()
    assert panel.last_error is None, panel.last_error
    assert "Captions written" in panel.notice.text and panel.report.value == ""  # no stale curation report
    items = mk.lora.Dataset.load("dog").items
    assert all(it.caption.startswith("mkdog") for it in items)
    caption_box = panel.items_gallery.cells[0].children[2].children[1]
    caption_box.value = "mkdog, my own words"
    assert mk.lora.Dataset.load("dog").items[0].caption == "mkdog, my own words"
    panel.caption_button.click()
    assert mk.lora.Dataset.load("dog").items[0].caption == "mkdog, my own words"


def test_train_on_tiny_flux_then_use_it_and_compare(tmp_path):
    ui, panel = _panel("tiny-set", base="tiny-flux")
    fill_upload(panel.upload, [(f"{i}.png", _png(c)) for i, c in enumerate([(200, 60, 60), (60, 200, 60)])])
    panel.import_upload_button.click()
    assert "Type a trigger word" in panel.train_why.value and panel.train_button.disabled  # says why
    panel.trigger.value = "mktok"
    assert panel.train_why.value == "" and not panel.train_button.disabled
    panel.steps.value = 2
    panel.rank.value = 4
    panel.resolution.value = 64
    panel.train_button.click()
    assert panel.last_error is None, panel.last_error
    run = panel.run
    assert run.lora_path is not None and run.lora_path.is_file()
    assert run.lora_path.parent.name in panel.train_info.value and panel.view.value == "training"
    assert panel.progress.bar.value == 1000 and "<svg" in panel.loss_html.value  # the loss, in the app's colours
    assert panel.use_button.layout.display == ""
    panel.use_button.click()  # "Use in Image tab"
    assert ui.tabs.selected_index == 0 and str(run.lora_path) in ui.image.loras.value
    assert "mktok" in ui.image.prompt.value and ui.image.model.value == "tiny-flux"
    assert panel.compare_lora.value == str(run.lora_path) and "mktok" in panel.compare_prompt.value
    panel.compare_seeds.value = "1"
    panel.compare_weights.value = "1.0"
    panel.compare_button.click()
    assert panel.last_error is None, panel.last_error
    assert panel.comparison.cells and panel.view.value == "compare"
    images = [c for c in panel.compare_grid.children if hasattr(c, "format")]
    assert len(images) == len(panel.comparison.cells) and images[0].value[:4] == b"\x89PNG"
    from io import BytesIO

    assert Image.open(BytesIO(images[0].value)).width >= 256  # drawn large, not at 64 px
    assert "row 1: base model" in panel.compare_legend.value and "seed 1" in panel.compare_legend.value
    panel.compare_seeds.value = "one"
    panel.compare_button.click()
    assert panel.last_error.code == "INVALID_REQUEST" and "one" in panel.form_notice.text


def test_training_without_kept_photos_says_why():
    _ui, panel = _panel("empty-set", base="tiny-flux")
    panel.trigger.value = "mk"
    assert "Add photos first" in panel.train_why.value
    panel.train_button.click()
    assert panel.last_error is not None and panel.last_error.code != "UNEXPECTED", panel.last_error
