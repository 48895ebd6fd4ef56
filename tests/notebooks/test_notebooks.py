"""The notebooks: committed stripped and lint-clean, shaped for Colab (badge, form, Drive, setup), and
executed top to bottom in a Colab rehearsal (`masuka_nb.testing.colab`) on their default parameters:
only sizes and steps are made small. Drive is mounted, setup runs its Colab branch (installing into the
rehearsal's kernel venv), keys come from the stand-in Secrets, video goes to a loopback simulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

import masuka_nb
from masuka_nb.testing.canary import find_canary
from masuka_nb.testing.colab import ColabRehearsal

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["MASUKA.ipynb", "01_images.ipynb", "02_lora.ipynb", "03_video.ipynb"]
CANARY = "sk-canary-nb-5d2e7a91c4b8f036"


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _source(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


@pytest.fixture
def run_notebook(tmp_path, monkeypatch):
    """Outside Colab (a plain Jupyter kernel), with Drive and setup switched off."""
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}")
    monkeypatch.setenv("MPLBACKEND", "Agg")

    def run(name: str, **parameters):
        out = tmp_path / f"out-{name}"
        papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters={
            "MOUNT_DRIVE": False, "SETUP": "skip", **parameters}, cwd=str(NOTEBOOKS), kernel_name="python3",
            progress_bar=False, execution_timeout=120)
        return nbformat.read(out, as_version=4), out.read_text(encoding="utf-8")

    return run


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """A Colab rehearsal with this checkout where Colab's setup cell would have cloned it. MASUKA_HOME
    is unset, so the home lands on the (stand-in) Drive as it does on Colab."""
    rehearsal = ColabRehearsal(tmp_path / "colab")
    monkeypatch.delenv("MASUKA_HOME", raising=False)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))

    def run(name: str, **parameters):
        rehearsal.prepare(checkout=ROOT)
        for key, value in rehearsal.env().items():
            monkeypatch.setenv(key, value)
        out = tmp_path / f"colab-{name}"
        papermill.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, cwd=str(rehearsal.content),
                                   kernel_name=rehearsal.kernel_name, progress_bar=False, execution_timeout=300)
        nb = nbformat.read(out, as_version=4)
        assert "output.enable_custom_widget_manager" not in [c["api"] for c in rehearsal.calls()]
        return nb, out.read_text(encoding="utf-8")

    rehearsal.run = run
    return rehearsal


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _stderr(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stderr")


def _setup_ran_its_colab_branch(nb, colab) -> None:
    out = _stdout(nb)
    assert "Mounted at /content/drive" in out
    assert "MASUKA setup summary" in out and "Google Colab" in out
    assert [c["api"] for c in colab.calls()][:1] == ["drive.mount"]


# ---- static checks -----------------------------------------------------------------------------

def test_notebooks_are_committed_without_outputs():
    subprocess.run([sys.executable, "-m", "nbstripout", "--verify", *map(str, NOTEBOOKS.glob("*.ipynb"))],
                   check=True)
    for name in NAMES:
        nb = _read(name)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in nb.cells if c.cell_type == "code"), name


@pytest.mark.parametrize("name", NAMES)
def test_every_mk_name_a_notebook_uses_is_public(name):
    used = set(re.findall(r"\bmk\.([A-Za-z_]\w*)", _source(_read(name))))
    assert used, name
    assert used <= set(masuka_nb.__all__), sorted(used - set(masuka_nb.__all__))


def test_notebooks_lint_clean():
    subprocess.run([sys.executable, "-m", "ruff", "check", str(NOTEBOOKS)], check=True, cwd=ROOT)


@pytest.mark.parametrize("name", NAMES)
def test_colab_shape_badge_form_drive_setup(name):
    nb = _read(name)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    badge = f"https://colab.research.google.com/github/masuka-ai/masuka/blob/main/notebooks/{name}"
    assert badge in first.source and "colab-badge.svg" in first.source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "#@param" in tagged[0].source and "#@title" in tagged[0].source
    # every #@param line is a plain assignment papermill can override
    for line in tagged[0].source.splitlines():
        if "#@param" in line:
            assert " = " in line.split("#@param")[0], line
    src = _source(nb)
    assert 'drive.mount("/content/drive")' in src and "setup_colab" in src
    assert "enable_custom_widget_manager" not in src
    order = [i for i, c in enumerate(nb.cells) if "drive.mount" in c.source or "setup_colab.main" in c.source]
    assert order == sorted(order) and nb.cells.index(tagged[0]) < order[0]  # form, then Drive, then setup
    assert nb.metadata.kernelspec.name == "python3"


# ---- execution: the default path, in the Colab rehearsal -------------------------------------------

@pytest.mark.slow
def test_app_notebook_on_its_defaults_in_colab(colab):
    nb, _text = colab.run("MASUKA.ipynb")
    _setup_ran_its_colab_branch(nb, colab)
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert views, "the app cell displayed no widget"
    assert (colab.drive_root / "MASUKA").is_dir()  # the home is on Drive


@pytest.mark.slow
def test_images_notebook_on_its_defaults_in_colab_model_auto(colab):
    nb, _ = colab.run("01_images.ipynb", WIDTH=32, HEIGHT=32, STEPS=2)
    _setup_ran_its_colab_branch(nb, colab)
    out = _stdout(nb)
    assert "model auto: tiny-flux" in out  # the engine's rule, said by the notebook
    assert re.search(r"seed \d+: ", out)
    assert "identical image from the recipe: True" in out
    assert len(list((colab.drive_root / "MASUKA" / "outputs").rglob("*.png"))) == 1
    assert "tiny-flux" in out  # the history cell lists the run
    assert "Traceback" not in _stderr(nb) and "generate.auto_model" not in _stderr(nb)


@pytest.mark.slow
def test_lora_notebook_on_its_defaults_in_colab_with_an_upload(colab):
    from PIL import Image

    from tests.lora.helpers import encode

    uploads = {}
    for i, color in enumerate([(210, 40, 40), (40, 210, 40), (40, 40, 210)]):
        img = Image.new("RGB", (320, 320), color)
        for x in range(0, 320, 20):
            img.putpixel((x, x), (255, 255, 255))
        uploads[f"p{i}.png"] = encode(img, "PNG")
    colab.uploads = uploads
    # SOURCE empty: Colab's uploader; BASE flux1-dev and florence-2: the tiny twins stand in by themselves
    nb, _ = colab.run("02_lora.ipynb", STEPS=2, RESOLUTION=64, COMPARE_STEPS=1)
    _setup_ran_its_colab_branch(nb, colab)
    out = _stdout(nb)
    assert "files.upload" in [c["api"] for c in colab.calls()]
    assert "3 imported" in out and "mksubject" in out
    lora = [line for line in out.splitlines() if "LoRA:" in line]
    assert lora and Path(lora[-1].split("LoRA:")[-1].strip()).is_file()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "neither the loss curve nor the comparison grid was shown"
    assert "Traceback" not in _stderr(nb) and "couldn't connect" not in _stderr(nb).lower()


@pytest.mark.slow
def test_video_notebook_secrets_branch_in_colab_leaks_no_key(colab, monkeypatch):
    from masuka_nb.testing.fakes import FakeCometAPI

    monkeypatch.delenv("COMETAPI_KEY", raising=False)
    monkeypatch.setenv("MASUKA_POLL_INTERVAL", "0.05")
    colab.secrets = {"COMETAPI_KEY": CANARY}  # the key only in (stand-in) Colab Secrets
    colab.no_access = {"RUNWAYML_API_SECRET"}
    with FakeCometAPI(key=CANARY, complete_after=0.2) as fake:
        monkeypatch.setenv("MASUKA_COMETAPI_BASE_URL", fake.base_url)
        nb, text = colab.run("03_video.ipynb")  # SIMULATOR empty: the Secrets branch
        assert fake.counts["submit"] == 1
    _setup_ran_its_colab_branch(nb, colab)
    out = _stdout(nb)
    assert "Keys found: COMETAPI_KEY" in out
    assert "veo-3.1-fast" in out and "via cometapi" in out  # the form's default model
    assert len(list((colab.drive_root / "MASUKA" / "outputs").rglob("*.mp4"))) == 1
    asked = [c.get("key") for c in colab.calls() if c["api"] == "userdata.get"]
    assert "COMETAPI_KEY" in asked and "RUNWAYML_API_SECRET" in asked
    assert find_canary(CANARY, [colab.drive_root, colab.content], texts=[text]) == []


# ---- outside Colab ------------------------------------------------------------------------------

def test_simulator_path_starts_its_own_fake(run_notebook, monkeypatch, masuka_home):
    monkeypatch.setenv("MASUKA_POLL_INTERVAL", "0.05")
    monkeypatch.delenv("COMETAPI_KEY", raising=False)
    nb, _ = run_notebook("03_video.ipynb", MODEL="sora-2", DURATION=4, RESOLUTION="720p", SIMULATOR="cometapi",
                         MAX_COST=5.0)
    out = _stdout(nb)
    assert "Using the cometapi simulator" in out and "via cometapi" in out
    assert list((masuka_home / "outputs").rglob("*.mp4"))


def test_a_generate_cell_shows_one_progress_bar_and_no_stderr(tmp_path, monkeypatch):
    """The done-when of clean output: `generate` on the default model in a notebook cell shows one bar
    (loading folded in, no library bars) and writes nothing to stderr (no red block)."""
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}")
    monkeypatch.setenv("MASUKA_PROGRESS", "auto")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("import masuka_nb as mk"),
                nbformat.v4.new_code_cell("result = mk.generate('a lighthouse', steps=2, width=32, height=32)\n"
                                          "print('made', len(result.images), result.recipe.get('model'))")]
    src, out = tmp_path / "cell.ipynb", tmp_path / "cell-out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(out), cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
                               execution_timeout=120)
    cell = nbformat.read(out, as_version=4).cells[-1]
    outputs = cell.get("outputs", [])
    assert "made 1 tiny-flux" in "".join(o.get("text", "") for o in outputs)
    bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(bars) == 1, outputs
    assert [o for o in outputs if o.get("name") == "stderr"] == [], outputs
