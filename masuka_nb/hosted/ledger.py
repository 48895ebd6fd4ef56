"""The submit ledger: what a provider answered to a paid create, written down before anyone reads it.

    with recording(record) as book:      # the runner's `submit_recorded` does this
        provider.submit_video(record, plan, image)
    book.accepted                        # a 2xx came back: the provider took the job, whatever its body said

`ProviderClient` reports every attempt of an ``op="submit"`` call here: just before the request
leaves (`in_flight`), the raw answer (status, request id, body text) as soon as it arrives, or that
none came (a timeout, a reset after sending). The answer is appended to ``record.ledger`` and the
record is saved *before* the provider module interprets the body, so a paid job id is on disk even
when the body is in a shape the client does not expect, or the client crashes reading it.

Any 2xx to a paid create means "accepted" (an id field renamed, a reply wrapped in ``data``, an
empty body: the provider has the job and bills it). The runner never falls back to another route
after an accepted or possibly-accepted submit, and records such a job as needing attention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from masuka_nb.errors import StorageError
from masuka_nb.hosted.store import JobRecord, _now, save
from masuka_nb.log import get_logger

__all__ = ["SubmitLedger", "current", "recording"]

log = get_logger(__name__)

ANSWER_CHARS = 8000  # a provider's create answer is a few hundred bytes; an HTML error page is cut here
_current: ContextVar[SubmitLedger | None] = ContextVar("masuka_submit_ledger", default=None)
REQUEST_ID_HEADERS = ("x-request-id", "x-fal-request-id", "request-id", "x-replicate-request-id", "cf-ray")


def _public(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass
class SubmitLedger:
    """The book of one paid submit: every attempt's outcome, and whether the provider has the job."""

    record: JobRecord
    in_flight: bool = False  # a request is on the wire (an interrupt now leaves the outcome unknown)
    sent: bool = False  # at least one request reached the provider's socket
    accepted: bool = False  # a 2xx came back
    answer: dict[str, Any] | None = None  # the accepted answer, as kept
    save_error: StorageError | None = None  # the ledger could not be written (kept in memory by `save`)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def sending(self) -> None:
        self.in_flight = True

    def not_sent(self) -> None:
        """The connection never opened: the provider cannot have the request."""
        self.in_flight = False

    def answered(self, *, provider: str, method: str, url: str, status: int, headers: Any, body: bytes) -> None:
        """Keep the raw answer, then save the record: before the provider module reads a byte of it."""
        self.in_flight, self.sent = False, True
        request_id = next((headers.get(h) for h in REQUEST_ID_HEADERS if headers.get(h)), None)
        entry = {"at": _now(), "provider": provider, "method": method, "url": _public(url), "status": status,
                 "request_id": request_id, "answer": body[:ANSWER_CHARS].decode("utf-8", errors="replace"),
                 "answer_bytes": len(body)}
        if 200 <= status < 300:
            self.accepted, self.answer = True, entry
        self._keep(entry)

    def no_answer(self, *, provider: str, method: str, url: str, error: str) -> None:
        """The request left but nothing (whole) came back: the provider may have the job."""
        self.in_flight, self.sent = False, True
        self._keep({"at": _now(), "provider": provider, "method": method, "url": _public(url), "status": None,
                    "request_id": None, "answer": None, "error": error})

    def _keep(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        self.record.ledger.append(entry)
        try:
            save(self.record)
        except StorageError as exc:  # `save` kept the record in memory; the submit carries on
            self.save_error = exc
            log.warning("jobs.ledger_unsaved", job=self.record.id, code=exc.code)

    @property
    def maybe_accepted(self) -> bool:
        """The provider may have the job: it said so, or a request left and no whole answer came back."""
        return self.accepted or self.in_flight or any(e.get("status") is None for e in self.entries)


@contextlib.contextmanager
def recording(record: JobRecord) -> Iterator[SubmitLedger]:
    """Route every ``op="submit"`` call made in this context (this thread) into `record`'s ledger."""
    book = SubmitLedger(record)
    token = _current.set(book)
    try:
        yield book
    finally:
        _current.reset(token)


def current() -> SubmitLedger | None:
    """The ledger of the submit in progress in this thread, if any."""
    return _current.get()
