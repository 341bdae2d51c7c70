"""The append-only ledger: tasks, events and the vectors workers write for them."""

from .models import Event, Task, TurnRecord

__all__ = ["Event", "Task", "TurnRecord"]
