"""The app's pure rules: formatting, form parsing, uploads from either ipywidgets version, errors."""

from __future__ import annotations

import sys

import pytest
from PIL import Image

from masuka_nb.errors import CancelledError, GatedModelError, InvalidRequestError
from masuka_nb.history import HistoryRecord
from masuka_nb.secrets import register_secret
from masuka_nb.ui import helpers as h


def test_helpers_module_is_widget_free():
    # a fresh interpreter: importing the helpers must not pull ipywidgets in
    import subprocess

    code = "import masuka_nb.ui.helpers, sys; assert 'ipywidgets' not in sys.modules, 'ipywidgets loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "–"), (float("nan"), "–"), (-1, "–"), (0.04, "0.0 s"), (3.24, "3.2 s"), (42, "42 s"),
    (65, "1 min 05 s"), (3725, "1 h 02 min"),
])
def test_fmt_duration(seconds, text):
    assert h.fmt_duration(seconds) == text


def test_fmt_money_and_bytes():
    assert h.fmt_money(None) == "–"
    assert h.fmt_money(0) == "$0.00"
    assert h.fmt_money(0.004) == "$0.004"
    assert h.fmt_money(1234.5) == "$1,234.50"
    assert h.fmt_bytes(512) == "512 B"
    assert h.fmt_bytes(1536) == "1.5 KB"
    assert h.fmt_bytes(3 * 1024**3) == "3.0 GB"


def test_progress_text():
    assert h.progress_text("denoise", 3, 8, eta_s=4.12, message="step") == "denoise 3/8 · 38% · ETA 4 s · step"
    assert h.progress_text("denoise", 8, 8, eta_s=0.0) == "denoise 8/8 · 100%"
    assert h.progress_text("queued", 0, 0) == "queued"


@pytest.mark.parametrize(("text", "seed"), [("", None), ("  ", None), ("random", None), ("-1", None),
                                            ("42", 42), (" 4294967295 ", 2**32 - 1), (7, 7), (None, None)])
def test_parse_seed_accepts(text, seed):
    assert h.parse_seed(text) == seed


@pytest.mark.parametrize("text", ["abc", "1.5", "4294967296", "-2"])
def test_parse_seed_rejects_with_code_and_hint(text):
    with pytest.raises(InvalidRequestError) as info:
        h.parse_seed(text)
    assert info.value.code == "INVALID_REQUEST" and info.value.argument == "seed" and info.value.hint


def test_parse_int():
    assert h.parse_int("", argument="steps", low=1, high=10) is None
    assert h.parse_int(" 5 ", argument="steps", low=1, high=10) == 5
    for bad in ("0", "11", "x"):
        with pytest.raises(InvalidRequestError, match="steps"):
            h.parse_int(bad, argument="steps", low=1, high=10)
    with pytest.raises(InvalidRequestError):
        h.parse_int("", argument="steps", low=1, high=10, allow_empty=False)


def test_parse_number_list():
    assert h.parse_number_list("1, 2 3", argument="seeds", integer=True) == [1.0, 2.0, 3.0]
    assert h.parse_number_list("0.5,1", argument="weights") == [0.5, 1.0]
    for bad in ("", "1.5", "x"):
        with pytest.raises(InvalidRequestError):
            h.parse_number_list(bad, argument="seeds", integer=True)


def test_parse_loras():
    text = "style-a\nstyle-b:0.6, https://host/x.safetensors @ 0.5\nhttps://host/y.safetensors\n\nrepo/name:-0.25"
    assert h.parse_loras(text) == [
        ("style-a", 1.0), ("style-b", 0.6), ("https://host/x.safetensors", 0.5),
        ("https://host/y.safetensors", 1.0), ("repo/name", -0.25),
    ]
    assert h.parse_loras("") == []
    with pytest.raises(InvalidRequestError):
        h.parse_loras("x @ heavy")
    with pytest.raises(InvalidRequestError):
        h.parse_loras(":0.5")


def test_upload_items_from_ipywidgets_7_dict():
    value = {"a.png": {"metadata": {"name": "a.png", "type": "image/png", "size": 3}, "content": b"abc"},
             "b.jpg": {"metadata": {"name": "b.jpg"}, "content": b"de"}}
    assert h.upload_items(value) == [h.Upload("a.png", b"abc"), h.Upload("b.jpg", b"de")]


def test_upload_items_from_ipywidgets_8_tuple():
    value = ({"name": "a.png", "type": "image/png", "size": 3, "last_modified": 0, "content": memoryview(b"abc")},)
    assert h.upload_items(value) == [h.Upload("a.png", b"abc")]
    assert h.upload_items(()) == [] and h.upload_items({}) == [] and h.upload_items(None) == []


