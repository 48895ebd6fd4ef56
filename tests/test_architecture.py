"""Layers point one way: walk every import in the package (module level and inside functions) and fail on a cycle.

ui → engines (image, lora, video, batch) → hosted / models+memory / hub → config, runtime, storage,
history, progress → errors. An import under ``if TYPE_CHECKING:`` is not an edge (it never runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "masuka_nb"

# Lazy edges that stay, each documented where it is made.
DOCUMENTED_LAZY_EDGES = {
    # TrainingRun.resume() carries a run on, so the run record reaches back to the trainer, inside that method only.
    ("masuka_nb.lora.runs", "masuka_nb.lora.trainer"),
    # ImageEngine.generate (public) forwards to the front door at call time; everything else in the image room
    # points generation → denoise → engine (tests/image/test_image_layers.py pins it).
    ("masuka_nb.image.engine", "masuka_nb.image.generation"),
}

# Cycles still being cut. An entry whose edge no longer exists fails the test below, so a cut cycle cannot
# hide a new one.
PENDING_CYCLE_EDGES: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
        out: set[str | None] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                out |= {owner(a.name) for a in node.names if a.name.startswith("masuka_nb")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = pkg + ("." + base if base else "")
                if base.startswith("masuka_nb"):
                    out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else owner(base) for a in node.names}
        out.discard(name)
        out.discard(None)
        edges[name] = {m for m in out if m}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


def test_the_package_has_no_import_cycles():
    edges = _edges(_modules())
    for a, b in DOCUMENTED_LAZY_EDGES | PENDING_CYCLE_EDGES:
        edges.get(a, set()).discard(b)
    cycles = _cycles(edges)
    described = ["  " + " ↔ ".join(c) + "\n" + "\n".join(f"      {a} → {b}" for a in c for b in sorted(edges[a]) if b in c)
                 for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_allow_listed_edges_still_exist():
    """An allow-list entry whose edge is gone must be removed, so the list only ever shrinks."""
    edges = _edges(_modules())
    stale = sorted((a, b) for a, b in DOCUMENTED_LAZY_EDGES | PENDING_CYCLE_EDGES if b not in edges.get(a, set()))
    assert not stale, f"remove these from the allow-lists in {Path(__file__).name}: {stale}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_hosted_imports_neither_video_nor_lora():
    import re

    # what `grep` would find: an import statement, or a module path in quotes for importlib
    pattern = re.compile(r"^\s*(from|import)\s+masuka_nb\.(video|lora)\b|^\s*from\s+masuka_nb\s+import\s+.*\b(video|lora)\b"
                         r"|[\"']masuka_nb\.(video|lora)\b", re.M)
    for path in (PACKAGE / "hosted").rglob("*"):
        if path.suffix in (".py", ".json"):
            hit = pattern.search(path.read_text(encoding="utf-8"))
            assert hit is None, f"{path.relative_to(PACKAGE)}: {hit.group(0)!r}"
    edges = _edges(_modules())
    for module, targets in edges.items():
        if module.startswith("masuka_nb.hosted"):
            assert not {t for t in targets if t.startswith(("masuka_nb.video", "masuka_nb.lora", "masuka_nb.ui"))}, module


def test_engines_never_import_ipywidgets():
    for room in ("image", "lora", "video", "hosted"):
        for path in (PACKAGE / room).rglob("*.py"):
            assert "import ipywidgets" not in path.read_text(encoding="utf-8"), path
