"""Model files: planned downloads, the persistent copy (Drive) and the session copy (local disk).

A `DownloadPlan` says exactly which files of a repo a memory plan needs (allow/ignore patterns) and
their total size before a byte moves: FLUX repos also carry a 23.8 GB single-file checkpoint that no
diffusers load needs. Loads prefer the session copy (``cache_dir/models``), then the persistent copy
(``models_dir``, on Drive when mounted, copied to local disk because Drive reads are slow), then the
Hub. Every huggingface_hub error is translated here, once, into MASUKA's error tree.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.config import settings
from masuka_nb.errors import (
    GatedModelError,
    MasukaError,
    ModelFilesMissingError,
    ModelNotFoundError,
    ProviderUnavailableError,
)
from masuka_nb.log import get_logger
from masuka_nb.memory import plan as make_plan
from masuka_nb.models.embedded import hub_endpoint, hub_reachable, require_hub
from masuka_nb.models.registry import MODELS, get_model
from masuka_nb.progress import ProgressReporter
from masuka_nb.storage import atomic_write_json

if TYPE_CHECKING:
    from masuka_nb.memory import MemoryPlan
    from masuka_nb.models.registry import ModelSpec

__all__ = ["DownloadPlan", "RepoFile", "download_plan", "fetch_lora_file", "hub_error", "locate_model", "locate_repo",
           "upload_folder"]

log = get_logger(__name__)

MARKER = ".masuka_complete.json"
# Files no diffusers folder load reads: single-file checkpoints at the repo root, other frameworks' weights.
_ALWAYS_IGNORE = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.gguf",
                  "*.jpg", "*.png", "*.gif", "*.md", ".gitattributes")
_TOP_LEVEL = ("model_index.json", "scheduler/*")
_TOKENIZER_FOR = {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2", "text_encoder_3": "tokenizer_3"}


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int


@dataclass(frozen=True)
class DownloadPlan:
    """What one load fetches: per repo, the allow/ignore patterns and the files they select."""

    repo: str
    revision: str
    allow_patterns: tuple[str, ...]
    ignore_patterns: tuple[str, ...]
    files: tuple[RepoFile, ...] = ()  # empty when no listing was available (offline)
    extra: tuple[DownloadPlan, ...] = field(default=())  # pre-quantized component repos

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files) + sum(p.total_bytes for p in self.extra)

    def selects(self, path: str) -> bool:
        return _selected(path, self.allow_patterns, self.ignore_patterns)

    def __repr__(self) -> str:
        gb = self.total_bytes / 1e9
        parts = [f"DownloadPlan({self.repo}@{self.revision}: {len(self.files)} files, {gb:.2f} GB"]
        parts += [f"  + {p.repo}: {len(p.files)} files, {p.total_bytes / 1e9:.2f} GB" for p in self.extra]
        return "\n".join(parts) + ")"


def _selected(path: str, allow: Sequence[str], ignore: Sequence[str]) -> bool:
    if any(fnmatch.fnmatch(path, pat) for pat in ignore):
        return False
    return any(fnmatch.fnmatch(path, pat) for pat in allow)


def patterns_for(components: Iterable[str], *, tokenizers: bool = True, pipeline: bool = True) -> tuple[str, ...]:
    """Allow patterns for these pipeline components: their folders (configs and safetensors), the
    tokenizer of each text encoder among them, and (with `pipeline`) the pipeline index and scheduler."""
    allow = list(_TOP_LEVEL) if pipeline else ["model_index.json"]
    for comp in components:
        allow += [f"{comp}/*.json", f"{comp}/*.safetensors"]
        tok = _TOKENIZER_FOR.get(comp)
        if tok and tokenizers:
            allow.append(f"{tok}/*")
    return tuple(dict.fromkeys(allow))


def download_plan(
    model: str | ModelSpec,
    *,
    plan: MemoryPlan | None = None,
    listing: Sequence[RepoFile] | Sequence[tuple[str, int]] | None = None,
    quantized_components: Sequence[str] | None = None,
    quantized_repo: str | None = None,
) -> DownloadPlan:
    """The files `model` needs under `plan` (the planner's choice for this machine when None).

    `listing` is the repo's file list with sizes; None asks the Hub (when online) and otherwise
    leaves `files` empty: the patterns alone still limit what a download may fetch. Work that plans
    for itself (LoRA training) names its NF4 components and pre-quantized repo instead of a plan.
    """
    spec = get_model(model)
    if spec.repo is None:
        return DownloadPlan(spec.id, "local", (), ())
    gguf_file = ""
    if quantized_components is not None:
        quantized, q_repo = set(quantized_components), quantized_repo
    else:
        memory_plan = plan or make_plan(spec.id)
        quantized, q_repo = set(memory_plan.quantized_components), memory_plan.quantized_repo
        gguf_file = memory_plan.quantized_file
    # Components a pre-quantized repo holds come from there; everything else, including what the plan
    # quantizes while loading and the tokenizer of every text encoder, comes from the model's own repo.
    elsewhere = quantized if q_repo else set()
    own = [c.name for c in spec.components if c.name not in elsewhere]
    allow = patterns_for(own) + tuple(f"{_TOKENIZER_FOR[c]}/*" for c in sorted(elsewhere) if c in _TOKENIZER_FOR)
    if gguf_file:
        # A GGUF plan reads the transformer's weights from its single file (masuka_nb.image.gguf, through the one
        # downloader); from the repo it needs only the transformer's config.
        allow = tuple(p for p in allow if p != "transformer/*.safetensors")
    if getattr(spec, "task", "") == "edit" and spec.family == "qwenimage":
        allow += ("processor/*",)  # Qwen2VLProcessor: the edit pipeline's image + text processor
    files = _as_files(listing) if listing is not None else _list_repo(spec.repo, spec.revision)
    main = DownloadPlan(spec.repo, spec.revision, allow, _ALWAYS_IGNORE,
                        tuple(f for f in files if _selected(f.path, allow, _ALWAYS_IGNORE)))
    extra = []
    if quantized and q_repo:
        q_allow = patterns_for(sorted(quantized), tokenizers=False, pipeline=False)
        q_files = _list_repo(q_repo, "main") if listing is None else ()
        extra.append(DownloadPlan(q_repo, "main", q_allow, _ALWAYS_IGNORE,
                                  tuple(f for f in q_files if _selected(f.path, q_allow, _ALWAYS_IGNORE))))
    return DownloadPlan(main.repo, main.revision, main.allow_patterns, main.ignore_patterns, main.files,
                        tuple(extra))


def _as_files(listing: Sequence[Any]) -> tuple[RepoFile, ...]:
    return tuple(f if isinstance(f, RepoFile) else RepoFile(str(f[0]), int(f[1])) for f in listing)


def load_listing(path: str | Path) -> tuple[RepoFile, ...]:
    """A recorded repo listing: JSON `{"repo":..., "files": [{"path":..., "size":...}, ...]}`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(RepoFile(f["path"], int(f["size"])) for f in data["files"])


def _list_repo(repo: str, revision: str) -> tuple[RepoFile, ...]:
    if settings().offline or not hub_reachable():
        return ()  # no listing: the patterns still bound the download; locate_model says what is missing
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
        return tuple(RepoFile(s.rfilename, int(s.size or 0)) for s in info.siblings or ())
    except Exception as exc:
        raise hub_error(exc, repo=repo) from exc


# ---- the one place hub errors become MASUKA errors ----

def hub_error(exc: BaseException, *, repo: str, model: str | None = None) -> MasukaError:
    """Translate a huggingface_hub (or network) error about `repo` into MASUKA's tree."""
    if isinstance(exc, MasukaError):
        return exc
    from huggingface_hub import errors as hf

    spec = next((m for m in MODELS.values() if m.repo == repo), None)
    licence = spec.licence_url if spec and spec.licence_url else f"https://huggingface.co/{repo}"
    name = model or (spec.id if spec else repo)
    if isinstance(exc, hf.GatedRepoError):
        return GatedModelError(
            f"{name} is a gated model: the Hub refused {repo} to this account.",
            argument="model", value=name,
            hint=f"Accept the licence at {licence} with your Hugging Face account, create a read token at "
            "https://huggingface.co/settings/tokens and set it as HF_TOKEN (Colab: the key icon → Secrets, "
            "name HF_TOKEN, notebook access on; elsewhere: the HF_TOKEN environment variable).",
            licence_url=licence,
        )
    if isinstance(exc, (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled)):
        return ModelFilesMissingError(
            f"The files of {name} ({repo}) are not on this machine and the Hub cannot be reached (offline).",
            argument="model", value=name,
            hint="Go online (unset HF_HUB_OFFLINE / MASUKA_OFFLINE) to download them once, or copy them into "
            "`masuka_nb.settings().models_dir`.",
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return ModelNotFoundError(f"The Hub has no repo {repo} (or it is private).", argument="model",
                                  value=repo, hint="Check the repo id; private repos need HF_TOKEN.")
    if isinstance(exc, (hf.EntryNotFoundError, hf.RevisionNotFoundError)):
        return ModelFilesMissingError(f"{repo} has no such file or revision ({exc}).", argument="model",
                                      value=repo, hint="Check the file name and revision on the repo page.")
    if isinstance(exc, (hf.HfHubHTTPError, ConnectionError, TimeoutError, OSError)):
        return ProviderUnavailableError(f"The Hugging Face Hub failed for {repo}: {type(exc).__name__}.",
                                        argument="model", value=name,
                                        hint="Try again in a minute; check the network.", provider="huggingface")
    return ModelFilesMissingError(f"Getting {repo} failed: {type(exc).__name__}: {exc}", argument="model",
                                  value=name, hint="Check the repo id, the network and HF_TOKEN.")


# ---- where the files are ----

def _complete(folder: Path, dplan: DownloadPlan) -> bool:
    """True when `folder` holds every file `dplan` selects: its marker lists the patterns fetched into it
    (a copy made for an NF4 plan lacks the 16-bit transformer a later bf16 plan needs)."""
    try:
        done = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return set(dplan.allow_patterns) <= set(done.get("allow") or ())


def _fetched(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / MARKER).read_text(encoding="utf-8")).get("allow") or ())
    except (OSError, ValueError):
        return []


