"""Proof against Colab's real image: setup_colab.py there changes the version of no installed package, and a
plain `pip install masuka-nb[colab]` changes only what PLAIN_PIP_MOVES names (why setup is the way to install).

An environment is made in tmp_path that presents every package of Colab's published list
(`tests/data/colab/pip-freeze.gpu.txt`) as installed: metadata-only `.dist-info` folders (METADATA with name
and version, an empty RECORD) in the site-packages of a Python 3.13 venv. pip then resolves the project
into it with ``pip install --dry-run --report``, exactly as setup on Colab would, without downloading
torch or anything else it does not need (PyPI serves wheel metadata on its own). Every package of the freeze
is checked, not a protected list: setup's dry run may move none, a plain pip install only those in
PLAIN_PIP_MOVES (each with the reason, which docs/setup.md repeats to users).

Interpreter: a real Python 3.13 (`COLAB_PROOF_PYTHON=/path/to/python3.13`, or `none` to force the fallback, then `python3.13` on PATH, then pyenv). Without one,
the running Python resolves with ``--python-version 3.13 --only-binary=:all:`` (pip ≥ 24.2, fetched into a
throwaway venv when the running pip is older): wheels are then chosen for 3.13, but environment markers are
evaluated for the running Python, which the output says.

The installed packages carry no Requires-Dist (the freeze file has none), so this proves what pip would
install or change for masuka-nb; problems between Colab's own packages are outside it.

Needs PyPI. It is marked `slow`, so `-m "not slow"` deselects it; CI runs it.

Run by hand to try another set of ranges (prints the table; exit 1 on a protected change)::

    python tests/test_colab_resolution.py [--project DIR_WITH_PYPROJECT] [--extra colab]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.pypi]

ROOT = Path(__file__).resolve().parents[1]
FREEZE = Path(__file__).parent / "data" / "colab" / "pip-freeze.gpu.txt"
PROTECTED = frozenset(
    {
        "torch", "torchvision", "torchaudio", "numpy",
        "ipywidgets", "widgetsnbextension", "jupyterlab-widgets", "ipykernel", "notebook",
        "jupyter-client", "jupyter-core", "traitlets", "tornado", "pyzmq", "ipython",
    }
)
# What a plain `pip install "masuka-nb[colab]"` on Colab's image changes (pip picks the newest release of each
# new package and upgrades what it needs; it does not hold installed packages), and why. setup_colab.py
# pins every installed package, so it changes none of these.
PLAIN_PIP_MOVES = {
    "pillow": "pillow-heif 1.9 (the heic extra) needs Pillow >= 13; Colab has 11.3.0 and gradio 6.24 needs < 13",
}
# Only what reaches PyPI carries over from this machine's pip settings: its config file, constraints
# and extra local indexes describe this machine, not Colab.
PIP_ENV_DROP = ("PIP_CONFIG_FILE", "PIP_CONSTRAINT", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX",
                "PIP_REQUIRE_VIRTUALENV", "PIP_TARGET", "PIP_PREFIX", "PIP_USER", "PYTHONPATH")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_freeze(path: Path = FREEZE) -> dict[str, str]:
    """Canonical name -> version. Direct-URL lines (``name @ url``) carry the version in the file name."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if " @ " in line:
            name, url = (part.strip() for part in line.split(" @ ", 1))
            match = re.search(r"-(\d[^-]*?)(?:-py\d|-cp\d|\.tar\.gz|\.zip)", url.split("#")[0].rsplit("/", 1)[-1])
            found[canonical(name)] = match.group(1) if match else "0"  # a git commit: version unknown
        else:
            name, _, version = line.partition("==")
            found[canonical(name)] = version.strip()
    return found


