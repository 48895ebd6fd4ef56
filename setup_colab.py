"""One-shot setup for MASUKA on Google Colab and on any other machine.

    python setup_colab.py [--drive] [--extras colab] [--from PATH_OR_GIT_URL] [--check-only] [--dry-run] [--yes]

or, from a notebook cell (then Drive can be mounted and HF_HOME set in the running kernel)::

    import setup_colab; setup_colab.main(["--drive"])

What it does, in order, and why:
1. Looks at the runtime (Colab or not, Python, GPU via nvidia-smi, RAM, disk) with the standard library only:
   nothing heavy is imported, so it is quick and works before anything is installed.
2. Reads masuka-nb's requirements (plus extras) from the project's pyproject.toml and compares them with what is
   installed (importlib.metadata + packaging). Only what is missing or out of range gets installed.
   torch/torchvision/torchaudio are never installed: Colab's are built for its CUDA, and reinstalling them is the
   most common way Colab setups break; elsewhere a multi-GB CUDA build is not pulled unasked. numpy and the
   Jupyter/ipywidgets stack already present are refused if out of range. Every installed package that the plan
   does not itself upgrade is pinned to its installed version with a pip constraints file, so pip picks releases
   of new packages that fit what is there, and fails rather than move anything the runtime already has.
3. Installs masuka_nb itself with ``--no-deps`` (skipped when the installed copy already matches the source).
   A package of an optional extra (pillow-heif for HEIC import, bitsandbytes, ...) that cannot join without
   moving an installed package is skipped with a clear line; the rest of MASUKA works without it.
4. Proves ``pip check`` is clean, comparing it with ``pip check`` before the install: a problem that was
   already there and involves none of MASUKA's packages is reported as the image's own; a new one is setup's.
   Then checks that no installed package changed version except what the plan upgrades.
5. Keeps HF_HOME and the Xet cache on local disk, and creates MASUKA's home (on Drive when it is mounted).
6. Prints a short summary with timings. Exit status: 0 ready, 1 failed, 2 bad usage, 3 ``--check-only`` found work.

Standard library only, plus ``packaging`` (or the copy vendored in pip) and ``tomllib`` (or pip's ``tomli``),
so it runs on a fresh Python ≥ 3.10 before masuka_nb or any of its dependencies exist.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

try:  # `packaging` is on nearly every Python; pip always carries a copy.
    from packaging.markers import default_environment
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - depends on the interpreter
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import InvalidVersion, Version

try:
    import tomllib
except ImportError:  # Python 3.10
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover - depends on the interpreter
        from pip._vendor import tomli as tomllib

__all__ = [
    "EXIT_CHECK_FOUND_WORK",
    "EXIT_FAILED",
    "EXIT_OK",
    "HOME_SUBFOLDERS",
    "KEEP_INSTALLED",
    "NEVER_INSTALL",
    "Need",
    "Plan",
    "Project",
    "RuntimeReport",
    "SetupError",
    "detect_runtime",
    "installed_distributions",
    "main",
    "plan_requirements",
    "read_project",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CHECK_FOUND_WORK = 3

# Built for Colab's CUDA; a reinstall breaks the runtime (and elsewhere it is a multi-GB download).
NEVER_INSTALL = frozenset({"torch", "torchvision", "torchaudio"})
# Colab's kernel and widget front end depend on these exact versions; never change an installed one.
KEEP_INSTALLED = frozenset(
    {
        "numpy",
        "ipywidgets",
        "widgetsnbextension",
        "jupyterlab-widgets",
        "ipykernel",
        "ipython",
        "notebook",
        "jupyter-client",
        "jupyter-core",
        "jupyter-server",
        "jupyterlab",
        "traitlets",
        "tornado",
        "pyzmq",
    }
)
# The folders `masuka_nb.config.settings()` puts under MASUKA's home (a test keeps the two equal).
HOME_SUBFOLDERS = ("outputs", "history", "loras", "datasets", "jobs", "models", "training", "presets", "wildcards",
                   "inbox")
DRIVE_MOUNT = Path("/content/drive")
COLAB_SOURCE_DIR = Path("/content/masuka-src")
TORCH_HELP = (
    "Install PyTorch for this machine first, then run this again. CPU only: "
    "`pip install torch --index-url https://download.pytorch.org/whl/cpu`; with an NVIDIA GPU pick the command "
    "for your CUDA at https://pytorch.org/get-started/locally/."
)


class SetupError(Exception):
    """A setup step failed; `hint` says what to do about it."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def protected(name: str) -> bool:
    """True for packages setup never installs or changes once present (torch family, numpy, Jupyter stack)."""
    name = canonicalize_name(name)
    return name in NEVER_INSTALL or name in KEEP_INSTALLED or name.startswith("jupyter")


