"""setup_colab.py: the install decisions, the protected-package refusals and the real script end to end.

The decision logic runs against fake installed sets (Colab's published package list among them); the
end-to-end tests run the script in a throwaway venv that sees this machine's packages, so nothing is
installed system-wide and nothing needs the network.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import setup_colab as sc
from masuka_nb.testing.colab import see_packages_of_this_interpreter

ROOT = Path(__file__).resolve().parents[1]
FREEZE = Path(__file__).parent / "data" / "colab" / "pip-freeze.gpu.txt"
LINUX = {**sc.default_environment(), "platform_system": "Linux", "sys_platform": "linux"}
WINDOWS = {**sc.default_environment(), "platform_system": "Windows", "sys_platform": "win32"}


def colab_installed() -> dict[str, str]:
    """Colab's published image as name -> version (direct-URL lines carry their version in the file name)."""
    found = {}
    for line in FREEZE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if " @ " in line:
            name, url = line.split(" @ ", 1)
            match = re.search(r"-(\d[^-]*?)(?:-py\d|-cp\d|\.tar\.gz|\.zip)", url.rsplit("/", 1)[-1])
            found[name.strip()] = match.group(1) if match else "0"
        else:
            name, version = line.split("==", 1)
            found[name] = version
    return found


# ---------------------------------------------------------------------------------------------- decisions


def test_markers_extras_and_statuses_against_a_fake_installed_set():
    reqs = [
        "alpha>=1.0,<2",  # installed 1.5: ok
        "beta>=2.0",  # installed 1.9: too old
        "gamma<3",  # installed 3.1: excluded from above
        "delta>=0.1",  # missing
        "winonly>=1; platform_system == 'Windows'",  # marker false on Linux
        'trainer>=0.45; platform_system == "Linux" and extra == "train"',
        'sentencepiece>=0.2; extra == "train"',
        'sentencepiece>=0.2.1,<1; extra == "dev"',
        'heifer[fast]>=0.18; extra == "heic"',
        'demo-pkg[train,heic]; extra == "colab"',
        'never>=1; extra == "dev"',
    ]
    installed = {"Alpha": "1.5", "beta": "1.9", "GAMMA": "3.1", "SentencePiece": "0.2.0", "heifer": "0.20"}

    base = sc.plan_requirements(reqs, installed=installed, project="demo-pkg", environment=LINUX)
    assert {n.name: n.status for n in base.needs} == {
        "alpha": "ok", "beta": "upgrade", "gamma": "change", "delta": "missing"}
    assert base.extras == ()

    colab = sc.plan_requirements(reqs, installed=installed, project="Demo_Pkg", extras=["colab"],
                                 environment=LINUX)
    assert colab.extras == ("colab", "heic", "train")  # the self-reference switched the others on
    assert colab.get("trainer").status == "missing"
    assert colab.get("sentencepiece").status == "ok"
    assert colab.get("heifer").requirement == "heifer[fast]>=0.18"
    assert "never" not in {n.name for n in colab.needs}
    assert "winonly" not in {n.name for n in colab.needs}

    on_windows = sc.plan_requirements(reqs, installed=installed, project="demo-pkg", extras=["colab"],
                                      environment=WINDOWS)
    assert "trainer" not in {n.name for n in on_windows.needs}
    assert on_windows.get("winonly").status == "missing"

    # Two extras that ask for one package: both ranges must hold, and 0.2.0 misses the dev one.
    both = sc.plan_requirements(reqs, installed=installed, project="demo-pkg", extras=["train", "dev"],
                                environment=LINUX)
    need = both.get("sentencepiece")
    assert need.status == "upgrade"
    assert need.requirement == "sentencepiece<1,>=0.2,>=0.2.1"
    assert [n.name for n in both.to_install] == ["beta", "delta", "gamma", "never", "sentencepiece", "trainer"]


