"""Layers point one way: every import in the package, read from the source, must point down the declared order.

    ui → facades (jobs, checkup) → engines over the image engine (creative, lora, video) → image (the base
    engine) → services (hosted, hub, memory, models, host, buckets) → foundation (config, runtime, storage,
    history, progress, log, secrets, quiet, mp4) → errors

What counts as an import: `import` and `from ... import` at module level and inside functions; a name
reached through a lazy package (`mk.lora.train` after `import masuka_nb as mk`, `from masuka_nb.image
import generate`) is an edge to the module that defines it; `importlib.import_module("masuka_nb.x")` and
the UI's `engine_api("masuka_nb.x", ...)` with a literal module name are edges too. An import under
``if TYPE_CHECKING:`` is not an edge (it never runs). Edges inside one layer are allowed; no cycles.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "masuka_nb"

# Bottom to top. A module's layer is the first entry whose prefix matches it (most specific prefixes first).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("masuka_nb.errors", "masuka_nb._version", "masuka_nb._redact")),
    ("foundation", ("masuka_nb.config", "masuka_nb.runtime", "masuka_nb.storage", "masuka_nb.history",
                    "masuka_nb.progress", "masuka_nb.log", "masuka_nb.secrets", "masuka_nb.quiet",
                    "masuka_nb._lazy", "masuka_nb.mp4", "masuka_nb.memory_figures")),
    ("services", ("masuka_nb.hosted", "masuka_nb.hub", "masuka_nb.memory", "masuka_nb.models", "masuka_nb.host",
                  "masuka_nb.buckets")),
    ("image", ("masuka_nb.image",)),
    ("engines", ("masuka_nb.creative", "masuka_nb.lora", "masuka_nb.video")),
    ("facades", ("masuka_nb.jobs", "masuka_nb.checkup")),
    ("ui", ("masuka_nb.ui",)),
    ("entry points", ("masuka_nb.testing", "masuka_nb.__main__", "masuka_nb")),
]

# The only edges allowed to point up (or to close a cycle): lazy, made inside one function, each documented
# where it is made. The test below fails when one of them no longer exists, so the list only shrinks.
DOCUMENTED_LAZY_EDGES = {
    # TrainingRun.resume() carries a run on, so the run record reaches back to the trainer, inside that method only.
    ("masuka_nb.lora.runs", "masuka_nb.lora.trainer"),
    # ImageEngine.generate (public) forwards to the front door at call time; everything else in the image room
    # points pipeline → engine.
    ("masuka_nb.image.engine", "masuka_nb.image.generation"),
    # storage.sync, the old name of buckets.sync, kept for one release with a DeprecationWarning.
    ("masuka_nb.storage", "masuka_nb.buckets"),
}


def layer_of(module: str) -> int:
    best, rank = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _lazy_tables(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """package → {public name: defining module} from each package's `_LAZY` table (read as a literal)."""
    tables: dict[str, dict[str, str]] = {}
    for name, path in modules.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(
                node, ast.Assign) and len(node.targets) == 1 else None)
            if isinstance(target, ast.Name) and target.id == "_LAZY" and node.value is not None:
                table = ast.literal_eval(node.value)
                tables[name] = {k: (v if isinstance(v, str) else v[0]) for k, v in table.items()}
    return tables


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    tables = _lazy_tables(modules)

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def through(package: str, attr: str) -> str | None:
        """`package.attr` as the module that defines it (a submodule, or a lazy name)."""
        if f"{package}.{attr}" in modules:
            return f"{package}.{attr}"
        return tables.get(package, {}).get(attr)

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
        out: set[str | None] = set()
        aliases: dict[str, str] = {}  # local name → the lazy package it is bound to
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    if not a.name.startswith("masuka_nb"):
                        continue
                    if a.name in tables:  # a lazy package: the edge is to what is used through it
                        aliases[a.asname or a.name.split(".")[0]] = a.name
                        if a.asname is None and a.name != "masuka_nb":
                            aliases["masuka_nb"] = "masuka_nb"
                    else:
                        out.add(owner(a.name))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = pkg + ("." + base if base else "")
                if not base.startswith("masuka_nb"):
                    continue
                for a in node.names:
                    target = through(base, a.name) if base in tables else None
                    if f"{base}.{a.name}" in tables:
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
                    elif target is not None:
                        out.add(owner(target))
                    else:
                        out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else owner(base))
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and node.args[0].value.startswith("masuka_nb"):
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if func in ("import_module", "engine_api"):
                    module = node.args[0].value
                    attr = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                        else None
                    out.add(owner(through(module, attr) or module) if attr and module in tables else owner(module))
        # Names reached through a lazy package: mk.lora.train → masuka_nb.lora.training.
        for node in ast.walk(tree):
            if id(node) in skipped or not isinstance(node, ast.Attribute):
                continue
            chain, inner = [], node
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if not isinstance(inner, ast.Name) or inner.id not in aliases:
                continue
            package, found = aliases[inner.id], None
            for attr in reversed(chain):
                step = through(package, attr)
                if step is None:
                    break
                found = step
                if step not in tables:
                    break
                package = step
            out.add(owner(found) if found else None)
        out.discard(name)
        out.discard(None)
        edges[name] = {m for m in out if m and m != "masuka_nb"}
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


