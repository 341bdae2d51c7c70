"""Structured logging for Engram processes."""

from __future__ import annotations

import json
import logging

import pytest

from engram.logs import JsonFormatter, configure_logging


def test_json_formatter_keeps_extra_fields() -> None:
    record = logging.LogRecord("engram.jobs", logging.WARNING, __file__, 1, "job %d failed", (7,), None)
    record.job_id = 7
    record.user_id = "u-1"
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["message"] == "job 7 failed" and line["level"] == "warning" and line["logger"] == "engram.jobs"
    )
    assert line["job_id"] == 7 and line["user_id"] == "u-1" and "T" in line["time"]


def test_configure_logging_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGRAM_LOG_FORMAT", "json")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(verbose=True)
        logging.getLogger("engram.test").info("hello %s", "world", extra={"task_id": "t1"})
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert json.loads(err)["message"] == "hello world" and json.loads(err)["task_id"] == "t1"
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
