"""Exported LoRAs carry kohya ss_* and ModelSpec metadata: base model, trigger words, dim/alpha and hashes, as a
safetensors metadata reader (the `safetensors` library, and the raw header A1111/Forge parse) shows them."""

from __future__ import annotations

import json
import struct

import torch
from safetensors import safe_open

from masuka_nb.hosted.civitai import find_in_library
from masuka_nb.lora.export import addnet_hash, export_lora
from masuka_nb.testing.fakes.civitai import civitai_hashes

MODULES = ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v",
           "transformer_blocks.0.attn.to_out.0"]


def _state(rank: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    out = {}
    for m in MODULES:
        out[f"{m}.lora_A.weight"] = torch.randn(rank, 32, generator=gen)
        out[f"{m}.lora_B.weight"] = torch.randn(32, rank, generator=gen)
    return out


def _raw_header(path) -> dict:
    """What A1111's and Forge's readers do: 8 bytes of length, then the JSON header with __metadata__."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n])["__metadata__"]


def test_both_files_tell_base_model_trigger_rank_and_hash(masuka_home):
    meta = {"base_model": "tiny-flux", "trigger_word": "mkfox", "steps": 40, "rank": 4, "learning_rate": 1e-4,
            "resolution": 512, "images": 12, "seed": 3}
    folder = export_lora(_state(), name="mkfox", meta=meta)
    for file, module in ((folder / "pytorch_lora_weights.safetensors", "peft"),
                         (folder / "mkfox.kohya.safetensors", "networks.lora_flux")):
        with safe_open(str(file), framework="pt") as fh:
            md = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not a dict)
        assert md == _raw_header(file)
        assert (md["ss_base_model_version"], md["ss_network_module"], md["ss_network_dim"], md["ss_network_alpha"]) \
            == ("flux1", module, "4", "4")
        assert md["modelspec.architecture"] == "tiny-flux/lora" and md["modelspec.trigger_phrase"] == "mkfox"
        assert md["modelspec.title"] == "mkfox" and md["base_model"] == "tiny-flux" and md["trigger_word"] == "mkfox"
        assert json.loads(md["ss_tag_frequency"]) == {"mkfox": {"mkfox": 12}}
        assert (md["ss_steps"], md["ss_num_train_images"], md["ss_resolution"]) == ("40", "12", "(512, 512)")
        # the hash is the tensor-bytes hash A1111/Civitai use (AutoV3 = its first 12 hex)
        assert md["sshs_model_hash"] == addnet_hash(tensors)
        assert md["modelspec.hash_sha256"] == "0x" + md["sshs_model_hash"]
        assert civitai_hashes(file.read_bytes())["AutoV3"] == md["sshs_model_hash"][:12].upper()
    assert find_in_library(version_id=1) is None


def test_real_model_ids_map_to_modelspec_architectures(masuka_home, tmp_path):
    folder = export_lora(_state(), name="devstyle", meta={"base_model": "flux1-dev", "trigger_word": "", "rank": 4},
                         loras_dir=tmp_path / "out", kohya=False)
    with safe_open(str(folder / "pytorch_lora_weights.safetensors"), framework="pt") as fh:
        md = fh.metadata()
    assert md["modelspec.architecture"] == "flux-1-dev/lora" and md["ss_sd_model_name"] == "black-forest-labs/FLUX.1-dev"
    assert "modelspec.trigger_phrase" in md and md["modelspec.trigger_phrase"] == ""
