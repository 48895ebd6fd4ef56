"""The embedded-default rule: a short, cached probe of the Hub decides when the tiny models stand in.

The Hub is played by loopback servers: one that answers, one port where nothing listens, and one
that accepts connections and never answers (the "hangs for minutes" case). No test sets HF_HUB_OFFLINE.
"""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

import masuka_nb as mk
from masuka_nb.errors import ModelFilesMissingError
from masuka_nb.models import embedded


class _Hub(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_HEAD(self):
        _Hub.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def answering_hub(monkeypatch):
    _Hub.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield _Hub.hits
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_hub(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")


@pytest.fixture
def silent_hub(monkeypatch):
    """Accepts TCP connections and never sends a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
    monkeypatch.setattr(embedded, "PROBE_TIMEOUT_S", 0.3)
    yield
    sock.close()


def test_a_hub_that_answers_is_used_and_asked_once(answering_hub):
    assert embedded.hub_reachable() is True
    assert embedded.hub_reachable() is True
    assert answering_hub == ["/api/models"]  # cached for the session
    assert embedded.use_embedded_models() is False  # no GPU here, but the real models can be fetched


def test_no_hub_and_no_gpu_means_the_tiny_models(dead_hub, caplog):
    caplog.set_level("INFO", logger="masuka_nb")
    assert embedded.hub_reachable() is False
    assert embedded.use_embedded_models(engine="curate") is True
    assert embedded.use_embedded_models(engine="caption") is True
    said = [r for r in caplog.records if getattr(r, "event", "") == "embedded.models"]
    assert len(said) == 1 and "curate" in said[0].getMessage()  # said once, by the first engine that asked


def test_a_negative_answer_is_retried_after_its_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(embedded, "clock", lambda: now[0])
    port = _free_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert embedded.hub_reachable() is False
    _Hub.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Hub)  # the network comes back
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        now[0] += embedded.NEGATIVE_TTL_S - 1
        assert embedded.hub_reachable() is False and _Hub.hits == []  # still the cached answer
        now[0] += 2
        assert embedded.hub_reachable() is True and _Hub.hits == ["/api/models"]
    finally:
        server.shutdown()
        server.server_close()


def test_offline_setting_needs_no_probe(answering_hub):
    mk.configure(offline=True)
    assert embedded.hub_reachable() is False
    assert embedded.use_embedded_models() is True
    assert answering_hub == []


def test_a_hub_that_never_answers_is_given_up_on(silent_hub):
    assert embedded.hub_reachable() is False
    with pytest.raises(ModelFilesMissingError) as err:
        embedded.require_hub(model="flux1-schnell", repo="black-forest-labs/FLUX.1-schnell", files="7 files (31.4 GB)")
    e = err.value
    assert e.code == "MODEL_FILES_MISSING" and e.value == "flux1-schnell"
    text = str(e)
    assert "black-forest-labs/FLUX.1-schnell" in text and "7 files" in text and "cannot be reached" in text
    assert "MASUKA_OFFLINE" in e.hint and "tiny-flux" in e.hint


def test_a_real_model_without_hub_fails_fast_naming_files(dead_hub, tmp_path, monkeypatch):
    from masuka_nb.config import reset_configuration
    from masuka_nb.hub import download_plan, locate_model
    from masuka_nb.models.registry import get_model

    # A cache of its own: the session's shared cache may already hold flux1-schnell's files (the real road
    # downloads them), and a local copy is rightly used without the hub.
    monkeypatch.setenv("MASUKA_CACHE_DIR", str(tmp_path / "empty-cache"))
    reset_configuration()

    spec = get_model("flux1-schnell")
    dplan = download_plan(spec, plan=mk.plan("flux1-schnell", gpu="h100"))
    assert dplan.files == ()  # no listing without a hub, and no hub call that retries
    with pytest.raises(ModelFilesMissingError) as err:
        locate_model(spec, dplan)
    assert "cannot be reached" in str(err.value) and "transformer/*" in str(err.value)


def test_a_real_scorer_without_hub_and_without_a_local_copy_is_a_masuka_error(dead_hub):
    with pytest.raises(ModelFilesMissingError) as err:
        embedded.local_only_kwargs(model="clip", repo="masuka-test/never-downloaded-clip")
    assert "masuka-test/never-downloaded-clip" in str(err.value)


def test_default_captioner_and_scorer_pick_tiny_by_themselves(dead_hub):
    from masuka_nb.lora.caption import _resolve
    from masuka_nb.lora.curate import ClipScorer

    family, _folder, tiny = _resolve("florence-2")
    assert family == "florence-2" and tiny
    assert ClipScorer("clip").name == "tiny-clip"


def test_training_and_comparison_fall_back_to_tiny_flux(dead_hub):
    from masuka_nb.lora.training import _embedded_base

    base, note = _embedded_base("flux1-dev", None)
    assert base == "tiny-flux" and "flux1-dev" in note
    assert _embedded_base("flux1-dev", "t4") == ("flux1-dev", "")  # planning for a named GPU: no swap


@pytest.mark.gpu
def test_with_a_gpu_and_no_hub_a_missing_model_is_an_error_within_seconds(silent_hub):
    with pytest.raises(ModelFilesMissingError) as err:
        mk.generate("a castle", model="flux1-schnell", steps=1, width=256, height=256)
    assert "flux1-schnell" in str(err.value) and "MASUKA_OFFLINE" in err.value.hint
