"""What a user sees from MASUKA's log: warnings once in MASUKA's words, nothing below WARNING unless the
`log_level` setting asks, and nothing of ours when the application set up logging itself. Each case runs
in a fresh interpreter, as a notebook kernel is (pytest's own log capture would otherwise stand in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = """
import logging, sys
if "app-logging" in sys.argv:
    logging.basicConfig(stream=sys.stdout, format="APP %(name)s %(message)s", level=logging.INFO)
from masuka_nb.log import get_logger
log = get_logger("masuka_nb.demo")
log.warning("curate.no_aesthetic_head", effect="no aesthetic scores")
log.warning("curate.no_aesthetic_head", effect="no aesthetic scores")
log.info("generate.auto_model", model="tiny-flux")
"""


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("MASUKA_")}, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", CODE, *args], capture_output=True, text=True, env=full, timeout=60)


def test_warnings_once_and_info_silent_by_default():
    done = _run()
    assert done.stderr.splitlines() == ["MASUKA warning: curate.no_aesthetic_head effect='no aesthetic scores'"]


def test_the_log_level_setting_turns_info_on():
    done = _run(MASUKA_LOG_LEVEL="INFO")
    assert "MASUKA: generate.auto_model model=tiny-flux" in done.stderr.splitlines()


def test_an_application_that_configured_logging_gets_the_records_instead():
    done = _run("app-logging", MASUKA_LOG_LEVEL="INFO")
    assert done.stderr == ""
    assert done.stdout.count("APP masuka_nb.demo curate.no_aesthetic_head") == 2  # theirs: unfiltered
    assert "APP masuka_nb.demo generate.auto_model model=tiny-flux" in done.stdout
