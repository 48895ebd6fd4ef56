"""HTTP for hosted APIs: one httpx client per provider, retries that never pay twice, one error map.

    client = ProviderClient("runway", base_url, headers={"Authorization": f"Bearer {key}"})
    data = client.json("POST", "/v1/text_to_video", op="submit", json={...})

`op` says what a call is, because that decides what may be repeated:
- ``submit`` creates paid work. It is retried only when the provider cannot have accepted it: the
  connection never opened, or the answer was 429 / 408 / 503 (and, for fal, a 502/503/504 from its
  proxy). A read timeout, a reset after sending or a gateway error leave the outcome unknown: the
  error carries ``maybe_accepted=True`` and the caller must not submit again (nor fall back).
- ``poll`` / ``download`` / ``cancel`` / ``upload`` / ``get`` are safe to repeat: connection
  failures, timeouts, 408/409/429/5xx and malformed JSON are retried with exponential backoff and
  full jitter, capped, honouring ``Retry-After`` (seconds or HTTP date), ``retry-after-ms`` and
  ``openai-poll-after-ms``.

Every failure leaves as a `MasukaError` carrying the provider's own reason and request id; the
registered secrets are blanked out of messages and log lines (see `masuka_nb._redact`).
Timing comes from the settings table (``settings().http``: `http_timeout`, `http_retries`,
`http_backoff`, `http_backoff_max`; the breaker from `breaker_threshold`/`breaker_cooldown`). Every
sleep here (backoff, Retry-After) wakes for the client's `cancel` token within ~50 ms.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from masuka_nb.config import HttpTiming, settings
from masuka_nb.errors import (
    CancelledError,
    InvalidRequestError,
    JobExpiredError,
    JobNotFoundError,
    MasukaError,
    ModelNotFoundError,
    ProviderAuthError,
    ProviderBadResponseError,
    ProviderRateLimitedError,
    ProviderRejectedContentError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from masuka_nb.hosted.ledger import current as current_ledger
from masuka_nb.log import get_logger

__all__ = [
    "CircuitBreaker",
    "DownloadResult",
    "ProviderClient",
    "RetryPolicy",
    "breaker_for",
    "error_from_response",
    "parse_retry_after",
    "reset_breakers",
    "wait_or_cancel",
]

log = get_logger(__name__)

OPS = ("submit", "poll", "download", "cancel", "upload", "get")
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504, 520, 522, 524}
# A submit answered with these was certainly not taken on: asking again cannot pay twice.
SUBMIT_SAFE_STATUSES = {408, 429, 503}
POLICY_WORDS = ("content_policy", "content policy", "moderation", "safety", "nsfw", "policy_violation")


def wait_or_cancel(seconds: float, cancel: Any = None, *, also: threading.Event | None = None,
                   what: str = "the wait") -> None:
    """Sleep `seconds`, waking within ~50 ms when `cancel` (a CancelToken) or the `also` event is set, then
    raise CANCELLED. Every wait in the hosted layer goes through here: none outlives a cancel."""
    deadline = time.monotonic() + max(0.0, seconds)
    while True:
        if cancel is not None:
            cancel.raise_if_cancelled(what)
        if also is not None and also.is_set():
            raise CancelledError(f"{what} was cancelled.", argument="cancel", value=True)
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(0.05, left))


def RetryPolicy(*, max_attempts: int | None = None, base_delay: float | None = None,
                max_delay: float | None = None, max_retry_after: float | None = None, timeout: float | None = None,
                connect_timeout: float | None = None) -> HttpTiming:
    """The old name of `masuka_nb.config.HttpTiming` (one value object now), for one release."""
    import warnings

    warnings.warn("RetryPolicy is now masuka_nb.config.HttpTiming (fields timeout, retries, backoff, backoff_max, "
                  "connect, max_retry_after; `delay(n)` for the backoff).", DeprecationWarning, stacklevel=2)
    given = {"retries": max_attempts, "backoff": base_delay, "backoff_max": max_delay,
             "max_retry_after": max_retry_after, "timeout": timeout, "connect": connect_timeout}
    return replace(settings().http, **{k: v for k, v in given.items() if v is not None})


def parse_retry_after(headers: httpx.Headers | dict[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `openai-poll-after-ms` or `Retry-After` (seconds or HTTP date)."""
    h = {k.lower(): v for k, v in dict(headers).items()}
    for name in ("retry-after-ms", "openai-poll-after-ms"):
        if name in h:
            with contextlib.suppress(ValueError):
                return max(0.0, float(h[name]) / 1000.0)
    raw = h.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(raw))
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(raw)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        ref = datetime.fromtimestamp(now if now is not None else time.time(), tz=timezone.utc)
        return max(0.0, (when - ref).total_seconds())
    return None


