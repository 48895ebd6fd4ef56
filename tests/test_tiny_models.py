import json
import os

import numpy as np
import pytest

from masuka_nb.models.tiny import MARKER, TINY_LABEL, ensure_tiny


@pytest.mark.parametrize("model_id", ["tiny-flux", "tiny-sd3"])
def test_tiny_models_load_offline_and_are_deterministic(model_id):
    import torch
    from diffusers import DiffusionPipeline

    path = ensure_tiny(model_id)
    assert json.loads((path / MARKER).read_text())["label"] == TINY_LABEL
    assert (path / "model_index.json").is_file()
    size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    assert size_mb < 20

    pipe = DiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)

    def run(seed):
        out = pipe("a red fox", num_inference_steps=2, height=64, width=64,
                   generator=torch.Generator().manual_seed(seed))
        return np.asarray(out.images[0])

    a, b, c = run(7), run(7), run(8)
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ensure_tiny_reuses_the_saved_folder():
    first = ensure_tiny("tiny-flux")
    stamp = (first / MARKER).stat().st_mtime_ns
    assert ensure_tiny("tiny-flux") == first
    assert (first / MARKER).stat().st_mtime_ns == stamp


def test_rebuilt_weights_are_identical(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    first = ensure_tiny("tiny-sd3")
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(tmp_path / "other-cache"))
    second = ensure_tiny("tiny-sd3")
    assert first != second
    for rel in ("transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        a, b = load_file(first / rel), load_file(second / rel)
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[k], b[k]) for k in a)


_RACER = r"""
import os, sys
rank = int(sys.argv[1])
if sys.argv[2] == "dist":
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=sys.argv[3], rank=rank, world_size=2)
    if rank == 0:  # let rank 1 reach the empty cache first: the order in which the bug showed
        import time
        time.sleep(3)
from diffusers import DiffusionPipeline
from masuka_nb.models.tiny import ensure_tiny
path = ensure_tiny("tiny-flux")
assert list((path / "text_encoder").glob("*.safetensors")), "text_encoder without weights"
pipe = DiffusionPipeline.from_pretrained(path)
assert pipe.text_encoder is not None and pipe.transformer is not None
print("loaded", path)
"""


@pytest.mark.parametrize("mode", ["plain", "dist"])
def test_two_processes_build_the_same_tiny_model_at_once(tmp_path, mode):
    """Both start on an empty cache; both must get a complete folder. Under torch.distributed,
    transformers saves weights on rank 0 only, so a folder built by rank 1 lacked text_encoder weights."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        init = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    cache = tmp_path / "fresh-cache"
    env = {**os.environ, "MASUKA_CACHE_DIR": str(cache)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(rank), mode, init], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (1, 0)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "loaded" in out
    folder = cache / "tiny" / "tiny-flux-v1"
    assert (folder / MARKER).is_file()
    assert list((folder / "text_encoder").glob("*.safetensors"))
    assert [p.name for p in (cache / "tiny").iterdir() if p.is_dir()] == ["tiny-flux-v1"]
