"""Public models of the ledger: events, turns and tasks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import Field

from ..interfaces import SourceEvent
from ..models import EngramModel


class Event(EngramModel):
    """One ledger entry."""

    event_id: int
    user_id: str
    agent_id: str
    task_id: str
    role: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    redacted: bool = False


class TurnRecord(EngramModel):
    """What ``record_turn`` wrote."""

    task_id: str
    user_event_id: int
    assistant_event_id: int
    job_id: int | None = None
    turn_count: int

    @property
    def event_ids(self) -> tuple[int, int]:
        return (self.user_event_id, self.assistant_event_id)


class Task(EngramModel):
    user_id: str
    agent_id: str
    task_id: str
    turn_count: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


def source_events(events: Sequence[Event]) -> tuple[SourceEvent, ...]:
    """Events as extractors receive them."""
    return tuple(
        SourceEvent(
            event_id=e.event_id, task_id=e.task_id, role=e.role, content=e.content, created_at=e.created_at
        )
        for e in events
    )