def present_as_installed(packages: dict[str, str], site_packages: Path) -> None:
    """Metadata-only distributions: enough for pip to see each package as installed, nothing importable."""
    for name, version in packages.items():
        folder = site_packages / f"{name.replace('-', '_')}-{version}.dist-info"
        folder.mkdir(parents=True)
        (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (folder / "RECORD").write_text("")
        (folder / "INSTALLER").write_text("colab-image\n")


def find_python313() -> str | None:
    forced = os.environ.get("COLAB_PROOF_PYTHON")
    if forced:
        return None if forced == "none" else forced
    if sys.version_info[:2] == (3, 13):
        return sys.executable
    candidates = [shutil.which("python3.13")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted((str(p) for p in pyenv.glob("3.13*/bin/python3.13")), reverse=True)
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return candidate
    return None


def _pip_version(python: str) -> tuple[int, ...]:
    out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True).stdout
    match = re.match(r"pip (\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else (0,)


def _run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Change:
    name: str
    version: str
    before: str | None  # Colab's version, None when new

    @property
    def kind(self) -> str:
        return "new" if self.before is None else "upgrade" if self.before != self.version else "reinstall"


@dataclass(frozen=True)
class Resolution:
    changes: tuple[Change, ...]
    python: str
    mechanism: str
    report: dict

    @property
    def protected(self) -> list[Change]:
        return [c for c in self.changes if c.name in PROTECTED]

    def table(self) -> str:
        lines = [f"Resolved by pip running on Python {self.python} ({self.mechanism}) against Colab's image "
                 f"({len(read_freeze())} packages presented as installed):"]
        for c in self.changes:
            was = "" if c.before is None else f"  (Colab has {c.before})"
            flag = "  <-- PROTECTED" if c.name in PROTECTED else ""
            lines.append(f"  {c.kind:<9} {c.name} {c.version}{was}{flag}")
        return "\n".join(lines)


def resolve_on_colab(project: Path, work: Path, *, extra: str = "colab") -> Resolution:
    """What `pip install "<project>[extra]"` would do on Colab's image, from pip's own dry-run report."""
    env = pip_env()
    colab = read_freeze()
    py313 = find_python313()
    base = py313 or sys.executable
    venv = work / "colab-image"
    _run([base, "-m", "venv", "--without-pip", str(venv)], env)
    target = str(venv / "bin" / "python")
    purelib = _run([target, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env).stdout.strip()
    present_as_installed(colab, Path(purelib))

    if py313:
        runner, extra_args, mechanism = py313, [], "a real Python 3.13 interpreter"
    else:
        runner = sys.executable
        if _pip_version(runner) < (24, 2):  # older pips refuse --python-version without --target
            _run([sys.executable, "-m", "venv", str(work / "pip-runner")], env)
            runner = str(work / "pip-runner" / "bin" / "python")
            _run([runner, "-m", "pip", "install", "-q", "pip>=24.2"], env)
        extra_args = ["--python-version", "3.13", "--only-binary=:all:"]
        mechanism = ("no Python 3.13 here: wheels chosen for 3.13 with --python-version, markers evaluated "
                     f"for Python {sys.version_info.major}.{sys.version_info.minor}")
    # pip builds the project's metadata in place: build from a copy so the checkout stays clean.
    source = work / "project"
    shutil.copytree(project, source, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "dist", "tests", "notebooks", "benchmarks", ".venv*"))
    report_path = work / "report.json"
    _run([runner, "-m", "pip", "--python", target, "install", "--dry-run", "--quiet", "--report",
          str(report_path), *extra_args, f"{source}[{extra}]" if extra else str(source)], env)
    report = json.loads(report_path.read_text())
    changes = []
    for item in report["install"]:
        name = canonical(item["metadata"]["name"])
        changes.append(Change(name=name, version=item["metadata"]["version"], before=colab.get(name)))
    changes.sort(key=lambda c: (c.kind, c.name))
    return Resolution(changes=tuple(changes), python=report["environment"]["python_version"],
                      mechanism=mechanism, report=report)


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PIP_ENV_DROP}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def copy_project(root: Path, dest: Path, *, extra_dependency: str | None = None,
                 numpy_range: str | None = None) -> Path:
    """A copy of the checkout's installable part, optionally with a changed dependency list."""
    dest.mkdir(parents=True)
    text = (root / "pyproject.toml").read_text()
    if numpy_range is not None:
        text = re.sub(r'"numpy[^"]*"', f'"numpy{numpy_range}"', text, count=1)
    if extra_dependency is not None:
        text = text.replace("dependencies = [\n", f'dependencies = [\n    "{extra_dependency}",\n', 1)
    (dest / "pyproject.toml").write_text(text)
    for name in ("setup_colab.py", "README.md"):
        if (root / name).exists():
            shutil.copy2(root / name, dest / name)
    shutil.copytree(root / "masuka_nb", dest / "masuka_nb", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def write_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    """A minimal pure-Python wheel (served with PIP_FIND_LINKS), so a test controls what a dependency needs."""
    import base64
    import hashlib
    import zipfile

    module, dist_info = name.replace("-", "_"), f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": "",
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: masuka-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, body in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(body.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(body.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, body in files.items():
            zf.writestr(path, body)
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def colab_image(tmp_path_factory) -> Path:
    """A Python 3.13 venv *with pip* whose site-packages presents Colab's list as installed.

    pip and setuptools stay real (a fake pip cannot run setup, and a fake setuptools cannot build):
    the project is then built in pip's isolated build environment, as on any machine.
    """
    work = tmp_path_factory.mktemp("colab-image")
    base = find_python313() or sys.executable
    venv = work / "venv"
    _run([base, "-m", "venv", str(venv)], pip_env())
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        pip_env()).stdout.strip())
    present_as_installed({k: v for k, v in read_freeze().items() if k not in ("pip", "setuptools", "wheel")},
                         purelib)
    return python


def run_setup(python: Path, project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), str(project / "setup_colab.py"), "--from", str(project), *args],
                          capture_output=True, text=True, env=env, timeout=600)