def test_masuka_on_colabs_image_installs_only_what_colab_lacks():
    project = sc.read_project(ROOT)
    plan = sc.plan_requirements(project.requires_dist(), installed=colab_installed(), project=project.name,
                                extras=["colab"], environment=LINUX, colab=True)
    assert plan.refused == []
    assert {n.name for n in plan.to_install} == {"bitsandbytes", "imagehash", "pillow-heif", "ftfy"}  # ftfy: Wan image-to-video
    for name in ("torch", "numpy", "ipywidgets", "diffusers", "transformers", "huggingface-hub"):
        assert plan.get(name).status == "ok", plan.get(name)


def test_torch_is_never_installed_and_colabs_notebook_stack_never_changed():
    reqs = ["torch>=2.4,<3", "torchvision>=0.19", "numpy>=1.26", "ipywidgets>=7.7.1,<9",
            "jupyter-server-fileid>=1", "pillow>=10"]
    elsewhere = sc.plan_requirements(reqs, installed={"pillow": "9.0"}, environment=LINUX)
    assert elsewhere.get("torch").status == "refused"
    assert "download.pytorch.org/whl/cpu" in elsewhere.get("torch").reason
    assert elsewhere.get("torchvision").status == "refused"
    # Missing and not built for a CUDA: those may be installed on a plain machine.
    assert elsewhere.get("numpy").status == "missing"
    assert elsewhere.get("ipywidgets").status == "missing"
    assert elsewhere.get("pillow").status == "upgrade"

    old_image = {"torch": "2.3.1+cu121", "torchvision": "0.26.0+cu128", "numpy": "1.24.4",
                 "ipywidgets": "7.7.1", "jupyter-server-fileid": "0.5", "pillow": "11.3.0"}
    colab = sc.plan_requirements(reqs, installed=old_image, environment=LINUX, colab=True)
    assert {n.name for n in colab.refused} == {"torch", "numpy", "jupyter-server-fileid"}
    assert "Disconnect and delete runtime" in colab.get("torch").reason
    assert colab.get("torchvision").status == "ok"  # local version labels (+cu128) satisfy a range
    assert colab.get("ipywidgets").status == "ok"
    assert colab.to_install == []


def test_constraints_pin_every_installed_package_except_what_the_plan_upgrades():
    installed = {"torch": "2.11.0+cu128", "NumPy": "2.1.3", "jupyter_core": "5.9.1", "pyzmq": "26.2.1",
                 "diffusers": "0.39.0", "pillow": "11.3.0"}
    assert sc.constraints_for(installed) == ["diffusers==0.39.0", "jupyter-core==5.9.1", "numpy==2.1.3",
                                             "pillow==11.3.0", "pyzmq==26.2.1", "torch==2.11.0+cu128"]
    # a package MASUKA's own range makes setup upgrade is free to move; nothing else is
    assert sc.constraints_for(installed, changing=["Diffusers"]) == [
        "jupyter-core==5.9.1", "numpy==2.1.3", "pillow==11.3.0", "pyzmq==26.2.1", "torch==2.11.0+cu128"]
    assert sc.constraints_for({"jupyter-kernel-gateway": "not a version"}) == []


def test_pip_check_lines_are_split_into_ours_and_the_images():
    output = (
        "tensorflow 2.19.0 has requirement ml-dtypes<1,>=0.5, but you have ml-dtypes 0.4.1.\n"
        "masuka-nb 0.1.0 requires diffusers, which is not installed.\n"
        "pillow-heif 1.8.1 has requirement pillow>=11.1.0, but you have pillow 10.0.0.\n"
        "thinc 8.3.4 requires numpy<3.0.0,>=2.0.0, but you have numpy 1.26.4.\n"
    )
    # numpy is needed but was not changed by this run: thinc's complaint predates setup.
    mine, theirs = sc.pip_check_problems(output, needed={"masuka-nb", "pillow-heif", "numpy"},
                                         changed={"masuka-nb", "pillow-heif"})
    assert [line.split()[0] for line in mine] == ["masuka-nb", "pillow-heif"]
    assert [line.split()[0] for line in theirs] == ["tensorflow", "thinc"]
    # Had this run upgraded pillow, pillow-heif's line would be ours even if pillow-heif were not needed.
    mine, _ = sc.pip_check_problems(output, needed=set(), changed={"pillow"})
    assert [line.split()[0] for line in mine] == ["pillow-heif"]


