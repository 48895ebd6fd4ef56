"""Prompt templates: `a {red|blue} car` (choices) and `__style__` (a wildcard file: one choice per line).

    expand("a {red|blue} car, __style__")   # every combination, in order
    expand("a {red|blue} car", mode="random", count=8, seed=1)   # 8 picks, reproducible

Wildcard files live in `<home>/wildcards/<name>.txt` (or `wildcards_dir=`); blank lines and lines
starting with `#` are skipped, and a wildcard line may itself hold `{a|b}` choices. Prompt files
(`.txt`, one prompt per line) are read by `read_prompts`.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from pathlib import Path

from masuka_nb.errors import InvalidRequestError

__all__ = ["MAX_EXPANSION", "expand", "read_prompts", "wildcard_names"]

MAX_EXPANSION = 10_000
_WILDCARD = re.compile(r"__([A-Za-z0-9_\-/]+?)__")


def wildcard_names(*, wildcards_dir: str | Path | None = None) -> list[str]:
    """The wildcard files there are (their names, for `__name__`)."""
    folder = _folder(wildcards_dir)
    return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []


def read_prompts(path: str | Path) -> list[str]:
    """A prompt file: one prompt (or template) per line; blank lines and `#` comments skipped."""
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(f"No prompt file at {file}.", argument="prompts_or_template", value=str(file),
                                  hint="Pass a .txt file with one prompt per line, a list of prompts, or a template.")
    lines = [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines()]
    prompts = [ln for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise InvalidRequestError(f"The prompt file {file} holds no prompt.", argument="prompts_or_template",
                                  value=str(file), hint="Write one prompt per line.")
    return prompts


def expand(
    template: str,
    *,
    mode: str = "all",
    count: int | None = None,
    seed: int = 0,
    wildcards_dir: str | Path | None = None,
    limit: int = MAX_EXPANSION,
) -> list[str]:
    """The prompts a template stands for: every combination (`mode="all"`) or `count` random picks."""
    if not isinstance(template, str) or not template.strip():
        raise InvalidRequestError("The template is empty.", argument="prompts_or_template", value=template,
                                  hint="e.g. \"a {red|blue} car at night\"")
    if mode not in ("all", "random"):
        raise InvalidRequestError(f"Unknown template mode {mode!r}.", argument="mode", value=mode,
                                  hint="Use mode=\"all\" (every combination) or mode=\"random\" with count=.")
    text = _fill_wildcards(template, _folder(wildcards_dir), depth=0)
    parts = _parse(text, template)
    if mode == "random":
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidRequestError("`count` must be a whole number ≥ 1 with mode=\"random\".", argument="count",
                                      value=count, hint="e.g. count=8")
        rng = random.Random(seed)
        return [" ".join("".join(rng.choice(p) for p in parts).split()) for _ in range(count)]
    total = 1
    for p in parts:
        total *= len(p)
    if total > limit:
        raise InvalidRequestError(f"The template stands for {total} prompts (limit {limit}).",
                                  argument="prompts_or_template", value=template,
                                  hint="Use fewer choices, or mode=\"random\" with count=.")
    prompts = ["".join(combo) for combo in itertools.product(*parts)]
    return [" ".join(p.split()) for p in prompts]  # an empty choice leaves no double space


def _folder(wildcards_dir: str | Path | None) -> Path:
    if wildcards_dir is not None:
        return Path(wildcards_dir)
    from masuka_nb.config import settings

    return settings().home / "wildcards"


def _fill_wildcards(text: str, folder: Path, *, depth: int) -> str:
    """Each `__name__` becomes `{line1|line2|...}` from its file (wildcards inside lines are filled too)."""
    if depth > 5:
        raise InvalidRequestError("Wildcards nest more than 5 deep (a wildcard file names itself?).",
                                  argument="prompts_or_template", value=text[:200], hint="Check the wildcard files.")

    def one(match: re.Match) -> str:
        name = match.group(1)
        file = folder / f"{name}.txt"
        if not file.is_file():
            known = ", ".join(wildcard_names(wildcards_dir=folder)) or "none yet"
            raise InvalidRequestError(f"No wildcard file for __{name}__ (looked for {file}).",
                                      argument="prompts_or_template", value=f"__{name}__",
                                      hint=f"Create {file} with one choice per line. Known: {known}.")
        lines = [ln.strip() for ln in file.read_text(encoding="utf-8").splitlines()]
        choices = [ln for ln in lines if ln and not ln.startswith("#")]
        if not choices:
            raise InvalidRequestError(f"The wildcard file {file} is empty.", argument="prompts_or_template",
                                      value=f"__{name}__", hint="Write one choice per line.")
        return "{" + "|".join(_fill_wildcards(c, folder, depth=depth + 1) for c in choices) + "}"

    return _WILDCARD.sub(one, text)


def _parse(text: str, original: str) -> list[Sequence[str]]:
    """Split into fixed text and choice groups (each a list of choices). Groups do not nest."""
    parts: list[Sequence[str]] = []
    buf, i = "", 0
    while i < len(text):
        ch = text[i]
        if ch == "}":
            raise _unbalanced(original, "a `}` closes no `{`")
        if ch != "{":
            buf += ch
            i += 1
            continue
        close = text.find("}", i + 1)
        inner_open = text.find("{", i + 1)
        if close < 0:
            raise _unbalanced(original, "a `{` is never closed")
        if 0 <= inner_open < close:
            choices = _nested(text, i)
            parts.append([buf])
            buf = ""
            parts.append(choices[0])
            i = choices[1]
            continue
        parts.append([buf])
        buf = ""
        parts.append(text[i + 1:close].split("|"))
        i = close + 1
    parts.append([buf])
    return [p for p in parts if p != [""]]


def _nested(text: str, start: int) -> tuple[list[str], int]:
    """A group holding groups (from a wildcard line with choices): expanded into its flat choices."""
    depth, i = 0, start
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    if depth:
        raise _unbalanced(text, "a `{` is never closed")
    body = text[start + 1:i]
    options, level, cur = [], 0, ""
    for ch in body:
        if ch == "|" and level == 0:
            options.append(cur)
            cur = ""
            continue
        level += ch == "{"
        level -= ch == "}"
        cur += ch
    options.append(cur)
    flat = [choice for opt in options for choice in _combos(opt)]
    return flat, i + 1


def _combos(text: str) -> list[str]:
    parts = _parse(text, text)
    return ["".join(c) for c in itertools.product(*parts)] if parts else [""]


def _unbalanced(template: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"The template is unbalanced: {why}.", argument="prompts_or_template",
                               value=template, hint="Each choice group is {a|b|c}: one `{`, one `}`.")
