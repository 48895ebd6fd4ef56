"""Curation: which images help a LoRA and which hurt it, as suggestions a user can override.

Per image: exact and near duplicates (pixel hash, perceptual hash), a blur score (variance of the
Laplacian), resolution and aspect ratio, an aesthetic score (the LAION aesthetic predictor v2 on
CLIP ViT-L/14 image embeddings) and, with a reference image, identity consistency (CLIP cosine
similarity). Embeddings are computed in batches. Suggestions go into each item's `keep` flag unless
the user has already set it (`Dataset.set_keep`), and into `scores` with the reasons.
"""

from __future__ import annotations

import hashlib
import statistics
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from masuka_nb.errors import DatasetError, DependencyMissingError, InvalidRequestError, ModelFilesMissingError
from masuka_nb.host import device_host, torch_device
from masuka_nb.hub import locate_repo
from masuka_nb.log import get_logger
from masuka_nb.lora.imageio import ImageRejected, decode_image
from masuka_nb.models.embedded import use_embedded_models
from masuka_nb.models.tiny_vision import AestheticMLP
from masuka_nb.progress import CancelToken, ProgressCallback, ProgressReporter
from masuka_nb.quiet import quiet_third_party
from masuka_nb.storage import read_file_bytes

__all__ = ["ClipScorer", "CurationReport", "ItemVerdict", "blur_score", "curate", "dataset_size_advice"]

log = get_logger(__name__)

REAL_CLIP = "openai/clip-vit-large-patch14"
# The LAION aesthetic predictor v2 (sac+logos+ava1, linear MSE) as mirrored on the Hub.
REAL_AESTHETIC = ("trl-lib/ddpo-aesthetic-predictor", "aesthetic-model.pth")


@dataclass
class ItemVerdict:
    file: str
    keep: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    overridden: bool = False


