"""The one downloader for every URL MASUKA fetches: resumable, size-capped, checked, atomic.

    path = download("https://example.com/style.safetensors", target, max_bytes=2 * 1024**3, argument="loras")
    data = download_bytes("s3://bucket/photos.zip", max_bytes=..., argument="path_or_url")

http(s) goes through `ProviderClient` (retries with backoff honouring Retry-After, resume with HTTP
Range from the ``.part`` file, the client's cancel token); ``gs://`` and ``s3://`` through fsspec
(`masuka_nb.buckets`). The bytes land in ``<target>.part`` and are renamed into place only after the
size cap, the content type and (when given) the SHA-256 check out, so a target is whole or absent.
Every failure is a `DOWNLOAD_FAILED` error (or the cap's `INVALID_REQUEST`) naming the argument and URL;
a full or read-only disk is DISK_FULL / NOT_WRITABLE. The cap is checked before each chunk is written,
so no byte beyond it reaches the disk.

A public URL is never followed into a private network: a redirect (at any hop) to a loopback,
private, link-local or otherwise non-public address is refused, unless the first URL was itself one
(the offline simulator, a file server you named) or the `allow_private_redirects` setting is on.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from masuka_nb.buckets import fetch, is_bucket_url, read_bytes
from masuka_nb.config import settings
from masuka_nb.errors import CancelledError, DownloadError, InvalidRequestError, MasukaError
from masuka_nb.hosted.http import ProviderClient
from masuka_nb.progress import CancelToken
from masuka_nb.storage import storage_error

__all__ = ["download", "download_bytes", "is_private_host", "public_url"]


def public_url(url: str) -> str:
    """The URL without its query (signed URLs carry credentials there): what errors and logs may show."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def is_private_host(host: str) -> bool:
    """True when `host` is, or resolves to, an address outside the public internet (loopback, private,
    link-local, shared, reserved, multicast, unspecified). A name that does not resolve is not private:
    the request then fails on its own."""
    name = (host or "").strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        addresses = [ipaddress.ip_address(name.split("%")[0])]
    except ValueError:
        try:
            infos = socket.getaddrinfo(name, None)
        except (OSError, UnicodeError):
            return False
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for a in addresses:
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        if not a.is_global or a.is_multicast:
            return True
    return False


def _redirect_guard(url: str, argument: str) -> Callable[[httpx.Request], None] | None:
    """A check for every request the download makes (redirects included), or None when none is needed."""
    if settings().allow_private_redirects or is_private_host(urlsplit(url).hostname or ""):
        return None

    def check(request: httpx.Request) -> None:
        host = request.url.host
        if is_private_host(host):
            raise DownloadError(f"{public_url(url)} redirected to {request.url.scheme}://{host}/, an address on a "
                                "private, loopback or link-local network; MASUKA does not follow it.",
                                argument=argument, value=public_url(url), redirected_to=host,
                                hint="Use a link that stays on the public internet. If you trust it (a file server "
                                     "on your own network), `masuka_nb.configure(allow_private_redirects=True)`.")

    return check


def _too_big(url: str, size: int, max_bytes: int, argument: str) -> InvalidRequestError:
    return InvalidRequestError(f"{public_url(url)} is {size} bytes, above the limit of {max_bytes}.",
                               argument=argument, value=public_url(url),
                               hint="Use a smaller file, or raise the limit the call takes.")


def download(url: str, target: str | os.PathLike[str], *, max_bytes: int, argument: str = "url",
             content_types: tuple[str, ...] = (), sha256: str | None = None, cancel: CancelToken | None = None,
             on_bytes: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch `url` into `target`; a rerun after a break resumes from what `<target>.part` holds."""
    target = Path(target)
    if is_bucket_url(url):
        return fetch(url, target, max_bytes=max_bytes, argument=argument)
    if urlsplit(url).scheme not in ("http", "https"):
        raise InvalidRequestError(f"`{argument}` cannot be fetched from {url!r}.", argument=argument, value=url,
                                  hint="Give an http(s), gs:// or s3:// URL.")
    part = target.with_name(target.name + ".part")

    def capped(got: int, total: int | None) -> None:  # before each chunk is written
        if (total is not None and total > max_bytes) or got > max_bytes:
            raise _too_big(url, max(got, total or 0), max_bytes, argument)

    host = urlsplit(url).netloc
    client = ProviderClient(host, f"{urlsplit(url).scheme}://{host}", follow_redirects=True,
                            guard=_redirect_guard(url, argument))
    client.cancel = cancel
    try:
        result = client.download(url, part, content_types=content_types, on_bytes=on_bytes, before_write=capped)
    except (InvalidRequestError, DownloadError):
        part.unlink(missing_ok=True)  # over the cap, or led somewhere it must not go: nothing of it is kept
        raise
    except CancelledError:
        raise  # the .part file stays: the next try resumes it
    except OSError as exc:
        if exc.errno is None:
            raise
        raise storage_error(exc, path=part, what=f"the download of {public_url(url)}",
                            saved=f"{part.stat().st_size if part.exists() else 0} bytes are kept in {part}; "
                                  "free some space and run it again to resume.") from exc
    except MasukaError as exc:
        status = exc.details.get("status")
        why = f"with HTTP {status}." if status else f": {exc.message}"
        raise DownloadError(f"Downloading {public_url(url)} failed {why}", argument=argument, value=public_url(url),
                            status=status,
                            hint="Check that the link is public (or signed) and has not expired, and the network; "
                                 "running it again resumes where it stopped.") from exc
    finally:
        client.close()
    if result.bytes > max_bytes:
        part.unlink(missing_ok=True)
        raise _too_big(url, result.bytes, max_bytes, argument)
    if sha256 is not None:
        if not isinstance(sha256, str):
            raise InvalidRequestError("`sha256` must be a hex digest (text) or None.", argument="sha256", value=sha256)
        h = hashlib.sha256()
        with open(part, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        if h.hexdigest() != sha256.lower():
            part.unlink(missing_ok=True)  # a bad file never replaces a good one, and the next try starts clean
            raise DownloadError(f"{public_url(url)} does not match its SHA-256 ({h.hexdigest()[:12]}… ≠ {sha256[:12]}…).",
                                argument=argument, value=public_url(url), hint="The file changed or was damaged; "
                                "check the link, then try again.")
    try:
        os.replace(part, target)
    except OSError as exc:
        raise storage_error(exc, path=target, what=f"the download of {public_url(url)}",
                            saved=f"The whole file is kept as {part}.") from exc
    return target


def download_bytes(url: str, *, max_bytes: int, argument: str = "url", content_types: tuple[str, ...] = (),
                   cancel: CancelToken | None = None) -> bytes:
    """The bytes at `url` (http(s), gs://, s3://), never more than `max_bytes` of them."""
    if is_bucket_url(url):
        return read_bytes(url, max_bytes=max_bytes, argument=argument)
    with tempfile.TemporaryDirectory(prefix="masuka-download-") as tmp:
        path = download(url, Path(tmp) / "body", max_bytes=max_bytes, argument=argument,
                        content_types=content_types, cancel=cancel)
        return path.read_bytes()
