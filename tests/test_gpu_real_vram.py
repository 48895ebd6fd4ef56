"""benchmarks/gpu_real_vram.py --dry-run: the GPU script's whole road on the CPU (folder written where MASUKA
keeps its session copy, planned download finds it without a hub, engine load, generate / generate_local, JSON),
with depth-1 real-config weights (sd35-medium, flux1-schnell) or the tiny twins' (wan2.1, flux2-klein,
zimage-turbo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_real_vram.py"


@pytest.mark.slow
def test_dry_run_walks_every_model_of_the_gpu_run(tmp_path):
    out = tmp_path / "gpu_real_vram.json"
    env = {**os.environ, "MASUKA_HOME": str(tmp_path / "home"), "MASUKA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--in-process", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and [m["model"] for m in report["models"]] == [
        "sd35-medium", "wan2.1-t2v-1.3b", "flux1-schnell", "flux2-klein", "zimage-turbo"]
    for rec in report["models"]:
        assert rec["ok"], rec
        assert set(rec["phases"]) == {"load", "encode + first step", "other steps", "decode"}, rec["model"]
        assert all(p["host_anon_peak_gib"] > 0 for p in rec["phases"].values())
        assert rec["plan"]["loading"] == "pipeline" and rec["plan"]["label"].startswith(rec["model"])
        assert rec["result"].get("fallback") is None and not rec["result"].get("cached")
        assert not Path(rec["written"]["folder"]).exists()  # folders go once measured
    weights = {m["model"]: m["written"] for m in report["models"]}
    assert weights["sd35-medium"]["bytes"] > 1e9  # real widths (depth 1), not a few-MB twin
    assert report["models"][1]["result"]["frames"] == 5


def test_the_gpu_run_refuses_a_machine_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json")], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 2 and "--dry-run" in proc.stderr