# ---------------------------------------------------------------------------------------------- tests


def test_freeze_file_is_colabs_python_313_gpu_image():
    colab = read_freeze()
    assert len(colab) > 600
    assert colab["torch"].startswith("2.11") and "+cu" in colab["torch"]
    assert colab["ipywidgets"] == "7.7.1"
    assert colab["google-colab"] == "1.0.0"  # a direct-URL line, version taken from the file name
    assert "Python 3.13" in (FREEZE.parent / "os-info-gpu.txt").read_text()


def test_plain_pip_install_of_the_colab_extra_moves_only_what_the_docs_warn_about(tmp_path):
    """The whole freeze: nothing protected moves, and nothing moves that PLAIN_PIP_MOVES (and so
    docs/setup.md) does not name. Printed: what a plain pip install would change on Colab."""
    result = resolve_on_colab(ROOT, tmp_path, extra="colab")
    print("\n" + result.table())
    if find_python313():
        assert result.python == "3.13"
    names = {c.name for c in result.changes}
    assert "masuka-nb" in names  # the report really is about our project
    assert not result.protected, (
        "Installing masuka-nb[colab] on Colab would change protected packages:\n" + result.table()
        + "\nNarrow the matching range in pyproject.toml so Colab's version satisfies it.")
    # Every wheel pip picked must install on Colab's CPython 3.13 (either mechanism).
    for item in result.report["install"]:
        wheel = item["download_info"]["url"].rsplit("/", 1)[-1]
        if wheel.endswith(".whl"):
            python_tag, abi_tag = wheel[:-4].split("-")[-3:-1]
            assert "cp313" in python_tag or "py3" in python_tag or abi_tag == "abi3", wheel
    moved = {c.name: c for c in result.changes if c.kind != "new" and c.name != "masuka-nb"}
    print("a plain pip install would change: " + (", ".join(f"{c.name} {c.before} -> {c.version}"
                                                            for c in moved.values()) or "nothing"))
    assert set(moved) <= set(PLAIN_PIP_MOVES), (
        f"a plain pip install would also move {sorted(set(moved) - set(PLAIN_PIP_MOVES))}: add each to "
        "PLAIN_PIP_MOVES with its reason and to docs/setup.md, or narrow MASUKA's ranges\n" + result.table())
    docs = (ROOT / "docs" / "setup.md").read_text(encoding="utf-8")
    for name in PLAIN_PIP_MOVES:
        assert name in docs.lower(), f"docs/setup.md does not warn that plain pip moves {name}"


def test_the_proof_catches_a_range_that_would_move_numpy(tmp_path):
    """The same check on a copy whose numpy range excludes Colab's numpy 2.1.3 must flag numpy."""
    copy = copy_project(ROOT, tmp_path / "modified", numpy_range=">=2.2")
    assert '"numpy>=2.2"' in (copy / "pyproject.toml").read_text()
    work = tmp_path / "work"
    work.mkdir()
    result = resolve_on_colab(copy, work, extra="")
    print("\n" + result.table())
    assert [c.name for c in result.protected] == ["numpy"]
    assert result.protected[0].before == "2.1.3"


