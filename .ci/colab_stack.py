"""Colab's package stack off Colab: the constraints, the package lists and the check used by `.ci/colab-stack.sh`.

Colab's image is `tests/data/colab/pip-freeze.gpu.txt` (Python 3.13). CI rebuilds the part of it that MASUKA
and its tests use in a Python 3.13 venv, with every line of that freeze as a constraint, except:

- **direct-URL lines** (``name @ url``): google-colab (``file:///colabtools/...``, only on Colab's disk),
  jupyter_kernel_gateway (a git commit on GitHub), cucim/cuvs/nx-cugraph (pypi.nvidia.com) and
  en_core_web_sm (a GitHub release). None is on PyPI at that address, the only registry CI reaches, and a
  constraint ``name @ url`` would make pip fetch that URL.
- **local version labels** are stripped, the pin kept: ``torch==2.11.0+cu128`` becomes ``torch==2.11.0``
  (also torchvision, torchaudio). The ``+cu128`` builds live only on PyTorch's own index; PyPI's 2.11.0 is
  the same release built for CUDA 13.0.
- **CUDA runtime wheels**: the ``nvidia-*`` CUDA libraries and NVIDIA's ``cuda-*`` Python packages. They
  belong to Colab's CUDA 12.8 torch build; PyPI's torch 2.11.0 requires its own CUDA 13.0 set at other
  versions (cuda-toolkit==13.0.2, cuda-bindings>=13.0.3, nvidia-nccl-cu13==2.28.9, ...), and cannot even be
  imported without them (``libcudnn.so.9``), so those pins would make the stack unsolvable. nvidia-ml-py
  (NVML bindings, not a CUDA runtime) keeps its pin.

Nothing else is dropped. Packages that are not on PyPI for Linux/Python 3.13 at the freeze's version would fail
the install loudly rather than be dropped quietly.

    python .ci/colab_stack.py constraints OUT      # write the constraints file; print what was dropped and why
    python .ci/colab_stack.py image-packages       # MASUKA's (and its tests') requirements that Colab ships
    python .ci/colab_stack.py missing-dev          # the dev extra's requirements that are not installed yet
    python .ci/colab_stack.py pins OUT             # constraints plus a pin of every installed package (for test tools)
    python .ci/colab_stack.py verify [--test-tools-installed]   # exit 1 if an installed package is not at Colab's version
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FREEZE = ROOT / "tests" / "data" / "colab" / "pip-freeze.gpu.txt"
# Colab ships them and MASUKA's tests reach them without naming them in pyproject.toml: torchvision switches
# transformers' image processors to their torchvision backend (what Colab users run).
ALSO_FROM_THE_IMAGE = ("torchvision",)
# What the test tools Colab lacks need at another version than Colab's (and nothing of MASUKA's uses):
# s3fs (the s3:// tests) at Colab's fsspec 2025.3.0 is s3fs 2025.3.x, which needs aiobotocore 2.x, which
# needs wrapt < 2; Colab has wrapt 2.3.0 (only tensorflow-side packages of Colab's use it).
TEST_TOOL_EXCEPTIONS = frozenset({"wrapt"})
_CUDA_RUNTIME = re.compile(r"^(nvidia-(?!ml-py$).+|cuda-(toolkit|bindings|python|core|pathfinder))$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Dropped:
    line: str
    reason: str


def constraints(freeze: Path = FREEZE) -> tuple[list[str], list[Dropped]]:
    """(constraint lines, what was left out of the freeze and why): the policy in this module's docstring."""
    keep: list[str] = []
    dropped: list[Dropped] = []
    for raw in freeze.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if " @ " in line:
            dropped.append(Dropped(line, "direct URL: not on PyPI at that address (Colab's disk, GitHub, pypi.nvidia.com)"))
            continue
        name, _, version = line.partition("==")
        if _CUDA_RUNTIME.match(canonical(name)):
            dropped.append(Dropped(line, "CUDA runtime of Colab's cu128 torch build; PyPI's torch needs its CUDA 13 set"))
            continue
        public, _, label = version.partition("+")
        if label:
            dropped.append(Dropped(line, f"local label +{label} (PyTorch's own index): kept as {name}=={public}"))
        keep.append(f"{canonical(name)}=={public}")
    return sorted(keep), dropped


