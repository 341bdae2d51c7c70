"""``LedgerService``: the append-only write path and the ledger's read calls.

The write path never calls a model: a turn's events and (optionally) its
derivation job commit in one transaction, and memory workers do the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from .. import plugins
from ..errors import NotFoundError
from ..validation import (
    check_flag,
    check_id,
    check_metadata,
    check_positive_int,
    check_role,
    check_row_id,
    check_scope,
    check_text,
)
from . import store
from .models import Event, Task, TurnRecord

if TYPE_CHECKING:
    from ..jobs.api import JobQueue
    from ..runtime import Runtime


class LedgerService:
    """Recording turns and events; reading a task's ledger."""

    def __init__(self, rt: Runtime, queue: JobQueue) -> None:
        self._rt = rt
        self._queue = queue

    async def record_turn(
        self,
        task_id: str,
        *,
        user_message: str,
        assistant_response: str,
        agent_id: str,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        enqueue_processing: bool = True,
    ) -> TurnRecord:
        """Append a user message and the assistant's response to the task's ledger.

        Both events (and, with ``enqueue_processing``, the derivation job) are
        written in one transaction.  No model is called here: extraction and
        embedding happen in memory workers.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        limit = self._rt.settings.max_event_chars
        user_message = check_text(user_message, "user_message", max_chars=limit)
        assistant_response = check_text(
            assistant_response, "assistant_response", max_chars=limit, allow_empty=True
        )
        meta = check_metadata(metadata)
        enqueue_processing = check_flag(enqueue_processing, "enqueue_processing")
        policy = self._rt.policy
        contents = [
            self._rt.redact_for_storage(user_message, policy),
            self._rt.redact_for_storage(assistant_response, policy),
        ]
        async with self._rt.transaction() as conn:
            rows = await store.append_events(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                roles=("user", "assistant"),
                contents=contents,
                metadata=meta,
                turns=1,
            )
            event_ids = [r["event_id"] for r in rows]
            turn_count = rows[0]["turn_count"]
            job_id = None
            if enqueue_processing:
                job_id = await self._queue.enqueue_derivation(
                    conn,
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    event_ids=event_ids,
                    turn_count=turn_count,
                )
        record = TurnRecord(
            task_id=task_id,
            user_event_id=event_ids[0],
            assistant_event_id=event_ids[1],
            job_id=job_id,
            turn_count=turn_count,
        )
        self._notify_events(rows, user_id, agent_id, task_id, ("user", "assistant"), contents, meta)
        return record

    async def record_event(
        self,
        task_id: str,
        *,
        role: str,
        content: str,
        agent_id: str,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        enqueue_processing: bool = False,
    ) -> Event:
        """Append one event (a tool call, an observation, a system note, ...)."""
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        role = check_role(role)
        content = check_text(content, "content", max_chars=self._rt.settings.max_event_chars)
        meta = check_metadata(metadata)
        enqueue_processing = check_flag(enqueue_processing, "enqueue_processing")
        content = self._rt.redact_for_storage(content, self._rt.policy)
        async with self._rt.transaction() as conn:
            rows = await store.append_events(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                roles=(role,),
                contents=(content,),
                metadata=meta,
                turns=1 if role == "user" else 0,
            )
            if enqueue_processing:
                await self._queue.enqueue_derivation(
                    conn,
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    event_ids=[rows[0]["event_id"]],
                    turn_count=rows[0]["turn_count"],
                )
        events = self._notify_events(rows, user_id, agent_id, task_id, (role,), (content,), meta)
        return events[0]

    @staticmethod
    def _notify_events(
        rows: Sequence[asyncpg.Record],
        user_id: str,
        agent_id: str,
        task_id: str,
        roles: Sequence[str],
        contents: Sequence[str],
        meta: dict[str, Any],
    ) -> list[Event]:
        events = [
            Event(
                event_id=row["event_id"],
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                role=role,
                content=content,
                metadata=meta,
                created_at=row["created_at"],
            )
            for row, role, content in zip(rows, roles, contents, strict=True)
        ]
        for event in events:
            plugins.notify("event_recorded", event=event)
        return events

    async def get_task_events(
        self,
        task_id: str,
        *,
        agent_id: str,
        user_id: str,
        after_event_id: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """A task's events in the order they were recorded.

        A task id the scope has never used reads as an empty task, whether or not
        another scope has a task of that name.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        after_event_id = check_row_id(after_event_id, "after_event_id", allow_zero=True)
        if limit is not None:
            limit = check_positive_int(limit, "limit", maximum=100_000)
        async with self._rt.connection() as conn:
            return await store.task_events(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                after_event_id=after_event_id,
                limit=limit,
            )

    async def get_event(self, event_id: int, *, agent_id: str, user_id: str) -> Event:
        """One event of the caller's scope; ``NotFoundError`` otherwise."""
        user_id, agent_id = check_scope(user_id, agent_id)
        event_id = check_row_id(event_id, "event_id")
        async with self._rt.connection() as conn:
            event = await store.get_event(conn, user_id=user_id, agent_id=agent_id, event_id=event_id)
        if event is None:
            raise NotFoundError(f"no event {event_id} in this scope")
        return event

    async def list_tasks(self, *, agent_id: str, user_id: str, limit: int = 100) -> list[Task]:
        """The scope's tasks, most recently active first."""
        user_id, agent_id = check_scope(user_id, agent_id)
        limit = check_positive_int(limit, "limit", maximum=10_000)
        async with self._rt.connection() as conn:
            return await store.list_tasks(conn, user_id=user_id, agent_id=agent_id, limit=limit)
