"""The LoRA tab: make a dataset (upload, an inbox folder, Drive folder, zip path or URL), curate it,
caption it, and train a LoRA here or in the cloud, all through `masuka_nb.lora`.

Colab's FileUpload fails for files of 1 MB or more, so the small upload widget is only one of five
ways in: the dataset's *inbox* folder (drop files there with Colab's file pane or on Drive, check
the per-file list with previews, then import), Colab's own uploader (`google.colab.files.upload()`),
a folder, and a zip path or URL are the others.

While training, the live column shows the loss curve (drawn at the size shown) and, after, the
samples; the dataset controls are locked; Train needs at least one kept image. Each new run clears
what the previous one showed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from masuka_nb.runtime import in_colab
from masuka_nb.ui.components import (
    LABEL_STYLE,
    Gallery,
    Panel,
    ProgressView,
    card,
    chart_image,
    field_row,
    section,
    split,
    wide,
)
from masuka_nb.ui.helpers import Upload, engine_api, esc, fmt_duration, fmt_money, png_bytes, upload_items

__all__ = ["LoraPanel", "default_train_base", "inbox_status"]

CAPTIONERS = ("florence-2", "blip-2")
TRAIN_BASES = ("flux1-dev", "flux1-schnell", "flux2-klein", "zimage-turbo", "tiny-flux", "tiny-flux2-klein", "tiny-zimage")
CLOUD_PROVIDERS = ("fal", "replicate")
INBOX_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".gif",
                  ".psd", ".zip")


def default_train_base(runtime: Any = None) -> str:
    """FLUX.1-dev where there is a CUDA GPU (the engine's default base); tiny-flux without one, where
    a real base cannot train at all."""
    return "flux1-dev" if runtime is None or runtime.has_gpu else "tiny-flux"


def inbox_status(folder: Path) -> list[tuple[Path, str, str]]:
    """Each file in an inbox folder: (path, "ready" | "skipped", why) — previews come from the ready ones."""
    out: list[tuple[Path, str, str]] = []
    if not folder.is_dir():
        return out
    from masuka_nb.ui.helpers import fmt_bytes

    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        if path.suffix.lower() not in INBOX_SUFFIXES:
            out.append((path, "skipped", f"not an image or zip ({path.suffix or 'no extension'})"))
        elif size == 0:
            out.append((path, "skipped", "empty file (still copying?)"))
        else:
            out.append((path, "ready", fmt_bytes(size)))
    return out


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
        self.base = widgets.Dropdown(options=TRAIN_BASES, value=default_train_base(runtime), description="Base model",
                                     style=LABEL_STYLE, layout=wide("280px"))
        self.steps = widgets.IntText(value=0, description="Steps (0=auto)", style=LABEL_STYLE, layout=wide("220px"))
        self.rank = widgets.IntText(value=0, description="Rank (0=auto)", style=LABEL_STYLE, layout=wide("220px"))
        self.learning_rate = widgets.FloatText(value=0.0, description="LR (0=auto)", style=LABEL_STYLE,
                                               layout=wide("220px"))
        self.resolution = widgets.IntText(value=0, step=64, description="Size (0=auto)", style=LABEL_STYLE,
                                          layout=wide("220px"))
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
        self.compare_image = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.compare_image.add_class("mk-native")
        self.compare_legend = widgets.HTML("")
        self.progress = ProgressView()
        self.train_info = widgets.HTML("")
        self.loss_image = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.train_gallery = Gallery(columns=4, thumb=160, empty="")
        self.inbox_html = widgets.HTML("")
        self.inbox_gallery = Gallery(columns=6, thumb=96, empty="")
        self.scan_inbox_button = widgets.Button(description="Check inbox", icon="inbox",
                                                layout=widgets.Layout(width="auto"))
        self.import_inbox_button = widgets.Button(description="Import inbox", icon="download",
                                                  layout=widgets.Layout(width="auto"), disabled=True)
        self.fields = {"trigger_word": self.trigger, "steps": self.steps, "rank": self.rank,
                       "learning_rate": self.learning_rate, "resolution": self.resolution, "seeds": self.compare_seeds,
                       "weights": self.compare_weights, "prompts": self.compare_prompt, "name": self.name}
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
        self.scan_inbox_button.on_click(self._on_scan_inbox_button_click)
        self.import_inbox_button.on_click(self._on_import_inbox_button_click)
        form = widgets.VBox([
            card(section("1 · Dataset"), field_row(self.name, self.open_button), self.dataset_info),
            card(section("2 · Add photos"),
                 widgets.HTML('<div class="mk-muted"><b>Many or large files:</b> put them in this dataset\'s '
                              "inbox folder (Colab: the Files pane on the left, or the same path on Drive), "
                              "then check and import. Files under 1 MB can use the upload button.</div>"),
                 self.inbox_html, field_row(self.scan_inbox_button, self.import_inbox_button), self.inbox_gallery,
                 field_row(self.upload, self.import_upload_button, self.colab_upload_button),
                 field_row(self.source, self.import_path_button)),
            card(section("3 · Curate & caption"), field_row(self.reference, self.curate_button),
                 field_row(self.captioner, self.trigger, self.overwrite, self.caption_button)),
            card(section("4 · Train"), field_row(self.base, self.steps, self.rank),
                 field_row(self.learning_rate, self.resolution),
                 field_row(self.train_button, self.provider, self.cloud_button, self.cancel_button), self.stop_hint),
            card(section("5 · Compare"), self.compare_lora, self.compare_prompt,
                 field_row(self.compare_seeds, self.compare_weights, self.compare_button)),
            card(section("Dataset images"), self.items_gallery),
        ], layout=widgets.Layout(width="100%"))
        live = card(section("Result"), self.notice, self.progress, self.report, self.train_info, self.loss_image,
                    self.train_gallery, self.compare_image, self.compare_legend)
        live.add_class("mk-live")
        self.split_box = split(form, live)
        self.children = [self.split_box]
        self._busy_buttons = [self.open_button, self.import_upload_button, self.colab_upload_button,
                              self.import_path_button, self.curate_button, self.caption_button, self.train_button,
                              self.cloud_button, self.compare_button, self.scan_inbox_button,
                              self.import_inbox_button]
        self._locked_inputs: list[widgets.Widget] = [self.name, self.upload, self.source, self.reference,
                                                     self.captioner, self.trigger, self.overwrite, self.base,
                                                     self.steps, self.rank, self.learning_rate, self.resolution]
        self._after_run()

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

    def _on_scan_inbox_button_click(self, _b: widgets.Button) -> None:
        self._run("inbox", self.scan_inbox)

    def _on_import_inbox_button_click(self, _b: widgets.Button) -> None:
        self._run("import", self._import_inbox)

    # ---- state ----------------------------------------------------------------------------------------
    def _set_locked(self, locked: bool) -> None:
        for box in self._locked_inputs:
            box.disabled = locked
        for box in self.items_gallery.cells:  # keep/caption toggles under each image
            for child in box.children[-1:]:
                for w in getattr(child, "children", ()):
                    w.disabled = locked

    def _after_run(self) -> None:
        """Train needs kept images; Import inbox needs ready files."""
        if self.busy:
            return
        kept = len(self.dataset.kept) if self.dataset is not None else 0
        for b in (self.train_button, self.cloud_button):
            b.disabled = kept == 0
            b.tooltip = "" if kept else "Keep at least one image in the dataset first"
        self.import_inbox_button.disabled = not any(st == "ready" for _, st, _ in self._inbox)

    def clear_training(self) -> None:
        """What belonged to the previous training or comparison goes before a new one starts."""
        self.train_info.value = ""
        self.loss_image.layout.display = "none"
        self.loss_image.value = b""
        self.train_gallery.set_items([])
        self.compare_image.layout.display = "none"
        self.compare_image.value = b""
        self.compare_legend.value = ""
        self.report.value = ""
        self.losses = []
        self.progress.reset()

    @property
    def inbox(self) -> Path:
        from masuka_nb.config import settings

        return settings().inbox_dir / (self.name.value.strip() or "dataset")

    _inbox: list[tuple[Path, str, str]] = []

    def scan_inbox(self) -> None:
        """List the inbox with a status per file and previews of the images; nothing is imported yet."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        self._inbox = inbox_status(self.inbox)
        rows = "".join(
            f'<tr><td>{esc(p.name)}</td><td><span class="mk-chip {"mk-ok" if st == "ready" else "mk-warn"}">'
            f"{esc(st)}</span></td><td>{esc(why)}</td></tr>" for p, st, why in self._inbox[:200])
        where = f'<div class="mk-muted">Inbox: <code>{esc(self.inbox)}</code></div>'
        self.inbox_html.value = where + (f'<table class="mk-kv" data-testid="mk-inbox">{rows}</table>' if rows else
                                         '<div class="mk-empty">The inbox is empty.</div>')
        previews = []
        for p, st, _ in self._inbox[:24]:
            if st == "ready" and p.suffix.lower() != ".zip":
                try:
                    previews.append((_thumb_bytes(p, side=192), p.name))
                except OSError:
                    continue
        self.inbox_gallery.set_items(previews)

    def _import_inbox(self) -> None:
        ds = self._need_dataset()
        ready = [p for p, st, _ in self._inbox if st == "ready"]
        reports = [ds.import_files([str(p) for p in ready if p.suffix.lower() != ".zip"])]
        reports += [ds.import_zip(str(p)) for p in ready if p.suffix.lower() == ".zip"]
        self._show_import(reports)
        self.scan_inbox()

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
        self.progress.finish(f"curated in {fmt_duration(report.elapsed_s)}")
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
        self.progress.finish(f"captions written in {fmt_duration(report.elapsed_s)}")
        self._show_dataset()
        tiny = " (tiny offline captioner: the words are random)" if report.tiny else ""
        self._say(report.summary() + tiny, "warning" if report.tiny else "ok")

    def _train_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"trigger_word": self.trigger.value.strip()}
        for key, box, high in (("steps", self.steps, 20000), ("rank", self.rank, 128),
                               ("resolution", self.resolution, 2048)):
            value = int(box.value)
            if not 0 <= value <= high:
                from masuka_nb.errors import InvalidRequestError

                raise InvalidRequestError(f"`{key}` = {value} is outside 0 … {high}.", argument=key, value=value,
                                          hint=f"Type 0 (recommended value) or a number up to {high}.")
            if value > 0:
                kwargs[key] = value
        lr = float(self.learning_rate.value)
        if not 0 <= lr <= 0.1:
            from masuka_nb.errors import InvalidRequestError

            raise InvalidRequestError(f"`learning_rate` = {lr:g} is outside 0 … 0.1.", argument="learning_rate",
                                      value=lr, hint="Type 0 for the recommended rate, or e.g. 0.0004.")
        if lr > 0:
            kwargs["learning_rate"] = lr
        return kwargs

    def _train_progress(self, event: Any) -> None:
        """The ProgressView, plus the loss curve redrawn as it grows and the samples as they are
        written (checked every few steps)."""
        self.progress(event)
        loss = (event.data or {}).get("loss")
        if isinstance(loss, (int, float)):
            self.losses.append(float(loss))
            if len(self.losses) in (2, 5) or len(self.losses) % 10 == 0 or event.step >= event.total:
                self._draw_loss(self.losses)
                self._show_new_samples()

    _train_started: float = 0.0

    def _show_new_samples(self) -> None:
        """Sample images the trainer wrote since this run started (under home/training/*/samples)."""
        from masuka_nb.config import settings

        root = settings().training_dir
        try:
            fresh = sorted((p for p in root.glob("*/samples/*.png") if p.stat().st_mtime >= self._train_started),
                           key=lambda p: p.stat().st_mtime)
        except OSError:
            return
        shown = [cap for _, cap in self.train_gallery.items]
        if fresh and [p.stem.replace("-", " ") for p in fresh[-8:]] != shown:
            self.train_gallery.set_items([(_thumb_bytes(p, side=320), p.stem.replace("-", " ")) for p in fresh[-8:]])

    def _draw_loss(self, losses: list[float]) -> None:
        if len(losses) < 2:
            return
        from masuka_nb.ui.charts import line_chart

        chart = line_chart(losses, title="training loss", xlabel="step", width=480, height=220,
                           smooth=10 if len(losses) > 30 else 0)
        chart_image(chart, self.loss_image)

    def _train(self) -> None:
        kwargs = self._train_kwargs()  # field errors first: no reason to load torch for a typo
        train = engine_api("masuka_nb.lora", "train")
        ds = self._need_dataset()
        if not ds.kept:
            raise _no_kept()
        self.clear_training()
        self.started()
        import time

        self._train_started = time.time() - 1  # file times have coarse resolution on some mounts
        self.progress.start(f"preparing {self.base.value} training…")
        try:
            run = train(ds, base=self.base.value, **kwargs, progress=self._train_progress,
                        cancel=self.cancel_token)
        except BaseException:
            self.progress.finish("stopped: the last checkpoint is kept; Train again resumes from it", ok=False)
            raise
        self.run = run
        loss = f", last loss {run.losses[-1]:.4f}" if run.losses else ""
        self.progress.finish(f"training {run.status} at step {run.step}{loss}")
        self.train_info.value = _lora_html(run.lora_path, run.kohya_path)
        self._draw_loss(list(run.losses) or self.losses)
        pictures = [(_thumb_bytes(p, side=320), p.stem.replace("-", " ")) for p in run.samples[-8:] if p.is_file()]
        self.train_gallery.set_items(pictures)
        self._after_training(run.lora_path)
        self._say(f"LoRA saved: {run.lora_path}")

    def _train_cloud(self) -> None:
        train_cloud = engine_api("masuka_nb.lora", "train_cloud")

        ds = self._need_dataset()
        if not ds.kept:
            raise _no_kept()
        kwargs = self._train_kwargs()
        kwargs.pop("resolution", None)
        self.clear_training()
        self.started()
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
        self.compare_image.layout.display = "none"
        self.compare_image.value = b""
        self.compare_legend.value = ""
        self.started()
        self.progress.start("rendering the comparison grid…")
        result = compare([lora] if lora else [], prompts=[prompt] if prompt else [], seeds=seeds, weights=weights,
                         progress=self.progress, cancel=self.cancel_token)
        self.comparison = result
        self.compare_image.value = png_bytes(result.grid)
        self.compare_image.layout.width = f"{result.grid.size[0]}px"  # native size: never stretched
        self.compare_image.layout.display = ""
        self.compare_legend.value = comparison_legend(result)
        self.progress.finish(f"{len(result.cells)} images compared in {fmt_duration(result.elapsed_s)}")
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
        self._after_run()


def _no_kept() -> Exception:
    from masuka_nb.errors import InvalidRequestError

    return InvalidRequestError("The dataset has no kept images to train on.", argument="dataset", value=0,
                               hint="Add photos (step 2) and keep at least one (tick keep under it).")


def comparison_legend(result: Any) -> str:
    """Rows and columns of a comparison grid in words: which LoRA at which weight, which prompt and seed."""
    rows: list[str] = []
    cols: list[str] = []
    for cell in result.cells:
        row = "base model" if not cell.lora else f"{cell.lora} at weight {cell.weight:g}"
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
