"""The loopback HTTP server every provider fake builds on: routes, auth, job clocks and fault injection.

A fake is a real HTTP/1.1 server on 127.0.0.1 (stdlib `ThreadingHTTPServer`), so clients under test
use real httpx over real sockets. Jobs move through the provider's states by wall clock
(`complete_after` seconds). Faults are queued per operation and taken by the next matching requests:

    fake.inject("status", status=503, times=2)            # the next two polls get 503
    fake.inject("submit", status=429, headers={"Retry-After": "1"})
    fake.inject("download", action="truncate")            # cut the body in half, then close
    fake.inject("outcome", action="policy")               # the next job fails its content check

Actions: ``http`` (status + the provider's error envelope), ``reset`` (read the request, close the
socket; a submit is processed first, as a real server that accepted it and then lost the reply),
``slow`` (sleep `delay`, then answer; a submit is processed first), ``malformed`` (200 with broken
JSON), ``html`` (301 with an HTML page), ``truncate`` and ``expire`` (downloads). A 200 in a shape the
contract does not promise, after the job was really made (and billed): ``wrap`` (the answer inside
``{"data": ...}``), ``rename`` (every id field renamed), ``empty`` (``{}``), ``text`` (a plain-text
"OK"). ``call`` runs `callback()` after the request was processed and before the answer leaves (a
disk that fills mid-submit). Every answer to a submit is kept in `answers` (what a client could know).
Control routes for out-of-process use: ``POST /__fake__/inject`` (JSON of `inject`'s keywords),
``GET /__fake__/stats``.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from masuka_nb.testing.media import safetensors_bytes, tiny_mp4

__all__ = ["FakeJob", "FakeProvider", "Fault", "Request", "Response"]


@dataclass
class Fault:
    op: str
    action: str = "http"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    delay: float = 1.0
    callback: Any = None


RESHAPES = ("wrap", "rename", "empty", "text")
_ID_KEYS = ("id", "task_id", "request_id")


def _renamed(body: Any, depth: int = 0) -> Any:
    if not isinstance(body, dict) or depth > 3:
        return body
    return {(f"x_{k}" if k in _ID_KEYS else k): _renamed(v, depth + 1) for k, v in body.items()}


def reshape(response: Response, action: str) -> Response:
    """The same accepted answer in a shape the client was not promised (the job exists either way)."""
    body = response.body
    if action == "wrap":
        return Response(response.status, {"data": body}, response.headers, response.content_type)
    if action == "rename":
        return Response(response.status, _renamed(body), response.headers, response.content_type)
    if action == "empty":
        return Response(response.status, {}, response.headers, response.content_type)
    return Response(response.status, b"OK", response.headers, "text/plain")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    match: re.Match | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, list[tuple[str | None, bytes]]]:
        """multipart/form-data fields: name -> [(filename or None, bytes)]."""
        from email.parser import BytesParser
        from email.policy import HTTP

        ctype = self.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return {}
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + self.body)
        out: dict[str, list[tuple[str | None, bytes]]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            out.setdefault(name, []).append((part.get_filename(), part.get_payload(decode=True) or b""))
        return out


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class FakeJob:
    id: str
    kind: str
    input: dict[str, Any]
    created: float
    duration: float
    outcome: str = "ok"  # ok | fail | policy
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def phase(self) -> tuple[str, float]:
        """(queued | running | done | cancelled, progress 0..1) by the clock."""
        if self.cancelled:
            return "cancelled", 0.0
        t = time.monotonic() - self.created
        if t >= self.duration:
            return "done", 1.0
        if t < self.duration * 0.2:
            return "queued", 0.0
        return "running", min(0.99, t / self.duration)


class FakeProvider:
    """Subclasses set `name`, fill `routes()` and the error envelopes; everything else is shared."""

    name = ""

    def __init__(self, *, key: str | None = None, complete_after: float = 0.3, host: str = "127.0.0.1",
                 port: int = 0, video: bytes | None = None, download_chunk_delay: float = 0.0,
                 download_chunk: int = 1 << 20) -> None:
        self.key = key
        self.complete_after = complete_after
        self.host, self.port = host, port
        self.video = video if video is not None else tiny_mp4()
        self.thumbnail = _tiny_webp()
        self.lora = safetensors_bytes({"transformer.x.lora_A.weight": ("F32", [1, 1], b"\0\0\0\0")})
        self.download_chunk_delay = download_chunk_delay
        self.download_chunk = download_chunk
        self.jobs: dict[str, FakeJob] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str, str]] = []  # (method, path, op)
        self.ranges: list[str] = []
        self.auth_seen: list[tuple[str, bool]] = []  # (path, carried an Authorization header)
        self.answers: list[tuple[int, bytes]] = []  # (status, body) of every answer to a submit
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = [(m, re.compile(rx), op, fn) for m, rx, op, fn in self.routes()]

    # -- to override --
    def routes(self) -> list[tuple[str, str, str, Any]]:
        return []

    def authorized(self, req: Request) -> bool:
        token = req.headers.get("authorization", "")
        return bool(token.removeprefix("Bearer ").strip()) if self.key is None else token == f"Bearer {self.key}"

    def error(self, status: int, message: str, *, kind: str = "") -> Response:
        return Response(status, {"error": {"message": message, "type": kind}})

    def policy_error(self) -> Response:
        return self.error(422, "Your request was rejected by the content policy.", kind="content_policy_violation")

    # -- lifecycle --
    def start(self) -> FakeProvider:
        handler = _make_handler(self)
        self._server = _Server((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client uses as this provider's base URL."""
        return self.url

    # -- faults and bookkeeping --
    def inject(self, op: str, *, action: str = "http", status: int = 500, body: Any = None,
               headers: dict[str, str] | None = None, times: int = 1, delay: float = 1.0,
               callback: Any = None) -> None:
        with self._lock:
            self._faults.append(Fault(op, action, status, body, dict(headers or {}), times, delay, callback))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, op: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.op in (op, "any") and f.times != 0:
                    f.times -= 1
                    return f
        return None

    def new_job(self, kind: str, payload: dict[str, Any], prefix: str = "") -> FakeJob:
        outcome = "ok"
        fault = self.take_fault("outcome")
        if fault is not None:
            outcome = fault.action
        job = FakeJob(prefix + secrets.token_hex(8), kind, payload, time.monotonic(), self.complete_after, outcome)
        with self._lock:
            self.jobs[job.id] = job
        return job

    def stats(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "jobs": len(self.jobs), "ranges": list(self.ranges)}

    # -- shared routes --
    def download_url(self, job: FakeJob, name: str = "video.mp4") -> str:
        return f"{self.url}/cdn/{job.id}/{name}"

    def cdn_routes(self) -> list[tuple[str, str, str, Any]]:
        return [("GET", r"^/cdn/(?P<id>[\w-]+)/(?P<name>[\w.-]+)$", "download", self.serve_cdn)]

    def serve_cdn(self, req: Request) -> Response:
        job = self.jobs.get(req.match["id"])
        if job is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
        name = req.match["name"]
        if name.endswith(".safetensors"):
            return Response(200, self.lora, content_type="application/octet-stream")
        if name.endswith(".tar"):
            return Response(200, job.extra.get("tar", b""), content_type="application/x-tar")
        return Response(200, self.video, content_type="video/mp4")

    def upload_routes(self) -> list[tuple[str, str, str, Any]]:
        return [("GET", r"^/files/(?P<fid>[\w-]+)/?(?P<name>[\w.-]*)$", "download", self.serve_file)]

    def serve_file(self, req: Request) -> Response:
        item = self.files.get(req.match["fid"])
        if item is None:
            return Response(404, {"detail": "Not found"})
        return Response(200, item[0], content_type=item[1])


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the stdlib's 5 resets connections when many clients arrive at once
    daemon_threads = True


