"""Logging set-up for Engram's processes (the CLI and workers).

Libraries should not configure logging, so ``import engram`` never calls this;
the CLI does.  ``ENGRAM_LOG_FORMAT=json`` switches to one JSON object per line,
ready for a log shipper; extra fields passed with ``logger.info(..., extra={...})``
(job ids, user ids, timings) become keys of that object.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(verbose: bool = False) -> None:
    """Configure the root logger once, honouring ENGRAM_LOG_FORMAT (text|json) and ENGRAM_LOG_LEVEL."""
    level_name = os.environ.get("ENGRAM_LOG_LEVEL", "INFO" if verbose else "WARNING").upper()
    handler = logging.StreamHandler()
    if os.environ.get("ENGRAM_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level_name, logging.WARNING))
