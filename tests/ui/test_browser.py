"""The app in a real browser: Voila serves a notebook that shows `mk.app()`, Debian's Chromium
(driven by Playwright) clicks through every tab, wide (1400 px) and narrow (420 px), light and dark;
then the same notebook runs in JupyterLab (its own light and dark themes).

It checks what a person sees: every <select> has its chevron; a form error is shown at the field;
after Generate the newest result is inside the viewport; after a second run nothing of the first
remains; the simulator's clip plays (`<video>` reaches readyState ≥ 2); tab labels are not cut.
Screenshots of every tab in each look go to $UI_SCREENSHOTS, else test-output/browser/ in the repo.

Where Chromium, Voila or Playwright is missing it skips, except under CI (`CI` set): there it fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MISSING = [what for what, ok in (("Debian chromium (/usr/bin/chromium)", Path(CHROMIUM).exists()),
                                 ("voila", importlib.util.find_spec("voila") is not None),
                                 ("jupyterlab", importlib.util.find_spec("jupyterlab") is not None),
                                 ("playwright", importlib.util.find_spec("playwright") is not None)) if not ok]
pytestmark = [
    pytest.mark.slow,
    # Voila 0.5 with ipywidgets 7.7.1 (even with jupyterlab_widgets 1.1.1) rendered no widgets here (403s on
    # the 7.x front-end assets); Colab's own 7.7.1 front end is not reproducible offline, so the browser
    # check runs under 8.x and the 7.7.1 run covers the Python side of every panel.
    pytest.mark.skipif(__import__("ipywidgets").__version__.startswith("7."),
                       reason="the Voila + ipywidgets 7.7.1 front end does not render offline"),
]
TABS = ("Image", "LoRA", "Video", "History", "Dashboard", "Settings")

APP_CODE = """
import os
from PIL import Image
from masuka_nb.history import HistoryRecord, record
from masuka_nb.testing.fakes import simulator
home = os.environ["MASUKA_HOME"]
os.makedirs(home + "/outputs", exist_ok=True)
paths = []
for i, (prompt, color) in enumerate([("a red lighthouse at dawn", (200, 70, 60)),
                                     ("teal waves, long exposure", (40, 150, 160))]):
    path = home + f"/outputs/demo{i}.png"
    Image.new("RGB", (320, 320), color).save(path)
    paths.append(path)
    record(HistoryRecord("image", "ok", model="tiny-flux", prompt=prompt, paths=[path], timings={"total": 1.5 + i},
                         recipe={"prompt": prompt, "model": "tiny-flux", "steps": 2, "seed": 7 + i}))
record(HistoryRecord("image", "ok", model="tiny-flux", prompt="a batch of three", paths=paths + paths[:1],
                     recipe={"prompt": "a batch of three", "seeds": [1, 2, 3]}))
record(HistoryRecord("video", "ok", model="veo3-pro", prompt="a slow dolly shot", extra={"cost_usd": 1.2},
                     recipe={"provider": "cometapi"}, timings={"total": 42.0}))
record(HistoryRecord("image", "failed", model="flux1-dev", prompt="too big",
                     error={"code": "OUT_OF_MEMORY", "message": "CUDA out of memory"}))
sim = simulator("cometapi", complete_after=0.5)
sim.__enter__()  # the offline CometAPI for this kernel's life: clips are free and labelled SIMULATOR
import masuka_nb as mk
ui = mk.app(model="tiny-flux", background=True)
ui.image.width.value = ui.image.height.value = 64
ui.image.steps.value = 2
from masuka_nb.lora import Dataset
ds = Dataset.create("demo")
ds.import_files([(f"p{i}.png", open(paths[i % 2], "rb").read()) for i in range(2)])
ui.lora.name.value = "demo"
ui.lora.open_button.click()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shots() -> Path:
    folder = Path(os.environ.get("UI_SCREENSHOTS") or ROOT / "test-output" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _require_tools() -> None:
    if MISSING:
        message = "the browser test needs " + ", ".join(MISSING)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: install them: `apt-get install chromium`; pip: voila, jupyterlab, "
                        "playwright — the dev extra)")
        pytest.skip(message)


