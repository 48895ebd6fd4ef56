"""Logging: stdlib `logging` with an event name and key=value fields, and secrets redacted.

    from masuka_nb.log import get_logger
    log = get_logger(__name__)
    log.info("model.loaded", model="flux1-dev", seconds=12.3)   # -> "model.loaded model=flux1-dev seconds=12.3"

Library code never prints; the notebook decides what to show (handlers, level via MASUKA_LOG_LEVEL).
"""

from __future__ import annotations

import logging
from typing import Any

from masuka_nb._redact import redact

__all__ = ["RedactingFilter", "get_logger"]

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


_configured = False


def _configure_root() -> None:
    global _configured
    if _configured:
        return
    root = logging.getLogger(ROOT)
    if not any(isinstance(f, RedactingFilter) for f in root.filters):
        root.addFilter(RedactingFilter())
    from masuka_nb.config import settings

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
