"""The LoRA tab as a guided flow: name a dataset, add photos, curate and caption, train, compare, use.

The steps sit in the form column; beside them (first on a narrow screen) the pane shows what the last
step changed: the dataset itself (every photo with its own name, the dropped ones dimmed with the reason
on the tile, a keep box and its caption), the training (live loss, then the samples, "Use in Image tab"),
or the comparison (drawn large, in the app's colours). Train says why it cannot start yet.

Everything goes through `masuka_nb.lora`: the dataset's own inbox folder (`Dataset.inbox`,
`import_inbox()`), imports, curation, captions, `train`, `train_cloud`, `compare`. Colab's FileUpload
fails from 1 MB, so the inbox (Colab's Files pane, or Drive), Colab's own uploader and a folder/zip path
are the other ways in.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.errors import InvalidRequestError
from masuka_nb.runtime import in_colab
from masuka_nb.ui.components import (
    LABEL_STYLE,
    Gallery,
    Notice,
    Panel,
    button,
    card,
    field_row,
    section,
    show,
    split,
    wide,
)
from masuka_nb.ui.helpers import Upload, engine_api, esc, fmt_bytes, fmt_money, upload_items
from masuka_nb.ui.results import FeedItem, FeedRun, ResultPane, mosaic_png, stage_png, thumb_png

__all__ = ["LoraPanel", "comparison_legend", "default_train_base"]

CAPTIONERS = ("florence-2", "blip-2")
TRAIN_BASES = ("flux1-dev", "flux1-schnell", "flux2-klein", "zimage-turbo", "tiny-flux", "tiny-flux2-klein", "tiny-zimage")
CLOUD_PROVIDERS = ("fal", "replicate")
VIEWS = (("Dataset", "dataset"), ("Training", "training"), ("Compare", "compare"))


def default_train_base(runtime: Any = None) -> str:
    """FLUX.1-dev where there is a CUDA GPU (the engine's default base); tiny-flux without one, where
    a real base cannot train at all."""
    return "flux1-dev" if runtime is None or runtime.has_gpu else "tiny-flux"


class LoraPanel(Panel):
    title = "LoRA"

    def __init__(self, *, runtime: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runtime = runtime
        self.losses: list[float] = []
        self.dataset: Any = None
        self.last_import: Any = None
        self.last_curation: Any = None
        self.run: Any = None
        self.cloud_job: Any = None
        self.comparison: Any = None
        self.use_lora: Any = None  # the app sets it: (path, trigger) → the Image tab's LoRAs
        # 1 · dataset
        self.name = widgets.Combobox(value="", placeholder="name it, e.g. my-cat", options=_dataset_names(),
                                     description="Dataset", style=LABEL_STYLE, ensure_option=False,
                                     layout=wide("320px"))
        self.open_button = button("Create / open", "folder-open", primary=True)
        self.dataset_info = widgets.HTML('<div class="mk-muted">Name a dataset (new or one you made before) '
                                         "to start.</div>")
        # 2 · add photos
        self.inbox_html = widgets.HTML("")
        self.scan_inbox_button = button("Check inbox", "inbox")
        self.import_inbox_button = button("Import inbox", "download")
        self.upload = widgets.FileUpload(accept="image/*,.zip", multiple=True, description="Small files")
        self.import_upload_button = button("Import uploaded", "upload")
        self.colab_upload_button = button("Upload large files", "cloud-upload")
        show(self.colab_upload_button, in_colab())
        self.source = widgets.Text(placeholder="/content/drive/MyDrive/photos · photos.zip · https://…/set.zip",
                                   description="Folder / zip", style=LABEL_STYLE, layout=wide("100%"))
        self.import_path_button = button("Import path", "download")
        # 3 · curate + caption
        self.reference = widgets.Text(placeholder="optional: a reference photo for identity checks",
                                      description="Reference", style=LABEL_STYLE, layout=wide("100%"))
        self.curate_button = button("Curate", "filter")
        self.captioner = widgets.Dropdown(options=CAPTIONERS, value="florence-2", description="Captioner",
                                          style=LABEL_STYLE, layout=wide("280px"))
        self.trigger = widgets.Text(value="", placeholder="e.g. mkcat", description="Trigger word",
                                    style=LABEL_STYLE, layout=wide("280px"))
        self.overwrite = widgets.Checkbox(value=False, description="Overwrite my captions", indent=False,
                                          layout=widgets.Layout(width="auto"))
        self.caption_button = button("Caption", "comment")
        # 4 · train
        self.base = widgets.Dropdown(options=TRAIN_BASES, value=default_train_base(runtime), description="Base model",
                                     style=LABEL_STYLE, layout=wide("280px"))
        self.advanced = widgets.ToggleButton(value=False, description="Advanced", icon="sliders",
                                             layout=widgets.Layout(width="auto"))
        self.steps = widgets.IntText(value=0, description="Steps", style=LABEL_STYLE, layout=wide("200px"))
        self.rank = widgets.IntText(value=0, description="Rank", style=LABEL_STYLE, layout=wide("200px"))
        self.learning_rate = widgets.FloatText(value=0.0, description="Learn rate", style=LABEL_STYLE,
                                               layout=wide("200px"))
        self.resolution = widgets.IntText(value=0, step=64, description="Size px", style=LABEL_STYLE,
                                          layout=wide("200px"))
        self.advanced_box = widgets.VBox([
            widgets.HTML('<div class="mk-muted">0 = the recommended value for this dataset and GPU.</div>'),
            field_row(self.steps, self.rank), field_row(self.learning_rate, self.resolution)])
        show(self.advanced_box, False)
        self.train_button = widgets.Button(description="Train here", button_style="primary", icon="graduation-cap",
                                           layout=widgets.Layout(width="auto"))
        self.train_button.add_class("mk-primary")
        self.train_why = widgets.HTML("")
        self.provider = widgets.Dropdown(options=CLOUD_PROVIDERS, value="fal", description="Cloud",
                                         style=LABEL_STYLE, layout=wide("200px"))
        self.cloud_button = button("Train in the cloud", "cloud")
        # 5 · compare
        self.compare_lora = widgets.Text(placeholder="a LoRA path or library name (filled in after training)",
                                         description="LoRA", style=LABEL_STYLE, layout=wide("100%"))
        self.compare_prompt = widgets.Text(placeholder="e.g. a photo of mkcat in a sunlit garden",
                                           description="Prompt", style=LABEL_STYLE, layout=wide("100%"))
        self.compare_seeds = widgets.Text(value="1, 2", description="Seeds", style=LABEL_STYLE, layout=wide("200px"))
        self.compare_weights = widgets.Text(value="0.7, 1.0", description="Weights", style=LABEL_STYLE,
                                            layout=wide("200px"))
        self.compare_button = button("Compare with base", "th")
        # the pane: what the last step changed
        self.pane = ResultPane(stop=self.stop_button, notice=self.notice, empty="", title="Result",
                               reveal_with=self.reveal)
        self.progress = self.pane.progress
        self.feed = self.pane.feed
        self.feed.after_pick = lambda: self._reveal()  # LoRA's outputs live in the pane's views
        self.view = widgets.ToggleButtons(options=VIEWS, value="dataset")
        self.view.add_class("mk-toggle")
        self.report = widgets.HTML("")
        self.items_gallery = Gallery(columns=6, thumb=132, empty="No photos in this dataset yet: add some (step 2).")
        self.dataset_view = widgets.VBox([self.report, self.items_gallery])
        self.train_info = widgets.HTML("")
        self.loss_html = widgets.HTML("")
        self.train_gallery = Gallery(columns=4, thumb=160, empty="")
        self.use_button = button("Use in Image tab", "magic", primary=True)
        show(self.use_button, False)
        self.training_view = widgets.VBox([self.train_info, self.loss_html, self.train_gallery])
        self.compare_grid = widgets.GridBox([])
        self.compare_grid.add_class("mk-compare")
        self.compare_legend = widgets.HTML("")
        self.compare_view = widgets.VBox([self.compare_legend, self.compare_grid])
        from masuka_nb.ui.results import anchored

        self._anchors = {}
        boxes = []
        for key, content in (("dataset", self.dataset_view), ("training", self.training_view),
                             ("compare", self.compare_view)):
            box, target = anchored(content)
            self._anchors[key] = (box, target)
            boxes.append(box)
        self.dataset_view, self.training_view, self.compare_view = boxes
        self.pane.extra.children = [self.view, *boxes]
        self.pane.placeholder.value = ""
        self.fields = {"trigger_word": self.trigger, "steps": self.steps, "rank": self.rank,
                       "learning_rate": self.learning_rate, "resolution": self.resolution, "seeds": self.compare_seeds,
                       "weights": self.compare_weights, "prompts": self.compare_prompt, "name": self.name,
                       "source": self.source, "reference": self.reference, "reference_image": self.reference}
        self.labels = {"trigger_word": "Trigger word", "steps": "Steps", "rank": "Rank", "learning_rate": "Learn rate",
                       "resolution": "Size", "seeds": "Seeds", "weights": "Weights", "prompts": "The prompt",
                       "name": "The dataset name", "source": "Folder / zip", "dataset": "The dataset"}
        self.defaults = {"steps": 0, "rank": 0, "learning_rate": 0.0, "resolution": 0, "seeds": "1, 2",
                         "weights": "0.7, 1.0"}
        self._inbox: list[Any] = []
        # wiring
        self.open_button.on_click(lambda _b: self._run("dataset", self._open_work, check=self._name_check))
        self.import_upload_button.on_click(lambda _b: self._run("import", self._import_upload,
                                                                check=self._uploads_check))
        self.colab_upload_button.on_click(lambda _b: self._run("import", self._import_colab_upload,
                                                               check=self._need_dataset))
        self.import_path_button.on_click(lambda _b: self._run("import", self._import_path, check=self._path_check))
        self.scan_inbox_button.on_click(lambda _b: self._run("inbox", self._scan_work, check=self._need_dataset))
        self.import_inbox_button.on_click(lambda _b: self._run("import", self._import_inbox, check=self._need_dataset))
        self.curate_button.on_click(lambda _b: self._run("curation", self._curate, check=self._need_dataset))
        self.caption_button.on_click(lambda _b: self._run("captioning", self._caption, check=self._need_dataset))
        self.train_button.on_click(lambda _b: self._run("training", self._train, check=self._train_check))
        self.cloud_button.on_click(lambda _b: self._run("cloud training", self._train_cloud, check=self._cloud_check))
        self.compare_button.on_click(lambda _b: self._run("comparison", self._render_comparison,
                                                          check=self._compare_check))
        self.use_button.on_click(self._on_use_button_click)
        self.advanced.observe(lambda ch: show(self.advanced_box, bool(ch["new"])), names="value")
        self.view.observe(lambda ch: self._show_view(ch["new"]), names="value")
        for box in (self.trigger, self.base):
            box.observe(lambda _ch: self._after_run(), names="value")
        self.form_notice = Notice()
        self.steps_box = widgets.VBox([
            card(section("2 · Add photos", "many or large files: use the inbox"),
                 self.inbox_html, field_row(self.scan_inbox_button, self.import_inbox_button),
                 field_row(self.upload, self.import_upload_button, self.colab_upload_button),
                 field_row(self.source, self.import_path_button)),
            card(section("3 · Curate & caption"), field_row(self.reference, self.curate_button),
                 field_row(self.captioner, self.trigger), field_row(self.overwrite, self.caption_button)),
            card(section("4 · Train"), field_row(self.base, self.advanced), self.advanced_box,
                 field_row(self.train_button, self.train_why), field_row(self.provider, self.cloud_button)),
        ])
        show(self.steps_box, False)
        form = widgets.VBox([
            card(section("1 · Dataset"), field_row(self.name, self.open_button), self.dataset_info,
                 self.form_notice),
            self.steps_box,
            card(section("5 · Compare", "a LoRA against the base model"), self.compare_lora, self.compare_prompt,
                 field_row(self.compare_seeds, self.compare_weights, self.compare_button)),
        ], layout=widgets.Layout(width="100%"))
        self.split_box = split(form, self.pane)
        self.children = [self.split_box]
        self._busy_buttons = []
        self._locked_inputs: list[widgets.Widget] = [self.name, self.upload, self.source, self.reference,
                                                     self.captioner, self.trigger, self.overwrite, self.base,
                                                     self.steps, self.rank, self.learning_rate, self.resolution,
                                                     self.open_button, self.import_upload_button,
                                                     self.colab_upload_button, self.import_path_button,
                                                     self.curate_button, self.caption_button, self.scan_inbox_button,
                                                     self.import_inbox_button]
        self._show_view("dataset")
        self._after_run()

    # ---- views of the pane --------------------------------------------------------------------------
    def _show_view(self, which: str) -> None:
        if self.view.value != which:
            self.view.value = which
            return
        show(self.dataset_view, which == "dataset")
        show(self.training_view, which == "training")
        show(self.compare_view, which == "compare")

    def _reveal(self) -> None:
        """Bring what the last step changed into view (the view shown in the pane; at the end of a run)."""
        self.reveal(self._anchors[self.view.value][1])

    # ---- checks at the click (form errors show at once) ------------------------------------------------
    def _name_check(self) -> str:
        name = self.name.value.strip()
        if not name:
            raise InvalidRequestError("Name the dataset first: a new name makes a new one.", argument="name",
                                      value="", hint="Letters, digits, '-' and '_', e.g. my-cat.")
        return name

    def _need_dataset(self) -> Any:
        name = self.name.value.strip()
        if self.dataset is None or (name and self.dataset.name != name):
            raise InvalidRequestError("Open a dataset first (step 1): photos go into the dataset shown there.",
                                      argument="name", value=name)
        return self.dataset

    def _uploads_check(self) -> list[Upload]:
        self._need_dataset()
        uploads = upload_items(self.upload.value)
        if not uploads:
            raise InvalidRequestError("Choose files with the Small files button first.", argument="upload",
                                      value=0)
        return uploads

    def _path_check(self) -> str:
        self._need_dataset()
        source = self.source.value.strip()
        if not source:
            raise InvalidRequestError("Type a folder, a zip file or a zip URL first.", argument="source", value="")
        return source

    def _train_kwargs(self) -> dict[str, Any]:
        trigger = self.trigger.value.strip()
        if not trigger:
            raise InvalidRequestError("Type a trigger word first (step 3): the word that calls your LoRA in a "
                                      "prompt.", argument="trigger_word", value="", hint="e.g. mkcat")
        kwargs: dict[str, Any] = {"trigger_word": trigger}
        for key, box, high in (("steps", self.steps, 20000), ("rank", self.rank, 128),
                               ("resolution", self.resolution, 2048)):
            value = int(box.value)
            if not 0 <= value <= high:
                raise InvalidRequestError(f"`{key}` {value} is out of range: 0 (recommended) to {high}.",
                                          argument=key, value=value, hint="Type 0 for the recommended value.")
            if value > 0:
                kwargs[key] = value
        lr = float(self.learning_rate.value)
        if not 0 <= lr <= 0.1:
            raise InvalidRequestError(f"Learn rate {lr:g} is out of range: 0 (recommended) to 0.1.",
                                      argument="learning_rate", value=lr, hint="Type 0, or e.g. 0.0004.")
        if lr > 0:
            kwargs["learning_rate"] = lr
        return kwargs

    def _train_check(self) -> dict[str, Any]:
        why = self.train_blocker()
        kwargs = self._train_kwargs()
        if why:
            raise InvalidRequestError(why, argument="dataset", value=0)
        return kwargs

    def _cloud_check(self) -> dict[str, Any]:
        kwargs = self._train_check()
        kwargs.pop("resolution", None)
        return kwargs

    def _compare_check(self) -> dict[str, Any]:
        from masuka_nb.ui.helpers import parse_number_list

        prompt = self.compare_prompt.value.strip()
        if not prompt:
            raise InvalidRequestError("Type a prompt to compare with.", argument="prompts", value="",
                                      hint="Use the trigger word, e.g. a photo of mkcat in a garden.")
        return {"lora": self.compare_lora.value.strip(), "prompt": prompt,
                "seeds": [int(v) for v in parse_number_list(self.compare_seeds.value, argument="seeds", integer=True)],
                "weights": parse_number_list(self.compare_weights.value, argument="weights")}

    def train_blocker(self) -> str:
        """Why Train cannot start yet, in words (empty when it can)."""
        if self.dataset is None:
            return "Open a dataset first (step 1)."
        if not self.dataset.items:
            return "Add photos first (step 2)."
        if not self.dataset.kept:
            return "Keep at least one photo (tick Keep under it)."
        if not self.trigger.value.strip():
            return "Type a trigger word (step 3)."
        return ""

    # ---- state ----------------------------------------------------------------------------------------
    def _set_locked(self, locked: bool) -> None:
        for box in self._locked_inputs:
            box.disabled = locked
        for cell in self.items_gallery.cells:  # keep/caption under each photo
            for child in cell.children[-1:]:
                for w in getattr(child, "children", ()):
                    w.disabled = locked
        if locked:
            self.train_button.disabled = self.cloud_button.disabled = True

    def _after_run(self) -> None:
        """Train says why it cannot start; Import inbox needs ready files."""
        if self.busy:
            return
        why = self.train_blocker()
        for b in (self.train_button, self.cloud_button):
            b.disabled = bool(why)
            b.tooltip = why
        self.train_why.value = f'<span class="mk-why" data-testid="mk-train-why">{esc(why)}</span>' if why else ""
        self.import_inbox_button.disabled = not any(f.ready for f in self._inbox)

    # ---- dataset --------------------------------------------------------------------------------------
    def _open_work(self, name: str) -> Any:
        return self._open(name)

    def _open(self, name: str | None = None) -> Any:
        Dataset = engine_api("masuka_nb.lora", "Dataset")
        min_side_for = engine_api("masuka_nb.lora.dataset", "min_side_for")
        name = name or self.name.value.strip()
        self.dataset = Dataset.create(name, min_side=min_side_for(self.base.value))  # opens it when it exists
        self.name.options = _dataset_names()
        show(self.steps_box)
        self._scan_inbox()
        self._show_dataset()
        self._show_view("dataset")
        self._reveal()
        self._say(f"Dataset “{self.dataset.name}” is open: {len(self.dataset.items)} photos.")
        return self.dataset

    def _scan_work(self, _ds: Any) -> None:
        self._scan_inbox()
        ready = sum(1 for f in self._inbox if f.ready)
        self.notice.show(f"{ready} file{'s' if ready != 1 else ''} ready in the inbox." if self._inbox else
                         "The inbox is empty.", "info")

    def _scan_inbox(self) -> None:
        """List the inbox (ready or skipped, with why); nothing is imported yet."""
        ds = self.dataset
        ds.inbox.mkdir(parents=True, exist_ok=True)
        self._inbox = ds.inbox_files()
        rows = "".join(
            f'<li><span class="mk-chip {"mk-ok" if f.ready else "mk-warn"}">{"ready" if f.ready else "skipped"}</span>'
            f"{esc(f.path.name)} <span class=\"mk-muted\">{esc(fmt_bytes(f.size) if f.ready else f.why)}</span></li>"
            for f in self._inbox[:50])
        where = (f'<div class="mk-muted">Put photos or zips in <code>{esc(ds.inbox)}</code> (Colab: the Files pane '
                 "on the left, or the same folder on Drive), then import them.</div>")
        self.inbox_html.value = where + (f'<ul class="mk-list" data-testid="mk-inbox">{rows}</ul>' if rows else "")
        self._after_run()

    def _import_inbox(self, ds: Any) -> None:
        self.started()
        self.progress.start("importing the inbox…")
        report = ds.import_inbox()
        self._show_import([report])
        self._scan_inbox()

    def _import_upload(self, uploads: list[Upload]) -> None:
        self._import_uploads(uploads)
        _clear_upload(self.upload)

    def _import_colab_upload(self, _ds: Any) -> None:
        from google.colab import files  # type: ignore[import-not-found]  (only offered in Colab)

        got = files.upload()
        self._import_uploads([Upload(name, bytes(data)) for name, data in (got or {}).items()])

    def _import_uploads(self, uploads: list[Upload]) -> None:
        ds = self._need_dataset()
        self.started()
        self.progress.start(f"importing {len(uploads)} file{'s' if len(uploads) != 1 else ''}…")
        reports = []
        images = [(u.name, u.content) for u in uploads if not u.name.lower().endswith(".zip")]
        if images:
            reports.append(ds.import_files(images))
        for up in uploads:
            if up.name.lower().endswith(".zip"):  # the zip reader wants a file: stage it, then forget it
                with tempfile.TemporaryDirectory(prefix="masuka-upload-") as tmp:
                    staged = Path(tmp) / "upload.zip"
                    staged.write_bytes(up.content)
                    reports.append(ds.import_zip(str(staged)))
        self._show_import(reports)

    def _import_path(self, source: str) -> None:
        ds = self._need_dataset()
        self.started()
        self.progress.start("importing…")
        if source.lower().startswith(("http://", "https://")) or source.lower().endswith(".zip"):
            report = ds.import_zip(source)
        elif Path(source).expanduser().is_dir():
            report = ds.import_folder(str(Path(source).expanduser()))
        else:
            report = ds.import_files([source])
        self._show_import([report])

    def _show_import(self, reports: list[Any]) -> None:
        """One line for the whole import, the reasons grouped ("2 too small (64 px; 256 needed)"); each
        file's own reason in the details."""
        self.last_import = reports
        imported = sum(len(r.imported) for r in reports)
        skipped = sum(len(r.duplicates) for r in reports)
        rejected = [x for r in reports for x in r.rejected]
        why = Counter(_short_reason(x.reason) for x in rejected)
        parts = [f"Added {imported} photo{'s' if imported != 1 else ''}"]
        if skipped:
            parts.append(f"{skipped} already in the dataset")
        if rejected:
            parts.append(f"{len(rejected)} not added (" + "; ".join(f"{n} {r}" for r, n in why.most_common()) + ")")
        text = ", ".join(parts) + "."
        listing = "".join(f"<li>{esc(Path(x.source).name)}: {esc(x.reason)}</li>" for x in rejected[:100])
        self.report.value = (f'<details class="mk-details"><summary>Which files were not added</summary>'
                             f'<ul class="mk-list">{listing}</ul></details>' if listing else "")
        self.progress.finish(f"{imported} added", ok=True)
        self._show_dataset()
        self._show_view("dataset")
        self._reveal()
        self._say(text, "ok" if imported or not rejected else "warning")

    def _curate(self, ds: Any) -> None:
        self.started()
        self.progress.start("scoring photos…")
        self._show_view("dataset")
        self.pane.reveal_status()
        report = ds.curate(reference_image=self.reference.value.strip() or None, progress=self.progress,
                           cancel=self.cancel_token)
        self.last_curation = report
        self.progress.finish("curated")
        self.report.value = "".join(f'<div class="mk-muted">• {esc(_named(a, ds))}</div>' for a in report.advice)
        self._show_dataset()
        self._reveal()
        self._say(f"Curated: {len(report.keep)} to keep, {len(report.drop)} dropped (dimmed, with the reason on "
                  "each). Tick Keep to overrule.")

    def _caption(self, ds: Any) -> None:
        self.started()
        self.progress.start(f"captioning with {self.captioner.value}…")
        self._show_view("dataset")
        self.pane.reveal_status()
        report = ds.caption(model=self.captioner.value, trigger_word=self.trigger.value.strip() or None,
                            overwrite=bool(self.overwrite.value), progress=self.progress,
                            cancel=self.cancel_token)
        self.progress.finish("captions written")
        self.report.value = ""
        self._show_dataset()
        self._reveal()
        tiny = " The tiny offline captioner writes random words." if report.tiny else ""
        self._say(f"Captions written for {len(ds.items)} photos.{tiny}", "warning" if report.tiny else "ok")

    def _show_dataset(self) -> None:
        ds = self.dataset
        if ds is None:
            return
        self._show_counts()
        gallery, toggles, dimmed = [], [], []
        for it in list(ds.items)[:60]:
            try:
                data = _thumb_bytes(ds.path_of(it))
            except OSError:
                continue
            gallery.append((data, f"{_source_name(it)} · {it.width}×{it.height}"))
            toggles.append(self._keep_toggle(it))
            reasons = (it.scores or {}).get("reasons") or []
            dimmed.append("" if it.keep else (_named("; ".join(reasons), ds) if reasons else "dropped by you"))
        self.items_gallery.set_items(gallery, extra=toggles, dimmed=dimmed)

    def _keep_toggle(self, item: Any) -> widgets.VBox:
        """Per photo: keep/drop and the caption, both saved to the dataset as soon as they change (a caption
        typed here is the user's: captioning never overwrites it unless asked)."""
        box = widgets.Checkbox(value=bool(item.keep), description="Keep", indent=False,
                               layout=widgets.Layout(width="auto"))
        text = widgets.Textarea(value=item.caption, placeholder="caption", continuous_update=False,
                                layout=widgets.Layout(width="100%", height="48px"))

        def on_keep(change: dict[str, Any], stem: str = item.stem) -> None:
            self.dataset.set_keep(stem, bool(change["new"]))
            self._show_dataset()

        def on_caption(change: dict[str, Any], stem: str = item.stem) -> None:
            self.dataset.set_caption(stem, change["new"])
            self._show_counts()

        box.observe(on_keep, names="value")
        text.observe(on_caption, names="value")
        return widgets.VBox([box, text])

    def _show_counts(self) -> None:
        ds = self.dataset
        captioned = sum(1 for it in ds.items if it.caption)
        self.dataset_info.value = (
            f'<span class="mk-chip" data-testid="mk-dataset">{esc(ds.name)}</span>'
            f'<span class="mk-chip">{len(ds.items)} photos</span><span class="mk-chip">{len(ds.kept)} kept</span>'
            f'<span class="mk-chip">{captioned} captioned</span>')
        self._after_run()

    # ---- training ---------------------------------------------------------------------------------------
    def _train_progress(self, event: Any) -> None:
        """The progress bar, plus the loss curve redrawn as it grows."""
        self.progress(event)
        loss = (event.data or {}).get("loss")
        if isinstance(loss, (int, float)):
            self.losses.append(float(loss))
            if len(self.losses) in (2, 5) or len(self.losses) % 10 == 0 or event.step >= event.total:
                self._draw_loss(self.losses)

    def _draw_loss(self, losses: list[float]) -> None:
        from masuka_nb.ui.charts import svg_line

        chart = svg_line(losses, smooth=10 if len(losses) > 30 else 0)
        self.loss_html.value = f'<div class="mk-chart-box">{chart}</div>' if chart else ""

    def clear_training(self) -> None:
        """What belonged to the previous training goes before a new one starts."""
        self.train_info.value = ""
        self.loss_html.value = ""
        self.train_gallery.set_items([])
        show(self.use_button, False)
        self.losses = []

    def _train(self, kwargs: dict[str, Any]) -> None:
        train = engine_api("masuka_nb.lora", "train")
        ds = self.dataset
        self.clear_training()
        self.started()
        self._show_view("training")
        self.progress.start(f"preparing {self.base.value} training…")
        self.pane.reveal_status()
        run = train(ds, base=self.base.value, **kwargs, progress=self._train_progress, cancel=self.cancel_token)
        self.run = run
        loss = f", last loss {run.losses[-1]:.4f}" if run.losses else ""
        self.progress.finish(f"trained to step {run.step}{loss}")
        self._draw_loss(list(run.losses) or self.losses)
        pictures = [(_thumb_bytes(p, side=320), p.stem.replace("-", " ")) for p in run.samples[-8:] if p.is_file()]
        self.train_gallery.set_items(pictures)
        self._after_training(run.lora_path, kohya=run.kohya_path)
        self._reveal()
        self._say(f"Your LoRA is ready: {_lora_name(run.lora_path)}.")

    def _train_cloud(self, kwargs: dict[str, Any]) -> None:
        train_cloud = engine_api("masuka_nb.lora", "train_cloud")
        ds = self.dataset
        self.clear_training()
        self.started()
        self._show_view("training")
        self.progress.start(f"uploading the dataset to {self.provider.value}…")
        self.pane.reveal_status()
        job = train_cloud(ds, provider=self.provider.value, progress=self.progress, **kwargs)
        self.cloud_job = job
        result = job.wait(progress=self.progress, cancel=self.cancel_token)
        self.progress.finish(f"cloud training finished ({fmt_money(result.cost)})")
        self._after_training(result.lora_path, notes=result.notes)
        self._say(f"Your cloud LoRA is ready: {_lora_name(result.lora_path)}.")

    def _after_training(self, lora_path: Any, *, kohya: Any = None, notes: list[str] | None = None) -> None:
        self.compare_lora.value = str(lora_path or "")
        trigger = self.trigger.value.strip()
        if not self.compare_prompt.value and trigger:
            self.compare_prompt.value = f"a photo of {trigger}"
        self.train_info.value = _lora_html(lora_path, kohya, notes=notes)
        show(self.use_button, bool(lora_path) and self.use_lora is not None)
        self.pane.set_actions([self.use_button])  # under whatever view is shown: the next step

    def _on_use_button_click(self, _b: widgets.Button) -> None:
        path = self.compare_lora.value.strip()
        if path and self.use_lora is not None:
            self.use_lora(path, self.trigger.value.strip())

    # ---- compare ---------------------------------------------------------------------------------------
    def _render_comparison(self, args: dict[str, Any]) -> None:
        compare = engine_api("masuka_nb.lora", "compare")
        self.started()
        self._show_view("compare")
        self.progress.start("drawing the comparison…")
        self.pane.reveal_status()
        result = compare([args["lora"]] if args["lora"] else [], prompts=[args["prompt"]], seeds=args["seeds"],
                         weights=args["weights"], progress=self.progress, cancel=self.cancel_token)
        self.comparison = result
        self._draw_comparison(result)
        self._reveal()
        self.progress.finish(f"{len(result.cells)} images compared")
        import time as _time

        item = FeedItem(mosaic_png([c.image for c in result.cells]), "comparison", pick=lambda: self._show_view("compare"),
                        key=str(result.path or id(result)))
        self.feed.add(FeedRun(f"{_time.strftime('%H:%M')} · comparison · {len(result.cells)} images", [item]))
        self._say("Comparison ready" + (f": saved as {Path(str(result.path)).name}." if result.path else "."))

    def _draw_comparison(self, result: Any) -> None:
        """The cells large (tiny ones enlarged pixel for pixel), rows and columns labelled in the app's own
        colours: a grid of widgets, not a white picture."""
        rows: list[str] = []
        cols: list[str] = []
        for cell in result.cells:
            row = "base model" if not cell.lora else f"LoRA × {cell.weight:g}"
            col = f"seed {cell.seed}"
            if row not in rows:
                rows.append(row)
            if col not in cols:
                cols.append(col)
        children: list[widgets.Widget] = [widgets.HTML("")]
        children += [widgets.HTML(f'<div class="mk-compare-head">{esc(c)}</div>') for c in cols]
        for r in rows:
            children.append(widgets.HTML(f'<div class="mk-compare-row">{esc(r)}</div>'))
            for c in cols:
                cell = next((x for x in result.cells if ("base model" if not x.lora else
                             f"LoRA × {x.weight:g}") == r and f"seed {x.seed}" == c), None)
                img = widgets.Image(value=stage_png(cell.image, side=256) if cell is not None else b"", format="png",
                                    layout=widgets.Layout(width="100%", height="auto"))
                img.add_class("mk-compare-img")
                children.append(img)
        self.compare_grid.layout.grid_template_columns = f"minmax(70px, auto) repeat({len(cols)}, minmax(0, 1fr))"
        # as large as the pane allows, never taller than the window: the grid narrows as rows are added
        self.compare_grid.layout.max_width = f"min(100%, calc(46vh * {len(cols)} / {max(1, len(rows))} + 90px))"
        self.compare_grid.children = children
        self.compare_legend.value = comparison_legend(result)

    # ---- outcomes -----------------------------------------------------------------------------------
    def _on_stopped(self, run: Any) -> None:
        self.progress.finish("stopped", ok=False)

    def _stopped_words(self, run: Any, info: Any) -> str:
        if run.label == "training":
            return "The last checkpoint is kept: Train here again with the same settings continues from it."
        return super()._stopped_words(run, info)

    def _on_failed(self, info: Any) -> None:
        if self.progress.layout.display != "none" and self.progress.bar.bar_style != "success":
            self.progress.finish("did not finish", ok=False)

    def _check_failed(self, what: str, exc: BaseException) -> None:
        keep, self.notice = self.notice, self.form_notice
        try:
            self._fail(what, exc)
        finally:
            self.notice = keep


def _dataset_names() -> list[str]:
    from masuka_nb.config import settings

    root = settings().datasets_dir
    try:
        return sorted(p.name for p in root.iterdir() if (p / "dataset.json").is_file())
    except OSError:
        return []


def _source_name(item: Any) -> str:
    """The name a person gave the photo (its file name when imported), not the content hash it is stored as."""
    name = Path(str(item.source)).name if item.source else ""
    return name or Path(item.file).name


def _named(text: str, ds: Any) -> str:
    """Replace stored file names ("images/3fa9….png") in engine text by the photos' own names."""
    for it in ds.items:
        if it.file in text:
            text = text.replace(it.file, _source_name(it))
    return text


def _short_reason(reason: str) -> str:
    """Group rejections: "too small (64×64, needs 256 px)" → "too small"."""
    text = reason.split(":")[0].split("(")[0].strip().rstrip(".")
    return text[:60] or "unreadable"


def comparison_legend(result: Any) -> str:
    """Rows and columns of a comparison grid in words: which LoRA at which weight, which prompt and seed."""
    rows: list[str] = []
    cols: list[str] = []
    for cell in result.cells:
        row = "base model" if not cell.lora else f"{_lora_name(cell.lora)} at weight {cell.weight:g}"
        col = f"“{cell.prompt}” · seed {cell.seed}"
        if row not in rows:
            rows.append(row)
        if col not in cols:
            cols.append(col)
    r = "".join(f"<li>row {i + 1}: {esc(x)}</li>" for i, x in enumerate(rows))
    c = "".join(f"<li>column {i + 1}: {esc(x)}</li>" for i, x in enumerate(cols))
    return f'<div class="mk-legend" data-testid="mk-compare-legend"><ul>{r}</ul><ul>{c}</ul></div>'


def _thumb_bytes(path: Path, side: int = 240) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return thumb_png(img.convert("RGB"), side)


def _lora_html(path: Any, kohya: Any = None, *, notes: list[str] | None = None) -> str:
    if not path:
        return ""
    extra = f'<div class="mk-muted">A copy for ComfyUI / kohya tools: {esc(Path(str(kohya)).name)}</div>' if kohya else ""
    extra += "".join(f'<div class="mk-muted">{esc(n)}</div>' for n in notes or [])
    return (f'<div class="mk-notice mk-ok" data-testid="mk-lora"><b>{esc(_lora_name(path))}</b>'
            f'<div class="mk-muted">{esc(path)}</div>{extra}</div>')


def _lora_name(path: Any) -> str:
    """The name a person knows a LoRA by: its run folder ("demo-mkdemo-457445"), not the library's generic
    "pytorch_lora_weights.safetensors"."""
    p = Path(str(path))
    return p.parent.name if p.stem == "pytorch_lora_weights" else p.name


def _clear_upload(upload: widgets.FileUpload) -> None:
    """Forget uploaded bytes (they sit in kernel memory). 7.7.1: read-only dict built from
    `metadata`/`data`; 8.x: a settable tuple."""
    if isinstance(upload.value, dict):
        upload.metadata, upload.data = [], []
        upload.set_trait("value", {})
    else:
        upload.value = ()
