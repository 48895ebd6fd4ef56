"""bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community" notice never reaches the user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_generate_on_a_cpu_prints_no_bitsandbytes_kernel_notice(tmp_path):
    pytest.importorskip("bitsandbytes")
    code = ("import masuka_nb as mk; r = mk.generate('a fox', model='tiny-flux', steps=1, width=32, height=32, "
            "save=False); print('images', len(r.images))")
    env = {**os.environ, "MASUKA_HOME": str(tmp_path / "home"), "MASUKA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "MASUKA_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "images 1" in done.stdout, done.stderr[-2000:]
    assert "gemm_4bit_forward" not in done.stderr
