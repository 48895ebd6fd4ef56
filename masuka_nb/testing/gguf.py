"""Write a GGUF transformer file the way the published ones are written, from a diffusers model (tests, benchmarks).

    write_zimage_gguf(pipe.transformer, path, quant="Q4_0")

Published Z-Image GGUFs (jayn7/Z-Image-Turbo-GGUF, https://huggingface.co/jayn7/Z-Image-Turbo-GGUF) keep the
original checkpoint's names, which diffusers' `convert_z_image_transformer_checkpoint_to_diffusers` converts on
load: one fused `attention.qkv`, `attention.out`, `q_norm`/`k_norm`, `final_layer.`, `x_embedder.`. This writes
that layout with the `gguf` package (llama.cpp's gguf-py): 2-D weights whose rows are a multiple of 32 in
Q4_0 / Q8_0 blocks, everything else in F32, as city96's converter keeps small and 1-D tensors unquantized.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_zimage_gguf", "zimage_original_state_dict"]


def zimage_original_state_dict(transformer: Any) -> dict[str, Any]:
    """The Z-Image transformer's weights under the original checkpoint's names (the inverse of diffusers')."""
    import torch

    sd = transformer.state_dict()
    out = {}
    for k, v in sd.items():
        if ".attention.to_k." in k or ".attention.to_v." in k:
            continue
        if ".attention.to_q." in k:
            out[k.replace(".attention.to_q.", ".attention.qkv.")] = torch.cat(
                [v, sd[k.replace(".to_q.", ".to_k.")], sd[k.replace(".to_q.", ".to_v.")]], dim=0)
            continue
        name = (k.replace(".attention.to_out.0.", ".attention.out.").replace(".attention.norm_q.", ".attention.q_norm.")
                .replace(".attention.norm_k.", ".attention.k_norm.").replace("all_final_layer.2-1.", "final_layer.")
                .replace("all_x_embedder.2-1.", "x_embedder."))
        out[name] = v
    return out


def write_zimage_gguf(transformer: Any, path: str | Path, *, quant: str = "Q4_0") -> Path:
    """Write `transformer` (a ZImageTransformer2DModel) as a GGUF file with `quant` blocks ("Q4_0" or "Q8_0")."""
    import gguf
    import numpy as np

    kind = {"Q4_0": gguf.GGMLQuantizationType.Q4_0, "Q8_0": gguf.GGMLQuantizationType.Q8_0}[quant]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), "lumina2")
    for name, tensor in zimage_original_state_dict(transformer).items():
        array = tensor.detach().float().cpu().numpy().astype(np.float32)
        if array.ndim == 2 and array.shape[1] % 32 == 0 and array.shape[0] > 1:
            blocks = gguf.quants.quantize(array, kind)
            writer.add_tensor(name, blocks, raw_shape=blocks.shape, raw_dtype=kind)
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
