"""The append-only ledger: SQL for ``task_owners``, ``tasks`` and ``events``.

Every statement filters by ``user_id``.  Functions here take a connection that is
already inside the caller's transaction, so a turn, its events and its job commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from .errors import InvalidInputError, NotFoundError, ScopeError
from .models import Event, Task

_CLAIM_TASK = """
WITH claimed AS (
    INSERT INTO task_owners (task_id, user_id, agent_id) VALUES ($1, $2, $3)
    ON CONFLICT (task_id) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM claimed)
    OR EXISTS (SELECT 1 FROM task_owners WHERE task_id = $1 AND user_id = $2 AND agent_id = $3)
"""

_OWNS_TASK = "SELECT EXISTS (SELECT 1 FROM task_owners WHERE task_id = $1 AND user_id = $2 AND agent_id = $3)"

# The task row is upserted in the same statement as the events, so a turn costs
# one round trip after the ownership check.  turn_count counts user turns; it
# drives the checkpoint cadence.
_APPEND_EVENTS = """
WITH task AS (
    INSERT INTO tasks (user_id, agent_id, task_id, turn_count) VALUES ($1, $2, $3, $7)
    ON CONFLICT (user_id, task_id) DO UPDATE
        SET updated_at = now(), turn_count = tasks.turn_count + EXCLUDED.turn_count
    RETURNING turn_count
), ins AS (
    INSERT INTO events (user_id, agent_id, task_id, role, content, metadata)
    SELECT $1, $2, $3, r.role, r.content, $6::jsonb
    FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS r(role, content, ord)
    ORDER BY r.ord
    RETURNING event_id, created_at
)
SELECT ins.event_id, ins.created_at, task.turn_count FROM ins, task ORDER BY ins.event_id
"""

_EVENT_COLUMNS = "event_id, user_id, agent_id, task_id, role, content, metadata, created_at, redacted_at"


async def claim_task(conn: asyncpg.Connection, task_id: str, user_id: str, agent_id: str) -> None:
    """Make (user_id, agent_id) the owner of ``task_id``, or raise ``ScopeError``."""
    if await conn.fetchval(_CLAIM_TASK, task_id, user_id, agent_id):
        return
    # A concurrent first turn of the same task may have committed after this
    # statement's snapshot was taken; look again with a fresh snapshot.
    if await conn.fetchval(_OWNS_TASK, task_id, user_id, agent_id):
        return
    raise ScopeError(f"task_id {task_id!r} belongs to a different user_id/agent_id scope")


async def check_task_owner(conn: asyncpg.Connection, task_id: str, user_id: str, agent_id: str) -> bool:
    """True if the scope owns the task; False if nobody does; ScopeError if someone else does."""
    if await conn.fetchval(_OWNS_TASK, task_id, user_id, agent_id):
        return True
    # Whether anybody else owns it is all we reveal, and only as a refusal.
    taken = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM task_owners WHERE task_id = $1 AND NOT (user_id = $2 AND agent_id = $3))",
        task_id,
        user_id,
        agent_id,
    )
    if taken:
        raise ScopeError(f"task_id {task_id!r} belongs to a different user_id/agent_id scope")
    return False


async def append_events(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    task_id: str,
    roles: Sequence[str],
    contents: Sequence[str],
    metadata: dict[str, Any],
    turns: int,
) -> list[asyncpg.Record]:
    """Insert events in order; returns rows of (event_id, created_at, turn_count)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _APPEND_EVENTS, user_id, agent_id, task_id, list(roles), list(contents), metadata, turns
    )
    return rows


