"""The append-only ledger: SQL for ``tasks`` and ``events``.

A task is named by ``(user_id, agent_id, task_id)``: task ids are chosen by the
caller and are only unique within a scope, so every statement that names a task
filters by all three, and another scope's task of the same name is simply a
different task.  Every statement filters by ``user_id``.

Functions here take a connection that is already inside the caller's
transaction, so a turn, its events and its job commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ..embeddings.space import EmbeddingSpace, vector_literal
from ..search.keyword import keyword_search
from ..search.vector import nearest, similarities
from .models import Event, Task

# The task row is upserted in the same statement as the events, so a turn costs
# one round trip, and the first turn of a task creates it (concurrent first turns
# of one task meet in ON CONFLICT).  turn_count counts user turns; it drives the
# checkpoint cadence.
_APPEND_EVENTS = """
WITH task AS (
    INSERT INTO tasks (user_id, agent_id, task_id, turn_count) VALUES ($1, $2, $3, $7)
    ON CONFLICT (user_id, agent_id, task_id) DO UPDATE
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


async def has_task(conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str) -> bool:
    """True if the scope has a task of that id.

    Only the caller's own scope is looked at: whether another scope uses the
    same id is neither known nor knowable here.
    """
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE user_id = $1 AND agent_id = $2 AND task_id = $3)",
        user_id,
        agent_id,
        task_id,
    )
    return found


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


async def task_turn_count(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str, lock: bool = False
) -> int | None:
    """The task's turn count (None if the task is gone); ``lock`` keeps it from being purged."""
    value: int | None = await conn.fetchval(
        f"""SELECT turn_count FROM tasks WHERE user_id = $1 AND agent_id = $2 AND task_id = $3
            {"FOR KEY SHARE" if lock else ""}""",
        user_id,
        agent_id,
        task_id,
    )
    return value


