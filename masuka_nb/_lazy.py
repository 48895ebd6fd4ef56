"""Lazy package exports (PEP 562), shared by every package `__init__` in masuka_nb.

A package lists its public names in `_LAZY` (name -> module, or name -> (module, attribute), where an
attribute of None means the module itself) and gets `__getattr__`/`__dir__` from `attach()`. Nothing
heavy is imported until a name is first used, which is what keeps `import masuka_nb` in milliseconds.

One rule keeps this sound: no submodule may be named like a public function of its package
(importing `pkg.generate` would bind the module over the function); tests/test_public_api.py checks it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

Target = str | tuple[str, str | None]


def resolve(target: Target, name: str) -> tuple[str, str | None]:
    return (target, name) if isinstance(target, str) else target


def attach(namespace: dict[str, Any], exports: Mapping[str, Target]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__, __dir__ = attach(globals(), _LAZY)` in a package's `__init__.py`."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        try:
            module_name, attr = resolve(exports[name], name)
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        namespace[name] = value  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
