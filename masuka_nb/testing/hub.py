"""A local Hugging Face Hub: the Hub's HTTP protocol on 127.0.0.1, serving repos from folders on disk.

huggingface_hub's own client talks to it unchanged once ``HF_ENDPOINT`` points at it, so a test (or
anyone trying MASUKA without the internet) walks the road a user walks: model info and tree listings
with sizes, `allow_patterns`, branches and commit hashes, ``HEAD``/``GET`` on ``/resolve`` with the
headers the client needs (``X-Repo-Commit``, ``ETag``, ``X-Linked-Size``/``X-Linked-Etag``, a redirect
of large files to a separate "CDN" server that honours ``Range`` and never sees the token), and gated
repos (401 without a token, 403 for a token not granted, ``X-Error-Code: GatedRepo``).

Written against huggingface_hub 1.27 (Colab) and 2.x: both list with ``/api/models/{id}/revision/{rev}``
and ``/api/models/{id}/tree/{rev}?recursive=true`` (paginated by a ``Link`` header), read file metadata
with ``HEAD /{id}/resolve/{rev}/{path}`` (1.27 stops at a redirect to another host and reads the
``X-Linked-*`` headers; 2.x does the same for hosts that are not the Hub), then ``GET`` the location,
resuming with ``Range`` after a cut connection. No Xet headers are sent, so both download over HTTP.

    hub = LocalHub().start()
    hub.add_repo("black-forest-labs/FLUX.1-dev", folder, gated=True)
    hub.grant("hf_test", "black-forest-labs/FLUX.1-dev")
    os.environ["HF_ENDPOINT"] = hub.url

``python -m masuka_nb.testing.hub ROOT`` serves every ``ROOT/<owner>/<name>/`` folder as a repo.
Stdlib only; nothing in the engines imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["HubFile", "LocalHub", "main", "pointed_at"]

# What a new Hub repo's .gitattributes stores in LFS (and anything over 10 MB): these are served from the CDN.
_LFS_SUFFIXES = (".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib", ".mlmodel", ".model",
                 ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth",
                 ".rar", ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst", ".gguf")
_LFS_MIN_BYTES = 10 * 1024 * 1024
_INDEX = ".hub_index.json"  # per-folder cache of content hashes; never listed
_CHUNK = 1 << 20


@dataclass(frozen=True)
class HubFile:
    """One file of one commit: where its bytes are, and the ids the Hub gives it."""

    path: str
    source: Path
    size: int
    git_oid: str  # sha1 of the git blob (of the LFS pointer for LFS files)
    sha256: str | None  # LFS files only
    pointer_size: int = 0

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        return self.sha256 if self.sha256 else self.git_oid


@dataclass
class _Repo:
    repo_id: str
    gated: bool = False
    private: bool = False
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    granted: set[str] = field(default_factory=set)


@dataclass
class _Fault:
    kind: str  # "cut": close the connection after `after` bytes of a matching download
    match: str
    after: int
    times: int


class LocalHub:
    """The Hub (API + resolve) and its CDN, two loopback servers on two ports."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, page_size: int = 1000) -> None:
        self.host, self._port = host, port
        self.page_size = page_size
        self.tokens: set[str] = set()
        self.log: list[dict[str, Any]] = []  # every request: method, server, path, range, auth
        self._repos: dict[str, _Repo] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(16)
        self._servers: list[ThreadingHTTPServer] = []

    # ---- repos ----

    def add_repo(self, repo_id: str, folder: str | os.PathLike[str], *, revision: str = "main", gated: bool = False,
                 private: bool = False, overrides: dict[str, str | os.PathLike[str]] | None = None) -> str:
        """Serve `folder` as `repo_id` at branch `revision`; returns the new commit's hash.

        Adding again makes a new commit and moves the branch; older commits stay reachable by hash.
        `overrides` maps repo paths to files elsewhere (a shared component, a stand-in)."""
        files = _scan(Path(folder))
        for rel, src in (overrides or {}).items():
            files[rel] = _describe(rel, Path(src), {})
        commit = hashlib.sha1(json.dumps(sorted((f.path, f.etag) for f in files.values())).encode()
                              + repo_id.encode() + revision.encode()).hexdigest()
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id))
            repo.gated, repo.private = gated or repo.gated, private or repo.private
            repo.commits[commit] = files
            repo.refs[revision] = commit
        return commit

    def grant(self, token: str, repo_id: str | None = None) -> None:
        """Make `token` valid; with `repo_id`, also let it through that gated or private repo."""
        with self._lock:
            self.tokens.add(token)
            if repo_id is not None:
                self._repos[repo_id].granted.add(token)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, HubFile]:
        repo = self._repos[repo_id]
        return dict(repo.commits[repo.refs.get(revision, revision)])

    def cut_next_download(self, path_suffix: str, *, after: int = 1024, times: int = 1) -> None:
        """The next `times` CDN downloads of a file ending with `path_suffix` stop after `after` bytes (a lost
        connection): the client has to resume with a Range request."""
        with self._lock:
            self._faults.append(_Fault("cut", path_suffix, after, times))

    def downloads(self, repo_id: str | None = None) -> list[str]:
        """Repo paths whose content was sent (GET on resolve or the CDN), in order."""
        return [e["file"] for e in self.log if e.get("file") and e["method"] == "GET"
                and (repo_id is None or e["repo"] == repo_id)]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # ---- lifecycle ----

    def start(self) -> LocalHub:
        hub = _Server((self.host, self._port), _handler(self, "hub"))
        cdn = _Server((self.host, 0), _handler(self, "cdn"))
        self._servers = [hub, cdn]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True,
                             name=f"local-hub-{server.server_address[1]}").start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://{self.host}:{self._servers[1].server_address[1]}"

    # ---- what the handlers ask ----

    def _access(self, repo: _Repo | None, token: str | None, *, content: bool) -> tuple[int, str, str] | None:
        """None when allowed, else (status, X-Error-Code, message) as the Hub answers."""
        if token is not None and token not in self.tokens:
            return 401, "", "Invalid credentials in Authorization header"
        if repo is None or (repo.private and token not in repo.granted):
            return 401, "RepoNotFound", "Repository not found"
        if repo.gated and content and token not in repo.granted:
            if token is None:
                return 401, "GatedRepo", (f"Access to model {repo.repo_id} is restricted. You must have access to it "
                                          "and be authenticated to access it. Please log in.")
            return 403, "GatedRepo", (f"Access to model {repo.repo_id} is restricted and you are not in the "
                                      "authorized list. Visit https://huggingface.co/" + repo.repo_id + " to ask for access.")
        return None

    def _sign(self, sha256: str, name: str) -> str:
        return hmac.new(self._secret, f"{sha256}/{name}".encode(), "sha256").hexdigest()[:32]

    def _take_cut(self, path: str) -> int | None:
        with self._lock:
            for f in self._faults:
                if f.times > 0 and path.endswith(f.match):
                    f.times -= 1
                    return f.after
        return None