@dataclass
class CurationReport:
    """Per-image verdicts, duplicate groups, statistics and dataset-size advice."""

    verdicts: list[ItemVerdict] = field(default_factory=list)
    duplicate_groups: list[list[str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)
    scorer: str = ""
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # load_s, embed_s (CLIP + aesthetic), hash_s
    paths: list[Any] = field(default_factory=list)  # what was written: the dataset's manifest, when applied
    history_id: str = ""  # curation changes a dataset, not the history: always ""

    @property
    def seconds(self) -> float:
        warnings.warn("CurationReport.seconds is now `elapsed_s`.", DeprecationWarning, stacklevel=2)
        return self.elapsed_s

    @property
    def keep(self) -> list[str]:
        return [v.file for v in self.verdicts if v.keep]

    @property
    def drop(self) -> list[str]:
        return [v.file for v in self.verdicts if not v.keep]

    def verdict(self, file: str) -> ItemVerdict:
        for v in self.verdicts:
            if v.file == file or file in v.file:
                return v
        raise KeyError(file)

    def summary(self) -> str:
        lines = [f"{len(self.keep)} to keep, {len(self.drop)} to drop ({self.scorer})"]
        lines += [f"  ✗ {v.file}: {'; '.join(v.reasons)}" for v in self.verdicts if not v.keep]
        lines += [f"  • {a}" for a in self.advice]
        return "\n".join(lines)


def blur_score(gray) -> float:
    """Variance of a 4-neighbour Laplacian on a grayscale array (higher = sharper)."""
    import numpy as np

    g = np.asarray(gray, dtype=np.float32)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def dataset_size_advice(n: int) -> list[str]:
    if n == 0:
        return ["No images to train on: import 15–30 varied photos of the subject."]
    if n < 8:
        few = "1 image is" if n == 1 else f"{n} images are"
        return [f"{few} very few: a character or style LoRA usually needs 15–30 varied images."]
    if n < 15:
        return [f"{n} images can work for a simple subject; 15–30 varied images give a sturdier LoRA."]
    if n <= 50:
        return [f"{n} images: a good size for a character or object LoRA."]
    if n <= 200:
        return [f"{n} images: good for a style LoRA; raise the steps (≈ 40–100 per image in total)."]
    return [f"{n} images: training sees each image rarely; curate harder or raise the steps a lot."]


class ClipScorer:
    """CLIP image embeddings (L2-normalised) and the LAION aesthetic head, batched. The networks are loaded
    through the device host on first use (and kept until `close()` or until another task claims the device);
    their files come through `masuka_nb.hub`."""

    def __init__(self, model: str = "clip") -> None:
        self.device = torch_device()
        tiny = model == "tiny-clip" or (model == "clip" and use_embedded_models(engine="curate"))
        self.name = "tiny-clip" if tiny else REAL_CLIP
        self.tiny = tiny
        self.repo = REAL_CLIP if model == "clip" else model
        self._key = ("curate", self.name if tiny else self.repo, self.device)

    @property
    def dtype(self) -> Any:
        import torch

        return torch.float16 if self.device == "cuda" else torch.float32

    def _parts(self) -> dict[str, Any]:
        host = device_host()
        host.claim("curate", slot="scorer", model=self.name)
        return host.load(self._key, self._load, task="curate", slot="scorer", model=self.name)

    @property
    def model(self) -> Any:
        return self._parts()["model"]

    @property
    def head(self) -> Any:
        return self._parts()["head"]

    @property
    def processor(self) -> Any:
        """The image processor: the scorer's own, or one set in its place (another backend, a test's)."""
        return self.__dict__.get("_processor") or self._parts()["processor"]

    @processor.setter
    def processor(self, value: Any) -> None:
        self._processor = value

    def _load(self) -> dict[str, Any]:
        from transformers import AutoProcessor, CLIPVisionModelWithProjection

        if self.tiny:
            from safetensors.torch import load_file

            from masuka_nb.models.tiny_vision import ensure_tiny_vision

            folder = ensure_tiny_vision("tiny-clip")
            head_state = load_file(str(folder / "aesthetic" / "model.safetensors"))
        else:
            folder = locate_repo(self.repo, name="the CLIP scorer", allow=("*.json", "*.safetensors", "*.txt"))
            head_state = self._real_head()
        try:
            with quiet_third_party():
                processor = AutoProcessor.from_pretrained(str(folder))
                model = CLIPVisionModelWithProjection.from_pretrained(str(folder), dtype=self.dtype)
        except (OSError, ValueError) as exc:  # not a CLIP model
            raise ModelFilesMissingError(f"The curation scorer {self.repo!r} cannot be loaded: {str(exc)[:200]}",
                                         argument="scorer", value=self.repo,
                                         hint="Use scorer=\"clip\" (the default), or scorer=None to check only "
                                              "duplicates, blur and size.") from exc
        model = model.to(self.device).eval()
        head = None
        if head_state is not None:
            head = AestheticMLP(model.config.projection_dim)
            head.load_state_dict(head_state)
            head = head.to(self.device).eval()
        return {"processor": processor, "model": model, "head": head}

    @staticmethod
    def _real_head():
        try:
            import torch

            folder = locate_repo(REAL_AESTHETIC[0], name="the aesthetic head", allow=(REAL_AESTHETIC[1],), ignore=())
            return torch.load(folder / REAL_AESTHETIC[1], map_location="cpu", weights_only=True)
        except Exception as exc:  # the scorer still ranks duplicates, blur and identity without it
            log.warning("curate.no_aesthetic_head", repo=REAL_AESTHETIC[0], error=type(exc).__name__,
                        effect="no aesthetic scores; duplicates, blur and identity are still checked")
            return None

    def pixels(self, images: list):
        """CLIP preprocessing for a whole batch, by transformers' own image processor.

        transformers picks its backend: torchvision where it is installed (Colab ships it), else PIL. The two
        resize differently (tensor bicubic with antialiasing vs PIL's), so a copy of either would drift from
        the other by ~0.015; the processor itself is batched under both and is what the model was meant to see.
        """
        ip = getattr(self.processor, "image_processor", self.processor)
        return ip(images=images, return_tensors="pt")["pixel_values"]

    def embed(self, images: list) -> tuple[Any, list[float | None]]:
        """(embeddings [n, d] float32 on CPU, aesthetic scores) for a batch of PIL images."""
        import torch

        parts = self._parts()
        pixel_values = self.pixels(images).to(self.device, self.dtype)
        head = parts["head"]
        with device_host().using(self._key), torch.inference_mode():
            emb = parts["model"](pixel_values=pixel_values).image_embeds.float()
            emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            scores = head(emb.to(next(head.parameters()).dtype)).squeeze(-1).tolist() \
                if head is not None else [None] * len(images)
        return emb.cpu(), scores

    def close(self) -> None:
        """Give the networks' memory back (the next `embed` loads them again)."""
        device_host().evict(self._key)


def _load_rgb(path, max_side: int = 512):
    """A dataset image, small; one that vanished or was damaged on disk is a DatasetError naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side))
            return im
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"The dataset image {path} cannot be read: {exc}.", argument="dataset", value=str(path),
                           hint="Re-import it, or set keep=False on it (`ds.set_keep(name, False)`).") from exc


def _as_image(ref):
    """The reference photo: a PIL image, or the path of an image file (checked like an imported one)."""
    import os

    from PIL import Image

    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    if isinstance(ref, bool) or not isinstance(ref, (str, os.PathLike)):
        raise InvalidRequestError(f"`reference_image` must be a PIL image or an image path, not {type(ref).__name__}.",
                                  argument="reference_image", value=ref, hint="e.g. reference_image=\"me.jpg\"")
    data = read_file_bytes(ref, max_bytes=64 * 1024**2, argument="reference_image", what="image")
    try:
        im = decode_image(data, str(ref), min_side=1).image
    except ImageRejected as rej:
        raise InvalidRequestError(f"The reference image {ref} cannot be used: {rej.reason}", argument="reference_image",
                                  value=str(ref), hint="Give a JPEG, PNG or WebP photo of the subject.") from rej
    im.thumbnail((512, 512))
    return im


def curate(
    dataset,
    *,
    reference_image: Any = None,
    batch_size: int = 16,
    near_duplicate_distance: int = 6,
    min_blur: float = 25.0,
    min_aesthetic: float = 3.5,
    min_identity: float = 0.7,
    min_side: int = 512,
    scorer: ClipScorer | str | None = "clip",
    apply: bool = True,
    progress: ProgressCallback | bool | None = None,
    cancel: CancelToken | None = None,
) -> CurationReport:
    """Score every image of `dataset` and suggest which to keep. With `apply`, write the suggestions
    into `keep` (except where the user already chose) and the scores into `dataset.json`."""
    try:
        import imagehash
    except ImportError as exc:
        raise DependencyMissingError("Curation needs `imagehash`.", argument="scorer", hint="pip install imagehash") from exc
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidRequestError("`batch_size` must be a whole number ≥ 1.", argument="batch_size", value=batch_size)
    for name, value in (("near_duplicate_distance", near_duplicate_distance), ("min_blur", min_blur),
                        ("min_aesthetic", min_aesthetic), ("min_identity", min_identity), ("min_side", min_side)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequestError(f"`{name}` must be a number.", argument=name, value=value)
    if not isinstance(apply, bool):
        raise InvalidRequestError("`apply` must be True or False.", argument="apply", value=apply)
    if scorer is not None and not isinstance(scorer, (str, ClipScorer)):
        raise InvalidRequestError("`scorer` must be \"clip\", a ClipScorer or None.", argument="scorer", value=scorer)
    start = time.perf_counter()
    items = list(dataset.items)
    reporter = ProgressReporter("curate", len(items), progress=progress, cancel=cancel)
    own_scorer = isinstance(scorer, str)
    clip = ClipScorer(scorer) if isinstance(scorer, str) else scorer
    ref_emb = None
    try:
        if reference_image is not None and clip is not None:
            ref_emb = clip.embed([_as_image(reference_image)])[0][0]
        rows: list[dict[str, Any]] = []
        timings = {"load_s": 0.0, "embed_s": 0.0, "hash_s": 0.0}
        for i in range(0, len(items), batch_size):
            reporter.check("curation")
            batch = items[i:i + batch_size]
            t0 = time.perf_counter()
            images = [_load_rgb(dataset.path_of(it)) for it in batch]
            t1 = time.perf_counter()
            embs, aesth = clip.embed(images) if clip is not None else (None, [None] * len(batch))
            t2 = time.perf_counter()
            timings["load_s"] += t1 - t0
            timings["embed_s"] += t2 - t1
            for j, im in enumerate(images):
                gray = im.convert("L")
                row = {
                    "pixel_md5": hashlib.md5(im.tobytes()).hexdigest(),
                    "phash": imagehash.phash(im),
                    "blur": round(blur_score(gray), 2),
                    "aesthetic": None if aesth[j] is None else round(float(aesth[j]), 3),
                }
                if ref_emb is not None:
                    row["identity"] = round(float(embs[j] @ ref_emb), 4)
                rows.append(row)
            timings["hash_s"] += time.perf_counter() - t2
            reporter.update(min(i + batch_size, len(items)))
    finally:
        if own_scorer and clip is not None:
            clip.close()
    report = _judge(items, rows, near_duplicate_distance, min_blur, min_aesthetic, min_identity, min_side)
    report.scorer = clip.name if clip is not None else "none"
    report.timings = {k: round(v, 4) for k, v in timings.items()}
    report.elapsed_s = time.perf_counter() - start
    if apply:
        for it, v in zip(items, report.verdicts):
            it.scores.update({k: v.scores[k] for k in v.scores})
            it.scores["suggest_keep"] = v.keep
            it.scores["reasons"] = v.reasons
            if it.scores.get("keep_overridden"):
                v.overridden = True
                v.keep = it.keep
            else:
                it.keep = v.keep
        report.paths = [dataset.save() or dataset.root / "dataset.json"]
    report.advice = dataset_size_advice(sum(v.keep for v in report.verdicts)) + report.advice
    return report


def _judge(items, rows, near, min_blur, min_aesthetic, min_identity, min_side) -> CurationReport:
    report = CurationReport()
    verdicts = [ItemVerdict(file=it.file, keep=True,
                            scores={k: (str(v) if k == "phash" else v) for k, v in r.items() if k != "pixel_md5"})
                for it, r in zip(items, rows)]
    # Duplicates: keep the largest image of each group (ties: the first imported).
    parent = list(range(len(items)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            same = rows[a]["pixel_md5"] == rows[b]["pixel_md5"]
            if same or rows[a]["phash"] - rows[b]["phash"] <= near:
                parent[find(b)] = find(a)
    groups: dict[int, list[int]] = {}
    for idx in range(len(items)):
        groups.setdefault(find(idx), []).append(idx)
    for members in groups.values():
        if len(members) < 2:
            continue
        best = max(members, key=lambda k: (items[k].width * items[k].height, -k))
        report.duplicate_groups.append([items[k].file for k in members])
        for k in members:
            if k != best:
                exact = rows[k]["pixel_md5"] == rows[best]["pixel_md5"]
                verdicts[k].reasons.append(f"{'exact' if exact else 'near'} duplicate of {items[best].file}")
    blurs = [r["blur"] for r in rows]
    median_blur = statistics.median(blurs) if blurs else 0.0
    for it, r, v in zip(items, rows, verdicts):
        if r["blur"] < min_blur and r["blur"] < 0.5 * median_blur:
            v.reasons.append(f"blurry (sharpness {r['blur']:.0f}, dataset median {median_blur:.0f})")
        if r["aesthetic"] is not None and r["aesthetic"] < min_aesthetic:
            v.reasons.append(f"low aesthetic score {r['aesthetic']:.2f} < {min_aesthetic}")
        if "identity" in r and r["identity"] < min_identity:
            v.reasons.append(f"may not be the same subject (similarity {r['identity']:.2f} < {min_identity})")
        if min(it.width, it.height) < min_side:
            v.scores["low_resolution"] = True
        v.keep = not v.reasons
    report.verdicts = verdicts
    report.stats = _stats(items, rows)
    small = sum(min(i.width, i.height) < min_side for i in items)
    if small:
        which = "1 image has" if small == 1 else f"{small} images have"
        report.advice.append(f"{which} a short side under {min_side} px: they train at a lower "
                             "resolution bucket (fine for 512 px training, soft at 1024).")
    return report


def _stats(items: Iterable, rows: list[dict[str, Any]]) -> dict[str, Any]:
    items = list(items)
    if not items:
        return {"count": 0}
    shorts = [min(i.width, i.height) for i in items]
    aspects = [round(i.width / i.height, 2) for i in items]
    buckets: dict[str, int] = {}
    for a in aspects:
        key = "square" if 0.9 <= a <= 1.1 else ("landscape" if a > 1.1 else "portrait")
        buckets[key] = buckets.get(key, 0) + 1
    aest = [r["aesthetic"] for r in rows if r["aesthetic"] is not None]
    return {
        "count": len(items),
        "short_side_min": min(shorts),
        "short_side_median": statistics.median(shorts),
        "short_side_max": max(shorts),
        "aspect_min": min(aspects),
        "aspect_max": max(aspects),
        "orientation": buckets,
        "aesthetic_mean": round(statistics.fmean(aest), 3) if aest else None,
        "blur_median": statistics.median(r["blur"] for r in rows),
    }
