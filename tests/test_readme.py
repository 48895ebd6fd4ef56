"""The README is the front door: its two commands, and links that match the notebooks and the slug."""

import json
import re
from pathlib import Path

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
    assert "python3 -m pytest" in ci  # CI runs the README's test command


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