def test_pip_check_after_setup_is_compared_with_pip_check_before_it():
    """Colab's gradio 6.24 requires Pillow < 13: had an install pulled Pillow 13 in (a dependency of a
    dependency, so neither name is one setup changed itself), gradio's new line is setup's doing."""
    before = "tensorflow 2.19.0 has requirement ml-dtypes<1,>=0.5, but you have ml-dtypes 0.4.1.\n"
    after = before + "gradio 6.24.0 has requirement pillow<13,>=8.0, but you have pillow 13.0.0.\n"
    mine, theirs = sc.pip_check_problems(after, needed={"masuka-nb", "pillow-heif"},
                                         changed={"masuka-nb", "pillow-heif"}, before=before)
    assert [line.split()[0] for line in mine] == ["gradio"]
    assert [line.split()[0] for line in theirs] == ["tensorflow"]
    # Without the comparison, the old split filed it as the image's own.
    _, theirs = sc.pip_check_problems(after, needed={"masuka-nb", "pillow-heif"}, changed={"pillow-heif"})
    assert "gradio" in [line.split()[0] for line in theirs]
    # A problem of a package MASUKA needs is MASUKA's even when it predates setup.
    old = "diffusers 0.39.0 requires regex, which is not installed.\n"
    mine, _ = sc.pip_check_problems(old, needed={"diffusers"}, changed=set(), before=old)
    assert mine == [old.strip()]


def test_moved_packages_names_every_version_change_but_the_planned_ones():
    before = {"Pillow": "11.3.0", "numpy": "2.1.3", "diffusers": "0.36.0", "gone": "1.0"}
    after = {"pillow": "13.0.0", "numpy": "2.1.3", "diffusers": "0.39.0", "pillow-heif": "1.9.0"}
    assert sc.moved_packages(before, after, allowed=["Diffusers"]) == ["gone 1.0 -> removed",
                                                                       "pillow 11.3.0 -> 13.0.0"]
    assert sc.moved_packages(before, before) == []


def test_each_optional_package_is_known_by_its_own_extra():
    features = sc._feature_of(sc.read_project(ROOT))
    assert features["pillow-heif"] == "heic" and features["bitsandbytes"] == "train"
    assert features["ftfy"] == "video"
    assert "masuka-nb" not in features and "diffusers" not in features  # core dependencies are not optional
    assert "pytest" not in features and "playwright" not in features  # the dev extra's tools must install


def test_project_is_read_from_pyproject_without_importing_it():
    project = sc.read_project(ROOT)
    from masuka_nb._version import __version__

    assert (project.name, project.version) == ("masuka-nb", __version__)
    lines = project.requires_dist()
    assert 'masuka-nb[heic,train,video]; extra == "colab"' in lines
    assert 'bitsandbytes>=0.45; (platform_system == "Linux") and extra == "train"' in lines
    with pytest.raises(sc.SetupError, match=r"No pyproject\.toml"):
        sc.read_project(ROOT / "tests")


def test_home_layout_matches_masuka_settings(tmp_path):
    from masuka_nb.config import settings

    s = settings()
    subs = {getattr(s, f.name).relative_to(s.home).as_posix() for f in fields(s)
            if f.name.endswith("_dir") and f.name != "cache_dir"}
    assert subs == set(sc.HOME_SUBFOLDERS)


# ---------------------------------------------------------------------------------------------- main()


def run_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return sc.main(list(argv), out=out), out.getvalue()


