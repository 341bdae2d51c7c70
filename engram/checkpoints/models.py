"""The public checkpoint model."""

from __future__ import annotations

from datetime import datetime

from ..models import EngramModel


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
