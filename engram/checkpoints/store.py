"""SQL for ``checkpoints``: a task's summaries so far, newest last."""

from __future__ import annotations

import asyncpg

from .models import Checkpoint

_CHECKPOINT_COLUMNS = (
    "checkpoint_id, user_id, agent_id, task_id, summary, through_event_id, turn_count, created_at"
)


async def latest_checkpoint(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str
) -> Checkpoint | None:
    """The task's newest checkpoint, or None."""
    row = await conn.fetchrow(
        f"""SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints
            WHERE user_id = $1 AND agent_id = $2 AND task_id = $3
            ORDER BY checkpoint_id DESC LIMIT 1""",
        user_id,
        agent_id,
        task_id,
    )
    return checkpoint_from_row(row) if row else None


def checkpoint_from_row(row: asyncpg.Record) -> Checkpoint:
    return Checkpoint.model_validate(dict(row))


async def insert_checkpoint(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    task_id: str,
    summary: str,
    through_event_id: int,
    turn_count: int,
) -> Checkpoint:
    row = await conn.fetchrow(
        f"""INSERT INTO checkpoints (user_id, agent_id, task_id, summary, through_event_id, turn_count)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_CHECKPOINT_COLUMNS}""",
        user_id,
        agent_id,
        task_id,
        summary,
        through_event_id,
        turn_count,
    )
    assert row is not None
    return checkpoint_from_row(row)
