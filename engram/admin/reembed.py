"""Re-embedding: move every stored vector into the active embedding space.

Needed after an embedder change allowed by ENGRAM_ALLOW_EMBEDDING_DIMENSION_CHANGE,
and after redaction nulls vectors.  Resumable by construction: each batch
commits, and the next run picks up whatever is still outside the active space.
Finding the tenants that need work is the one cross-tenant read (an operator
command); every statement that reads or writes rows filters by user_id.  The
SQL lives in the stores that own the three vector tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, TypeVar

from ..facts import store as facts_store
from ..ledger import store as ledger_store
from ..longinput import store as longinput_store

if TYPE_CHECKING:
    from ..client import Engram
    from ..interfaces import Embedder
    from ..runtime import Runtime

K = TypeVar("K", bound=Hashable)

ProgressCallback = Callable[[str, int], None]


async def pending_counts(client: Engram) -> dict[str, int]:
    """Rows per vector table whose vectors are missing or from another space."""
    space = client.embedding_space.name
    async with client._rt.connection() as conn:
        return {
            "facts": await facts_store.count_facts_outside_space(conn, space_name=space),
            "event_vectors": await ledger_store.count_event_vectors_outside_space(conn, space_name=space),
            "long_input_chunks": await longinput_store.count_chunks_outside_space(conn, space_name=space),
        }


async def reembed(
    client: Engram, *, batch_size: int = 256, progress: ProgressCallback | None = None
) -> dict[str, int]:
    """Re-embed every out-of-space vector; returns rows updated per table."""
    rt = client._rt
    embedder = rt.embedder()
    space = rt.embedding_space.name
    done = {"facts": 0, "event_vectors": 0, "long_input_chunks": 0}

    def step(table: str, n: int) -> None:
        done[table] += n
        if progress:
            progress(table, n)

    async with rt.connection() as conn:
        users = sorted(
            set(await facts_store.users_with_facts_outside_space(conn, space_name=space))
            | set(await ledger_store.users_with_event_vectors_outside_space(conn, space_name=space))
            | set(await longinput_store.users_with_chunks_outside_space(conn, space_name=space))
        )
    for user_id in users:
        await _reembed_rows(
            rt,
            embedder,
            "facts",
            facts_store.lock_facts_outside_space,
            facts_store.set_fact_vectors,
            user_id=user_id,
            space=space,
            batch_size=batch_size,
            step=step,
        )
        while True:
            async with rt.transaction() as conn:
                by_agent = await ledger_store.lock_event_vectors_outside_space(
                    conn, user_id=user_id, space_name=space, limit=batch_size
                )
                if not by_agent:
                    break
                for agent_id, ids in by_agent.items():
                    events = await ledger_store.events_by_ids(
                        conn, user_id=user_id, agent_id=agent_id, event_ids=ids
                    )
                    vectors = await embedder.embed([ledger_store.event_embedding_text(e) for e in events])
                    await ledger_store.store_event_vectors(
                        conn,
                        user_id=user_id,
                        agent_id=agent_id,
                        event_ids=[e.event_id for e in events],
                        vectors=vectors,
                        space_name=space,
                    )
            step("event_vectors", sum(len(ids) for ids in by_agent.values()))
        await _reembed_rows(
            rt,
            embedder,
            "long_input_chunks",
            longinput_store.lock_chunks_outside_space,
            longinput_store.set_chunk_vectors,
            user_id=user_id,
            space=space,
            batch_size=batch_size,
            step=step,
        )
    return done


async def _reembed_rows(
    rt: Runtime,
    embedder: Embedder,
    table: str,
    lock: Callable[..., Awaitable[list[tuple[K, str]]]],
    write: Callable[..., Awaitable[None]],
    *,
    user_id: str,
    space: str,
    batch_size: int,
    step: Callable[[str, int], None],
) -> None:
    """Re-embed one table's rows of a user, a locked batch per transaction, until none is left.

    ``lock`` returns (row id, text to embed) and ``write`` stores (row id, vector)
    pairs; the stores that own the table provide both.
    """
    while True:
        async with rt.transaction() as conn:
            rows = await lock(conn, user_id=user_id, space_name=space, limit=batch_size)
            if not rows:
                return
            vectors = await embedder.embed([text for _, text in rows])
            await write(
                conn,
                user_id=user_id,
                vectors=[(key, v) for (key, _), v in zip(rows, vectors, strict=True)],
                space_name=space,
            )
        step(table, len(rows))