def test_error_info_for_masuka_errors_cancel_and_bugs():
    err = GatedModelError("FLUX.1-dev is gated.", argument="model", value="flux1-dev", hint="Accept the licence.")
    info = h.error_info(err)
    assert (info.code, info.message, info.hint, info.level) == ("GATED_MODEL", "FLUX.1-dev is gated.",
                                                                "Accept the licence.", "error")
    assert "argument: model = 'flux1-dev'" in info.details and "code: GATED_MODEL" in info.details
    assert 'data-code="GATED_MODEL"' in info.to_html() and "Accept the licence." in info.to_html()
    assert h.error_info(KeyboardInterrupt()).level == "warning"
    assert h.error_info(CancelledError("stop")).code == "CANCELLED"
    bug = h.error_info(ZeroDivisionError("division by zero"))
    assert bug.code == "UNEXPECTED" and "ZeroDivisionError" not in bug.message and "ZeroDivisionError" in bug.details


def _visible(html: str) -> str:
    """What a person reads without opening a disclosure: tags and <details> bodies removed."""
    import re

    html = re.sub(r"<details.*?</details>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.mark.parametrize("err", [
    InvalidRequestError("`width` = 99999 is outside 16 … 2048.", argument="width", value=99999,
                        hint="Type a value in that range."),
    InvalidRequestError("`prompt` must be a non-empty string.", argument="prompt", value=""),
    CancelledError("the video was cancelled.", hint="Run `masuka_nb.jobs.get('ab12').wait()` to pick it up."),
    GatedModelError("FLUX.1-dev is gated.", argument="model", value="flux1-dev",
                    hint="Accept the licence, then `masuka_nb.configure(hf_token=...)`."),
])
def test_no_code_argument_repr_or_python_is_shown_outside_the_details(err):
    info = h.error_info(err, labels={"width": "Width", "prompt": "The prompt"})
    shown = _visible(info.to_html())
    assert "`" not in shown and err.code not in shown and "masuka_nb" not in shown and "=" not in shown, shown
    assert info.message and info.details  # the technical part is kept, in the disclosure
    assert err.code in info.details


def test_plain_words_keep_sentences_and_move_code():
    assert h.plain("`width` = 99999 is outside 16 … 2048.", {"width": "Width"}) == (
        "Width 99999 is outside 16 … 2048.", [])
    text, moved = h.plain("Run `mk.jobs.get('x').wait()` to finish it. Or press Resume.")
    assert text == "Or press Resume." and moved == ["Run `mk.jobs.get('x').wait()` to finish it."]


def test_eta_is_smoothed_and_rounded():
    eta = h.EtaSmoother()
    assert eta("denoise", 1, 100, 1.0) is None  # one step: no rate yet
    first = eta("denoise", 2, 100, 2.0)
    assert first == 100  # 98 steps × 1 s, rounded to 5 s
    slow = eta("denoise", 3, 100, 12.0)  # one slow step (10 s) does not make it jump tenfold
    assert first < slow < 10 * first
    assert eta("load", 1, 2, 0.0) is None  # a new stage starts its own estimate
    assert h.round_eta(7.4) == 7 and h.round_eta(63) == 65 and h.round_eta(200) == 210


def test_html_is_escaped_and_redacted():
    register_secret("sk-canary-ui-0123456789")
    info = h.error_info(InvalidRequestError("<b>bad</b> key sk-canary-ui-0123456789", argument="prompt"))
    html = info.to_html()
    assert "<b>bad</b>" not in html and "&lt;b&gt;" in html
    assert "sk-canary-ui-0123456789" not in html
    assert "sk-canary-ui-0123456789" not in h.esc("key=sk-canary-ui-0123456789")


def test_png_bytes_and_upscale():
    img = Image.new("RGB", (32, 16), (200, 10, 10))
    big = h.upscale_for_display(img, min_side=64)
    assert big.size == (128, 64) and big.getpixel((100, 50)) == (200, 10, 10)
    assert h.upscale_for_display(Image.new("RGB", (300, 300)), min_side=64).size == (300, 300)
    data = h.png_bytes(Image.new("RGB", (400, 200)), max_side=100)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from io import BytesIO

    assert Image.open(BytesIO(data)).size == (100, 50)


def test_history_stats_and_titles():
    recs = [
        HistoryRecord("image", "ok", model="tiny-flux", prompt="a lighthouse " * 10, created_at="2026-01-02T00:00:00"),
        HistoryRecord("video", "ok", model="veo3-pro", extra={"cost_usd": 1.25}, created_at="2026-01-03T00:00:00"),
        HistoryRecord("video", "ok", model="sora-2", extra={"cost_usd": 0.5, "estimate_usd": 0.6}),
        HistoryRecord("video", "failed", model="sora-2", extra={"cost_usd": 0.0, "estimate_usd": 9.0}),
        HistoryRecord("training", "cancelled"),
    ]
    st = h.history_stats(recs)
    assert st.total == 5
    assert st.by_kind == {"image": 1, "video": 3, "training": 1}
    assert st.by_status == {"ok": 3, "failed": 1, "cancelled": 1}
    assert st.spend_usd == 1.75  # charges only: estimates and refunded failures are not spend
    assert st.last_at == "2026-01-03T00:00:00"
    title = h.record_title(recs[0], limit=20)
    assert title.startswith("image · tiny-flux · a lighthouse") and title.endswith("…")
