"""Public result models.  Every value Engram returns is one of these (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EngramModel(BaseModel):
    model_config = ConfigDict(frozen=True)


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


class FactSource(EngramModel):
    """One piece of lineage: the event (and span of it) a fact came from."""

    event_id: int
    span_start: int = 0
    span_end: int = 0
    quote: str = ""


class Fact(EngramModel):
    """A unit of semantic memory."""

    fact_id: int
    user_id: str
    agent_id: str
    content: str
    slot: str | None = None
    category: str | None = None
    confidence: float
    status: str  # "active" | "superseded" | "retracted"
    superseded_by: int | None = None
    origin: str = "api"
    task_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    valid_from: datetime
    valid_to: datetime | None = None
    created_at: datetime
    sources: tuple[FactSource, ...] = ()