def event_from_row(row: asyncpg.Record) -> Event:
    return Event(
        event_id=row["event_id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        task_id=row["task_id"],
        role=row["role"],
        content=row["content"],
        metadata=row["metadata"] or {},
        created_at=row["created_at"],
        redacted=row["redacted_at"] is not None,
    )


async def task_events(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    task_id: str,
    after_event_id: int = 0,
    limit: int | None = None,
) -> list[Event]:
    rows = await conn.fetch(
        f"""
        SELECT {_EVENT_COLUMNS} FROM events
        WHERE user_id = $1 AND agent_id = $2 AND task_id = $3 AND event_id > $4
        ORDER BY event_id
        LIMIT $5
        """,
        user_id,
        agent_id,
        task_id,
        after_event_id,
        limit,
    )
    return [event_from_row(r) for r in rows]


async def recent_task_events(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str, limit: int
) -> list[Event]:
    rows = await conn.fetch(
        f"""
        SELECT * FROM (
            SELECT {_EVENT_COLUMNS} FROM events
            WHERE user_id = $1 AND agent_id = $2 AND task_id = $3
            ORDER BY event_id DESC LIMIT $4
        ) recent ORDER BY event_id
        """,
        user_id,
        agent_id,
        task_id,
        limit,
    )
    return [event_from_row(r) for r in rows]


async def get_event(conn: asyncpg.Connection, *, user_id: str, agent_id: str, event_id: int) -> Event | None:
    row = await conn.fetchrow(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE user_id = $1 AND agent_id = $2 AND event_id = $3",
        user_id,
        agent_id,
        event_id,
    )
    return event_from_row(row) if row else None


async def events_by_ids(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, event_ids: Sequence[int]
) -> list[Event]:
    rows = await conn.fetch(
        f"""SELECT {_EVENT_COLUMNS} FROM events
            WHERE user_id = $1 AND agent_id = $2 AND event_id = ANY($3::bigint[]) ORDER BY event_id""",
        user_id,
        agent_id,
        list(event_ids),
    )
    return [event_from_row(r) for r in rows]


async def list_tasks(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, limit: int = 100
) -> list[Task]:
    rows = await conn.fetch(
        """SELECT user_id, agent_id, task_id, turn_count, metadata, created_at, updated_at FROM tasks
           WHERE user_id = $1 AND agent_id = $2 ORDER BY updated_at DESC LIMIT $3""",
        user_id,
        agent_id,
        limit,
    )
    return [Task(**dict(r)) for r in rows]


# --------------------------------------------------------------------------- public API

from .core import ClientCore  # noqa: E402  (the mixin needs the base; SQL stays above)
from .models import TurnRecord  # noqa: E402
from .validation import (  # noqa: E402
    check_id,
    check_metadata,
    check_positive_int,
    check_role,
    check_row_id,
    check_scope,
    check_text,
)


class LedgerAPI(ClientCore):
    """Recording turns and events; reading a task's ledger."""

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
        limit = self.settings.max_event_chars
        user_message = check_text(user_message, "user_message", max_chars=limit)
        assistant_response = check_text(
            assistant_response, "assistant_response", max_chars=limit, allow_empty=True
        )
        meta = check_metadata(metadata)
        if not isinstance(enqueue_processing, bool):
            raise InvalidInputError("enqueue_processing must be a bool")
        policy = self.policy
        contents = [
            self._redact_for_storage(user_message, policy),
            self._redact_for_storage(assistant_response, policy),
        ]
        async with self._transaction() as conn:
            await claim_task(conn, task_id, user_id, agent_id)
            rows = await append_events(
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
                job_id = await self._enqueue_derivation(
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
        content = check_text(content, "content", max_chars=self.settings.max_event_chars)
        meta = check_metadata(metadata)
        content = self._redact_for_storage(content, self.policy)
        async with self._transaction() as conn:
            await claim_task(conn, task_id, user_id, agent_id)
            rows = await append_events(
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
                await self._enqueue_derivation(
                    conn,
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    event_ids=[rows[0]["event_id"]],
                    turn_count=rows[0]["turn_count"],
                )
        events = self._notify_events(rows, user_id, agent_id, task_id, (role,), (content,), meta)
        return events[0]

    def _notify_events(
        self,
        rows: Sequence[asyncpg.Record],
        user_id: str,
        agent_id: str,
        task_id: str,
        roles: Sequence[str],
        contents: Sequence[str],
        meta: dict[str, Any],
    ) -> list[Event]:
        from . import plugins

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
        """A task's events in the order they were recorded."""
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        after_event_id = check_row_id(after_event_id, "after_event_id", allow_zero=True)
        if limit is not None:
            limit = check_positive_int(limit, "limit", maximum=100_000)
        async with self._connection() as conn:
            await check_task_owner(conn, task_id, user_id, agent_id)
            return await task_events(
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
        async with self._connection() as conn:
            event = await get_event(conn, user_id=user_id, agent_id=agent_id, event_id=event_id)
        if event is None:
            raise NotFoundError(f"no event {event_id} in this scope")
        return event

    async def list_tasks(self, *, agent_id: str, user_id: str, limit: int = 100) -> list[Task]:
        """The scope's tasks, most recently active first."""
        user_id, agent_id = check_scope(user_id, agent_id)
        limit = check_positive_int(limit, "limit", maximum=10_000)
        async with self._connection() as conn:
            return await list_tasks(conn, user_id=user_id, agent_id=agent_id, limit=limit)


async def event_neighbours(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, event_ids: Sequence[int]
) -> dict[int, tuple[str, int | None, int | None]]:
    """For each event: its task and the events just before and after it in that
    task (``None`` at either end).  Redacted events are neither keys nor neighbours."""
    if not event_ids:
        return {}
    rows = await conn.fetch(
        """SELECT e.event_id, e.task_id,
                  (SELECT p.event_id FROM events p
                   WHERE p.user_id = $1 AND p.agent_id = $2 AND p.task_id = e.task_id
                     AND p.event_id < e.event_id AND p.redacted_at IS NULL
                   ORDER BY p.event_id DESC LIMIT 1) AS prev_id,
                  (SELECT n.event_id FROM events n
                   WHERE n.user_id = $1 AND n.agent_id = $2 AND n.task_id = e.task_id
                     AND n.event_id > e.event_id AND n.redacted_at IS NULL
                   ORDER BY n.event_id LIMIT 1) AS next_id
           FROM events e
           WHERE e.user_id = $1 AND e.agent_id = $2 AND e.event_id = ANY($3::bigint[])
             AND e.redacted_at IS NULL""",
        user_id,
        agent_id,
        list(event_ids),
    )
    return {r["event_id"]: (r["task_id"], r["prev_id"], r["next_id"]) for r in rows}


async def store_event_vectors(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    event_ids: Sequence[int],
    vectors: Sequence[Sequence[float]],
    space_name: str,
) -> None:
    """Upsert event vectors (memory workers call this; the write path never does)."""
    from .vectors import vector_literal

    await conn.executemany(
        """INSERT INTO event_vectors (user_id, agent_id, event_id, embedding, embedding_space)
           VALUES ($1, $2, $3, $4::text::vector, $5)
           ON CONFLICT (user_id, event_id) DO UPDATE
               SET embedding = EXCLUDED.embedding, embedding_space = EXCLUDED.embedding_space""",
        [
            (user_id, agent_id, eid, vector_literal(vec), space_name)
            for eid, vec in zip(event_ids, vectors, strict=True)
        ],
    )


def event_embedding_text(event: Event) -> str:
    """What gets embedded for an event: speaker-labelled content, as recall shows it."""
    speaker = event.metadata.get("speaker") if isinstance(event.metadata, dict) else None
    return f"{speaker or event.role}: {event.content}"