async def lock_usable_events(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, event_ids: Sequence[int]
) -> set[int]:
    """The events still present and unredacted, share-locked until commit.

    FOR SHARE blocks a concurrent redaction (an UPDATE) or purge (a DELETE) of
    these rows until we commit, so what we write can only cite text that still
    exists; whoever redacts afterwards sees our facts and handles them.
    """
    rows = await conn.fetch(
        """SELECT event_id FROM events
           WHERE user_id = $1 AND agent_id = $2 AND event_id = ANY($3::bigint[]) AND redacted_at IS NULL
           FOR SHARE""",
        user_id,
        agent_id,
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


# --------------------------------------------------------------------------- redaction (privacy)


async def lock_event(conn: asyncpg.Connection, *, user_id: str, event_id: int) -> None:
    """Lock an event's row until the transaction ends (two redactions must not interleave)."""
    await conn.execute(
        "SELECT 1 FROM events WHERE user_id = $1 AND event_id = $2 FOR UPDATE", user_id, event_id
    )


async def redact_event_content(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    event_id: int,
    content: str,
    redaction: dict[str, Any],
    metadata: dict[str, Any] | None = None,
) -> datetime:
    """Rewrite an event's content (and ``metadata``, if given) and record when and why
    (``redaction``); returns ``redacted_at``.

    Opens the ledger trigger's ``redact`` exception for the rest of the
    transaction: it lets content change, never what locates the row.
    """
    await conn.execute("SELECT set_config('engram.ledger_write', 'redact', true)")
    redacted_at: datetime | None = await conn.fetchval(
        """UPDATE events SET content = $3, redacted_at = clock_timestamp(), redaction = $4::jsonb,
                             metadata = coalesce($5::jsonb, metadata)
           WHERE user_id = $1 AND event_id = $2 RETURNING redacted_at""",
        user_id,
        event_id,
        content,
        redaction,
        metadata,
    )
    assert redacted_at is not None
    return redacted_at


async def delete_event_vectors(conn: asyncpg.Connection, *, user_id: str, event_id: int) -> None:
    """Drop an event's own vectors (computed from its content)."""
    await conn.execute("DELETE FROM event_vectors WHERE user_id = $1 AND event_id = $2", user_id, event_id)


async def artifact_events_containing(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fragments: Sequence[str]
) -> list[Event]:
    """The scope's long-input artifact events (Engram's own copy of a document's start
    and title) whose content or metadata holds any of ``fragments``, locked for update.

    Metadata is matched as JSON text (a fragment JSON-encoded as inside a string),
    so the caller must still check that a match is in a value, not in a key.
    """
    if not fragments:
        return []
    rows = await conn.fetch(
        f"""SELECT {_EVENT_COLUMNS} FROM events e
            WHERE user_id = $1 AND agent_id = $2 AND role = 'artifact' AND metadata->>'kind' = 'long_input'
              AND EXISTS (SELECT 1 FROM unnest($3::text[]) AS f(raw)
                          WHERE strpos(e.content, f.raw) > 0
                             OR strpos(e.metadata::text, btrim(to_jsonb(f.raw)::text, '"')) > 0)
            ORDER BY event_id FOR UPDATE""",
        user_id,
        agent_id,
        list(fragments),
    )
    return [event_from_row(r) for r in rows]


async def keyword_events(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, query: str, k: int
) -> list[tuple[int, float]]:
    """Unredacted events matching any query term, ranked by in-scope IDF."""
    hits = await keyword_search(
        conn,
        table="events",
        id_column="event_id",
        user_id=user_id,
        agent_id=agent_id,
        query=query,
        k=k,
        extra_filter="redacted_at IS NULL",
    )
    return [(int(i), s) for i, s in hits]


async def nearest_events(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    embedding: Sequence[float],
    k: int,
) -> list[tuple[int, float]]:
    """Events whose vectors (written by workers) are nearest to ``embedding``: (event_id, cosine)."""
    return await nearest(
        conn,
        table="event_vectors",
        id_column="event_id",
        user_id=user_id,
        agent_id=agent_id,
        space=space,
        embedding=embedding,
        k=k,
    )


async def event_similarities(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    embedding: Sequence[float],
    event_ids: Sequence[int],
) -> dict[int, float]:
    """Exact cosine similarity of the given events' vectors to ``embedding``."""
    found: dict[int, float] = await similarities(
        conn,
        table="event_vectors",
        id_column="event_id",
        user_id=user_id,
        agent_id=agent_id,
        space=space,
        embedding=embedding,
        ids=list(event_ids),
    )
    return found


# --------------------------------------------------------------------------- re-embedding


async def count_event_vectors_outside_space(conn: asyncpg.Connection, *, space_name: str) -> int:
    """Event vectors (all tenants: an operator count) from another embedding space."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM event_vectors WHERE embedding_space <> $1", space_name
    )
    return count


async def users_with_event_vectors_outside_space(conn: asyncpg.Connection, *, space_name: str) -> list[str]:
    """The tenants that have such vectors (the one cross-tenant read re-embedding needs)."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM event_vectors WHERE embedding_space <> $1", space_name
    )
    return [r["user_id"] for r in rows]


async def lock_event_vectors_outside_space(
    conn: asyncpg.Connection, *, user_id: str, space_name: str, limit: int
) -> dict[str, list[int]]:
    """Up to ``limit`` of the user's event vectors to re-embed, locked until commit: agent_id -> event ids."""
    rows = await conn.fetch(
        """SELECT event_id, agent_id FROM event_vectors WHERE user_id = $1 AND embedding_space <> $2
           ORDER BY event_id LIMIT $3 FOR UPDATE SKIP LOCKED""",
        user_id,
        space_name,
        limit,
    )
    by_agent: dict[str, list[int]] = {}
    for r in rows:
        by_agent.setdefault(r["agent_id"], []).append(r["event_id"])
    return by_agent


async def artifact_references(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str, key: str
) -> list[str]:
    """Distinct string values of ``metadata[key]`` on the task's artifact events."""
    rows = await conn.fetch(
        """SELECT DISTINCT metadata->>$4 AS ref FROM events
           WHERE user_id = $1 AND agent_id = $2 AND task_id = $3 AND role = 'artifact'
             AND metadata->>$4 IS NOT NULL""",
        user_id,
        agent_id,
        task_id,
        key,
    )
    return sorted(r["ref"] for r in rows)


def scope_size_sql(cap: int) -> str:
    """A scalar subquery counting the scope's events, capped at ``cap``
    (``$1`` user_id, ``$2`` agent_id), for one-round-trip planning decisions."""
    return (
        f"(SELECT count(*) FROM (SELECT 1 FROM events WHERE user_id = $1 AND agent_id = $2 "
        f"LIMIT {int(cap)}) e)"
    )