# ---------------------------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class RuntimeReport:
    """Where setup runs. Sizes in GiB (2**30 bytes, as `masuka_nb.doctor()` shows them); None when unreadable."""

    colab: bool
    python: str
    executable: str
    gpu: str | None
    vram_gb: float | None
    compute_capability: str | None
    ram_gb: float | None
    ram_available_gb: float | None
    disk_free_gb: float
    drive_mounted: bool

    def lines(self) -> list[str]:
        gpu = "none (CPU only)"
        if self.gpu:
            gpu = self.gpu + (f", {self.vram_gb:.1f} GiB" if self.vram_gb else "")
            gpu += f", compute capability {self.compute_capability}" if self.compute_capability else ""
        ram = "unknown" if self.ram_gb is None else f"{self.ram_gb:.1f} GiB ({self.ram_available_gb or 0:.1f} GiB free)"
        return [
            f"runtime   {'Google Colab' if self.colab else 'not Colab'}, Python {self.python} ({self.executable})",
            f"gpu       {gpu}",
            f"ram       {ram}",
            f"disk      {self.disk_free_gb:.1f} GiB free",
            f"drive     {'mounted at ' + str(drive_root()) if self.drive_mounted else 'not mounted'}",
        ]


def in_colab() -> bool:
    # The google.colab package can be pip-installed anywhere: the loaded module or the release tag is proof.
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def drive_root() -> Path:
    return Path(os.environ.get("MASUKA_DRIVE_ROOT", str(DRIVE_MOUNT / "MyDrive")))


def drive_mounted() -> bool:
    try:
        return drive_root().is_dir()
    except OSError:
        return False


def _nvidia_smi() -> tuple[str | None, float | None, str | None]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, None, None
    # compute_cap is missing from older drivers' query list: ask without it when the first query fails.
    for fields_ in ("name,memory.total,compute_cap", "name,memory.total"):
        try:
            out = subprocess.run(
                [exe, f"--query-gpu={fields_}", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout.strip().splitlines()
        except (OSError, subprocess.SubprocessError):
            continue
        if not out:
            return None, None, None
        parts = [p.strip() for p in out[0].split(",")]
        try:
            vram = float(parts[1]) / 1024
        except (IndexError, ValueError):
            vram = None
        cap = parts[2] if len(parts) > 2 else None
        return parts[0], vram, cap
    return None, None, None


def _meminfo() -> tuple[float | None, float | None]:
    values: dict[str, float] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = float(rest.split()[0]) / 1024 / 1024
    except (OSError, ValueError, IndexError):
        return None, None
    return values.get("MemTotal"), values.get("MemAvailable")


def detect_runtime() -> RuntimeReport:
    """Read the runtime with the standard library and nvidia-smi (no torch import)."""
    gpu, vram, cap = _nvidia_smi()
    ram, available = _meminfo()
    where = Path("/content") if Path("/content").is_dir() else Path.home()
    while not where.exists() and where != where.parent:
        where = where.parent
    return RuntimeReport(
        colab=in_colab(),
        python=".".join(str(p) for p in sys.version_info[:3]),
        executable=sys.executable,
        gpu=gpu,
        vram_gb=vram,
        compute_capability=cap,
        ram_gb=ram,
        ram_available_gb=available,
        disk_free_gb=shutil.disk_usage(where).free / 1024**3,
        drive_mounted=drive_mounted(),
    )


# ---------------------------------------------------------------------------------------------- project


@dataclass(frozen=True)
class Project:
    """What pyproject.toml says about the package setup installs."""

    root: Path
    name: str
    version: str
    requires_python: str | None
    dependencies: tuple[str, ...]
    optional: Mapping[str, tuple[str, ...]]
    build_requires: tuple[str, ...]

    @property
    def package_dir(self) -> Path:
        return self.root / self.name.replace("-", "_")

    def requires_dist(self) -> list[str]:
        """The requirements as a wheel's Requires-Dist lines: optional ones carry an `extra == "..."` marker."""
        lines = list(self.dependencies)
        for extra, reqs in self.optional.items():
            for text in reqs:
                req = Requirement(text)
                marker, req.marker = req.marker, None
                condition = f'extra == "{extra}"'
                lines.append(f"{req}; ({marker}) and {condition}" if marker else f"{req}; {condition}")
        return lines


def _dynamic_version(root: Path, data: dict) -> str:
    attr = data.get("tool", {}).get("setuptools", {}).get("dynamic", {}).get("version", {}).get("attr")
    if not attr:
        raise SetupError(f"{root / 'pyproject.toml'} has no version.", hint="Set project.version or a setuptools attr.")
    module, _, name = attr.rpartition(".")
    base = root / Path(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    # Read, never import: the package's own imports may need dependencies that are not installed yet.
    found = re.search(rf"^{re.escape(name)}\s*=\s*['\"]([^'\"]+)['\"]", path.read_text(), re.M)
    if not found:
        raise SetupError(f"Cannot find `{name}` in {path}.", hint="Keep the version as a plain string literal.")
    return found.group(1)


def read_project(root: Path) -> Project:
    """Parse `root/pyproject.toml` (PEP 621)."""
    path = Path(root) / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(
            f"No pyproject.toml in {root}.",
            hint="Run setup_colab.py from a MASUKA checkout, or pass --from PATH_OR_GIT_URL.",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"{path} is not valid TOML: {exc}.", hint="Fix the file or check out a clean copy.") from exc
    meta = data.get("project", {})
    version = meta.get("version") or _dynamic_version(Path(root), data)
    return Project(
        root=Path(root).resolve(),
        name=meta["name"],
        version=version,
        requires_python=meta.get("requires-python"),
        dependencies=tuple(meta.get("dependencies", ())),
        optional={k: tuple(v) for k, v in meta.get("optional-dependencies", {}).items()},
        build_requires=tuple(data.get("build-system", {}).get("requires", ())),
    )


# ---------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Need:
    """One requirement checked against what is installed.

    status: ``ok`` (installed and in range), ``missing``, ``upgrade`` (installed is too old),
    ``change`` (installed is excluded by the range, e.g. too new) or ``refused`` (a protected package
    that setup will not install or change; `reason` says what to do).
    """

    name: str
    requirement: str
    installed: str | None
    status: str
    reason: str = ""

    @property
    def to_install(self) -> bool:
        return self.status in ("missing", "upgrade", "change")


@dataclass(frozen=True)
class Plan:
    needs: tuple[Need, ...]
    extras: tuple[str, ...]

    @property
    def to_install(self) -> list[Need]:
        return [n for n in self.needs if n.to_install]

    @property
    def refused(self) -> list[Need]:
        return [n for n in self.needs if n.status == "refused"]

    def get(self, name: str) -> Need:
        key = canonicalize_name(name)
        return next(n for n in self.needs if n.name == key)


def _search_path(exclude: Path | None = None) -> list[str]:
    # The checkout is on sys.path when this runs as a script, and a build leaves `*.egg-info` there: that
    # is not an installation, so only real install locations count.
    skip = {Path.cwd().resolve(), Path(__file__).resolve().parent}
    if exclude is not None:
        skip.add(exclude.resolve())
    return [p for p in sys.path if p and Path(p).resolve() not in skip]


def installed_distributions(path: list[str] | None = None) -> dict[str, str]:
    """Canonical name -> version for every installed distribution on `path` (default: sys.path without
    the current folder and the checkout); the first one found wins, as for imports."""
    importlib.invalidate_caches()
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=path if path is not None else _search_path()):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist.version)
    return found


def _applies(req: Requirement, extras: set[str], environment: Mapping[str, str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**environment, "extra": extra}) for extra in sorted(extras | {""}))


