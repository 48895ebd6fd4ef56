"""A GGUF transformer for a plan that says `quantization="gguf-q4"` / `"gguf-q8"`.

The file (a Hub repo's file, any https URL, or a local path: `MemoryPlan.quantized_file`) comes through the one
downloader (`masuka_nb.hosted.download`: resumable, size-capped, renamed into place only when whole) into
``cache_dir/gguf/<hash of the source>/<name>``, and loads with diffusers' own single-file loader:
``<Transformer>.from_single_file(file, quantization_config=GGUFQuantizationConfig(compute_dtype=...),
config=<the model folder>, subfolder="transformer")``. diffusers converts the original key layouts itself (Z-Image's
fused qkv, FLUX's double/single blocks); the weights stay quantized in memory and are dequantized layer by layer as
they run, on a GPU or on a CPU. The `gguf` package reads the file (the `gguf` extra; Colab does not ship it).
`masuka_nb.image.loading.load_component` calls it for a GGUF plan's transformer (its home, as `plan.loading` says);
the text encoders such a plan puts in NF4 are quantized while loading there, as in any NF4 plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from masuka_nb.errors import DependencyMissingError, ModelFilesMissingError
from masuka_nb.log import get_logger

__all__ = ["gguf_file", "load_gguf_transformer"]

log = get_logger(__name__)

MAX_GGUF_BYTES = 64 * 1024**3  # the largest image transformers (Qwen-Image BF16) are ≈ 41 GB


def gguf_file(source: str) -> Path:
    """The local copy of the GGUF file at `source` (downloaded once; a local path is used where it is)."""
    from masuka_nb.config import settings

    path = Path(source)
    if path.is_file():
        return path
    if not source.startswith(("http://", "https://")):
        raise ModelFilesMissingError(f"The GGUF file {source} does not exist.", argument="gguf", value=source,
                                     hint="Give a local path, an https URL or owner/repo/file.gguf.")
    from masuka_nb.hosted.download import download, public_url

    name = Path(public_url(source)).name or "transformer.gguf"
    target = settings().cache_dir / "gguf" / hashlib.sha256(public_url(source).encode()).hexdigest()[:16] / name
    if target.is_file():
        return target
    if settings().offline:
        raise ModelFilesMissingError(f"The GGUF transformer {name} is not downloaded and MASUKA is offline.",
                                     argument="gguf", value=public_url(source),
                                     hint="Go online once to download it, or pass the path of a local copy.")
    log.info("gguf.download", source=public_url(source))
    return download(source, target, max_bytes=MAX_GGUF_BYTES, argument="gguf")


def load_gguf_transformer(plan: Any, *, path: str | Path, dtype: Any) -> Any:
    """The transformer of a GGUF plan, read from its single file (`plan.quantized_file`) with the model folder
    `path`'s transformer config; it stays quantized in memory (compute in `dtype`)."""
    import diffusers

    try:
        import gguf  # noqa: F401 - diffusers reads the file with it
    except ImportError as exc:
        raise DependencyMissingError("A GGUF transformer needs the `gguf` package.", argument="quantization",
                                     value=plan.quantization,
                                     hint="pip install 'masuka-nb[gguf]' (or `pip install gguf`).") from exc
    file = gguf_file(plan.quantized_file)
    cls = getattr(diffusers, _transformer_class(Path(path)))
    from diffusers import GGUFQuantizationConfig

    return cls.from_single_file(str(file), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
                                config=str(path), subfolder="transformer", torch_dtype=dtype)


def _transformer_class(folder: Path) -> str:
    import json

    config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    return str(config["_class_name"])