@contextlib.contextmanager
def _serve(tmp_path, argv: list[str], port: int):
    """Start a server (Voila, JupyterLab) on `port` from a notebook of APP_CODE; yield once it listens."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(APP_CODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "app.ipynb")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log_path = tmp_path / f"server-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180  # servers start in seconds, but the 2 shared cores may be busy
        while True:
            try:  # a TCP connect, not a GET: GET / would make Voila run the notebook in a kernel
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not start:\n" + log_path.read_text()) from None
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def voila_url(tmp_path, masuka_home):
    _require_tools()
    port = _free_port()
    with _serve(tmp_path, ["voila", "app.ipynb", f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1",
                           "--VoilaConfiguration.file_allowlist=['.*']", "--ServerApp.disable_check_xsrf=True",
                           "--show_tracebacks=True"], port):
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture
def lab_url(tmp_path, masuka_home):
    _require_tools()
    port = _free_port()
    with _serve(tmp_path, ["jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                           f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
                           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                           "--ServerApp.open_browser=False", "--ServerApp.allow_root=True"], port):
        yield f"http://127.0.0.1:{port}/lab/tree/app.ipynb"


def _browser(pw, *, width: int = 1400, height: int = 1000):
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"])
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(120_000)
    return browser, page


def test_app_renders_and_works_in_a_real_browser(voila_url, tmp_path, shots):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # a busy 2-core machine: building the tiny model can take a while
    with sync_playwright() as pw:
        browser, page = _browser(pw)
        try:
            _click_through(page, expect, voila_url, shots)
        except Exception:
            # keep what the browser showed, to tell a slow machine from a broken page
            page.screenshot(path=str(shots / "failure.png"), full_page=True)
            (shots / "failure.html").write_text(page.content(), encoding="utf-8")
            raise
        finally:
            browser.close()


def test_app_in_jupyterlab_light_and_dark(lab_url, shots):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)
    with sync_playwright() as pw:
        browser, page = _browser(pw)
        try:
            page.goto(lab_url)
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell")
            page.locator(".jp-Notebook").first.wait_for()
            select = page.locator(".jp-Dialog button", has_text="Select")  # "Select Kernel" for a new notebook
            try:
                select.wait_for(timeout=15_000)
                select.click()
            except PlaywrightTimeout:
                pass
            no_news = page.locator(".jp-toast-button", has_text="No")  # JupyterLab's "official news?" toast
            if no_news.count():
                no_news.first.click()
            # run the notebook as a user would (Run ▸ Run All Cells), once the kernel is up
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for()
            # (not awaited: the command's promise settles only when every cell has run)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            expect(page.locator(".mk-app .mk-title")).to_have_text("MASUKA")
            expect(page.locator(".mk-app")).to_have_count(1)  # shown once
            _check_chevrons(page, some=True)
            _check_tab_labels(page)
            page.get_by_placeholder("Describe the image", exact=False).fill("a lighthouse at dawn")
            page.get_by_placeholder("random").fill("8")
            page.locator(".mk-app button", has_text="Generate").first.click()
            expect(page.locator(".mk-live .mk-caption", has_text="seed 8")).to_be_visible()
            assert _in_viewport(page, page.locator(".mk-live .mk-large").first), "the newest result is out of view"
            _shoot_every_tab(page, shots, "lab-light")
            page.evaluate("() => { window.jupyterapp.commands.execute('apputils:change-theme', "
                          "{theme: 'JupyterLab Dark'}); }")
            page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
            page.wait_for_timeout(500)
            color = page.locator(".mk-app .mk-title").evaluate("e => getComputedStyle(e).color")
            assert color == "rgb(232, 234, 240)", color  # JupyterLab's dark theme is followed
            _shoot_every_tab(page, shots, "lab-dark")
        except Exception:
            page.screenshot(path=str(shots / "failure-lab.png"))
            (shots / "failure-lab.html").write_text(page.content(), encoding="utf-8")
            raise
        finally:
            browser.close()


def _tab(page, title: str):
    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text=title).first.click()
    page.wait_for_timeout(300)  # the tab's refresh is a kernel round trip; the checks below wait on content


def _set_theme(page, dark: bool) -> None:
    """Colab's own marker for its dark theme (html[theme=dark]) on a dark page, or back to light."""
    if dark:
        page.evaluate("document.documentElement.setAttribute('theme', 'dark'); document.body.style.background = '#1e1f24'")
    else:
        page.evaluate("document.documentElement.removeAttribute('theme'); document.body.style.background = ''")


def _in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    view = page.viewport_size
    return box is not None and box["y"] < view["height"] and box["y"] + min(box["height"], 80) > 0