def locate_model(spec: ModelSpec, dplan: DownloadPlan, *, progress: Any = None) -> Path:
    """A local folder holding everything `dplan` selects: session copy, else Drive copy, else Hub."""
    return _locate(dplan, name=spec.id, gated=spec.gated, licence_url=spec.licence_url, progress=progress)


def locate_repo(repo: str, *, name: str | None = None, allow: Sequence[str] = ("*",),
                ignore: Sequence[str] = _ALWAYS_IGNORE, revision: str = "main", progress: Any = None) -> Path:
    """A local folder with the files of a Hub repo that is no registry model (a captioner, the CLIP scorer,
    the aesthetic head), found and fetched like a model's: session copy, else Drive copy, else the Hub.
    A local folder is returned as it is."""
    if Path(repo).is_dir():
        return Path(repo)
    listing = _list_repo(repo, revision)
    dplan = DownloadPlan(repo, revision, tuple(allow), tuple(ignore),
                         tuple(f for f in listing if _selected(f.path, allow, ignore)))
    return _locate(dplan, name=name or repo, gated=False, licence_url="", progress=progress)


def _locate(dplan: DownloadPlan, *, name: str, gated: bool, licence_url: str, progress: Any = None) -> Path:
    s = settings()
    rel = Path(dplan.repo.replace("/", "--")) / dplan.revision
    session = s.cache_dir / "models" / rel
    persistent = s.models_dir / rel
    if _complete(session, dplan):
        return session
    if _complete(persistent, dplan):
        if persistent.resolve() == session.resolve():
            return persistent
        _copy_tree(persistent, session, dplan)
        return session
    if s.offline:
        gate = f" It is gated: first accept the licence at {licence_url} and set HF_TOKEN." if gated else ""
        size = f"{dplan.total_bytes / 1e9:.1f} GB planned" if dplan.files else "size unknown offline"
        raise ModelFilesMissingError(
            f"{name} is not downloaded ({size}) and MASUKA is offline.",
            argument="model", value=name,
            hint=f"Go online once to download it into {persistent}, or pick a tiny model for offline work.{gate}",
        )
    files = (f"{len(dplan.files)} files ({dplan.total_bytes / 1e9:.1f} GB)" if dplan.files
             else "the files matching " + ", ".join(dplan.allow_patterns[:4]) + (" …" if len(dplan.allow_patterns) > 4 else ""))
    require_hub(model=name, repo=dplan.repo, files=files)
    _snapshot(dplan, persistent, progress=progress)
    if persistent.resolve() != session.resolve():
        _copy_tree(persistent, session, dplan)
        return session
    return persistent


