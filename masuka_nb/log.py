"""Logging: stdlib `logging` with an event name and key=value fields, and secrets redacted.

    from masuka_nb.log import get_logger
    log = get_logger(__name__)
    log.info("model.loaded", model="flux1-dev", seconds=12.3)   # -> "model.loaded model=flux1-dev seconds=12.3"

Library code never prints. What a user sees: warnings (MASUKA's own, each said once per process, as
``MASUKA warning: <event> key=value``); events below WARNING only when the `log_level` setting
(``MASUKA_LOG_LEVEL`` / ``configure(log_level="INFO")``) asks for them. When the application has its own
logging set up (handlers on the root logger), MASUKA's records go there instead, unchanged.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from masuka_nb._redact import redact
from masuka_nb.config import settings

__all__ = ["RedactingFilter", "UserHandler", "get_logger"]

ROOT = "masuka_nb"


class RedactingFilter(logging.Filter):
    """Blanks every known secret out of a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def _fmt(value: Any) -> str:
    text = str(value)
    return repr(text) if (" " in text or not text) else text


class EventLogger(logging.LoggerAdapter):
    """`log.info("event", key=value, ...)` → one structured line; fields also land on `record.fields`."""

    def _log_event(self, level: int, event: str, fields: dict[str, Any], exc_info: Any = None) -> None:
        if not self.logger.isEnabledFor(level):
            return
        text = " ".join([event, *(f"{k}={_fmt(v)}" for k, v in fields.items())])
        self.logger.log(level, text, extra={"event": event, "fields": fields}, exc_info=exc_info)

    def debug(self, event: str, *args: Any, exc_info: Any = None, **fields: Any) -> None:  # type: ignore[override]
        self._log_event(logging.DEBUG, event % args if args else event, fields, exc_info)

    def info(self, event: str, *args: Any, exc_info: Any = None, **fields: Any) -> None:  # type: ignore[override]
        self._log_event(logging.INFO, event % args if args else event, fields, exc_info)

    def warning(self, event: str, *args: Any, exc_info: Any = None, **fields: Any) -> None:  # type: ignore[override]
        self._log_event(logging.WARNING, event % args if args else event, fields, exc_info)

    def error(self, event: str, *args: Any, exc_info: Any = None, **fields: Any) -> None:  # type: ignore[override]
        self._log_event(logging.ERROR, event % args if args else event, fields, exc_info)


class UserHandler(logging.Handler):
    """MASUKA's own output for people: to the current `sys.stderr`, a warning with the same text only once,
    and silent when the application configured the root logger itself (its handlers get the records)."""

    def __init__(self) -> None:
        super().__init__()
        self._said: set[str] = set()
        self._lock_said = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            with self._lock_said:
                if text in self._said:
                    return
                self._said.add(text)
        label = "MASUKA" if record.levelno < logging.WARNING else f"MASUKA {record.levelname.lower()}"
        try:
            sys.stderr.write(f"{label}: {text}\n")
        except Exception:  # a closed stream must not break the engine that logged
            self.handleError(record)


_configured = False


def _configure_root() -> None:
    global _configured
    if _configured:
        return
    root = logging.getLogger(ROOT)
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
    if not any(isinstance(h, UserHandler) for h in root.handlers):
        root.addHandler(UserHandler())
    try:
        root.setLevel(settings().log_level)
    except Exception:  # a bad MASUKA_LOG_LEVEL must not break logging itself; settings() reports it
        root.setLevel(logging.WARNING)
    _configured = True


def get_logger(name: str) -> EventLogger:
    _configure_root()
    logger = logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")
    # Filters on the package root do not run for child loggers' records: attach to each.
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return EventLogger(logger, {})
