"""The README is the front door: its two commands, and links that match the notebooks and the slug."""

import json
import re
from pathlib import Path

import pytest

from masuka_nb._version import REPOSITORY

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BADGE = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/(notebooks/[\w.-]+\.ipynb)")


def test_readme_starts_with_exactly_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert "masuka_nb demo" in first_block[0]
    assert first_block[1] == "python3 -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    # CI runs the README's commands verbatim (read from the README), inside a fresh venv it creates
    assert 'python3 -m venv "$VENV"' in ci and '. "$VENV/bin/activate"' in ci
    assert 'open("README.md"' in ci and '"${README_COMMANDS[0]}"' in ci and '"${README_COMMANDS[1]}"' in ci
    assert "unset HF_HUB_OFFLINE" in ci


def test_every_notebook_has_a_badge_with_the_one_slug():
    badges = BADGE.findall(README)
    notebooks = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks"
    assert sorted(path for _, path in badges) == notebooks
    assert {slug for slug, _ in badges} == {REPOSITORY}


def test_notebooks_link_to_the_same_slug():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        slugs = set(re.findall(r"github(?:\.com)?/([\w.-]+/masuka)\b", text))
        assert slugs <= {REPOSITORY}, (path.name, slugs)


def _cpu_snippet() -> str:
    section = README.split("### On a CPU, with no hub and no keys", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_cpu_snippet_runs_as_written_with_no_hub_and_no_flag(tmp_path, masuka_home):
    """import → curate → caption → train → generate, verbatim, in a fresh interpreter with HF_HUB_OFFLINE unset."""
    import os
    import subprocess
    import sys

    from PIL import Image

    (tmp_path / "photos").mkdir()
    for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        im = Image.new("RGB", (256, 256), color)
        for x in range(0, 256, 16):
            im.putpixel((x, (x * (i + 1)) % 256), (255, 255, 255))
        im.save(tmp_path / "photos" / f"p{i}.png")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", _cpu_snippet()], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tiny-clip" in done.stdout and "tiny-florence-2" in done.stdout and "model auto: tiny-flux" in done.stdout
    assert len(list((masuka_home / "outputs").rglob("*.png"))) == 1
    for raw in ("Traceback", "OSError", "couldn't connect", "huggingface.co", "Retrying", "FutureWarning",
                "requires torchvision", "Loading pipeline components"):
        assert raw not in done.stderr, (raw, done.stderr[-2000:])
