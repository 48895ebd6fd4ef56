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
from masuka_nb.storage import safe_name
from masuka_nb.ui.components import LABEL_STYLE, Gallery, Panel, ProgressView, card, field_row, section, wide
from masuka_nb.ui.helpers import Upload, esc, fmt_duration, upload_items

__all__ = ["LoraPanel"]

CAPTIONERS = ("florence-2", "blip-2")
TRAIN_BASES = ("flux1-dev", "flux1-schnell", "tiny-flux")
CLOUD_PROVIDERS = ("fal", "replicate")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


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
        self.overwrite = widgets.Checkbox(value=False, description="Overwrite my captions", indent=False)
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
        self.progress = ProgressView()
        self.train_info = widgets.HTML("")
        # wiring
        self.open_button.on_click(self._on_open_button_click)
        self.import_upload_button.on_click(self._on_import_upload_button_click)
        self.colab_upload_button.on_click(self._on_colab_upload_button_click)
        self.import_path_button.on_click(self._on_import_path_button_click)
        self.curate_button.on_click(self._on_curate_button_click)
        self.caption_button.on_click(self._on_caption_button_click)
        self.train_button.on_click(self._on_train_button_click)
        self.cloud_button.on_click(self._on_cloud_button_click)
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
            self.notice, self.progress, self.report, self.train_info, section("Dataset images"), self.items_gallery,
        ]
        self.children = children
        self._busy_buttons = [self.open_button, self.import_upload_button, self.colab_upload_button,
                              self.import_path_button, self.curate_button, self.caption_button, self.train_button,
                              self.cloud_button]

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

    # ---- work ---------------------------------------------------------------------------------------
    def _open(self) -> Any:
        from masuka_nb.config import settings
        from masuka_nb.lora import Dataset

        name = self.name.value.strip()
        folder = settings().datasets_dir / name
        self.dataset = Dataset.load(name) if (folder / "dataset.json").is_file() else Dataset.create(name)
        self._show_dataset()
        self._say(f"Dataset {name!r} ready ({len(self.dataset.items)} images).")
        return self.dataset

    def _need_dataset(self) -> Any:
        return self.dataset if self.dataset is not None else self._open()

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
        with tempfile.TemporaryDirectory(prefix="masuka-upload-") as tmp:
            paths = []
            for i, up in enumerate(uploads):
                # names come from the browser: keep only a safe basename, and keep duplicates apart
                stem, dot, ext = Path(up.name).name.rpartition(".")
                target = Path(tmp) / f"{i:03d}-{safe_name(stem or ext)}{dot}{safe_name(ext) if dot else ''}"
                target.write_bytes(up.content)
                paths.append(target)
            zips = [p for p in paths if p.suffix.lower() == ".zip"]
            reports = [ds.import_zip(str(z)) for z in zips]
            images = [p for p in paths if p not in zips]
            if images:
                reports.append(ds.import_files([str(p) for p in images]))
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
        self.last_import = reports[-1] if reports else None
        imported = sum(_count(_get(r, "imported")) for r in reports)
        skipped = sum(_count(_get(r, "skipped", _get(r, "duplicates"))) for r in reports)
        rejected = [x for r in reports for x in (_get(r, "rejected") or [])]
        lines = [f"Imported {imported}, skipped {skipped} duplicate{'s' if skipped != 1 else ''}, "
                 f"rejected {len(rejected)}."]
        self.report.value = "".join(
            f'<div class="mk-notice mk-warning"><span class="mk-code">REJECTED</span> {esc(_rejection(x))}</div>'
            for x in rejected[:20])
        self._show_dataset()
        self._say(lines[0], "ok" if imported or not rejected else "warning")

    def _curate(self) -> None:
        ds = self._need_dataset()
        ref = self.reference.value.strip() or None
        report = ds.curate(reference_image=ref)
        self.last_curation = report
        text = _get(report, "summary") or str(report)
        self.report.value = f'<pre class="mk-notice" style="white-space: pre-wrap">{esc(text)}</pre>'
        self._show_dataset()
        self._say("Curation finished: review the suggestions below.")

    def _caption(self) -> None:
        ds = self._need_dataset()
        self.progress.start(f"captioning with {self.captioner.value}…")
        ds.caption(model=self.captioner.value, trigger_word=self.trigger.value.strip() or None,
                   overwrite=bool(self.overwrite.value))
        self.progress.finish("captions written")
        self._show_dataset()
        self._say(f"Captioned {len(ds.items)} images.")

    def _train_kwargs(self) -> dict[str, Any]:
        trigger = self.trigger.value.strip()
        kwargs: dict[str, Any] = {"trigger_word": trigger}
        for key, box in (("steps", self.steps), ("rank", self.rank), ("resolution", self.resolution)):
            if int(box.value) > 0:
                kwargs[key] = int(box.value)
        if float(self.learning_rate.value) > 0:
            kwargs["learning_rate"] = float(self.learning_rate.value)
        return kwargs

    def _train(self) -> None:
        from masuka_nb.lora import train

        ds = self._need_dataset()
        self.progress.start(f"preparing {self.base.value} training…")
        try:
            run = train(ds, base=self.base.value, **self._train_kwargs(), progress=self.progress,
                        cancel=self.cancel_token)
        except BaseException:
            self.progress.finish("stopped: the last checkpoint is kept, training resumes from it", ok=False)
            raise
        self.run = run
        took = (_get(run, "timings") or {}).get("total_s")
        self.progress.finish("training finished" + (f" in {fmt_duration(took)}" if took else ""))
        self.train_info.value = _lora_html(_get(run, "lora_path"))
        self._say(f"LoRA saved: {_get(run, 'lora_path')}")

    def _train_cloud(self) -> None:
        from masuka_nb.lora import train_cloud

        ds = self._need_dataset()
        kwargs = self._train_kwargs()
        kwargs.pop("rank", None)
        kwargs.pop("resolution", None)
        kwargs.pop("learning_rate", None)
        self.progress.start(f"uploading the dataset to {self.provider.value}…")
        job = train_cloud(ds, provider=self.provider.value, **kwargs)
        self.cloud_job = job
        outcome = job.wait(progress=self.progress)
        path = _get(outcome, "lora_path") or _get(outcome, "path") or _get(job, "lora_path")
        self.progress.finish("cloud training finished")
        self.train_info.value = _lora_html(path)
        self._say(f"Cloud LoRA saved: {path}")

    def _show_dataset(self) -> None:
        ds = self.dataset
        if ds is None:
            return
        items = list(ds.items)
        root = Path(str(_get(ds, "path", _get(ds, "root", "")) or ""))
        kept = sum(1 for it in items if _get(it, "keep", True))
        captioned = sum(1 for it in items if _get(it, "caption"))
        self.dataset_info.value = (
            f'<span class="mk-chip">{len(items)} images</span><span class="mk-chip">{kept} kept</span>'
            f'<span class="mk-chip">{captioned} captioned</span><span class="mk-muted">{esc(root)}</span>')
        gallery = []
        for it in items[:48]:
            path = root / str(_get(it, "file", ""))
            try:
                data = _thumb_bytes(path)
            except OSError:
                continue
            caption = _get(it, "caption") or "(no caption)"
            mark = "" if _get(it, "keep", True) else "✗ dropped · "
            gallery.append((data, mark + caption))
        self.items_gallery.set_items(gallery)


def _thumb_bytes(path: Path, side: int = 240) -> bytes:
    from PIL import Image

    from masuka_nb.ui.helpers import png_bytes

    with Image.open(path) as img:
        img.load()
        return png_bytes(img.convert("RGB"), max_side=side)


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return 0


def _rejection(entry: Any) -> str:
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return f"{entry[0]}: {entry[1]}"
    name = _get(entry, "name", _get(entry, "source", _get(entry, "file", "")))
    reason = _get(entry, "reason", "")
    return f"{name}: {reason}" if name or reason else str(entry)


def _lora_html(path: Any) -> str:
    if not path:
        return ""
    return (f'<div class="mk-notice mk-ok"><span class="mk-code">LORA</span> {esc(path)}<div class="mk-muted">'
            "Use it in the Image tab's LoRAs box by its folder name or path.</div></div>")


def _clear_upload(upload: widgets.FileUpload) -> None:
    """Forget uploaded bytes (they sit in kernel memory). 7.7.1: read-only dict built from
    `metadata`/`data`; 8.x: a settable tuple."""
    if isinstance(upload.value, dict):
        upload.metadata, upload.data = [], []
        upload.set_trait("value", {})
    else:
        upload.value = ()
