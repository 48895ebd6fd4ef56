"""The app in a real browser: Voila serves a notebook that shows `mk.app()`, Debian's Chromium
(driven by Playwright) clicks through it. Where Chromium, Voila or Playwright is missing it is skipped,
except under CI (the `CI` variable set), where a missing browser is a failure, not a quiet skip.

Set UI_SCREENSHOTS=/some/dir to keep the screenshots (light and dark theme) for a visual check.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MISSING = [what for what, absent in (
    ("Debian chromium (apt-get install chromium)", not Path(CHROMIUM).exists()),
    ("voila", importlib.util.find_spec("voila") is None),
    ("playwright", importlib.util.find_spec("playwright") is None),
) if absent]


@pytest.fixture(autouse=True, scope="module")
def _browser_available():
    if MISSING:
        why = "not installed: " + ", ".join(MISSING)
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the browser test cannot run ({why}); install them (see .ci/run).")
        pytest.skip(why)


pytestmark = [
    pytest.mark.slow,
    # Voila 0.5 with ipywidgets 7.7.1 (even with jupyterlab_widgets 1.1.1) rendered no widgets here (403s on
    # the 7.x front-end assets); Colab's own 7.7.1 front end is not reproducible offline, so the browser
    # check runs under 8.x and the 7.7.1 run covers the Python side of every panel.
    pytest.mark.skipif(__import__("ipywidgets").__version__.startswith("7."),
                       reason="the Voila + ipywidgets 7.7.1 front end does not render offline"),
]
ROOT = Path(__file__).resolve().parents[2]
HAS_IMAGE_ENGINE = importlib.util.find_spec("masuka_nb.image") is not None
HAS_LORA = importlib.util.find_spec("masuka_nb.lora") is not None

APP_CODE = """
import os
from PIL import Image
from masuka_nb.history import HistoryRecord, record
os.makedirs(os.environ["MASUKA_HOME"] + "/outputs", exist_ok=True)
for i, (prompt, color) in enumerate([("a red lighthouse at dawn", (200, 70, 60)),
                                     ("teal waves, long exposure", (40, 150, 160))]):
    path = os.environ["MASUKA_HOME"] + f"/outputs/demo{i}.png"
    Image.new("RGB", (320, 320), color).save(path)
    record(HistoryRecord("image", "ok", model="tiny-flux", prompt=prompt, paths=[path],
                         recipe={"prompt": prompt, "model": "tiny-flux", "steps": 2, "seed": 7 + i}))
record(HistoryRecord("video", "ok", model="veo3-pro", prompt="a slow dolly shot", extra={"cost_usd": 1.2}))
import masuka_nb as mk
ui = mk.app(model="tiny-flux")
try:
    from masuka_nb.lora import Dataset
except ImportError:
    Dataset = None
if Dataset is not None:  # a small dataset to look at in the LoRA tab
    ds = Dataset.create("demo")
    ds.import_files([(f"p{i}.png", open(os.environ["MASUKA_HOME"] + f"/outputs/demo{i % 2}.png", "rb").read())
                     for i in range(2)])
    ui.lora.name.value = "demo"
    ui.lora.open_button.click()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def voila_url(tmp_path, masuka_home):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(APP_CODE)]
    path = tmp_path / "app.ipynb"
    nbformat.write(nb, path)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    log = open(tmp_path / "voila.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", str(path), f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1",
         "--VoilaConfiguration.file_allowlist=['.*']", "--ServerApp.disable_check_xsrf=True", "--show_tracebacks=True"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180  # Voila starts in seconds, but the 2 shared cores may be busy
        while True:
            try:  # a TCP connect, not a GET: GET / would make Voila run the notebook in a kernel
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Voila did not start:\n" + (tmp_path / "voila.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_app_renders_and_works_in_a_real_browser(voila_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # a busy 2-core machine: building the tiny model can take a while
    shots = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        page.set_default_timeout(90_000)
        try:
            _click_through(page, expect, voila_url, shots)
        except Exception:
            # keep what the browser showed, to tell a slow machine from a broken page
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            (tmp_path / "failure.html").write_text(page.content(), encoding="utf-8")
            raise
        finally:
            browser.close()


def _click_through(page, expect, voila_url: str, shots: Path) -> None:
    page.goto(voila_url)
    expect(page.locator(".mk-title")).to_have_text("MASUKA")
    expect(page.get_by_text("Generate", exact=True)).to_be_visible()
    page.screenshot(path=str(shots / "image-light.png"), full_page=True)

    # a typo in the form: the error appears in the panel with its code and hint
    page.get_by_placeholder("random").fill("not-a-seed")
    page.get_by_placeholder("Describe the image", exact=False).fill("a lighthouse at dawn")
    page.get_by_text("Generate", exact=True).click()
    expect(page.locator('.mk-panel [data-testid="mk-error"][data-code="INVALID_REQUEST"]')).to_be_visible()

    if HAS_IMAGE_ENGINE:  # the real engine on tiny-flux: images arrive in the gallery
        page.get_by_placeholder("random").fill("3")
        page.get_by_text("Generate", exact=True).click()
        expect(page.locator(".mk-panel .mk-caption", has_text="seed 3")).to_be_visible()
        page.screenshot(path=str(shots / "image-result.png"), full_page=True)

    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="Video").click()
    expect(page.get_by_text("Estimate cost")).to_be_visible()
    page.screenshot(path=str(shots / "video-light.png"), full_page=True)

    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="History").click()
    expect(page.locator(".mk-caption", has_text="a red lighthouse at dawn")).to_be_visible()
    page.screenshot(path=str(shots / "history-light.png"), full_page=True)

    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="Dashboard").click()
    expect(page.locator('[data-testid="mk-stats"]')).to_contain_text("$1.20")
    # Colab's dark theme marker: the app must stay readable (light text on dark)
    page.evaluate("document.documentElement.setAttribute('theme', 'dark');"
                  "document.body.style.background = '#1e1f24';")
    color = page.locator(".mk-stat b").first.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(232, 234, 240)", color
    page.screenshot(path=str(shots / "dashboard-dark.png"), full_page=True)
    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="LoRA").click()
    if HAS_LORA:
        expect(page.locator(".mk-chip", has_text="2 images")).to_be_visible()
    page.screenshot(path=str(shots / "lora-dark.png"), full_page=True)
    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="Image").click()
    page.screenshot(path=str(shots / "image-dark.png"), full_page=True)
