"""The public checkpoint model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import ExtractionError
from ..models import EngramModel

MAX_SUMMARY_CHARS = 20_000


class Checkpoint(EngramModel):
    """A summary of a task up to ``through_event_id``."""

    checkpoint_id: int
    user_id: str
    agent_id: str
    task_id: str
    summary: str
    through_event_id: int
    turn_count: int
    created_at: datetime


def check_summary(value: Any) -> str:
    """An extractor's summary, checked and capped at ``MAX_SUMMARY_CHARS``."""
    if not isinstance(value, str):
        raise ExtractionError(f"extractor summarize() returned {type(value).__name__}, not str")
    text = value.strip()
    if not text:
        raise ExtractionError("extractor summarize() returned an empty summary")
    return text[:MAX_SUMMARY_CHARS]