def make_project(root: Path, *deps: str) -> Path:
    (root / "demo_pkg").mkdir(parents=True)
    (root / "demo_pkg" / "__init__.py").write_text('__version__ = "1.2.3"\n')
    quoted = ", ".join(f'"{d}"' for d in deps)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo-pkg"\ndynamic = ["version"]\nrequires-python = ">=3.10"\n'
        f"dependencies = [{quoted}]\n[project.optional-dependencies]\nextra1 = []\n"
        '[tool.setuptools.dynamic]\nversion = { attr = "demo_pkg.__version__" }\n'
    )
    return root


def test_main_refuses_a_torch_it_would_have_to_replace_and_installs_nothing(tmp_path):
    project = make_project(tmp_path / "p", "torch>=99", "packaging>=20")
    code, text = run_main("--from", str(project), "--yes")
    assert code == sc.EXIT_FAILED
    assert "REFUSED   torch>=99" in text
    assert "SETUP FAILED: torch must be set up by hand" in text
    assert "pytorch.org" in text
    assert "install   " not in text  # stopped before any pip call


def test_main_reports_usage_errors_without_raising(tmp_path):
    code, text = run_main("--from", str(make_project(tmp_path / "p", "packaging")), "--extras", "nope",
                          "--check-only")
    assert code == sc.EXIT_FAILED
    assert "has no such extra" in text and "extra1" in text
    assert sc.main(["--no-such-flag"], out=io.StringIO()) == sc.EXIT_USAGE
    code, text = run_main("--from", str(tmp_path / "missing"), "--check-only")
    assert code == sc.EXIT_FAILED and "no pyproject.toml there" in text


def test_drive_flag_stops_early_when_drive_cannot_be_mounted(tmp_path, monkeypatch):
    monkeypatch.setenv("MASUKA_DRIVE_ROOT", str(tmp_path / "no-drive"))
    code, text = run_main("--drive", "--check-only", "--from", str(make_project(tmp_path / "p")))
    assert code == sc.EXIT_FAILED
    assert "drive.mount('/content/drive')" in text
    assert "needs " not in text  # nothing was planned or installed


def test_check_only_clones_a_git_source(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = make_project(tmp_path / "repo", "packaging>=20", "definitely-not-installed-pkg>=1")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "demo"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env)
    clone = tmp_path / "clone"
    code, text = run_main("--from", f"git+file://{repo}@main", "--src-dir", str(clone), "--check-only")
    assert code == sc.EXIT_CHECK_FOUND_WORK, text
    assert (clone / "pyproject.toml").is_file()
    assert "install   definitely-not-installed-pkg>=1  (not installed)" in text
    assert "self      demo-pkg missing" in text
    # A second run updates the clone in place rather than failing on the existing folder.
    code, _ = run_main("--from", f"git+file://{repo}@main", "--src-dir", str(clone), "--check-only")
    assert code == sc.EXIT_CHECK_FOUND_WORK


def _notebook_setup_cells() -> dict[str, str]:
    import nbformat

    cells = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        (cell,) = [c for c in nb.cells if c.cell_type == "code" and "setup_colab.main" in c.source]
        cells[path.name] = cell.source
    return cells


def test_every_notebook_finds_or_clones_the_checkout_beside_itself(tmp_path, monkeypatch):
    """One setup cell in all notebooks; it clones into the current folder (/content on Colab), never into a
    hard-coded /content path, so it also works in a rehearsal, on Kaggle or in a local Jupyter."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    cells = _notebook_setup_cells()
    assert len(cells) >= 5 and len(set(cells.values())) == 1, sorted(cells)
    source = next(iter(cells.values()))
    assert '"/content' not in source
    definitions = source.split("\nif SETUP")[0]  # the helper only: the run itself needs a notebook kernel

    repo = make_project(tmp_path / "repo", "packaging>=20")
    (repo / "setup_colab.py").write_text("# the checkout's setup script\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "demo"]):
        subprocess.run(["git", "-C", str(repo), *cmd], check=True, env=env)
    content = tmp_path / "content"
    content.mkdir()
    monkeypatch.chdir(content)
    namespace = {"REPO": f"file://{repo}"}
    exec(definitions, namespace)
    found = namespace["find_setup_script"]()
    assert found == content / "masuka-src" / "setup_colab.py" and found.is_file()
    assert namespace["find_setup_script"]() == found  # a second run reuses the clone


# ---------------------------------------------------------------------------------------------- the script


@pytest.fixture
def venv_python(tmp_path) -> Path:
    """A venv that sees this interpreter's packages (so nothing is downloaded) and keeps installs to itself."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    if sys.prefix != sys.base_prefix:  # we are in a venv: its packages are not the base's
        see_packages_of_this_interpreter(venv)
    return venv / "bin" / "python"


