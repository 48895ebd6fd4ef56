"""The one downloader: resumes with HTTP Range after a broken transfer, caps the size, checks, renames when whole."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading

import pytest

from masuka_nb.errors import MasukaError
from masuka_nb.hosted.download import download, download_bytes
from masuka_nb.progress import CancelToken

BODY = os.urandom(300_000)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves BODY at /file with Range; /broken cuts the first answer half way; /big claims 10 GB; /gone is 404."""

    broken_once = threading.Event()
    seen: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append(f"{self.path} {self.headers.get('Range', '')}")
        if self.path.startswith("/gone"):
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not found</html>")
            return
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 1024**3))
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
            return
        start = 0
        m = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if self.path == "/broken" and not self.broken_once.is_set():
            self.broken_once.set()
            self.wfile.write(BODY[start:start + 100_000])
            self.wfile.flush()
            self.connection.shutdown(2)  # the transfer breaks off half way
            return
        self.wfile.write(BODY[start:])


@pytest.fixture
def server():
    _Handler.broken_once.clear()
    _Handler.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_broken_transfer_resumes_with_range_and_lands_whole(server, tmp_path):
    target = download(f"{server}/broken", tmp_path / "f.bin", max_bytes=1 << 20,
                      sha256=hashlib.sha256(BODY).hexdigest())
    assert target.read_bytes() == BODY and not (tmp_path / "f.bin.part").exists()
    assert any("bytes=100000-" in s for s in _Handler.seen)  # the second request asked only for the rest


def test_size_cap_refuses_before_and_while_reading(server, tmp_path):
    with pytest.raises(MasukaError) as info:
        download(f"{server}/big", tmp_path / "big.bin", max_bytes=1 << 20, argument="loras")
    assert info.value.code == "INVALID_REQUEST" and info.value.argument == "loras"
    assert not list(tmp_path.iterdir())  # nothing kept, no .part either
    with pytest.raises(MasukaError):
        download_bytes(f"{server}/file", max_bytes=1000)


def test_a_wrong_checksum_never_replaces_the_target(server, tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"the good old file")
    with pytest.raises(MasukaError) as info:
        download(f"{server}/file", target, max_bytes=1 << 20, sha256="0" * 64)
    assert info.value.code == "DOWNLOAD_FAILED" and target.read_bytes() == b"the good old file"


def test_a_missing_url_is_a_download_error_not_a_provider_one(server, tmp_path):
    with pytest.raises(MasukaError) as info:
        download(f"{server}/gone?sig=secret-token", tmp_path / "x", max_bytes=1 << 20, argument="path_or_url")
    err = info.value
    assert err.code == "DOWNLOAD_FAILED" and err.details["status"] == 404 and err.argument == "path_or_url"
    assert "secret-token" not in str(err)  # a signed URL's query never reaches the message


def test_a_cancelled_download_keeps_its_part_file_for_the_next_try(server, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(MasukaError) as info:
        download(f"{server}/broken", tmp_path / "f.bin", max_bytes=1 << 20, cancel=token)
    assert info.value.code == "CANCELLED"
    assert download(f"{server}/broken", tmp_path / "f.bin", max_bytes=1 << 20).read_bytes() == BODY


def test_only_http_and_bucket_urls(tmp_path):
    with pytest.raises(MasukaError) as info:
        download("ftp://example.com/x", tmp_path / "x", max_bytes=10, argument="loras")
    assert info.value.argument == "loras"