def _tiny_webp() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 18), (30, 90, 160)).save(buf, format="WEBP")
    return buf.getvalue()


def _make_handler(fake: FakeProvider):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"fake-{fake.name}"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read fake.log instead
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(method, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body)
            if parts.path.startswith("/__fake__/"):
                return self._control(req)
            for m, rx, op, fn in fake._routes:
                match = rx.match(parts.path)
                if m == method and match:
                    req.match = match
                    return self._dispatch(req, op, fn)
            self._send(Response(404, {"error": {"message": f"no route {method} {parts.path}"}, "detail": "Not Found"}))

        def _dispatch(self, req: Request, op: str, fn: Any) -> None:
            with fake._lock:
                fake.counts[op] += 1
                fake.log.append((req.method, req.path, op))
                fake.auth_seen.append((req.path, "authorization" in req.headers))
            fault = fake.take_fault(op)
            if fault is not None and fault.action in ("http", "malformed", "html", "expire"):
                return self._send(self._fault_response(fault))
            public = op == "download" and req.path.startswith(("/cdn/", "/files/"))
            if not public and not fake.authorized(req):
                return self._send(fake.error(401, "Unauthorized: invalid API key"))
            response = fn(req)
            if fault is not None and fault.action in RESHAPES and 200 <= response.status < 300:
                response = reshape(response, fault.action)
            if fault is not None and fault.action == "call" and fault.callback is not None:
                fault.callback()
            if op == "submit" and not (fault is not None and fault.action in ("reset", "slow")):
                payload = response.body if isinstance(response.body, bytes) else json.dumps(response.body).encode()
                with fake._lock:
                    fake.answers.append((response.status, payload))
            if fault is not None and fault.action == "reset":
                self._reset()
                return None
            if fault is not None and fault.action == "slow":
                time.sleep(fault.delay)
            if fault is not None and fault.action == "truncate":
                return self._send(response, truncate=True)
            return self._send(response, ranged=op == "download")

        def _fault_response(self, f: Fault) -> Response:
            if f.action == "malformed":
                return Response(200, b'{"id": "oops", "status": ', content_type="application/json")
            if f.action == "html":
                return Response(301, b"<html><body>Moved</body></html>", {"Location": "/"}, "text/html")
            if f.action == "expire":
                return Response(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                                content_type="application/xml")
            if f.body is not None:
                return Response(f.status, f.body, f.headers)
            if f.status == 422:
                resp = fake.policy_error()
            else:
                resp = fake.error(f.status, {401: "Invalid API key", 403: "Forbidden: no access to this model",
                                             404: "Not found", 429: "Too many requests, slow down"}.get(
                                                 f.status, f"Upstream error {f.status}"))
            resp.headers.update(f.headers)
            return resp

        def _reset(self) -> None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True

        def _send(self, r: Response, *, truncate: bool = False, ranged: bool = False) -> None:
            payload = r.body if isinstance(r.body, bytes) else json.dumps(r.body).encode() if r.body is not None else b""
            status, start = r.status, 0
            headers = dict(r.headers)
            rng = self.headers.get("Range")
            if ranged and status == 200 and rng:
                fake.ranges.append(rng)
                m = re.match(r"bytes=(\d+)-$", rng)
                if m:
                    start = int(m.group(1))
                    if start >= len(payload):
                        status, payload, start = 416, b"", 0
                        headers["Content-Range"] = f"bytes */{len(r.body)}"
                    else:
                        status = 206
                        headers["Content-Range"] = f"bytes {start}-{len(payload) - 1}/{len(payload)}"
            body = payload[start:]
            try:
                self.send_response(status)
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(len(body)))
                if ranged:
                    self.send_header("Accept-Ranges", "bytes")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command == "HEAD":
                    return
                if truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self._reset()
                    return
                chunk = fake.download_chunk
                for i in range(0, len(body), chunk):
                    self.wfile.write(body[i:i + chunk])
                    if fake.download_chunk_delay and ranged:
                        self.wfile.flush()
                        time.sleep(fake.download_chunk_delay)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _control(self, req: Request) -> None:
            if req.path == "/__fake__/stats":
                return self._send(Response(200, fake.stats()))
            if req.path == "/__fake__/inject" and req.method == "POST":
                fake.inject(**(req.json() or {}))
                return self._send(Response(200, {"ok": True}))
            if req.path == "/__fake__/clear" and req.method == "POST":
                fake.clear_faults()
                return self._send(Response(200, {"ok": True}))
            return self._send(Response(404, {"detail": "no such control"}))

    return Handler