def _lower_bound_missed(spec: SpecifierSet, version: Version) -> bool:
    return any(s.operator in (">", ">=", "~=", "==", "===") and not s.contains(version, prereleases=True)
               for s in spec)


def _protected_reason(name: str, installed: str | None, colab: bool) -> str:
    if name in NEVER_INSTALL:
        if colab:
            return (f"{name} is {'missing' if installed is None else installed} and Colab's build must not be "
                    "replaced: use Runtime > Disconnect and delete runtime, then run setup again on a fresh "
                    "runtime (pin an older runtime version if Colab's current one is too old).")
        return TORCH_HELP if installed is None else (
            f"{name} {installed} is out of MASUKA's range; upgrade it yourself for your CUDA "
            "(https://pytorch.org/get-started/locally/), then run this again.")
    return (f"{name} {installed} is used by the notebook front end; setup will not change it. "
            "Use a runtime or environment whose version is in range.")


def plan_requirements(
    requirements: Iterable[str],
    *,
    installed: Mapping[str, str],
    project: str = "masuka-nb",
    extras: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
    colab: bool = False,
) -> Plan:
    """Check Requires-Dist style `requirements` (markers and extras included) against `installed`.

    `installed` maps distribution names to versions (any spelling). Requirements on `project` itself
    (``masuka-nb[train,heic]; extra == "colab"``) switch on more extras. Several requirements on one name
    are combined. Protected packages (see `protected`) are ``refused`` instead of installed or changed
    when they are out of range, and torch-family packages are refused even when missing.
    """
    env = dict(environment if environment is not None else default_environment())
    have = {canonicalize_name(k): v for k, v in installed.items()}
    parsed: list[Requirement] = []
    for text in requirements:
        try:
            parsed.append(Requirement(text))
        except InvalidRequirement as exc:
            raise SetupError(f"Cannot parse requirement {text!r}: {exc}.",
                             hint="Fix it in pyproject.toml (PEP 508 syntax).") from exc
    own = canonicalize_name(project)
    active = {canonicalize_name(e) for e in extras}
    while True:  # self-references can switch on more extras, which can switch on more
        more = set()
        for req in parsed:
            if canonicalize_name(req.name) == own and _applies(req, active, env):
                more |= {canonicalize_name(e) for e in req.extras}
        if more <= active:
            break
        active |= more
    merged: dict[str, tuple[SpecifierSet, set[str]]] = {}
    for req in parsed:
        name = canonicalize_name(req.name)
        if name == own or not _applies(req, active, env):
            continue
        spec, req_extras = merged.get(name, (SpecifierSet(), set()))
        merged[name] = (spec & req.specifier, req_extras | set(req.extras))
    needs = []
    for name, (spec, req_extras) in sorted(merged.items()):
        text = name + (f"[{','.join(sorted(req_extras))}]" if req_extras else "") + str(spec)
        current = have.get(name)
        status = "missing"
        if current is not None:
            try:
                version = Version(current)
            except InvalidVersion:
                status = "change"
            else:
                if spec.contains(version, prereleases=True):
                    status = "ok"
                else:
                    status = "upgrade" if _lower_bound_missed(spec, version) else "change"
        reason = ""
        if status != "ok" and protected(name) and (current is not None or name in NEVER_INSTALL):
            status, reason = "refused", _protected_reason(name, current, colab)
        needs.append(Need(name=name, requirement=text, installed=current, status=status, reason=reason))
    return Plan(needs=tuple(needs), extras=tuple(sorted(active)))


