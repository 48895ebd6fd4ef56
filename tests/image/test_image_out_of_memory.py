"""A real allocation failure (address-space limit in a child process) ends as OUT_OF_MEMORY, frees the
pipeline, is recorded, and leaves the runtime usable for the next generation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import masuka_nb as mk

SCRIPT = r'''
import resource
import masuka_nb as mk
from masuka_nb.image.engine import ImageEngine

mk.configure(result_cache=False)
engine = ImageEngine()
engine.generate("warm", model="tiny-flux", width=32, height=32, steps=1, save=False)
vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vm + 200 * 2**20, hard))
try:
    engine.generate("big", model="tiny-flux", width=512, height=512, steps=1, num_images=16, save=False)
    print("NO-OOM")
except mk.MasukaError as err:
    print("CODE", err.code, "LOADED", engine.loaded_model)
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
after = engine.generate("after", model="tiny-flux", width=32, height=32, steps=1, save=False)
print("AFTER", len(after.images), engine.load_count)
'''


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_out_of_memory_is_mapped_freed_recorded_and_recoverable():
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=root,
                         timeout=300)
    lines = out.stdout.split("\n")
    assert "CODE OUT_OF_MEMORY LOADED None" in lines, out.stdout + out.stderr[-2000:]
    assert "AFTER 1 2" in lines  # reloaded and generated again
    failed = mk.history.query(status="failed")
    assert [r.error["code"] for r in failed] == ["OUT_OF_MEMORY"]
    assert "out of memory" in failed[0].error["message"]