def _check_chevrons(page, *, some: bool = False) -> None:
    selects = page.locator(".mk-app select:visible")
    images = selects.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundImage)")
    assert all("svg" in img for img in images), images
    assert images or not some, "no <select> visible"


def _check_tab_labels(page) -> None:
    cut = page.locator(".lm-TabBar-tabLabel, .p-TabBar-tabLabel").evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)")
    assert not cut, f"tab labels cut: {cut}"


def _shoot_every_tab(page, shots: Path, look: str) -> None:
    for title in TABS:
        _tab(page, title)
        if title == "History":
            page.locator(".mk-caption", has_text="a red lighthouse at dawn").first.wait_for()
        if title == "Dashboard":
            page.locator('[data-testid="mk-stats"]').wait_for()
            page.locator(".mk-refreshed .mk-chart").first.wait_for(state="visible")  # every chart drawn
        if title == "Settings":
            page.locator('[data-testid="mk-keys"]').wait_for()
        _check_chevrons(page, some=title not in ("Dashboard",))
        page.screenshot(path=str(shots / f"{title.lower()}-{look}.png"), full_page=True)


def _click_through(page, expect, voila_url: str, shots: Path) -> None:
    page.goto(voila_url)
    expect(page.locator(".mk-title")).to_have_text("MASUKA")
    generate = page.locator("button", has_text="Generate").first
    expect(generate).to_be_visible()
    _check_chevrons(page, some=True)
    _check_tab_labels(page)
    assert page.locator(".mk-header-chips .mk-chip").count() >= 3 and page.locator(".mk-chip", has_text="RAM").count() == 1

    # a typo in the form: the error appears at the field (marked) with its code and hint
    page.get_by_placeholder("random").fill("not-a-seed")
    page.get_by_placeholder("Describe the image", exact=False).fill("a lighthouse at dawn")
    generate.click()
    expect(page.locator('.mk-panel [data-testid="mk-error"][data-code="INVALID_REQUEST"]').first).to_be_visible()
    expect(page.locator(".mk-invalid input").first).to_be_visible()

    # the real engine on tiny-flux: the newest result is in view, beside the form
    page.get_by_placeholder("random").fill("3")
    generate.click()
    first = page.locator(".mk-live .mk-caption", has_text="seed 3")
    expect(first).to_be_visible()
    assert _in_viewport(page, page.locator(".mk-live .mk-large").first), "the newest result is out of view"
    expect(page.locator('[data-testid="mk-recipe"]').first).to_contain_text("seed")
    # a second run: nothing of the first remains
    page.get_by_placeholder("random").fill("4")
    generate.click()
    expect(page.locator(".mk-live .mk-caption", has_text="seed 4")).to_be_visible()
    expect(page.locator(".mk-app", has_text="seed 3")).to_have_count(0)

    # the simulator's clip plays in the browser (H.264)
    _tab(page, "Video")
    page.get_by_placeholder("dolly shot", exact=False).fill("waves at night, slow pan")
    page.locator("button", has_text="Generate video").click()
    video = page.locator(".mk-live video").first
    expect(video).to_be_visible()
    page.wait_for_function("v => v.readyState >= 2 && v.videoWidth > 0", arg=video.element_handle())
    assert video.evaluate("v => v.error === null")
    expect(page.locator('[data-testid="mk-clip"] a[download]')).to_be_visible()

    _set_theme(page, dark=False)
    _shoot_every_tab(page, shots, "wide-light")
    _set_theme(page, dark=True)
    color = page.locator(".mk-title").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(232, 234, 240)", color  # light text on dark
    _shoot_every_tab(page, shots, "wide-dark")

    # narrow: 420 px, the phone-sized column; results come first once a run has started
    page.set_viewport_size({"width": 420, "height": 900})
    _set_theme(page, dark=False)
    _tab(page, "Image")
    _check_tab_labels(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 420 px"
    page.get_by_placeholder("random").fill("5")
    page.locator("button", has_text="Generate").first.click()
    expect(page.locator(".mk-live .mk-caption", has_text="seed 5")).to_be_visible()
    live = page.locator(".mk-panel .mk-live").first
    form = page.get_by_placeholder("Describe the image", exact=False)
    assert live.bounding_box()["y"] < form.bounding_box()["y"], "results should come first on a narrow screen"
    _shoot_every_tab(page, shots, "narrow-light")
    _set_theme(page, dark=True)
    _shoot_every_tab(page, shots, "narrow-dark")