def constraints_for(installed: Mapping[str, str], *, changing: Iterable[str] = ()) -> list[str]:
    """Pin every installed package at its installed version, except those the plan itself changes.

    pip then resolves around what the runtime already has: it picks an older release of a new dependency
    rather than move an installed package (pillow-heif 1.9 needs Pillow 13; with Colab's Pillow 11.3 pinned,
    pip takes pillow-heif 1.8), and fails rather than touch a protected one. A package swapped under a running
    kernel is what breaks Colab sessions, so nothing installed moves unless MASUKA's own range demands it.
    """
    moving = {canonicalize_name(n) for n in changing}
    pins = []
    for name, version in installed.items():
        if canonicalize_name(name) in moving:
            continue
        try:
            Version(version)
        except InvalidVersion:  # pip could not read such a pin; the planner already refuses changes
            continue
        pins.append(f"{canonicalize_name(name)}=={version}")
    return sorted(pins)


# ---------------------------------------------------------------------------------------------- self install


def _record_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def self_status(project: Project) -> tuple[str, str | None]:
    """(`current` | `missing` | `outdated` | `editable`, installed version) for the project itself.

    `current` means the installed files hash-match the source (from the wheel's RECORD), so a second run
    reinstalls nothing, while an edited or pulled checkout with the same version number is still picked up.
    """
    dists = importlib.metadata.distributions(name=project.name, path=_search_path(project.root))
    dist = next(iter(dists), None)
    if dist is None:
        return "missing", None
    if dist.version != project.version:
        return "outdated", dist.version
    direct = dist.read_text("direct_url.json")
    if direct:
        with contextlib.suppress(ValueError):
            info = json.loads(direct)
            if info.get("dir_info", {}).get("editable") and info.get("url") == project.root.as_uri():
                return "editable", dist.version
    package = project.package_dir.name
    recorded: dict[str, str] = {}
    for line in (dist.read_text("RECORD") or "").splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[0].startswith(package + "/") and parts[1]:
            recorded[parts[0]] = parts[1]
    sources = {p.relative_to(project.root).as_posix() for p in project.package_dir.rglob("*.py")}
    if not recorded or not sources <= set(recorded):
        return "outdated", dist.version
    for rel, digest in recorded.items():
        file = project.root / rel
        if not file.is_file() or _record_hash(file) != digest:
            return "outdated", dist.version
    return "current", dist.version


# ---------------------------------------------------------------------------------------------- pip


def _pip(args: list[str], *, timeout: float = 1800) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"`pip {' '.join(args[:2])}` did not finish in {timeout:.0f} s.",
                         hint="Check the network, then run setup again: it resumes where it stopped.") from exc


def _pip_failed(what: str, result: subprocess.CompletedProcess) -> SetupError:
    out = result.stdout.splitlines()
    # pip explains a conflict on stdout and states the error on stderr: keep both, drop the progress noise.
    start = next((i for i, line in enumerate(out) if line.startswith("The conflict is caused by")), None)
    why = [ln for ln in out[start:] if ln.strip() and not ln.startswith(("To fix", "1.", "2."))] if start is not None else []
    text = "\n".join([*why, *result.stderr.strip().splitlines()[-12:]])
    pinned = sorted(set(re.findall(r"\(constraint\) ([A-Za-z0-9._-]+)==", result.stdout)))
    if pinned:
        hint = (f"That would change {', '.join(pinned)}, which setup never changes (Colab's CUDA build or its "
                "notebook stack). Keep MASUKA's ranges compatible with the installed version, or use a "
                "runtime that has a newer one.")
    else:
        hint = "Read pip's message above; check the network and run setup again."
    return SetupError(f"{what} failed (pip exit {result.returncode}):\n{text}", hint=hint)


_CHECK_LINE = re.compile(r"^(?P<who>\S+) \S+ (?:requires|has requirement) (?P<what>[A-Za-z0-9._-]+)")


