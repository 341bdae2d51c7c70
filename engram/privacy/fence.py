"""The redaction fence: no derived row is written from inputs a redaction or purge removed.

Every writer of derived rows (facts, event vectors, checkpoints, chunk vectors,
anything a plugin's job handler writes) reads its inputs, calls a model with no
transaction open, and writes later.  A ``redact_event`` or ``purge`` that commits
in between would otherwise let the writer store what it computed from the secret
*after* the scrub ran.  One protocol closes that window for all of them, over one
row per ``(user_id, agent_id)`` in ``scope_generations``:

1. :func:`capture` the scope's generation **before** reading the inputs
   (autocommit; it creates the row if the scope has none yet).
2. In the write transaction, :func:`check` takes the row ``FOR SHARE`` **before
   any other lock** and compares.  ``FOR SHARE`` waits for a redaction or purge in
   progress and then sees its result; while it is held, a redaction or purge that
   starts waits until our write has committed, so its scrub sees our rows.
3. On ``"changed"`` write nothing (the worker re-queues the job without spending
   an attempt, so it runs again on the redacted text); on ``"purged"`` write
   nothing at all.

``redact_event`` bumps the row and ``purge`` deletes it, each as the first
statement of its transaction (see :mod:`engram.privacy.api`), so the lock order
is always "generation row first" and the two sides cannot deadlock.  Values come
from one sequence and are never reused: a purged scope that is used again gets a
value no stale writer can hold.

The worker applies this to every handler itself (:mod:`engram.jobs.worker`), so
a plugin's handler is fenced without doing anything.  Direct writers
(``checkpoint()``, ``embed_pending_chunks``) call the same two functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import asyncpg

from . import store

Freshness = Literal["current", "changed", "purged"]


@dataclass(frozen=True)
class Generation:
    """A scope's generation as captured before its inputs were read."""

    user_id: str
    agent_id: str
    value: int


class InputsChanged(Exception):
    """Internal signal: a redaction or purge committed after the inputs were read."""

    def __init__(self, freshness: Freshness) -> None:
        super().__init__(freshness)
        self.freshness = freshness


async def capture(conn: asyncpg.Connection, *, user_id: str, agent_id: str) -> Generation:
    """Step 1, before reading inputs; ``conn`` must not be inside a transaction."""
    found = await store.capture_generations(conn, [(user_id, agent_id)])
    return Generation(user_id, agent_id, found[(user_id, agent_id)])


async def capture_many(
    conn: asyncpg.Connection, scopes: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Generation]:
    """Step 1 for a batch of scopes (one round trip when all rows exist)."""
    found = await store.capture_generations(conn, scopes)
    return {key: Generation(key[0], key[1], value) for key, value in found.items()}


async def check(conn: asyncpg.Connection, generation: Generation) -> Freshness:
    """Step 2, inside the write transaction and before any other lock it takes."""
    value = await store.lock_generation(conn, user_id=generation.user_id, agent_id=generation.agent_id)
    if value is None:
        return "purged"
    return "current" if value == generation.value else "changed"


async def require_current(conn: asyncpg.Connection, generation: Generation) -> None:
    """:func:`check`, raising :class:`InputsChanged` unless the generation is current."""
    freshness = await check(conn, generation)
    if freshness != "current":
        raise InputsChanged(freshness)