def test_setup_colab_on_colabs_image_would_install_only_what_colab_lacks(colab_image, tmp_path):
    """setup_colab.py itself, run by Colab's Python on the simulated image (dry run: pip resolves, installs nothing)."""
    project = copy_project(ROOT, tmp_path / "checkout")
    env = {**pip_env(), "COLAB_RELEASE_TAG": "release-colab-simulated"}
    result = run_setup(colab_image, project, "--dry-run", "--yes", env=env)
    print("\n" + result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime   Google Colab" in result.stdout
    planned = re.findall(r"^install   (\S+)", result.stdout, re.M)
    # ftfy: the video extra (diffusers' Wan image-to-video pipeline needs it; Colab lacks it)
    assert sorted(planned) == ["bitsandbytes>=0.45", "ftfy>=6.1", "imagehash>=4.3", "pillow-heif>=0.18"]
    would = re.search(r"^Would install (.*)$", result.stdout, re.M)
    assert would, result.stdout
    assert sorted(canonical(p.rsplit("-", 1)[0]) for p in would.group(1).split()) == ["bitsandbytes", "ftfy",
                                                                                          "imagehash", "pillow-heif"]
    # Nothing Colab has moves, Pillow included: pillow-heif 1.9 needs Pillow 13, so setup must pick a
    # pillow-heif that accepts Colab's Pillow 11.3 (the whole freeze is checked, not a protected list).
    colab = read_freeze()
    moved = [p for p in would.group(1).split() if canonical(p.rsplit("-", 1)[0]) in colab]
    assert moved == [], f"setup would change Colab's packages: {moved}"
    heif = next(p for p in would.group(1).split() if canonical(p.rsplit("-", 1)[0]) == "pillow-heif")
    print(f"setup picks {heif} beside Colab's Pillow {colab['pillow']}")
    assert "would install masuka-nb" in result.stdout
    assert re.search(r"pip check +\S+ s  clean", result.stdout)
    assert "SKIPPED" not in result.stdout


def test_setup_skips_heic_rather_than_move_pillow_when_no_pillow_heif_fits(colab_image, tmp_path):
    """The day no pillow-heif release accepts the installed Pillow (here: a heic extra that asks for
    pillow-heif >= 1.9, all of which need Pillow 13), setup leaves Pillow alone, skips HEIC import with a
    line that says why, installs the rest and succeeds."""
    project = copy_project(ROOT, tmp_path / "checkout")
    text = (project / "pyproject.toml").read_text()
    assert 'heic = ["pillow-heif>=0.18"]' in text
    (project / "pyproject.toml").write_text(text.replace('heic = ["pillow-heif>=0.18"]', 'heic = ["pillow-heif>=1.9"]'))
    env = {**pip_env(), "COLAB_RELEASE_TAG": "release-colab-simulated"}
    result = run_setup(colab_image, project, "--dry-run", "--yes", env=env)
    print("\n" + result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = re.search(r"^SKIPPED   pillow-heif>=1.9  \(extra 'heic'\): (.*)$", result.stdout, re.M)
    assert skipped, result.stdout
    assert "pillow==11.3.0" in skipped.group(1) and "never moves an installed package" in skipped.group(1)
    would = " ".join(re.findall(r"^Would install (.*)$", result.stdout, re.M))
    assert sorted(canonical(p.rsplit("-", 1)[0]) for p in would.split()) == ["bitsandbytes", "ftfy", "imagehash"]
    assert re.search(r"total .* ready \(dry run: nothing installed\), without pillow-heif", result.stdout)


def test_setup_colab_constraints_stop_a_dependency_from_moving_numpy(colab_image, tmp_path):
    """A new dependency that needs a newer numpy: plain pip would upgrade Colab's numpy; setup fails instead."""
    links = tmp_path / "wheels"
    write_wheel(links, "needs-new-numpy", "1.0", ["numpy>=2.2"])
    env = {**pip_env(), "COLAB_RELEASE_TAG": "release-colab-simulated", "PIP_FIND_LINKS": str(links)}

    plain = subprocess.run([str(colab_image), "-m", "pip", "install", "--dry-run", "needs-new-numpy"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert plain.returncode == 0, plain.stderr
    assert re.search(r"Would install .*numpy-2\.", plain.stdout), plain.stdout  # the danger is real

    project = copy_project(ROOT, tmp_path / "checkout", extra_dependency="needs-new-numpy>=1")
    result = run_setup(colab_image, project, "--dry-run", "--yes", "--extras", "", env=env)
    print("\n" + result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "install   needs-new-numpy>=1  (not installed)" in result.stdout
    assert "SETUP FAILED: Installing" in result.stdout and "needs-new-numpy" in result.stdout
    failure = result.stdout.split("SETUP FAILED", 1)[1]
    assert "The user requested (constraint) numpy==2.1.3" in failure
    assert "That would change numpy, which setup never changes" in failure


# ---------------------------------------------------------------------------------------------- CI's Colab leg


def _colab_stack():
    """`.ci/colab_stack.py`, the constraints CI's second leg builds Colab's stack with."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("colab_stack", ROOT / ".ci" / "colab_stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_ci_colab_stack_drops_only_what_cannot_apply_off_colab():
    stack = _colab_stack()
    keep, dropped = stack.constraints(FREEZE)
    pins = dict(line.split("==", 1) for line in keep)
    colab = read_freeze()
    # Colab's versions of what MASUKA runs on, local labels stripped, nothing else touched
    assert pins["torch"] == "2.11.0" and pins["torchvision"] == "0.26.0" and pins["ipywidgets"] == "7.7.1"
    assert pins["pillow"] == "11.3.0" and pins["diffusers"] == "0.39.0" and pins["transformers"] == "5.15.0"
    assert pins["triton"] == colab["triton"]  # PyPI's torch 2.11.0 needs the same triton: kept
    assert all("+" not in v and "@" not in v for v in pins.values())
    # exactly three kinds of line are left out, each said
    out = {canonical(re.split(r"==| @ ", d.line)[0]): d.reason for d in dropped if "local label" not in d.reason}
    direct = {n for n, why in out.items() if why.startswith("direct URL")}
    cuda = {n for n, why in out.items() if why.startswith("CUDA runtime")}
    assert direct == {"cucim-cu12", "cuvs-cu12", "en-core-web-sm", "google-colab", "jupyter-kernel-gateway",
                      "nx-cugraph-cu12"}
    assert cuda and all(n.startswith(("nvidia-", "cuda-")) for n in cuda) and "nvidia-ml-py" in pins
    assert set(pins) | direct | cuda == set(colab)  # nothing else is dropped
    assert {d.line.split("==")[0] for d in dropped if "local label" in d.reason} == {
        "torch", "torchvision", "torchaudio", "torchcodec"}


def test_ci_colab_stack_starts_with_colabs_packages_and_lets_setup_add_the_rest():
    stack = _colab_stack()
    image = stack.image_packages(FREEZE)
    assert {"torch", "torchvision", "diffusers", "transformers", "huggingface-hub", "ipywidgets", "pillow",
            "numpy", "ipykernel", "nbclient", "pytest"} <= set(image)
    # what Colab lacks is setup's to install, as on Colab
    assert not {"bitsandbytes", "pillow-heif", "imagehash", "ftfy", "papermill"} & set(image)
    assert set(image) <= set(read_freeze())


def test_ci_runs_the_colab_leg_and_its_setup_the_notebooks_way():
    run = (ROOT / ".ci" / "run").read_text()
    leg = (ROOT / ".ci" / "colab-stack.sh").read_text()
    assert "bash .ci/colab-stack.sh" in run
    assert 'setup_colab.main(["--from", ".", "--yes"])' in leg and "COLAB_RELEASE_TAG" in leg
    assert "python3 -m pytest" in leg and "colab_stack.py verify" in leg
    import nbformat

    cells = nbformat.read(ROOT / "notebooks" / "01_images.ipynb", as_version=4).cells
    assert any('args = ["--from", str(script.parent), "--yes"]' in c.source for c in cells)  # the same arguments


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=ROOT, help="folder with the pyproject.toml to try")
    parser.add_argument("--extra", default="colab", help="extra to resolve ('' for none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        res = resolve_on_colab(args.project.resolve(), Path(tmp), extra=args.extra)
    print(res.table())
    sys.exit(1 if res.protected else 0)