def pip_check_problems(output: str, *, needed: set[str], changed: set[str],
                       before: str | None = None) -> tuple[list[str], list[str]]:
    """Split `pip check` output into (MASUKA's problems, problems the environment already had).

    With `before` (``pip check``'s output before setup installed anything), a problem is the environment's own
    only if it was already there: any new line is setup's doing, whichever package it names (Colab's gradio
    requires Pillow < 13: had setup moved Pillow, gradio's new line would be setup's). A package MASUKA needs
    with an unmet requirement is always MASUKA's problem. Without `before`, a line is MASUKA's when it names
    a needed package or one this run changed.
    """
    old = {line.strip() for line in (before or "").splitlines()}
    mine, theirs = [], []
    for line in output.splitlines():
        found = _CHECK_LINE.match(line.strip())
        if not found:
            continue
        who, what = canonicalize_name(found["who"]), canonicalize_name(found["what"])
        if who in needed or (line.strip() not in old if before is not None else who in changed or what in changed):
            mine.append(line.strip())
        else:
            theirs.append(line.strip())
    return mine, theirs


def moved_packages(before: Mapping[str, str], after: Mapping[str, str], *,
                   allowed: Iterable[str] = ()) -> list[str]:
    """Installed packages whose version changed (or that vanished) between `before` and `after`, except
    `allowed` (what the plan itself upgrades), as ``name old -> new`` lines."""
    ok = {canonicalize_name(n) for n in allowed}
    now = {canonicalize_name(k): v for k, v in after.items()}
    moved = []
    for name, version in sorted((canonicalize_name(k), v) for k, v in before.items()):
        if name not in ok and now.get(name) != version:
            moved.append(f"{name} {version} -> {now.get(name, 'removed')}")
    return moved


# ---------------------------------------------------------------------------------------------- source


def _is_git(source: str) -> bool:
    return source.startswith(("git+", "git@")) or source.endswith(".git") or bool(
        re.match(r"^https?://(github\.com|gitlab\.com|bitbucket\.org)/", source))


def fetch_source(source: str | None, *, into: Path | None = None) -> Path:
    """A local folder holding the project: `source` itself, or a shallow git clone of it."""
    if source is None:
        here = Path(__file__).resolve().parent
        if (here / "pyproject.toml").is_file():
            return here
        raise SetupError("setup_colab.py is not inside a MASUKA checkout.",
                         hint="Pass --from PATH_OR_GIT_URL (e.g. --from https://github.com/masuka-ai/masuka).")
    if not _is_git(source):
        path = Path(source).expanduser()
        if not (path / "pyproject.toml").is_file():
            raise SetupError(f"--from {source}: no pyproject.toml there.",
                             hint="Point --from at a MASUKA checkout or a git URL.")
        return path.resolve()
    url, ref = source.removeprefix("git+"), None
    if "@" in url.split("://", 1)[-1].split("/", 1)[-1]:
        url, ref = url.rsplit("@", 1)
    dest = into or (COLAB_SOURCE_DIR if in_colab() else Path(tempfile.gettempdir()) / "masuka-src")
    if (dest / ".git").is_dir():
        steps = [["git", "-C", str(dest), "fetch", "--depth", "1", "origin", ref or "HEAD"],
                 ["git", "-C", str(dest), "reset", "--hard", "FETCH_HEAD"]]
    else:
        steps = [["git", "clone", "--depth", "1", *(["--branch", ref] if ref else []), url, str(dest)]]
    for cmd in steps:
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SetupError(f"`{' '.join(cmd)}` could not run: {exc}.", hint="Is git installed?") from exc
        if result.returncode != 0:
            raise SetupError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}",
                             hint=f"Check the URL and branch, or delete {dest} and run again.")
    return dest


# ---------------------------------------------------------------------------------------------- folders


def home_folder(*, use_drive: bool) -> Path:
    """MASUKA's home as `masuka_nb.config` resolves it: MASUKA_HOME, else Drive, else a local folder."""
    if os.environ.get("MASUKA_HOME"):
        return Path(os.environ["MASUKA_HOME"]).expanduser()
    if use_drive or drive_mounted():
        return drive_root() / "MASUKA"
    return Path("/content/masuka") if in_colab() else Path.home() / "masuka"


def mount_drive() -> None:
    if drive_mounted():
        return
    colab = sys.modules.get("google.colab")
    if colab is None:
        raise SetupError(
            "--drive: Google Drive is not mounted and this process cannot mount it.",
            hint="Mount it in a notebook cell first: `from google.colab import drive; "
            "drive.mount('/content/drive')`, or call setup_colab.main(['--drive']) from the notebook.",
        )
    from google.colab import drive  # only inside a Colab kernel

    drive.mount(str(DRIVE_MOUNT))
    if not drive_mounted():
        raise SetupError("Drive mount did not appear at " + str(drive_root()), hint="Mount Drive again.")


def local_caches() -> dict[str, str]:
    """HF_HOME and HF_XET_CACHE on local disk: Drive is slow and has no symlinks, which the hub cache uses."""
    changes: dict[str, str] = {}
    local_hf = Path.home() / ".cache" / "huggingface"
    hf_home = os.environ.get("HF_HOME")
    if hf_home is None or Path(hf_home).expanduser().resolve().is_relative_to(DRIVE_MOUNT):
        if hf_home is not None:
            changes["HF_HOME"] = str(local_hf)
        hf_home = str(local_hf)
    xet = os.environ.get("HF_XET_CACHE")
    if xet is not None and Path(xet).expanduser().resolve().is_relative_to(DRIVE_MOUNT):
        changes["HF_XET_CACHE"] = str(Path(hf_home) / "xet")
    return changes