# ---- circuit breaker ---------------------------------------------------------------------------


class CircuitBreaker:
    """Opens after `threshold` retryable failures in a row; after `cooldown` s lets one probe through."""

    def __init__(self, name: str, *, threshold: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock  # injectable: tests step a fake clock instead of sleeping
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self.clock() - self._opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        """May a new submit go to this provider now? (Half-open: exactly one probe at a time.)"""
        with self._lock:
            if self._opened_at is None:
                return True
            if self.clock() - self._opened_at < self.cooldown or self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                if self._opened_at is None or self._probing:
                    log.warning("http.circuit_open", provider=self.name, failures=self._failures)
                self._opened_at = self.clock()
                self._probing = False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(provider: str) -> CircuitBreaker:
    with _breakers_lock:
        if provider not in _breakers:
            from masuka_nb.config import settings

            s = settings()
            _breakers[provider] = CircuitBreaker(provider, threshold=s.breaker_threshold,
                                                 cooldown=s.breaker_cooldown)
        return _breakers[provider]


def reset_breakers() -> None:
    with _breakers_lock:
        _breakers.clear()


# ---- error mapping -----------------------------------------------------------------------------


def _body_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def _reason(body: Any, response: httpx.Response) -> tuple[str, str]:
    """(reason text, provider error type/code) from any of the documented error envelopes."""
    kind = ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # OpenAI / CometAPI
            kind = str(err.get("type") or err.get("code") or "")
            code = str(err.get("code") or "")
            return str(err.get("message") or err), (kind + " " + code).strip()
        detail = body.get("detail")
        if isinstance(detail, list):  # fal validation errors
            msgs = []
            for d in detail:
                if isinstance(d, dict):
                    msgs.append(str(d.get("msg", d)))
                    kind = kind or str(d.get("type", ""))
            return "; ".join(msgs), kind
        if detail:  # fal / Replicate
            return str(detail), str(body.get("type") or body.get("title") or "")
        if isinstance(err, str):  # Runway
            return err, str(body.get("code") or "")
        if body.get("message") is not None:  # Kling / wrapped CometAPI
            return str(body["message"]), str(body.get("code") or "")
        if body.get("failure"):
            return str(body["failure"]), str(body.get("failureCode") or "")
    text = response.text.strip() if response.content else ""
    if text.lstrip().startswith("<"):
        text = "an HTML page instead of JSON (is the base URL right?)"
    return (text[:300] or response.reason_phrase or "no reason given"), kind


def _request_id(response: httpx.Response | None, body: Any, reason: str) -> str | None:
    if response is not None:
        for name in ("x-request-id", "x-fal-request-id", "request-id", "x-replicate-request-id", "cf-ray"):
            if response.headers.get(name):
                return response.headers[name]
    if isinstance(body, dict) and body.get("request_id"):
        return str(body["request_id"])
    m = re.search(r"request id:\s*([\w-]+)", reason)
    return m.group(1) if m else None


def is_policy(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in POLICY_WORDS)


def error_from_response(provider: str, response: httpx.Response, *, op: str = "get") -> MasukaError:
    """The `MasukaError` for a non-2xx answer, carrying the provider's reason and request id."""
    status = response.status_code
    body = _body_json(response)
    reason, kind = _reason(body, response)
    req_id = _request_id(response, body, reason)
    where = f"{provider} answered {status} to {op}"
    msg = f"{where}: {reason}" + (f" (request id {req_id})" if req_id and req_id not in reason else "")
    common: dict[str, Any] = {"provider": provider, "status": status, "request_id": req_id, "op": op}
    fal_type = response.headers.get("x-fal-error-type", "")
    if status in (401, 403) and not (op == "download" and status == 403):
        return ProviderAuthError(msg, argument="api_key", hint=f"Check the {provider} API key (and that it has credit).", **common)
    if is_policy(kind) or is_policy(fal_type) or (status in (400, 422) and is_policy(reason)):
        return ProviderRejectedContentError(msg, argument="prompt", hint="Change the prompt or the image: the provider's content policy refused it.", **common)
    if "model_not_found" in kind or "model_not_found" in reason:
        return ModelNotFoundError(msg, argument="model", hint=f"{provider} does not serve this model (any more).",
                                  retryable=False, **common)
    if status == 429:
        return ProviderRateLimitedError(msg, hint="Wait a little (or check the account's daily limit) and try again.", **common)
    if op == "download" and status in (403, 404, 410):
        return JobExpiredError(msg, hint="The result URL has expired; the provider no longer serves this file.", **common)
    if status == 410:
        return JobExpiredError(msg, hint="The provider no longer keeps this job.", **common)
    if status == 404 and op in ("poll", "cancel"):
        return JobNotFoundError(msg, argument="job", hint="The provider does not know this job id (any more).", **common)
    if status == 404:
        return ProviderUnavailableError(msg, hint=f"{provider} does not serve this route or model; check the base URL and model id.", retryable=False, **common)
    if status in RETRY_STATUSES and not (status == 500 and "invalid_request" in kind):
        return ProviderUnavailableError(msg, hint=f"{provider} is having trouble; try again later or use another provider.", **common)
    if 300 <= status < 400:
        return ProviderBadResponseError(msg, hint="A redirect here usually means a wrong base URL or path.", **common)
    return InvalidRequestError(msg, hint=f"{provider} refused the request as sent; see its reason above.", **common)


def _retryable(err: MasukaError) -> bool:
    if err.details.get("retryable") is False:
        return False
    return isinstance(err, (ProviderRateLimitedError, ProviderUnavailableError, ProviderTimeoutError))


_ssl_lock = threading.Lock()
_ssl: Any = None


def _ssl_context() -> Any:
    """One verified TLS context for every client: building one loads the CA bundle (tens of ms)."""
    global _ssl
    with _ssl_lock:
        if _ssl is None:
            import ssl

            try:
                import certifi

                _ssl = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                _ssl = ssl.create_default_context()
        return _ssl


# ---- the client --------------------------------------------------------------------------------


@dataclass
class DownloadResult:
    path: Path
    bytes: int
    content_type: str
    resumed_from: int = 0
    requests: int = 0


@dataclass
class ProviderClient:
    """One provider's httpx client: base URL, auth headers (sent only to that host), retries, error map."""

    provider: str
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    timing: HttpTiming = field(default_factory=lambda: settings().http)
    auth_header: Callable[[], dict[str, str]] | None = None  # fresh headers per request (Kling's JWT)
    fal_proxy_rules: bool = False
    follow_redirects: bool = False  # providers never redirect on purpose; plain file URLs (the downloader) may
    cancel: Any = None  # a CancelToken: every retry wait wakes for it (the runner sets it per wait())
    cancel_event: threading.Event | None = None  # the job's own cancel flag, likewise
    guard: Callable[[httpx.Request], None] | None = None  # sees every request, redirects included (may raise)

    def __post_init__(self) -> None:
        self.base_url = str(self.base_url).rstrip("/")
        try:
            parts = urlsplit(self.base_url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidRequestError(f"{self.provider}'s base URL {self.base_url[:120]!r} is not an http(s) URL.",
                                      argument="base_url", value=self.base_url[:120],
                                      hint="Give e.g. 'https://api.example.com' (or leave it unset for the provider's own).")
        self._host = parts.netloc
        self._client = httpx.Client(
            verify=_ssl_context(),
            timeout=httpx.Timeout(self.timing.timeout, connect=self.timing.connect),
            follow_redirects=self.follow_redirects,
            event_hooks={"request": [self.guard]} if self.guard is not None else None,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.last_headers: httpx.Headers = httpx.Headers()

    def close(self) -> None:
        self._client.close()

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base_url + path_or_url

    def _headers_for(self, url: str, extra: dict[str, str] | None) -> dict[str, str]:
        out: dict[str, str] = {"User-Agent": "masuka-nb"}
        # Keys go only to the provider's own host: result URLs on a CDN must never see them.
        if urlsplit(url).netloc == self._host:
            out.update(self.headers)
            if self.auth_header is not None:
                out.update(self.auth_header())
        out.update(extra or {})
        return out

    def send(self, method: str, path_or_url: str, *, op: str, headers: dict[str, str] | None = None,
             expect_json: bool = True, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """One logical call with the retry rules of `op`; returns a 2xx response or raises a MasukaError."""
        if op not in OPS:
            raise ValueError(f"op must be one of {OPS}")
        url = self.url(path_or_url)
        attempt = 0
        breaker = breaker_for(self.provider)
        while True:
            err, wait = self._attempt(method, url, op, headers, expect_json, stream, kwargs)
            if isinstance(err, httpx.Response):
                breaker.success()
                return err
            if _retryable(err):
                breaker.failure()
            else:  # a refusal still proves the service is up (and frees a half-open probe)
                breaker.success()
            attempt += 1
            if not self._may_retry(err, op) or attempt >= self.timing.retries:
                raise err
            delay = self.timing.delay(attempt - 1) if wait is None else wait
            if delay > self.timing.max_retry_after:
                raise err
            log.info("http.retry", provider=self.provider, op=op, code=err.code,
                     status=err.details.get("status"), attempt=attempt, delay=round(delay, 3))
            self.sleep(delay, what=f"Waiting to retry {self.provider} {op}")

    def sleep(self, seconds: float, *, what: str = "the wait") -> None:
        wait_or_cancel(seconds, self.cancel, also=self.cancel_event, what=what)

    def _may_retry(self, err: MasukaError, op: str) -> bool:
        if not _retryable(err):
            return op != "submit" and isinstance(err, ProviderBadResponseError) and err.details.get("malformed")
        if op != "submit":
            return True
        if err.details.get("not_sent"):
            return True
        status = err.details.get("status")
        if status in SUBMIT_SAFE_STATUSES:
            return True
        # fal's own client: a gateway error without fal's request id came from the proxy, not the app.
        return bool(self.fal_proxy_rules and status in (502, 503, 504) and not err.details.get("request_id"))

    def _attempt(self, method, url, op, headers, expect_json, stream, kwargs):
        """Returns (response, None) on success, else (error, seconds the provider asked us to wait).

        A paid create (``op="submit"``) is reported to the submit ledger at every step: the request is
        on the wire, it never left, no whole answer came back, or here is the raw answer (kept on disk
        before anything reads it; see `masuka_nb.hosted.ledger`).
        """
        hdrs = self._headers_for(url, headers)
        common = {"provider": self.provider, "op": op}
        book = current_ledger() if op == "submit" else None
        if book is not None:
            book.sending()
        try:
            if stream:
                req = self._client.build_request(method, url, headers=hdrs, **kwargs)
                response = self._client.send(req, stream=True)
            else:
                response = self._client.request(method, url, headers=hdrs, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if book is not None:
                book.not_sent()
            return self._wrap(ProviderUnavailableError(
                f"Cannot reach {self.provider} at {self.base_url}: {exc}", not_sent=True,
                hint="Check the network and the provider's base URL.", **common), exc), None
        except httpx.TimeoutException as exc:
            if book is not None:
                book.no_answer(provider=self.provider, method=method, url=url, error=f"no answer within "
                               f"{self.timing.timeout:g} s ({type(exc).__name__})")
            return self._wrap(ProviderTimeoutError(
                f"{self.provider} did not answer {op} within {self.timing.timeout:g} s.",
                maybe_accepted=(op == "submit") or None,
                hint="The provider is slow; the job (if any) is kept and can be resumed.", **common), exc), None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            if book is not None:
                book.no_answer(provider=self.provider, method=method, url=url,
                               error=f"the connection broke ({type(exc).__name__})")
            return self._wrap(ProviderUnavailableError(
                f"The connection to {self.provider} broke during {op}: {type(exc).__name__}.",
                maybe_accepted=(op == "submit") or None,
                hint="A network hiccup; safe calls are retried, a submit is never repeated.", **common), exc), None
        if book is not None:
            book.answered(provider=self.provider, method=method, url=url, status=response.status_code,
                          headers=response.headers, body=b"" if stream else response.content)
        self.last_headers = response.headers
        if response.status_code >= 300:
            if stream:
                response.read()
                response.close()
            err = error_from_response(self.provider, response, op=op)
            if op == "submit" and response.status_code in (500, 502, 504) and not isinstance(err, InvalidRequestError):
                err.details["maybe_accepted"] = True
            return err, parse_retry_after(response.headers)
        if expect_json and not stream:
            try:
                response.json()
            except (ValueError, UnicodeDecodeError) as exc:
                return self._wrap(ProviderBadResponseError(
                    f"{self.provider} answered {op} with malformed JSON: {response.text[:120]!r}",
                    status=response.status_code, malformed=True,
                    maybe_accepted=(op == "submit") or None, accepted=(op == "submit") or None,
                    hint="The provider sent something unexpected; try again later.", **common), exc), None
        return response, None

    @staticmethod
    def _wrap(err: MasukaError, cause: BaseException) -> MasukaError:
        err.__cause__ = cause
        return err

    def json(self, method: str, path_or_url: str, *, op: str, **kwargs: Any) -> Any:
        return self.send(method, path_or_url, op=op, **kwargs).json()

    def download(self, url: str, part: Path, *, content_types: tuple[str, ...] = (),
                 on_bytes: Callable[[int, int | None], None] | None = None,
                 before_write: Callable[[int, int | None], None] | None = None,
                 chunk_size: int = 1 << 20) -> DownloadResult:
        """Stream `url` into `part`, resuming with HTTP Range from what `part` already holds.

        `before_write(total_after_chunk, expected_total)` runs before each chunk is written (a size cap
        refuses there, so nothing over it reaches the disk); `on_bytes` after (progress). Every chunk
        checks the client's cancel token. Broken transfers are resumed (up to the retry budget); a
        `part` that ends up longer than the file (a second writer, a file changed under us) is
        started afresh. The caller renames `part` into place after its own checks.
        """
        part.parent.mkdir(parents=True, exist_ok=True)
        requests = 0
        started_at = part.stat().st_size if part.exists() else 0
        for attempt in range(self.timing.retries + 1):
            self._check_cancel(f"The {self.provider} download")
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            requests += 1
            try:
                response = self.send("GET", url, op="download", headers=headers, expect_json=False, stream=True)
            except InvalidRequestError as exc:
                if exc.details.get("status") != 416 or not have:
                    raise
                m = re.match(r"bytes \*/(\d+)", self.last_headers.get("content-range", ""))
                if m is None or int(m.group(1)) == have:  # we already hold every byte
                    return DownloadResult(part, have, "", started_at, requests)
                part.unlink(missing_ok=True)  # it holds more than the file: start clean
                continue
            try:
                total, ctype, mode = self._plan_resume(response, have)
                if content_types and not any(ctype.startswith(t) for t in content_types):
                    raise ProviderBadResponseError(
                        f"{self.provider}'s result is {ctype or 'untyped'}, expected {', '.join(content_types)}.",
                        provider=self.provider, op="download", hint="The result URL did not return the file.")
                if before_write is not None and total is not None:
                    before_write(0, total)
                got = have if mode == "ab" else 0
                try:
                    with open(part, mode) as fh:
                        got = fh.tell()
                        for chunk in response.iter_raw():  # as received: a break keeps every byte so far
                            self._check_cancel(f"The {self.provider} download")
                            if before_write is not None:
                                before_write(got + len(chunk), total)
                            fh.write(chunk)
                            got += len(chunk)
                            if on_bytes is not None:
                                on_bytes(got, total)
                except (httpx.TransportError, httpx.StreamError) as exc:
                    log.info("http.download_broken", provider=self.provider, have=got, error=type(exc).__name__)
                    self.sleep(self.timing.delay(attempt), what=f"Resuming the {self.provider} download")
                    continue
            finally:
                response.close()
            size = got  # what this writer wrote (the path may be gone: another owner may have taken the job)
            if total is None or size == total:
                return DownloadResult(part, size, ctype, started_at, requests)
            if size > total:  # more bytes than the file has: never resume onto that, start clean
                log.warning("http.download_overlong", provider=self.provider, have=size, total=total)
                part.unlink(missing_ok=True)
                continue
            log.info("http.download_short", provider=self.provider, have=size, total=total)
        kept = part.stat().st_size if part.exists() else 0
        raise ProviderBadResponseError(
            f"{self.provider}'s result download kept breaking off ({kept} bytes kept).", provider=self.provider,
            op="download",
            hint="Run `masuka_nb.jobs.resume_all()` later to continue it.")

    def _check_cancel(self, what: str) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled(what)
        if self.cancel_event is not None and self.cancel_event.is_set():
            raise CancelledError(f"{what} was cancelled.", argument="cancel", value=True)

    def _plan_resume(self, response: httpx.Response, have: int) -> tuple[int | None, str, str]:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        length = response.headers.get("content-length")
        if response.status_code == 206 and have:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("content-range", ""))
            if m and int(m.group(1)) == have:
                total = int(m.group(3)) if m.group(3) != "*" else None
                return total, ctype, "ab"
            return None, ctype, "wb"  # a range we did not ask for: start over
        return (int(length) if length else None), ctype, "wb"

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


