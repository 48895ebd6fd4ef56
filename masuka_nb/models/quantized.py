"""Other weights for a transformer than its repo's 16-bit ones: a single-file GGUF, or a Nunchaku Lite W4A4 repo.

    resolve_gguf(spec, "gguf-q4")                                 # the registry's published file, with its real size
    resolve_gguf(spec, "gguf-q4", "city96/Qwen-Image-gguf/qwen-image-Q3_K_M.gguf")    # any file of a Hub repo
    resolve_gguf(spec, "gguf-q8", "https://example.org/model-Q8_0.gguf")              # any URL, or a local path
    w4a4_for(spec, profile)                                       # (weights or None, why not)

A GGUF file's size is what the planner counts for the transformer (GGUF weights stay quantized on the GPU and are
dequantized layer by layer): the registry's listed bytes, or, for a file the caller names, what the Hub's metadata,
the server (HEAD) or the disk says. Nunchaku Lite (diffusers ≥ 0.40) runs pre-quantized SVDQuant W4A4 checkpoints
on Turing/Ampere/Ada GPUs (INT4) and Blackwell (NVFP4), not Hopper, with kernels the `kernels` package fetches from
`rootonchair/nunchaku-lite-kernels` — code diffusers only runs with DIFFUSERS_TRUST_REMOTE_KERNELS=true set before
it is imported (https://huggingface.co/docs/diffusers/en/quantization/nunchaku, read 2026-12).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masuka_nb.errors import InvalidRequestError, ModelFilesMissingError

if TYPE_CHECKING:
    from masuka_nb.models.registry import ModelSpec
    from masuka_nb.runtime import GpuProfile

__all__ = ["INT4_CAPABILITIES", "TransformerWeights", "nunchaku_available", "resolve_gguf", "w4a4_for"]

# Nunchaku Lite's INT4 kernels: Turing (T4), Ampere (A100, A10/30xx), Ada (L4, 40xx); Hopper refused by diffusers'
# NunchakuLiteQuantizer.validate_environment, NVFP4 needs compute capability ≥ 10.0 (Blackwell).
INT4_CAPABILITIES = ((7, 5), (8, 0), (8, 6), (8, 9))
TRUST_ENV = "DIFFUSERS_TRUST_REMOTE_KERNELS"


@dataclass(frozen=True)
class TransformerWeights:
    """The transformer's weights in a plan: `quantization` "gguf-q4"/"gguf-q8" (`source` a URL or local path,
    `bytes` its size) or "w4a4" (`source` a diffusers repo holding the W4A4 transformer and `encoders`)."""

    quantization: str
    source: str
    bytes: int = 0
    encoders: tuple[str, ...] = ()  # components the W4A4 repo also holds (bitsandbytes 4-bit text encoders)
    why: str = ""

    def plan_fields(self, nf4_encoders: tuple[str, ...]) -> dict[str, Any]:
        if self.quantization == "w4a4":
            return dict(quantization="w4a4", quantized_components=("transformer", *self.encoders),
                        quantized_repo=self.source, quantized_file="", quantized_file_bytes=0)
        return dict(quantization=self.quantization, quantized_components=("transformer", *nf4_encoders),
                    quantized_repo=None, quantized_file=self.source, quantized_file_bytes=self.bytes)


def resolve_gguf(spec: ModelSpec, quantization: str, source: str | os.PathLike[str] | None = None
                 ) -> TransformerWeights:
    """The GGUF transformer a `quantization="gguf-q4"/"gguf-q8"` plan loads: `source` (a local file, an http(s)
    URL, or "owner/repo/path/file.gguf" on the Hub) or, when None, the one the registry lists for `spec`."""
    if source is None:
        listed = spec.gguf.get(quantization)
        if listed is None:
            known = ", ".join(sorted(spec.gguf)) or "none"
            raise InvalidRequestError(
                f"{spec.id} has no published {quantization} GGUF file in MASUKA's registry (it lists: {known}).",
                argument="gguf", value=None,
                hint="Pass the file: plan(..., quantization=\"gguf-q4\", gguf=\"owner/repo/file.gguf\" or a URL or a "
                     "local path), or drop `quantization`.")
        return TransformerWeights(quantization, _hub_url(listed.repo, listed.path), listed.bytes,
                                  why=f"{quantization}: {listed.repo}/{listed.path} ({listed.bytes / 1e9:.2f} GB, "
                                      f"listed at {listed.source}, read {listed.read})")
    text = str(source).strip()
    path = Path(text).expanduser()
    if path.is_file():
        size = path.stat().st_size
        return TransformerWeights(quantization, str(path.resolve()), size,
                                  why=f"{quantization}: {path.name} ({size / 1e9:.2f} GB on disk)")
    if text.startswith(("http://", "https://")):
        size = _remote_size(text)
        return TransformerWeights(quantization, text, size, why=f"{quantization}: {text.split('?')[0]} ({size / 1e9:.2f} "
                                                               "GB as the server reports it)")
    parts = text.split("/")
    if len(parts) >= 3 and text.endswith(".gguf"):
        repo, file = "/".join(parts[:2]), "/".join(parts[2:])
        size = _hub_size(repo, file)
        return TransformerWeights(quantization, _hub_url(repo, file), size,
                                  why=f"{quantization}: {repo}/{file} ({size / 1e9:.2f} GB as the Hub lists it)")
    raise InvalidRequestError(f"`gguf` must name a .gguf file, not {text!r}.", argument="gguf", value=text,
                              hint="A local path, an https URL, or owner/repo/file.gguf on the Hugging Face Hub.")


def _hub_url(repo: str, file: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{repo}/resolve/main/{file}"


def _hub_size(repo: str, file: str) -> int:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        meta = get_hf_file_metadata(hf_hub_url(repo, file))
    except Exception as exc:  # any hub failure: the file cannot be planned with its real size
        raise ModelFilesMissingError(f"Could not read the size of {repo}/{file} from the Hub ({type(exc).__name__}).",
                                     argument="gguf", value=f"{repo}/{file}",
                                     hint="Check the repo and file name and the network; private repos need "
                                          "HF_TOKEN.") from exc
    return int(meta.size or 0)


def _remote_size(url: str) -> int:
    """Content-Length of `url` (a HEAD request that follows redirects), 0 when the server does not say."""
    import httpx

    from masuka_nb.hosted.download import public_url

    try:
        response = httpx.head(url, follow_redirects=True, timeout=30.0)
    except httpx.HTTPError as exc:
        raise ModelFilesMissingError(f"Could not reach {public_url(url)} ({type(exc).__name__}).", argument="gguf",
                                     value=public_url(url), hint="Check the link and the network.") from exc
    if response.status_code >= 400:
        raise ModelFilesMissingError(f"{public_url(url)} answered HTTP {response.status_code}.", argument="gguf",
                                     value=public_url(url), hint="Check that the link is public and still valid.")
    return int(response.headers.get("content-length") or 0)


# ---- Nunchaku Lite ----

def nunchaku_available() -> tuple[bool, str]:
    """(usable, why not) for this machine's libraries: diffusers with Nunchaku Lite, the `kernels` package, and the
    user's consent to run its remote kernels."""
    try:
        from importlib.metadata import version

        installed = version("diffusers")
    except Exception:
        installed = "not installed"
    if importlib.util.find_spec("diffusers") is None or \
            importlib.util.find_spec("diffusers.quantizers.nunchaku") is None:
        return False, (f"the installed diffusers ({installed}) has no Nunchaku Lite backend (it came in 0.40; Colab "
                       "ships 0.39): `pip install -U diffusers` to use W4A4 weights")
    if importlib.util.find_spec("kernels") is None:
        return False, "Nunchaku Lite loads its CUDA kernels with the `kernels` package: `pip install kernels`"
    trusted = os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    constants = sys.modules.get("diffusers.utils.constants")
    if constants is not None and not getattr(constants, TRUST_ENV, False):
        trusted = False  # diffusers read the variable when it was imported; setting it later changes nothing
    if not trusted:
        return False, (f"Nunchaku Lite downloads and runs kernels from rootonchair/nunchaku-lite-kernels, which "
                       f"diffusers only does with {TRUST_ENV}=true set before diffusers is imported (your consent "
                       "to run that code; restart the runtime after setting it)")
    return True, ""


