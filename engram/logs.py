"""Logging set-up for Engram's processes (the CLI and workers).

Libraries should not configure logging, so ``import engram`` never calls this;
the CLI does.  ``ENGRAM_LOG_FORMAT=json`` switches to one JSON object per line,
ready for a log shipper; extra fields passed with ``logger.info(..., extra={...})``
(job ids, user ids, timings) become keys of that object.

Both formats mask PostgreSQL passwords (:func:`engram.settings.redact_dsn`) in
every message, extra field and traceback, wherever the DSN came from: our own
messages, asyncpg's, or an application's.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from .settings import redact_dsn

_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_dsn(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    # Anything else is printed with str() by json.dumps(default=str) anyway;
    # doing it here lets the password in, say, a settings object be masked.
    return redact_dsn(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_dsn(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = _redact_value(value)
        if record.exc_info:
            payload["exception"] = redact_dsn(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class RedactingFormatter(logging.Formatter):
    """The plain-text format, with PostgreSQL passwords masked in the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_dsn(super().format(record))


def configure_logging(verbose: bool = False) -> None:
    """Configure the root logger once, honouring ENGRAM_LOG_FORMAT (text|json) and ENGRAM_LOG_LEVEL."""
    level_name = os.environ.get("ENGRAM_LOG_LEVEL", "INFO" if verbose else "WARNING").upper()
    handler = logging.StreamHandler()
    if os.environ.get("ENGRAM_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level_name, logging.WARNING))