def test_no_import_points_up_the_layers():
    edges = _edges(_modules())
    upward = sorted((a, b) for a, targets in edges.items() for b in targets
                    if layer_of(b) > layer_of(a) and (a, b) not in DOCUMENTED_LAZY_EDGES)
    described = [f"  {a} ({LAYERS[layer_of(a)][0]}) → {b} ({LAYERS[layer_of(b)][0]})" for a, b in upward]
    assert not upward, "imports pointing up the layers:\n" + "\n".join(described)


def test_the_package_has_no_import_cycles():
    edges = _edges(_modules())
    for a, b in DOCUMENTED_LAZY_EDGES:
        edges.get(a, set()).discard(b)
    cycles = _cycles(edges)
    described = ["  " + " ↔ ".join(c) + "\n" + "\n".join(f"      {a} → {b}" for a in c for b in sorted(edges[a]) if b in c)
                 for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_allow_listed_edges_still_exist_and_are_made_inside_a_function():
    """An allow-list entry whose edge is gone must be removed, so the list only ever shrinks; and a lazy edge
    is lazy: never a module-level import."""
    modules = _modules()
    edges = _edges(modules)
    stale = sorted((a, b) for a, b in DOCUMENTED_LAZY_EDGES if b not in edges.get(a, set()))
    assert not stale, f"remove these from the allow-list in {Path(__file__).name}: {stale}"
    for a, b in DOCUMENTED_LAZY_EDGES:
        top = ast.parse(modules[a].read_text(encoding="utf-8")).body
        assert not any(isinstance(n, ast.ImportFrom) and (n.module or "").startswith(b) for n in top), (a, b)


def test_the_edge_reader_sees_lazy_names_and_function_local_imports():
    edges = _edges(_modules())
    # ui reaches the LoRA trainer through the lazy package (`mk.lora.train` or engine_api): an edge all the same
    assert any(t.startswith("masuka_nb.lora") for m, ts in edges.items() if m.startswith("masuka_nb.ui") for t in ts)
    assert "masuka_nb.image.generation" in edges["masuka_nb.image.replay"]
    assert layer_of("masuka_nb.image.pipeline") < layer_of("masuka_nb.video.local") < layer_of("masuka_nb.ui.video")


def test_an_upward_import_is_seen_wherever_it_hides(tmp_path):
    """The reader on made-up modules: a function-local import, a lazy-package attribute and an importlib call
    from the foundation up to an engine are all edges that point up."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('_LAZY = {"generate": "masuka_nb.image.generation"}\n')
    (tmp_path / "config.py").write_text("def f():\n    from masuka_nb.image.generation import run\n")
    (tmp_path / "history.py").write_text("import masuka_nb.image as mk\n\ndef g():\n    return mk.generate\n")
    (tmp_path / "storage.py").write_text("import importlib\nimportlib.import_module('masuka_nb.video.local')\n")
    (tmp_path / "gen.py").write_text("")
    modules = {"masuka_nb.config": tmp_path / "config.py", "masuka_nb.history": tmp_path / "history.py",
               "masuka_nb.storage": tmp_path / "storage.py", "masuka_nb.image": tmp_path / "pkg" / "__init__.py",
               "masuka_nb.image.generation": tmp_path / "gen.py", "masuka_nb.video.local": tmp_path / "gen.py"}
    edges = _edges(modules)
    assert edges["masuka_nb.config"] == {"masuka_nb.image.generation"}
    assert edges["masuka_nb.history"] == {"masuka_nb.image.generation"}
    assert edges["masuka_nb.storage"] == {"masuka_nb.video.local"}
    assert all(layer_of(b) > layer_of(a) for a, targets in edges.items() if a != "masuka_nb.image" for b in targets)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_hosted_imports_neither_video_nor_lora():
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
    for room in ("image", "lora", "video", "hosted", "creative"):
        for path in (PACKAGE / room).rglob("*.py"):
            assert "import ipywidgets" not in path.read_text(encoding="utf-8"), path
