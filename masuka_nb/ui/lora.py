"""The LoRA tab: make a dataset (upload, Drive folder, zip path or URL), curate it, caption it, and
train a LoRA here or in the cloud, all through `masuka_nb.lora`.

Colab's FileUpload fails for files of 1 MB or more, so the small upload widget is only one of four
ways in: Colab's own uploader (`google.colab.files.upload()`), a folder (e.g. on Drive), and a zip
path or URL are the others.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.runtime import in_colab
from masuka_nb.ui.components import LABEL_STYLE, Gallery, Panel, ProgressView, card, field_row, section, wide
from masuka_nb.ui.helpers import Upload, engine_api, esc, fmt_duration, fmt_money, png_bytes, upload_items

__all__ = ["LoraPanel"]

CAPTIONERS = ("florence-2", "blip-2")
TRAIN_BASES = ("flux1-dev", "flux1-schnell", "tiny-flux")
CLOUD_PROVIDERS = ("fal", "replicate")


class LoraPanel(Panel):
    title = "LoRA"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataset: Any = None
        self.last_import: Any = None
        self.last_curation: Any = None
        self.run: Any = None
        self.cloud_job: Any = None
        # dataset
        self.name = widgets.Text(value="my-subject", description="Dataset", style=LABEL_STYLE, layout=wide("320px"))
        self.open_button = widgets.Button(description="Create / open", icon="folder-open",
                                          layout=widgets.Layout(width="auto"))
        self.dataset_info = widgets.HTML("")
        # import
        self.upload = widgets.FileUpload(accept="image/*,.zip", multiple=True, description="Small files")
        self.import_upload_button = widgets.Button(description="Import uploaded", icon="upload",
                                                   layout=widgets.Layout(width="auto"))
        self.colab_upload_button = widgets.Button(description="Upload large files (Colab)", icon="cloud-upload",
                                                  layout=widgets.Layout(width="auto",
                                                                        display="" if in_colab() else "none"))
        self.source = widgets.Text(placeholder="/content/drive/MyDrive/photos · photos.zip · https://…/set.zip",
                                   description="Folder / zip", style=LABEL_STYLE, layout=wide("72%"))
        self.import_path_button = widgets.Button(description="Import path", icon="download",
                                                 layout=widgets.Layout(width="auto"))
        # curate + caption
        self.reference = widgets.Text(placeholder="optional: a reference photo for identity checks",
                                      description="Reference", style=LABEL_STYLE, layout=wide("72%"))
        self.curate_button = widgets.Button(description="Curate", icon="filter", layout=widgets.Layout(width="auto"))
        self.captioner = widgets.Dropdown(options=CAPTIONERS, value="florence-2", description="Captioner",
                                          style=LABEL_STYLE, layout=wide("280px"))
        self.trigger = widgets.Text(value="", placeholder="e.g. mksubject", description="Trigger word",
                                    style=LABEL_STYLE, layout=wide("280px"))
        self.overwrite = widgets.Checkbox(value=False, description="Overwrite my captions", indent=False,
                                          layout=widgets.Layout(width="auto"))
        self.caption_button = widgets.Button(description="Caption", icon="comment",
                                             layout=widgets.Layout(width="auto"))
        self.report = widgets.HTML("")
        self.items_gallery = Gallery(columns=6, thumb=120, empty="No images in this dataset yet.")
        # train
        self.base = widgets.Dropdown(options=TRAIN_BASES, value="flux1-dev", description="Base model",
                                     style=LABEL_STYLE, layout=wide("280px"))
        self.steps = widgets.BoundedIntText(value=0, min=0, max=20000, description="Steps (0=auto)",
                                            style=LABEL_STYLE, layout=wide("220px"))
        self.rank = widgets.BoundedIntText(value=0, min=0, max=128, description="Rank (0=auto)",
                                           style=LABEL_STYLE, layout=wide("220px"))
        self.learning_rate = widgets.FloatText(value=0.0, description="LR (0=auto)", style=LABEL_STYLE,
                                               layout=wide("220px"))
        self.resolution = widgets.BoundedIntText(value=0, min=0, max=2048, step=64, description="Size (0=auto)",
                                                 style=LABEL_STYLE, layout=wide("220px"))
        self.train_button = widgets.Button(description="Train here", button_style="primary", icon="graduation-cap",
                                           layout=widgets.Layout(width="150px"))
        self.train_button.add_class("mk-primary")
        self.provider = widgets.Dropdown(options=CLOUD_PROVIDERS, value="fal", description="Cloud",
                                         style=LABEL_STYLE, layout=wide("220px"))
        self.cloud_button = widgets.Button(description="Train in the cloud", icon="cloud",
                                           layout=widgets.Layout(width="auto"))
        self.compare_lora = widgets.Text(placeholder="a LoRA path or library name (filled in after training)",
                                         description="LoRA", style=LABEL_STYLE, layout=wide("72%"))
        self.compare_prompt = widgets.Text(placeholder="e.g. a photo of mksubject in a sunlit garden",
                                           description="Prompt", style=LABEL_STYLE, layout=wide("72%"))
        self.compare_seeds = widgets.Text(value="1, 2", description="Seeds", style=LABEL_STYLE, layout=wide("220px"))
        self.compare_weights = widgets.Text(value="0.7, 1.0", description="Weights", style=LABEL_STYLE,
                                            layout=wide("220px"))
        self.compare_button = widgets.Button(description="Compare with base", icon="th",
                                             layout=widgets.Layout(width="auto"))
        self.comparison: Any = None
        self.compare_image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", display="none"))
        self.progress = ProgressView()
        self.train_info = widgets.HTML("")
        self.train_gallery = Gallery(columns=4, thumb=200, empty="")
        # wiring
        self.open_button.on_click(self._on_open_button_click)
        self.import_upload_button.on_click(self._on_import_upload_button_click)
        self.colab_upload_button.on_click(self._on_colab_upload_button_click)
        self.import_path_button.on_click(self._on_import_path_button_click)
        self.curate_button.on_click(self._on_curate_button_click)
        self.caption_button.on_click(self._on_caption_button_click)
        self.train_button.on_click(self._on_train_button_click)
        self.cloud_button.on_click(self._on_cloud_button_click)
        self.compare_button.on_click(self._on_compare_button_click)
        children = [
            card(section("1 · Dataset"), field_row(self.name, self.open_button), self.dataset_info),
            card(section("2 · Add photos"),
                 widgets.HTML('<div class="mk-muted">Files under 1 MB can use the upload button; for larger '
                              "files use Colab's uploader, a Drive folder, or a zip path/URL.</div>"),
                 field_row(self.upload, self.import_upload_button, self.colab_upload_button),
                 field_row(self.source, self.import_path_button)),
            card(section("3 · Curate & caption"), field_row(self.reference, self.curate_button),
                 field_row(self.captioner, self.trigger, self.overwrite, self.caption_button)),
            card(section("4 · Train"), field_row(self.base, self.steps, self.rank),
                 field_row(self.learning_rate, self.resolution),
                 field_row(self.train_button, self.provider, self.cloud_button, self.cancel_button)),
            card(section("5 · Compare"), self.compare_lora, self.compare_prompt,
                 field_row(self.compare_seeds, self.compare_weights, self.compare_button)),
            self.notice, self.progress, self.report, self.train_info, self.train_gallery, self.compare_image,
            section("Dataset images"), self.items_gallery,
        ]
        self.children = children
        self._busy_buttons = [self.open_button, self.import_upload_button, self.colab_upload_button,
                              self.import_path_button, self.curate_button, self.caption_button, self.train_button,
                              self.cloud_button, self.compare_button]

    # ---- handlers ---------------------------------------------------------------------------------
    def _on_open_button_click(self, _b: widgets.Button) -> None:
        self._run("dataset", self._open)

    def _on_import_upload_button_click(self, _b: widgets.Button) -> None:
        self._run("import", self._import_upload)

    def _on_colab_upload_button_click(self, _b: widgets.Button) -> None:
        self._run("import", self._import_colab_upload)

    def _on_import_path_button_click(self, _b: widgets.Button) -> None:
        self._run("import", self._import_path)

    def _on_curate_button_click(self, _b: widgets.Button) -> None:
        self._run("curation", self._curate)

    def _on_caption_button_click(self, _b: widgets.Button) -> None:
        self._run("captioning", self._caption)

    def _on_train_button_click(self, _b: widgets.Button) -> None:
        self._run("training", self._train)

    def _on_cloud_button_click(self, _b: widgets.Button) -> None:
        self._run("cloud training", self._train_cloud)

    def _on_compare_button_click(self, _b: widgets.Button) -> None:
        self._run("comparison", self._render_comparison)

    # ---- work ---------------------------------------------------------------------------------------
    def _open(self) -> Any:
        Dataset = engine_api("masuka_nb.lora", "Dataset")

        self.dataset = Dataset.create(self.name.value.strip())  # opens it when it exists
        self._show_dataset()
        self._say(f"Dataset {self.dataset.name!r} ready ({len(self.dataset.items)} images).")
        return self.dataset

    def _need_dataset(self) -> Any:
        if self.dataset is None or self.dataset.name != self.name.value.strip():
            return self._open()
        return self.dataset

    def _import_upload(self) -> None:
        uploads = upload_items(self.upload.value)
        if not uploads:
            self.notice.show("Choose files with the upload button first.", "warning")
            return
        self._import_uploads(uploads)
        _clear_upload(self.upload)

    def _import_colab_upload(self) -> None:
        from google.colab import files  # type: ignore[import-not-found]  (only offered in Colab)

        got = files.upload()
        self._import_uploads([Upload(name, bytes(data)) for name, data in (got or {}).items()])

    def _import_uploads(self, uploads: list[Upload]) -> None:
        ds = self._need_dataset()
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

    def _import_path(self) -> None:
        source = self.source.value.strip()
        if not source:
            self.notice.show("Type a folder, a zip file or a zip URL first.", "warning")
            return
        ds = self._need_dataset()
        if source.lower().startswith(("http://", "https://")) or source.lower().endswith(".zip"):
            report = ds.import_zip(source)
        elif Path(source).expanduser().is_dir():
            report = ds.import_folder(str(Path(source).expanduser()))
        else:
            report = ds.import_files([source])
        self._show_import([report])

    def _show_import(self, reports: list[Any]) -> None:
        self.last_import = reports
        imported = sum(len(r.imported) for r in reports)
        skipped = sum(len(r.duplicates) for r in reports)
        rejected = [x for r in reports for x in r.rejected]
        self.report.value = "".join(
            f'<div class="mk-notice mk-warning"><span class="mk-code">{esc(x.code)}</span> '
            f"{esc(Path(x.source).name)}: {esc(x.reason)}</div>" for x in rejected[:30])
        self._show_dataset()
        text = (f"Imported {imported}, skipped {skipped} duplicate{'s' if skipped != 1 else ''}, "
                f"rejected {len(rejected)}.")
        self._say(text, "ok" if imported or not rejected else "warning")

    def _curate(self) -> None:
        ds = self._need_dataset()
        self.progress.start("scoring images…")
        report = ds.curate(reference_image=self.reference.value.strip() or None, progress=self.progress,
                           cancel=self.cancel_token)
        self.last_curation = report
        self.progress.finish(f"curated in {fmt_duration(report.seconds)}")
        self.report.value = f'<pre class="mk-notice" data-testid="mk-curation">{esc(report.summary())}</pre>'
        self._show_dataset()
        self._say(f"{len(report.keep)} to keep, {len(report.drop)} to drop: untick or tick images below "
                  "to overrule.")

    def _caption(self) -> None:
        ds = self._need_dataset()
        self.progress.start(f"captioning with {self.captioner.value}…")
        report = ds.caption(model=self.captioner.value, trigger_word=self.trigger.value.strip() or None,
                            overwrite=bool(self.overwrite.value), progress=self.progress,
                            cancel=self.cancel_token)
        self.progress.finish(f"captions written in {fmt_duration(report.seconds)}")
        self._show_dataset()
        tiny = " (tiny offline captioner: the words are random)" if report.tiny else ""
        self._say(report.summary() + tiny, "warning" if report.tiny else "ok")

    def _train_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"trigger_word": self.trigger.value.strip()}
        for key, box in (("steps", self.steps), ("rank", self.rank), ("resolution", self.resolution)):
            if int(box.value) > 0:
                kwargs[key] = int(box.value)
        if float(self.learning_rate.value) > 0:
            kwargs["learning_rate"] = float(self.learning_rate.value)
        return kwargs

    def _train(self) -> None:
        train = engine_api("masuka_nb.lora", "train")
        ds = self._need_dataset()
        self.progress.start(f"preparing {self.base.value} training…")
        try:
            run = train(ds, base=self.base.value, **self._train_kwargs(), progress=self.progress,
                        cancel=self.cancel_token)
        except BaseException:
            self.progress.finish("stopped: the last checkpoint is kept; Train again resumes from it", ok=False)
            raise
        self.run = run
        loss = f", last loss {run.losses[-1]:.4f}" if run.losses else ""
        self.progress.finish(f"training {run.status} at step {run.step}{loss}")
        self.train_info.value = _lora_html(run.lora_path, run.kohya_path)
        pictures = []
        if run.loss_curve_path.is_file():
            pictures.append((run.loss_curve_path.read_bytes(), "loss curve"))
        pictures += [(_thumb_bytes(p), p.stem) for p in run.samples[-8:] if p.is_file()]
        self.train_gallery.set_items(pictures)
        self._after_training(run.lora_path)
        self._say(f"LoRA saved: {run.lora_path}")

    def _train_cloud(self) -> None:
        train_cloud = engine_api("masuka_nb.lora", "train_cloud")

        ds = self._need_dataset()
        kwargs = self._train_kwargs()
        kwargs.pop("resolution", None)
        self.progress.start(f"uploading the dataset to {self.provider.value}…")
        job = train_cloud(ds, provider=self.provider.value, progress=self.progress, **kwargs)
        self.cloud_job = job
        result = job.wait(progress=self.progress)
        self.progress.finish(f"cloud training finished ({fmt_money(result.cost)})")
        self.train_info.value = _lora_html(result.lora_path, None, notes=result.notes)
        self._after_training(result.lora_path)
        self._say(f"Cloud LoRA saved: {result.lora_path}")

    def _after_training(self, lora_path: Any) -> None:
        self.compare_lora.value = str(lora_path or "")
        trigger = self.trigger.value.strip()
        if not self.compare_prompt.value and trigger:
            self.compare_prompt.value = f"a photo of {trigger}"

    def _render_comparison(self) -> None:
        from masuka_nb.ui.helpers import parse_number_list

        lora = self.compare_lora.value.strip()
        prompt = self.compare_prompt.value.strip()
        seeds = [int(v) for v in parse_number_list(self.compare_seeds.value, argument="seeds", integer=True)]
        weights = parse_number_list(self.compare_weights.value, argument="weights")
        compare = engine_api("masuka_nb.lora", "compare")
        self.progress.start("rendering the comparison grid…")
        result = compare([lora] if lora else [], prompts=[prompt] if prompt else [], seeds=seeds, weights=weights,
                         progress=self.progress, cancel=self.cancel_token)
        self.comparison = result
        self.compare_image.value = png_bytes(result.grid)
        self.compare_image.layout.display = ""
        self.progress.finish(f"{len(result.cells)} images compared in {fmt_duration(result.seconds)}")
        self._say(f"Comparison saved: {result.path}" if result.path else "Comparison ready.")

    def _show_dataset(self) -> None:
        ds = self.dataset
        if ds is None:
            return
        self._show_counts()
        gallery, toggles = [], []
        for it in list(ds.items)[:60]:
            try:
                data = _thumb_bytes(ds.path_of(it))
            except OSError:
                continue
            gallery.append((data, f"{it.width}×{it.height} · {Path(it.source).name or it.file}"))
            toggles.append(self._keep_toggle(it))
        self.items_gallery.set_items(gallery, extra=toggles)

    def _keep_toggle(self, item: Any) -> widgets.VBox:
        """Per image: keep/drop and the caption, both saved to the dataset as soon as they change
        (a caption typed here is the user's: captioning never overwrites it unless asked)."""
        box = widgets.Checkbox(value=bool(item.keep), description="keep", indent=False,
                              layout=widgets.Layout(width="auto"))
        text = widgets.Textarea(value=item.caption, placeholder="caption", continuous_update=False,
                                layout=widgets.Layout(width="100%", height="52px"))

        def on_keep(change: dict[str, Any], stem: str = item.stem) -> None:
            self.dataset.set_keep(stem, bool(change["new"]))
            self._show_counts()

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
            f'<span class="mk-chip">{len(ds.items)} images</span><span class="mk-chip">{len(ds.kept)} kept</span>'
            f'<span class="mk-chip">{captioned} captioned</span><span class="mk-muted">{esc(ds.root)}</span>')


def _thumb_bytes(path: Path, side: int = 240) -> bytes:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return png_bytes(img.convert("RGB"), max_side=side)


def _lora_html(path: Any, kohya: Any = None, *, notes: list[str] | None = None) -> str:
    if not path:
        return ""
    extra = f'<div class="mk-muted">kohya/ComfyUI copy: {esc(kohya)}</div>' if kohya else ""
    extra += "".join(f'<div class="mk-muted">{esc(n)}</div>' for n in notes or [])
    return (f'<div class="mk-notice mk-ok" data-testid="mk-lora"><span class="mk-code">LORA</span> {esc(path)}'
            f"{extra}<div class=\"mk-muted\">Use it in the Image tab's LoRAs box by its path or library name."
            "</div></div>")


def _clear_upload(upload: widgets.FileUpload) -> None:
    """Forget uploaded bytes (they sit in kernel memory). 7.7.1: read-only dict built from
    `metadata`/`data`; 8.x: a settable tuple."""
    if isinstance(upload.value, dict):
        upload.metadata, upload.data = [], []
        upload.set_trait("value", {})
    else:
        upload.value = ()
