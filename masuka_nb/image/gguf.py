"""A GGUF transformer for a plan that says `quantization="gguf-q4"` / `"gguf-q8"`.

The file (a Hub repo's file, any https URL, or a local path: `MemoryPlan.quantized_file`) comes through the one
downloader (`masuka_nb.hosted.download`: resumable, size-capped, renamed into place only when whole) into
``cache_dir/gguf/<hash of the source>/<name>``, and loads with diffusers' own single-file loader:
``<Transformer>.from_single_file(file, quantization_config=GGUFQuantizationConfig(compute_dtype=...),
config=<the model folder>, subfolder="transformer")``. diffusers converts the original key layouts itself (Z-Image's
fused qkv, FLUX's double/single blocks); the weights stay quantized in memory and are dequantized layer by layer as
they run, on a GPU or on a CPU. The `gguf` package reads the file (the `gguf` extra; Colab does not ship it).
The text encoders a plan puts in NF4 are quantized while loading, as in any NF4 plan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from masuka_nb.errors import DependencyMissingError, ModelFilesMissingError
from masuka_nb.log import get_logger

__all__ = ["gguf_components", "gguf_file"]

log = get_logger(__name__)

MAX_GGUF_BYTES = 64 * 1024**3  # the largest image transformers (Qwen-Image BF16) are ≈ 41 GB


def gguf_file(source: str, *, progress: Any = None) -> Path:
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


def gguf_components(spec: Any, plan: Any, dplan: Any, dtype: Any, progress: Any, *,
                    nf4: dict[str, Any]) -> dict[str, Any]:
    """`from_pretrained` keyword arguments for a GGUF plan: the transformer loaded from its GGUF file, and the
    NF4 quantization (`nf4`: the engine's BitsAndBytesConfig arguments) of the text encoders the plan also
    quantizes."""
    import diffusers

    try:
        import gguf  # noqa: F401 - diffusers reads the file with it
    except ImportError as exc:
        raise DependencyMissingError("A GGUF transformer needs the `gguf` package.", argument="quantization",
                                     value=plan.quantization, hint="pip install 'masuka-nb[gguf]' (or `pip install gguf`)."
                                     ) from exc
    folder = _model_folder(spec, dplan, progress)
    file = gguf_file(plan.quantized_file, progress=progress)
    cls = getattr(diffusers, _transformer_class(folder))
    from diffusers import GGUFQuantizationConfig

    transformer = cls.from_single_file(str(file), quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
                                       config=str(folder), subfolder="transformer", torch_dtype=dtype)
    out: dict[str, Any] = {"transformer": transformer}
    encoders = [c for c in plan.quantized_components if c != "transformer"]
    if encoders:
        from diffusers import PipelineQuantizationConfig

        out["quantization_config"] = PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit", quant_kwargs=nf4, components_to_quantize=encoders)
    return out


def _model_folder(spec: Any, dplan: Any, progress: Any) -> Path:
    if spec.tiny:
        from masuka_nb.models.tiny import ensure_tiny

        return ensure_tiny(spec.id)
    from masuka_nb.hub import locate_model

    return locate_model(spec, dplan, progress=progress)


def _transformer_class(folder: Path) -> str:
    import json

    config = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
    return str(config["_class_name"])