def freeze_versions(freeze: Path = FREEZE) -> dict[str, str]:
    """Canonical name -> the public version the stack must have (after the policy above)."""
    lines, _ = constraints(freeze)
    return dict(line.split("==", 1) for line in lines)


def _requirements() -> dict[str, list[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    groups = {"": list(meta.get("dependencies", []))}
    groups.update({k: list(v) for k, v in meta.get("optional-dependencies", {}).items()})
    return groups


def _name(requirement: str) -> str:
    return canonical(re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0))


def image_packages(freeze: Path = FREEZE) -> list[str]:
    """Every package MASUKA or its tests require (any extra) that Colab's image ships, plus ALSO_FROM_THE_IMAGE:
    installed first, at Colab's versions, so the venv looks like Colab before setup runs."""
    colab = freeze_versions(freeze)
    wanted = {_name(r) for reqs in _requirements().values() for r in reqs if not r.startswith("masuka-nb")}
    wanted |= set(ALSO_FROM_THE_IMAGE)
    return sorted(n for n in wanted if n in colab)


def installed() -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"]:
            found.setdefault(canonical(dist.metadata["Name"]), dist.version)
    return found


def missing_dev() -> list[str]:
    """The dev extra's requirements whose package is not installed (test tools Colab lacks)."""
    have = installed()
    return [r for r in _requirements()["dev"] if _name(r) not in have]


def differences(freeze: Path = FREEZE) -> list[str]:
    """Installed packages whose version is not Colab's (local labels aside)."""
    colab = freeze_versions(freeze)
    return [f"{name} {version} (Colab has {colab[name]})" for name, version in sorted(installed().items())
            if name in colab and version.partition("+")[0] != colab[name]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("constraints").add_argument("out", type=Path)
    sub.add_parser("pins").add_argument("out", type=Path)
    sub.add_parser("image-packages")
    sub.add_parser("missing-dev")
    sub.add_parser("verify").add_argument("--test-tools-installed", action="store_true",
                                          help="allow TEST_TOOL_EXCEPTIONS (after the test tools came in)")
    args = parser.parse_args(argv)
    if args.command in ("constraints", "pins"):
        lines, dropped = constraints()
        if args.command == "pins":
            # Test tools Colab lacks: every installed package stays where it is, and what they bring in
            # comes at Colab's version too, except TEST_TOOL_EXCEPTIONS.
            held = {**dict(line.split("==", 1) for line in lines), **installed()}
            lines = [f"{n}=={v}" for n, v in sorted(held.items()) if n != "masuka-nb" and n not in TEST_TOOL_EXCEPTIONS]
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if args.command == "constraints":
            print(f"{len(lines)} constraints from {FREEZE.name}; dropped or changed {len(dropped)}:")
            for d in dropped:
                print(f"  {d.line}  -- {d.reason}")
        return 0
    if args.command == "image-packages":
        print("\n".join(image_packages()))
        return 0
    if args.command == "missing-dev":
        print("\n".join(missing_dev()))
        return 0
    moved = differences()
    if args.test_tools_installed:
        for line in [m for m in moved if m.split()[0] in TEST_TOOL_EXCEPTIONS]:
            print(f"test tools need {line}: see TEST_TOOL_EXCEPTIONS")
        moved = [m for m in moved if m.split()[0] not in TEST_TOOL_EXCEPTIONS]
    for line in moved:
        print(f"NOT COLAB'S VERSION: {line}")
    print(f"{len(moved)} installed package(s) differ from Colab's image" if moved
          else "every installed package that Colab ships is at Colab's version")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
