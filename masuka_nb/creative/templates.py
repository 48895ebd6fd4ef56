"""Prompt templates: `a {red|blue} car` (choices) and `__style__` (a wildcard file: one choice per line).

    expand("a {red|blue} car, __style__")   # every combination, in order
    expand("a {red|blue} car", mode="random", count=8, seed=1)   # 8 picks, reproducible

Wildcard files live in the `wildcards_dir` setting (`<home>/wildcards/<name>.txt`; or `wildcards_dir=`); blank lines and lines
starting with `#` are skipped, and a wildcard line may itself hold `{a|b}` choices. Prompt files
(`.txt`, one prompt per line) are read by `read_prompts`.

A template is parsed once into a tree (text, choice groups, wildcard files shared by reference) and its
size is counted arithmetically before anything is expanded: 23 `{a|b}` groups in one wildcard line are
8,388,608 prompts, refused at once for `mode="all"` and picked from in microseconds for `mode="random"`.
Text files are bounded (`MAX_TEXT_BYTES`) and decoded as UTF-8, else Windows-1252 (never a raw
`UnicodeDecodeError`).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from masuka_nb.config import settings
from masuka_nb.errors import InvalidRequestError, MasukaError
from masuka_nb.storage import read_text_file

__all__ = ["MAX_EXPANSION", "MAX_TEXT_BYTES", "count", "expand", "read_prompts", "wildcard_names"]

MAX_EXPANSION = 10_000
MAX_TEXT_BYTES = 4 * 1024**2  # a prompt or wildcard file; 4 MB is ~50,000 long lines
MAX_TEMPLATE_CHARS = 1_000_000
MAX_DEPTH = 5
_WILDCARD = re.compile(r"__([A-Za-z0-9_\-/]+?)__")


def wildcard_names(*, wildcards_dir: str | Path | None = None) -> list[str]:
    """The wildcard files there are (their names, for `__name__`)."""
    folder = _folder(wildcards_dir)
    try:
        return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []
    except OSError:
        return []


def _read_text(file: Path, *, argument: str, what: str) -> str:
    try:
        return read_text_file(file, max_bytes=MAX_TEXT_BYTES, argument=argument, what=what)
    except MasukaError as exc:  # too big, binary, a FIFO, unreadable: said about this one file
        raise InvalidRequestError(f"The {what} {file} cannot be used: {exc.message}", argument=argument,
                                  value=str(file), hint=exc.hint or "Save it as plain UTF-8 text.") from exc


def read_prompts(path: str | Path) -> list[str]:
    """A prompt file: one prompt (or template) per line; blank lines and `#` comments skipped."""
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(f"No prompt file at {file}.", argument="prompts_or_template", value=str(file),
                                  hint="Pass a .txt file with one prompt per line, a list of prompts, or a template.")
    lines = [ln.strip() for ln in _read_text(file, argument="prompts_or_template", what="prompt file").splitlines()]
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
    if mode == "random":
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= limit:
            raise InvalidRequestError(f"`count` must be a whole number from 1 to {limit} with mode=\"random\".",
                                      argument="count", value=count, hint="e.g. count=8")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidRequestError("`seed` must be a whole number.", argument="seed", value=seed, hint="e.g. seed=1")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidRequestError("`limit` must be a whole number ≥ 1.", argument="limit", value=limit,
                                  hint=f"The default is {MAX_EXPANSION}.")
    tree = _Parser(_folder(wildcards_dir), template).parse()
    if mode == "random":
        rng = random.Random(seed)
        return [" ".join(_pick(tree, rng).split()) for _ in range(count)]
    total = _count(tree)
    if total > limit:
        shown = f"{total:,}" if total < 10**15 else f"about 10^{len(str(total)) - 1}"
        raise InvalidRequestError(f"The template stands for {shown} prompts (limit {limit}).",
                                  argument="prompts_or_template", value=template[:200],
                                  hint="Use fewer choices, or mode=\"random\" with count=.")
    return [" ".join(p.split()) for p in _each(tree)]  # an empty choice leaves no double space


def count(template: str, *, wildcards_dir: str | Path | None = None) -> int:
    """How many prompts `expand(template)` stands for, counted without expanding any of them."""
    if not isinstance(template, str) or not template.strip():
        raise InvalidRequestError("The template is empty.", argument="prompts_or_template", value=template,
                                  hint="e.g. \"a {red|blue} car at night\"")
    return _count(_Parser(_folder(wildcards_dir), template).parse())


def _folder(wildcards_dir: str | Path | None) -> Path:
    if wildcards_dir is not None:
        if not isinstance(wildcards_dir, (str, Path)):
            raise InvalidRequestError("`wildcards_dir` must be a folder path.", argument="wildcards_dir",
                                      value=wildcards_dir, hint="e.g. wildcards_dir=\"/content/wildcards\"")
        return Path(wildcards_dir)
    return settings().wildcards_dir


# ---- the tree: a sequence of text and choice groups; a wildcard file is one group, shared by reference ----

@dataclass(eq=False)
class _Seq:
    parts: list[str | _Group] = field(default_factory=list)


@dataclass(eq=False)
class _Group:
    options: list[_Seq] = field(default_factory=list)
    size: int | None = None  # memo: the same wildcard group may be met many times


def _count(node: _Seq | _Group) -> int:
    if isinstance(node, _Group):
        if node.size is None:
            node.size = sum(_count(o) for o in node.options)
        return node.size
    total = 1
    for part in node.parts:
        if isinstance(part, _Group):
            total *= _count(part)
    return total


def _pick(node: _Seq | _Group, rng: random.Random) -> str:
    if isinstance(node, _Seq):
        return "".join(p if isinstance(p, str) else _pick(p, rng) for p in node.parts)
    if all(not any(isinstance(p, _Group) for p in o.parts) for o in node.options):
        return _pick(rng.choice(node.options), rng)  # plain choices: each equally likely
    # nested choices: each *prompt* equally likely, so an option weighs what it stands for
    r = rng.randrange(_count(node))
    for option in node.options:
        size = _count(option)
        if r < size:
            return _pick(option, rng)
        r -= size
    raise AssertionError("unreachable: r < the group's count")


def _each(node: _Seq | _Group) -> Iterator[str]:
    if isinstance(node, _Group):
        for option in node.options:
            yield from _each(option)
        return
    pools = [[p] if isinstance(p, str) else list(_each(p)) for p in node.parts]
    for combo in itertools.product(*pools):
        yield "".join(combo)


_WILDCARD = re.compile(r"__([A-Za-z0-9_\-/]+?)__")


class _Parser:
    """`text {a|b {c|d}} __name__` into a `_Seq`. `|` separates choices only inside braces."""

    def __init__(self, folder: Path, template: str) -> None:
        if len(template) > MAX_TEMPLATE_CHARS:
            raise InvalidRequestError(f"The template is {len(template):,} characters long (limit "
                                      f"{MAX_TEMPLATE_CHARS:,}).", argument="prompts_or_template",
                                      value=template[:200], hint="Put long lists of choices in a wildcard file.")
        self.folder = folder
        self.template = template
        self.files: dict[str, _Group] = {}

    def parse(self) -> _Seq:
        seq, end = self._seq(self.template, 0, top=True, stack=())
        assert end == len(self.template)
        return seq

    def _seq(self, text: str, i: int, *, top: bool, stack: tuple[str, ...]) -> tuple[_Seq, int]:
        seq, buf = _Seq(), []
        while i < len(text):
            ch = text[i]
            if ch == "}" or (ch == "|" and not top):
                if ch == "}" and top:
                    raise self._unbalanced("a `}` closes no `{`")
                break
            if ch == "{":
                if buf:
                    seq.parts.append("".join(buf))
                    buf = []
                group, i = self._group(text, i + 1, stack)
                seq.parts.append(group)
                continue
            match = _WILDCARD.match(text, i) if ch == "_" else None
            if match:
                if buf:
                    seq.parts.append("".join(buf))
                    buf = []
                seq.parts.append(self._wildcard(match.group(1), stack))
                i = match.end()
                continue
            buf.append(ch)
            i += 1
        if buf:
            seq.parts.append("".join(buf))
        return seq, i

    def _group(self, text: str, i: int, stack: tuple[str, ...]) -> tuple[_Group, int]:
        group = _Group()
        while True:
            option, i = self._seq(text, i, top=False, stack=stack)
            group.options.append(option)
            if i >= len(text):
                raise self._unbalanced("a `{` is never closed")
            if text[i] == "}":
                return group, i + 1
            i += 1  # past the `|`

    def _wildcard(self, name: str, stack: tuple[str, ...]) -> _Group:
        if name in self.files:
            return self.files[name]
        if name in stack or len(stack) >= MAX_DEPTH:
            chain = " → ".join(f"__{n}__" for n in (*stack, name))
            why = f"the wildcard __{name}__ names itself" if name in stack else f"wildcards nest more than {MAX_DEPTH} deep"
            raise InvalidRequestError(f"The template cannot be expanded: {why} ({chain}).",
                                      argument="prompts_or_template", value=f"__{name}__",
                                      hint="Check the wildcard files named in the chain.")
        file = self.folder / f"{name}.txt"
        if not file.is_file():
            known = ", ".join(wildcard_names(wildcards_dir=self.folder)) or "none yet"
            raise InvalidRequestError(f"No wildcard file for __{name}__ (looked for {file}).",
                                      argument="prompts_or_template", value=f"__{name}__",
                                      hint=f"Create {file} with one choice per line. Known: {known}.")
        lines = [ln.strip() for ln in _read_text(file, argument="prompts_or_template",
                                                  what="wildcard file").splitlines()]
        choices = [ln for ln in lines if ln and not ln.startswith("#")]
        if not choices:
            raise InvalidRequestError(f"The wildcard file {file} is empty.", argument="prompts_or_template",
                                      value=f"__{name}__", hint="Write one choice per line.")
        group = _Group()
        for line in choices:  # a line is a choice; `a|b` on one line is two (as in other wildcard tools)
            i = 0
            while True:
                option, i = self._seq(line, i, top=False, stack=(*stack, name))
                group.options.append(option)
                if i >= len(line):
                    break
                if line[i] == "}":
                    raise InvalidRequestError(f"A line of the wildcard file {file} is unbalanced: {line[:120]!r} "
                                              "(a `}` closes no `{`).", argument="prompts_or_template",
                                              value=f"__{name}__", hint="Each choice group is {a|b|c}: one `{`, "
                                              "one `}`.")
                i += 1  # past a `|`
        self.files[name] = group
        return group

    def _unbalanced(self, why: str) -> InvalidRequestError:
        return InvalidRequestError(f"The template is unbalanced: {why}.", argument="prompts_or_template",
                                   value=self.template[:200], hint="Each choice group is {a|b|c}: one `{`, one `}`.")