def w4a4_for(spec: ModelSpec, prof: GpuProfile) -> tuple[TransformerWeights | None, str]:
    """The W4A4 weights `speed="fast"` would use for `spec` on `prof`, or (None, why not)."""
    if not spec.w4a4:
        return None, f"no Nunchaku Lite (W4A4) checkpoint is published for {spec.id}"
    cc = prof.compute_capability
    if cc is None:
        return None, "W4A4 kernels need a CUDA GPU"
    if cc[0] == 9:
        return None, "Nunchaku Lite does not run on Hopper GPUs (diffusers refuses compute capability 9.x)"
    precision = "nvfp4" if cc >= (10, 0) else "int4" if cc in INT4_CAPABILITIES else ""
    if not precision:
        return None, f"Nunchaku Lite's INT4 kernels need sm_75/80/86/89, and this GPU is sm_{cc[0]}{cc[1]}"
    found = next((w for w in spec.w4a4 if w.precision == precision), None)
    if found is None:
        have = ", ".join(sorted({w.precision for w in spec.w4a4}))
        return None, (f"{spec.id}'s published W4A4 checkpoint is {have} only, and sm_{cc[0]}{cc[1]} needs {precision}"
                      + (" (NVFP4 runs on Blackwell only)" if "nvfp4" in have else ""))
    ok, why = nunchaku_available()
    if not ok:
        return None, why
    encoders = tuple(c.name for c in spec.text_encoders)
    return TransformerWeights("w4a4", found.repo, encoders=encoders,
                              why=f"W4A4 (SVDQuant {precision}, Nunchaku Lite) from {found.repo}"
                                  + (f" ({found.note})" if found.note else "")), ""