@contextlib.contextmanager
def pointed_at(url: str, *, cache: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Inside the block this process's huggingface_hub talks to `url` (and caches under `cache`).

    ``HF_ENDPOINT`` is read once, when huggingface_hub is imported: a process that imported it already
    also needs the module-level copies changed (a new process only needs the variable)."""
    saved_env = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_CACHE")}
    os.environ["HF_ENDPOINT"] = url
    if cache is not None:
        os.environ["HF_HUB_CACHE"] = str(cache)
    constants = sys.modules.get("huggingface_hub.constants")
    saved = {}
    if constants is not None:
        saved = {k: getattr(constants, k) for k in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_CACHE")}
        constants.ENDPOINT = url
        constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
        if cache is not None:
            constants.HF_HUB_CACHE = str(cache)
    try:
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, v in saved.items():
            setattr(constants, k, v)


# ---- folders to files ----

def _scan(folder: Path) -> dict[str, HubFile]:
    if not folder.is_dir():
        raise FileNotFoundError(f"no repo folder at {folder}")
    index_path = folder / _INDEX
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not rel.startswith((".hub_", ".cache/")) and rel != ".masuka_complete.json":
            files[rel] = _describe(rel, path, index)
    fresh = {f.path: [f.size, f.source.stat().st_mtime_ns, f.git_oid, f.sha256] for f in files.values()
             if f.source.parent.is_relative_to(folder)}
    if fresh != index:
        try:
            index_path.write_text(json.dumps(fresh))
        except OSError:
            pass  # a read-only folder is hashed again next time
    return files


# Content hashes by file identity, for this process: a twin's component is hard-linked into every repo that
# holds it (T5-XXL is in seven), so it is read and hashed once, not once per repo.
_HASHED: dict[tuple[int, int, int, int], tuple[str | None, str | None]] = {}


def _describe(rel: str, path: Path, index: dict[str, Any]) -> HubFile:
    st = path.stat()
    lfs = rel.endswith(_LFS_SUFFIXES) or st.st_size >= _LFS_MIN_BYTES
    hit = index.get(rel)
    if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns and (hit[3] is not None) == lfs:
        oid, sha = hit[2], hit[3]
    else:
        # An LFS file's git id is its pointer's, so only its sha256 is needed; a small file needs only its sha1.
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        sha1_hex, sha = _HASHED.get(ident, (None, None))
        if (sha if lfs else sha1_hex) is None:
            digest = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % st.st_size)
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
            if lfs:
                sha = digest.hexdigest()
            else:
                sha1_hex = digest.hexdigest()
            _HASHED[ident] = (sha1_hex, sha)
        sha = sha if lfs else None
        oid = _git_oid(_pointer(sha, st.st_size)) if sha else sha1_hex
    pointer = len(_pointer(sha, st.st_size)) if sha else 0
    return HubFile(rel, path, st.st_size, oid, sha, pointer)


def _pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---- HTTP ----

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?/?$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$")
_REFS = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/refs$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_BLOB = re.compile(r"^/blobs/(?P<repo>[^/]+/[^/]+)/(?P<commit>[0-9a-f]{40})/(?P<path>.+)$")


def _handler(hub: LocalHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "local-hub"

        def log_message(self, format: str, *args: Any) -> None:  # tests read hub.log
            pass

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            self._route("POST")

        # -- routing --
        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            auth = self.headers.get("authorization", "")
            token = auth.removeprefix("Bearer ").strip() or None
            entry = {"method": method, "server": role, "path": path, "range": self.headers.get("range"),
                     "auth": token is not None, "repo": None, "file": None}
            with hub._lock:
                hub.log.append(entry)
            try:
                if role == "cdn":
                    return self._cdn(method, path, query, entry)
                if path.rstrip("/") == "/api/models":
                    return self._json([{"id": r, "modelId": r, "private": False} for r in sorted(hub._repos)
                                       if not hub._repos[r].private], method)
                for rx, fn in ((_TREE, self._tree), (_REFS, self._refs), (_INFO, self._info),
                               (_RESOLVE, self._resolve)):
                    match = rx.match(path)
                    if match:
                        entry["repo"] = match["repo"]
                        return fn(method, match, query, token, entry)
                self._error(404, "", f"no route {method} {path}")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _repo(self, match: re.Match, token: str | None, *, content: bool) -> _Repo | None:
            repo = hub._repos.get(match["repo"])
            denied = hub._access(repo, token, content=content)
            if denied:
                self._error(*denied)
                return None
            return repo

        def _commit(self, repo: _Repo, rev: str) -> str | None:
            rev = unquote(rev)
            commit = repo.refs.get(rev) or (rev if rev in repo.commits else None)
            if commit is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return commit

        # -- API --
        def _info(self, method, match, query, token, entry) -> None:
            repo = self._repo(match, token, content=False)
            if repo is None:
                return
            commit = self._commit(repo, match["rev"] or "main")
            if commit is None:
                return
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for f in repo.commits[commit].values():
                item: dict[str, Any] = {"rfilename": f.path}
                if blobs:
                    item.update(size=f.size, blobId=f.git_oid)
                    if f.lfs:
                        item["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
                siblings.append(item)
            owner = repo.repo_id.split("/")[0]
            self._json({"_id": commit[:24], "id": repo.repo_id, "modelId": repo.repo_id, "author": owner,
                        "sha": commit, "private": repo.private, "gated": "manual" if repo.gated else False,
                        "disabled": False, "downloads": 0, "likes": 0, "library_name": "diffusers",
                        "tags": ["diffusers", "safetensors"], "siblings": siblings,
                        "lastModified": "2026-12-01T00:00:00.000Z", "createdAt": "2026-12-01T00:00:00.000Z",
                        "usedStorage": sum(f.size for f in repo.commits[commit].values())}, method)

        def _refs(self, method, match, query, token, entry) -> None:
            repo = self._repo(match, token, content=False)
            if repo is not None:
                self._json({"branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c}
                                         for n, c in repo.refs.items()], "converts": [], "tags": []}, method)

        def _tree(self, method, match, query, token, entry) -> None:
            repo = self._repo(match, token, content=False)
            if repo is None:
                return
            commit = self._commit(repo, match["rev"])
            if commit is None:
                return
            base = (match["path"] or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            items = _tree_items(repo.commits[commit], base, recursive)
            if base and not items:
                return self._error(404, "EntryNotFound", f"{base} does not exist on {match['rev']}")
            start = int(query.get("cursor", ["0"])[0] or 0)
            page = items[start:start + hub.page_size]
            headers = {}
            if start + hub.page_size < len(items):
                q = f"recursive={str(recursive).lower()}&cursor={start + hub.page_size}"
                tail = "/" + quote(base, safe="") if base else ""
                headers["Link"] = (f'<{hub.url}/api/models/{repo.repo_id}/tree/{quote(match["rev"], safe="")}'
                                   f'{tail}?{q}>; rel="next"')
            self._json(page, method, headers)

        # -- files --
        def _resolve(self, method, match, query, token, entry) -> None:
            repo = self._repo(match, token, content=True)
            if repo is None:
                return
            commit = self._commit(repo, match["rev"])
            if commit is None:
                return
            f = repo.commits[commit].get(match["path"])
            if f is None:
                return self._error(404, "EntryNotFound", f"{match['path']} does not exist on {match['rev']}",
                                   {"X-Repo-Commit": commit})
            entry["file"] = f.path
            headers = {"X-Repo-Commit": commit, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
            if f.lfs:
                location = (f"{hub.cdn_url}/blobs/{repo.repo_id}/{commit}/{quote(f.path)}"
                            f"?sig={hub._sign(f.sha256, f.path)}")
                headers.update({"Location": location, "X-Linked-Size": str(f.size), "X-Linked-Etag": f'"{f.sha256}"',
                                "Content-Length": "0"})
                entry["file"] = None  # a redirect sends no content
                return self._send(302, b"", headers, method)
            self._file(method, f, headers, entry)

        def _cdn(self, method, path, query, entry) -> None:
            match = _BLOB.match(path)
            repo = hub._repos.get(match["repo"]) if match else None
            files = repo.commits.get(match["commit"], {}) if repo else {}
            f = files.get(match["path"]) if match else None
            if f is None or not f.lfs or not hmac.compare_digest(query.get("sig", [""])[0],
                                                                 hub._sign(f.sha256, f.path)):
                body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
                return self._send(403, body, {"Content-Type": "application/xml"}, method)
            entry.update(repo=repo.repo_id, file=f.path)
            self._file(method, f, {"ETag": f'"{f.sha256}"', "Accept-Ranges": "bytes",
                                   "Content-Disposition": f'inline; filename="{Path(f.path).name}"'}, entry)

        def _file(self, method: str, f: HubFile, headers: dict[str, str], entry: dict) -> None:
            start, end = 0, f.size - 1
            rng = self.headers.get("range")
            status = 200
            if rng:
                m = re.match(r"bytes=(\d*)-(\d*)$", rng.strip())
                if not m or (not m[1] and not m[2]):
                    return self._send(416, b"", {"Content-Range": f"bytes */{f.size}"}, method)
                if m[1]:
                    start, end = int(m[1]), min(int(m[2]) if m[2] else f.size - 1, f.size - 1)
                else:
                    start = max(f.size - int(m[2]), 0)
                if start >= f.size:
                    return self._send(416, b"", {"Content-Range": f"bytes */{f.size}"}, method)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
            length = end - start + 1 if f.size else 0
            headers.update({"Content-Length": str(length), "Content-Type": "application/octet-stream"})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if method == "HEAD":
                entry["file"] = None
                return
            cut = hub._take_cut(f.path)
            with f.source.open("rb") as fh:
                # The kernel copies file to socket (sendfile): the bytes never pass through Python.
                if cut is not None and cut < length:
                    if cut:
                        self.connection.sendfile(fh, start, cut)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if length:
                    self.connection.sendfile(fh, start, length)

        # -- plumbing --
        def _json(self, data: Any, method: str, headers: dict[str, str] | None = None) -> None:
            self._send(200, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})}, method)

        def _error(self, status: int, code: str, message: str, extra: dict[str, str] | None = None) -> None:
            headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, json.dumps({"error": message}).encode(), headers, self.command)

        def _send(self, status: int, body: bytes, headers: dict[str, str], method: str) -> None:
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if method != "HEAD" and body:
                self.wfile.write(body)

    return Handler


def _tree_items(files: dict[str, HubFile], base: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = base + "/" if base else ""
    folders: set[str] = set()
    out: list[dict[str, Any]] = []
    for f in sorted(files.values(), key=lambda x: x.path):
        if not f.path.startswith(prefix):
            continue
        rest = f.path[len(prefix):].split("/")
        for depth in range(1, len(rest)):
            if depth > 1 and not recursive:
                break
            folders.add(prefix + "/".join(rest[:depth]))
        if len(rest) > 1 and not recursive:
            continue
        item: dict[str, Any] = {"type": "file", "oid": f.git_oid, "size": f.size, "path": f.path}
        if f.lfs:
            item["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
        out.append(item)
    dirs = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
            for d in sorted(folders)]
    return dirs + out


# ---- command line ----

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m masuka_nb.testing.hub",
        description="Serve ROOT/<owner>/<name>/ folders as Hugging Face Hub repos on 127.0.0.1 "
                    "(point huggingface_hub at it with HF_ENDPOINT).")
    parser.add_argument("root", type=Path, help="folder holding <owner>/<name>/ repo folders")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--gated", action="append", default=[], metavar="OWNER/NAME",
                        help="answer 401/403 for this repo's files until a granted token is sent")
    parser.add_argument("--token", action="append", default=[],
                        help="a valid token, granted every gated repo (repeatable)")
    args = parser.parse_args(argv)
    hub = LocalHub(port=args.port).start()
    for owner in sorted(p for p in args.root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in owner.iterdir() if p.is_dir()):
            repo_id = f"{owner.name}/{folder.name}"
            hub.add_repo(repo_id, folder, gated=repo_id in args.gated)
            for token in args.token:
                hub.grant(token, repo_id)
    sys.stdout.write(f"LOCAL HUB serving {len(hub._repos)} repos from {args.root} on {hub.url}\n"
                     f"point huggingface_hub at it with HF_ENDPOINT={hub.url}\n")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