def copy_checkout(dest: Path) -> Path:
    # A copy, so the build's egg-info/build folders never land in the real checkout.
    dest.mkdir()
    for name in ("pyproject.toml", "setup_colab.py", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "masuka_nb", dest / "masuka_nb", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def script(python: Path, checkout: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), str(checkout / "setup_colab.py"), *args], capture_output=True,
                          text=True, timeout=300, env=env or os.environ.copy())


@pytest.mark.slow
def test_script_installs_only_masuka_itself_then_a_second_run_installs_nothing(venv_python, tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    # This interpreter may hold a copy of this very source, installed non-editable (CI's Colab leg installs it
    # the notebooks' way): a copy of it would count as current. A copy of its own is never installed anywhere.
    with (checkout / "masuka_nb" / "_version.py").open("a") as f:
        f.write(f"# test copy {tmp_path.name}\n")
    version = sc.read_project(checkout).version
    site = Path(subprocess.run([str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())

    before = script(venv_python, checkout, "--check-only")
    assert before.returncode == sc.EXIT_CHECK_FOUND_WORK, before.stdout + before.stderr
    # Missing in the venv; what the parent interpreter has (editable, or a non-editable copy) is not this copy.
    assert re.search(r"^self      masuka-nb (\S+ )?(missing|outdated)$", before.stdout, re.M), before.stdout
    assert "\ninstall   " not in before.stdout  # this machine has every dependency
    assert not list(site.glob("masuka_nb*"))

    first = script(venv_python, checkout, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "nothing to install" in first.stdout
    assert "installed masuka-nb" in first.stdout
    assert re.search(r"pip check +\S+ s  clean", first.stdout)
    assert sorted(p.name for p in site.iterdir() if "masuka" in p.name) == ["masuka_nb", f"masuka_nb-{version}.dist-info"]

    again = script(venv_python, checkout, "--check-only")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing missing" in again.stdout
    assert f"self      masuka-nb {version} current" in again.stdout

    second = script(venv_python, checkout, "--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to install" in second.stdout and "already up to date" in second.stdout

    # An edited checkout with the same version number is noticed (the RECORD hashes differ).
    with (checkout / "masuka_nb" / "_version.py").open("a") as f:
        f.write("# edited again\n")
    edited = script(venv_python, checkout, "--check-only")
    assert edited.returncode == sc.EXIT_CHECK_FOUND_WORK
    assert f"self      masuka-nb {version} outdated" in edited.stdout


@pytest.mark.slow
def test_script_puts_home_on_a_mounted_drive_and_keeps_hf_cache_local(venv_python, tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    drive = tmp_path / "drive" / "MyDrive"
    drive.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "MASUKA_HOME"}
    env.update(MASUKA_DRIVE_ROOT=str(drive), HF_HOME="/content/drive/MyDrive/hf", HOME=str(tmp_path / "home"))
    result = script(venv_python, checkout, "--yes", "--drive", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (drive / "MASUKA").iterdir()) == sorted(sc.HOME_SUBFOLDERS)
    assert f"home      {drive / 'MASUKA'}" in result.stdout
    assert f"%env HF_HOME={tmp_path / 'home' / '.cache' / 'huggingface'}" in result.stdout