# ---------------------------------------------------------------------------------------------- main


@dataclass
class _Report:
    out: TextIO
    steps: list[tuple[str, float, str]] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    @contextlib.contextmanager
    def step(self, name: str):
        start = time.perf_counter()
        outcome = {"detail": ""}
        try:
            yield outcome
        finally:
            self.steps.append((name, time.perf_counter() - start, outcome["detail"]))

    def summary(self, status: str) -> None:
        self.say("")
        self.say("MASUKA setup summary")
        for name, seconds, detail in self.steps:
            self.say(f"  {name:<10} {seconds:6.1f} s  {detail}")
        self.say(f"  {'total':<10} {sum(s for _, s, _ in self.steps):6.1f} s  {status}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="setup_colab.py", description="Set up MASUKA on Colab or any machine.")
    p.add_argument("--drive", action="store_true", help="put MASUKA's home on Google Drive (mount it if needed)")
    p.add_argument("--extras", default=None,
                   help="comma-separated extras of masuka-nb (default: colab on Colab, none elsewhere)")
    p.add_argument("--from", dest="source", default=None, metavar="PATH_OR_GIT_URL",
                   help="the MASUKA checkout or git URL (default: the folder holding this script)")
    p.add_argument("--src-dir", default=None, metavar="DIR",
                   help="where a git source is cloned (default: /content/masuka-src on Colab, else a temp folder)")
    p.add_argument("--check-only", action="store_true", help="report what is missing; install nothing")
    p.add_argument("--dry-run", action="store_true", help="resolve with `pip install --dry-run`; install nothing")
    p.add_argument("--editable", action="store_true", help="install masuka_nb in editable mode (for developers)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before installing")
    return p


def _confirm(plan: Plan, args: argparse.Namespace, colab: bool) -> bool:
    if args.yes or colab or not sys.stdin or not sys.stdin.isatty():
        return True
    names = ", ".join(n.requirement for n in plan.to_install)
    answer = input(f"Install into {sys.executable}: {names}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def main(argv: list[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run setup; returns the exit status (0 ready, 1 failed, 2 bad usage, 3 check-only found work)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # keep a notebook kernel alive on --help or a typo
        return EXIT_USAGE if exc.code else EXIT_OK
    report = _Report(out or sys.stdout)
    try:
        status = _run(args, report)
    except SetupError as exc:
        report.say(f"\nSETUP FAILED: {exc}")
        if exc.hint:
            report.say(f"  what to do: {exc.hint}")
        report.summary("FAILED")
        return EXIT_FAILED
    return status


def _run(args: argparse.Namespace, report: _Report) -> int:
    say = report.say
    with report.step("runtime") as s:
        rt = detect_runtime()
        for line in rt.lines():
            say(line)
        s["detail"] = f"{'Colab' if rt.colab else 'local'}, {rt.gpu or 'no GPU'}"
        if rt.colab and not rt.gpu:
            say("note      no GPU: Runtime > Change runtime type > T4 GPU (MASUKA falls back to tiny models)")
        if rt.disk_free_gb < 20:
            say(f"note      only {rt.disk_free_gb:.0f} GiB free disk: FLUX downloads need about 20-35 GB")

    if args.drive and not args.dry_run:
        mount_drive()  # before anything is installed: a setup that cannot reach Drive should stop early

    with report.step("source") as s:
        project = read_project(fetch_source(args.source, into=Path(args.src_dir) if args.src_dir else None))
        s["detail"] = f"{project.name} {project.version} from {project.root}"
        if project.requires_python and Version(rt.python) not in SpecifierSet(project.requires_python):
            raise SetupError(f"Python {rt.python} is outside {project.name}'s requires-python "
                             f"{project.requires_python}.", hint="Use a newer Python (Colab: a current runtime).")

    with report.step("plan") as s:
        extras = args.extras if args.extras is not None else ("colab" if rt.colab else "")
        extras_list = [e.strip() for e in extras.split(",") if e.strip()]
        unknown = sorted(set(extras_list) - set(project.optional))
        if unknown:
            raise SetupError(f"--extras {','.join(unknown)}: {project.name} has no such extra.",
                             hint="Choose from: " + ", ".join(sorted(project.optional)) + ".")
        installed = installed_distributions()
        plan = plan_requirements(project.requires_dist(), installed=installed, project=project.name,
                                 extras=extras_list, colab=rt.colab)
        own_state, own_version = self_status(project)
        ok = sum(1 for n in plan.needs if n.status == "ok")
        say(f"needs     {ok} of {len(plan.needs)} requirements already satisfied"
            + (f" (extras: {', '.join(plan.extras)})" if plan.extras else ""))
        for need in plan.to_install:
            was = f"installed {need.installed}" if need.installed else "not installed"
            say(f"install   {need.requirement}  ({was})")
        for need in plan.refused:
            say(f"REFUSED   {need.requirement}  ({need.installed or 'not installed'}): {need.reason}")
        say(f"self      {project.name} {own_version + ' ' if own_version else ''}{own_state}")
        s["detail"] = f"{len(plan.to_install)} to install, {len(plan.refused)} refused, self {own_state}"

    if plan.refused:
        first = plan.refused[0]
        raise SetupError(f"{first.name} must be set up by hand: {first.requirement} is needed, "
                         f"{first.installed or 'nothing'} is installed.", hint=first.reason)

    self_needed = own_state in ("missing", "outdated")
    if args.check_only:
        work = bool(plan.to_install) or self_needed
        report.summary("work to do (check only)" if work else "nothing missing")
        return EXIT_CHECK_FOUND_WORK if work else EXIT_OK

    constraints = constraints_for(installed, changing=[n.name for n in plan.to_install if n.installed])
    check_before = _pip(["check"], timeout=300).stdout if plan.to_install or self_needed else None
    skipped: list[tuple[Need, str]] = []
    with tempfile.TemporaryDirectory(prefix="masuka-setup-") as tmp:
        cfile = Path(tmp) / "constraints.txt"
        cfile.write_text("\n".join(constraints) + "\n")
        with report.step("install") as s:
            if plan.to_install and not _confirm(plan, args, rt.colab):
                raise SetupError("Installation declined.", hint="Run again with --yes to install.")
            if plan.to_install:
                skipped = _install(plan, project, cfile, dry_run=args.dry_run, say=say)
            done = [n.name for n in plan.to_install if n not in {need for need, _ in skipped}]
            s["detail"] = (("would install " if args.dry_run else "installed ") + ", ".join(done)) if done \
                else "nothing to install"
            if skipped:
                s["detail"] += "; skipped " + ", ".join(need.name for need, _ in skipped)

        with report.step("self") as s:
            if self_needed or (args.editable and own_state != "editable"):
                cmd = ["install", "--no-deps", "--force-reinstall", "--constraint", str(cfile)]
                if args.dry_run:
                    cmd.append("--dry-run")
                if _build_backend_present(project, installed):
                    cmd.append("--no-build-isolation")  # skips downloading setuptools again
                cmd += ["--editable", str(project.root)] if args.editable else [str(project.root)]
                result = _pip(cmd)
                if result.returncode != 0:
                    raise _pip_failed(f"Installing {project.name} itself", result)
                s["detail"] = f"{'would install' if args.dry_run else 'installed'} {project.name} {project.version}"
                importlib.invalidate_caches()
                if args.editable and not args.dry_run:
                    # An editable install works through a .pth hook that Python reads at start-up: read it now,
                    # so a notebook that called main() can import masuka_nb without a restart.
                    site.addsitedir(sysconfig.get_paths()["purelib"])
            else:
                s["detail"] = f"{project.name} {own_version} already up to date"

    with report.step("pip check") as s:
        result = _pip(["check"], timeout=300)
        own = canonicalize_name(project.name)
        changed = set() if args.dry_run else {n.name for n in plan.to_install} | {own}
        mine, theirs = pip_check_problems(result.stdout, needed={n.name for n in plan.needs} | {own},
                                          changed=changed, before=check_before)
        for line in theirs:
            say(f"image     {line}  (already in this environment before setup, not MASUKA's)")
        if mine or (result.returncode != 0 and not theirs):
            say(result.stdout.strip() or result.stderr.strip())
            raise SetupError("`pip check` found broken requirements that MASUKA's packages or this setup caused:\n  "
                             + "\n  ".join(mine or [result.stdout.strip()]),
                             hint="Restart the runtime, then run setup again; see docs/setup.md "
                             "('Recovering a broken runtime').")
        s["detail"] = "clean" if not theirs else f"clean for MASUKA ({len(theirs)} older problems in the image)"
        if not args.dry_run:
            moved = moved_packages(installed, installed_distributions(),
                                   allowed=[n.name for n in plan.to_install if n.installed] + [project.name])
            if moved:  # the constraints should make this impossible: say it loudly if it ever happens
                raise SetupError("Setup changed packages this runtime already had: " + "; ".join(moved) + ".",
                                 hint="Restart the runtime (Runtime > Restart session) before using them, and "
                                 "report this: setup must never move an installed package.")

    with report.step("folders") as s:
        home = home_folder(use_drive=args.drive)
        if not args.dry_run:
            for sub in ("", *HOME_SUBFOLDERS):
                (home / sub).mkdir(parents=True, exist_ok=True)
        # MASUKA_HOME is left alone: masuka_nb.config finds this same folder itself, and a pinned value
        # would stop a later Drive mount from moving it.
        hf_changes = local_caches()
        os.environ.update(hf_changes)
        say(f"home      {home}" + (" (on Google Drive)" if home.is_relative_to(DRIVE_MOUNT) else ""))
        say(f"hf cache  {os.environ.get('HF_HOME', str(Path.home() / '.cache' / 'huggingface'))} (local disk)")
        if __name__ == "__main__":
            # A child process cannot change the notebook's environment: say what to paste instead.
            for key, value in hf_changes.items():
                say(f"          in the notebook: %env {key}={value}")
        s["detail"] = str(home)

    if not args.dry_run:
        touched = {n.name.replace("-", "_") for n in plan.to_install if n.installed} | (
            {project.package_dir.name} if self_needed else set())
        stale = sorted(m for m in touched if m in sys.modules)
        if stale:
            say(f"note      {', '.join(stale)} changed after being imported here: Runtime > Restart session")
    if "huggingface_hub" in sys.modules and hf_changes:
        say("note      huggingface_hub was imported before setup: Runtime > Restart session for HF_HOME to apply")
    without = f", without {', '.join(need.name for need, _ in skipped)} (see SKIPPED above)" if skipped else ""
    report.summary(("ready (dry run: nothing installed)" if args.dry_run else "ready") + without)
    return EXIT_OK


def _feature_of(project: Project) -> dict[str, str]:
    """Package name -> the optional feature (extra) that brings it in. Not `dev`: a developer's tools must
    install or fail, and bundles such as `colab` only name other extras."""
    own = canonicalize_name(project.name)
    found: dict[str, str] = {}
    for extra, reqs in project.optional.items():
        if extra == "dev":
            continue
        for text in reqs:
            name = canonicalize_name(Requirement(text).name)
            if name != own:
                found.setdefault(name, extra)
    return found


def _conflict(result: subprocess.CompletedProcess) -> bool:
    text = result.stdout + result.stderr
    return "ResolutionImpossible" in text or "conflicting dependencies" in text or "(constraint)" in text


def _install(plan: Plan, project: Project, cfile: Path, *, dry_run: bool, say) -> list[tuple[Need, str]]:
    """Install `plan.to_install` under the constraints; return the optional features skipped, with why.

    A package of an extra (HEIC import, NF4, curation, Wan video) that no release can join without moving
    something this runtime already has is skipped with a clear line rather than allowed to move it (pillow-heif
    1.9 needs Pillow 13; if no pillow-heif ever accepts the installed Pillow again, HEIC import is what is
    lost, and MASUKA says so when a HEIC file arrives). A core dependency that cannot install fails setup.
    """
    extra = ["--dry-run"] if dry_run else []
    reqs = [n.requirement for n in plan.to_install]
    result = _pip(["install", *extra, "--constraint", str(cfile), *reqs])
    skipped: list[tuple[Need, str]] = []
    if result.returncode != 0:
        features = _feature_of(project)
        optional = [n for n in plan.to_install if n.name in features]
        core = [n for n in plan.to_install if n.name not in features]
        if not optional or not _conflict(result):
            raise _pip_failed("Installing " + ", ".join(reqs), result)
        results = []
        if core:  # together, as before: one of them failing is setup failing
            result = _pip(["install", *extra, "--constraint", str(cfile), *(n.requirement for n in core)])
            if result.returncode != 0:
                raise _pip_failed("Installing " + ", ".join(n.requirement for n in core), result)
            results.append(result)
        for need in optional:
            one = _pip(["install", *extra, "--constraint", str(cfile), need.requirement])
            if one.returncode == 0:
                results.append(one)
                continue
            if not _conflict(one):
                raise _pip_failed(f"Installing {need.requirement}", one)
            pinned = sorted(set(re.findall(r"\(constraint\) ([A-Za-z0-9._-]+==\S+)", one.stdout)))
            why = (f"every release of {need.name} that pip can find needs another version of what this runtime "
                   f"has ({', '.join(pinned) or 'see pip check'}); setup never moves an installed package")
            say(f"SKIPPED   {need.requirement}  (extra '{features[need.name]}'): {why}. MASUKA works without it; "
                f"only what the '{features[need.name]}' extra adds is unavailable, and says so when used.")
            skipped.append((need, why))
        result = subprocess.CompletedProcess(result.args, 0, "\n".join(r.stdout for r in results), "")
    for line in result.stdout.splitlines():
        if line.startswith(("Would install", "Successfully")):
            say(line)
            if line.startswith("Would install"):
                _refuse_moves(line, plan)
    return skipped


def _refuse_moves(line: str, plan: Plan) -> None:
    """A dry run's "Would install a-1 b-2": nothing installed may be in it but what the plan upgrades."""
    have = installed_distributions()
    allowed = {n.name for n in plan.to_install}
    moving = [p for p in line.split()[2:]
              if canonicalize_name(p.rsplit("-", 1)[0]) in have and canonicalize_name(p.rsplit("-", 1)[0]) not in allowed]
    if moving:
        raise SetupError("The install would change packages this runtime already has: " + ", ".join(moving) + ".",
                         hint="Report this: setup must never move an installed package.")


def _build_backend_present(project: Project, installed: Mapping[str, str]) -> bool:
    for text in project.build_requires:
        req = Requirement(text)
        have = installed.get(canonicalize_name(req.name))
        if have is None or Version(have) not in req.specifier:
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