def _snapshot(dplan: DownloadPlan, target: Path, *, progress: Any = None) -> None:
    from huggingface_hub import snapshot_download

    reporter = ProgressReporter("download", max(1, len(dplan.files)), progress=progress)
    reporter.update(0, message=f"{dplan.repo}: {dplan.total_bytes / 1e9:.2f} GB planned")
    try:
        snapshot_download(dplan.repo, revision=dplan.revision, allow_patterns=list(dplan.allow_patterns),
                          ignore_patterns=list(dplan.ignore_patterns), local_dir=str(target),
                          tqdm_class=_files_bar(reporter, dplan.repo))
    except Exception as exc:
        raise hub_error(exc, repo=dplan.repo) from exc
    allow = list(dict.fromkeys([*_fetched(target), *dplan.allow_patterns]))
    atomic_write_json(target / MARKER, {"repo": dplan.repo, "revision": dplan.revision, "allow": allow,
                                        "bytes": dplan.total_bytes})
    reporter.done(f"{dplan.repo} downloaded")


def _files_bar(reporter: Any, repo: str) -> type:
    """The Hub's "files fetched" bar, also reported as MASUKA progress events (widgets, logs, tests)."""
    from tqdm.auto import tqdm

    class FilesBar(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            reporter.total = int(self.total or reporter.total)
            reporter.update(int(self.n), message=f"{repo}: {int(self.n)}/{reporter.total} files")
            return shown

    return FilesBar


def _copy_tree(src: Path, dst: Path, dplan: DownloadPlan) -> None:
    for file in src.rglob("*"):
        rel = file.relative_to(src).as_posix()
        if file.is_file() and rel != MARKER and (not dplan.allow_patterns or dplan.selects(rel)):
            out = dst / rel
            if not out.is_file() or out.stat().st_size != file.stat().st_size:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_name(out.name + ".incomplete")
                tmp.unlink(missing_ok=True)
                try:
                    # Same disk (no Drive): a hard link costs neither time nor space; downloads replace
                    # files by rename, so the copy it shares bytes with is never written in place.
                    os.link(file, tmp)
                except OSError:  # Drive → local disk, or a filesystem without links: a real copy
                    shutil.copyfile(file, tmp)
                tmp.replace(out)
    allow = list(dict.fromkeys([*_fetched(dst), *dplan.allow_patterns]))
    atomic_write_json(dst / MARKER, {"copied_from": str(src), "allow": allow})


def upload_folder(folder: str | Path, *, repo_id: str, private: bool = True, token: str | None = None,
                  message: str = "Upload from MASUKA") -> str:
    """Upload `folder` (hidden files left out) to the Hub repo `repo_id`, made if missing; returns its URL.
    The one place MASUKA writes to the Hub."""
    try:
        from huggingface_hub import HfApi

        api = HfApi(token=token, endpoint=hub_endpoint())
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, ignore_patterns=[".*"], commit_message=message)
    except Exception as exc:
        raise MasukaError(f"Uploading {Path(folder).name} to {repo_id} failed: {exc}.", argument="repo_id",
                          value=repo_id, hint="Check the token has write access and the network is up.",
                          code="HUB_UPLOAD_FAILED") from exc
    return f"{hub_endpoint()}/{repo_id}"


def fetch_lora_file(repo: str) -> Path:
    """The LoRA weight file of Hub repo `repo` (the diffusers name first, else the only .safetensors)."""
    from huggingface_hub import hf_hub_download, list_repo_files

    if settings().offline or not hub_reachable():
        try:  # a LoRA fetched before is still in the local Hub cache
            return Path(hf_hub_download(repo, "pytorch_lora_weights.safetensors", local_files_only=True))
        except Exception:
            require_hub(model=repo, repo=repo, files="its LoRA file", argument="loras")
    try:
        return Path(hf_hub_download(repo, "pytorch_lora_weights.safetensors"))
    except Exception as exc:
        from huggingface_hub import errors as hf

        if not isinstance(exc, hf.EntryNotFoundError) or settings().offline:
            raise hub_error(exc, repo=repo) from exc
    try:
        names = [n for n in list_repo_files(repo) if n.endswith(".safetensors")]
        if len(names) != 1:
            raise ModelFilesMissingError(f"{repo} holds {len(names)} .safetensors files; which one is the LoRA?",
                                         argument="loras", value=repo,
                                         hint="Download the file you want and pass its path.")
        return Path(hf_hub_download(repo, names[0]))
    except Exception as exc:
        raise hub_error(exc, repo=repo) from exc
