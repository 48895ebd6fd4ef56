"""Third-party notices: the import-time ones are dropped at their own logger, only those, and the demo
(the README's first command) writes nothing to stderr but MASUKA's own progress lines."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from masuka_nb.quiet import IMPORT_NOTICES, hush_import_notices

ROOT = Path(__file__).resolve().parents[1]
BNB_NOTICE = ("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. "
              "Please make sure you already `pip install kernels` and the kernels >= 0.11.1")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "MASUKA_HOME": str(tmp_path / "home")}


def test_the_bitsandbytes_kernel_notice_is_dropped_and_nothing_else(caplog):
    hush_import_notices()
    hush_import_notices()  # idempotent: one filter, not two
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="bitsandbytes"):
        logger.warning(BNB_NOTICE)
        logger.warning("bitsandbytes: something else went wrong")
        logging.getLogger("bitsandbytes.cextension").warning(BNB_NOTICE)  # only the logger that prints it
    assert [r.getMessage() for r in caplog.records] == ["bitsandbytes: something else went wrong", BNB_NOTICE]
    assert set(IMPORT_NOTICES) == {"bitsandbytes.backends.cpu.ops"}


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
def test_importing_bitsandbytes_after_masuka_prints_no_kernel_notice(tmp_path):
    """In a fresh process, as in a notebook: the notice is printed at import (on CPUs with AVX512-BF16)."""
    code = "import masuka_nb, bitsandbytes"  # diffusers 0.39 (Colab's) imports it on `import diffusers`
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path),
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "kernels-community" not in result.stderr and "gemm_4bit" not in result.stderr, result.stderr


@pytest.mark.slow
def test_the_demo_writes_only_masukas_progress_lines_to_stderr(tmp_path):
    result = subprocess.run([sys.executable, "-m", "masuka_nb", "demo", "--steps", "1"], capture_output=True,
                            text=True, env=_env(tmp_path), timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 image(s) generated" in result.stdout
    foreign = [line for line in result.stderr.splitlines()
               if line.strip() and not re.match(r"^generate: \d+/\d+ \(\d+\.\d s\) step \d+/\d+$", line)]
    assert foreign == [], result.stderr
