"""Re-embedding: move every stored vector into the active embedding space.

Needed after an embedder change allowed by ENGRAM_ALLOW_EMBEDDING_DIMENSION_CHANGE,
and after redaction nulls vectors.  Resumable by construction: each batch
commits, and the next run picks up whatever is still outside the active space.
The tenant discovery query is the one cross-tenant read here (an operator
command); every statement that reads or writes rows filters by user_id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .ledger import event_embedding_text, events_by_ids, store_event_vectors
from .vectors import vector_literal

ProgressCallback = Callable[[str, int], None]


async def pending_counts(client: Any) -> dict[str, int]:
    """Rows per vector table whose vectors are missing or from another space."""
    space = client.embedding_space.name
    async with client._connection() as conn:
        facts = await conn.fetchval(
            "SELECT count(*) FROM facts WHERE status = 'active' AND embedding_space IS DISTINCT FROM $1",
            space,
        )
        events = await conn.fetchval(
            """SELECT count(*) FROM event_vectors WHERE embedding_space <> $1""", space
        )
        out = {"facts": int(facts), "event_vectors": int(events)}
        if await conn.fetchval("SELECT to_regclass('long_input_chunks') IS NOT NULL"):
            out["long_input_chunks"] = int(
                await conn.fetchval(
                    "SELECT count(*) FROM long_input_chunks WHERE embedding_space IS DISTINCT FROM $1", space
                )
            )
    return out


async def reembed(
    client: Any, *, batch_size: int = 256, progress: ProgressCallback | None = None
) -> dict[str, int]:
    """Re-embed every out-of-space vector; returns rows updated per table."""
    embedder = client.get_embedder()
    space = client.embedding_space
    done = {"facts": 0, "event_vectors": 0, "long_input_chunks": 0}
    async with client._connection() as conn:
        users = [
            r["user_id"]
            for r in await conn.fetch(
                """SELECT user_id FROM facts WHERE status = 'active' AND embedding_space IS DISTINCT FROM $1
                   UNION SELECT user_id FROM event_vectors WHERE embedding_space <> $1""",
                space.name,
            )
        ]
        has_chunks = bool(await conn.fetchval("SELECT to_regclass('long_input_chunks') IS NOT NULL"))
        if has_chunks:
            users = sorted(
                set(users)
                | {
                    r["user_id"]
                    for r in await conn.fetch(
                        "SELECT DISTINCT user_id FROM long_input_chunks WHERE embedding_space IS DISTINCT FROM $1",
                        space.name,
                    )
                }
            )
    for user_id in users:
        while True:
            async with client._transaction() as conn:
                rows = await conn.fetch(
                    """SELECT fact_id, agent_id, content FROM facts
                       WHERE user_id = $1 AND status = 'active' AND embedding_space IS DISTINCT FROM $2
                       ORDER BY fact_id LIMIT $3 FOR UPDATE SKIP LOCKED""",
                    user_id,
                    space.name,
                    batch_size,
                )
                if not rows:
                    break
                vectors = await embedder.embed([r["content"] for r in rows])
                await conn.executemany(
                    """UPDATE facts SET embedding = $3::text::vector, embedding_space = $4
                       WHERE user_id = $1 AND fact_id = $2""",
                    [
                        (user_id, r["fact_id"], vector_literal(v), space.name)
                        for r, v in zip(rows, vectors, strict=True)
                    ],
                )
            done["facts"] += len(rows)
            if progress:
                progress("facts", len(rows))
        while True:
            async with client._transaction() as conn:
                rows = await conn.fetch(
                    """SELECT event_id, agent_id FROM event_vectors WHERE user_id = $1 AND embedding_space <> $2
                       ORDER BY event_id LIMIT $3 FOR UPDATE SKIP LOCKED""",
                    user_id,
                    space.name,
                    batch_size,
                )
                if not rows:
                    break
                by_agent: dict[str, list[int]] = {}
                for r in rows:
                    by_agent.setdefault(r["agent_id"], []).append(r["event_id"])
                for agent_id, ids in by_agent.items():
                    events = await events_by_ids(conn, user_id=user_id, agent_id=agent_id, event_ids=ids)
                    vectors = await embedder.embed([event_embedding_text(e) for e in events])
                    await store_event_vectors(
                        conn,
                        user_id=user_id,
                        agent_id=agent_id,
                        event_ids=[e.event_id for e in events],
                        vectors=vectors,
                        space_name=space.name,
                    )
            done["event_vectors"] += len(rows)
            if progress:
                progress("event_vectors", len(rows))
        while has_chunks:
            async with client._transaction() as conn:
                rows = await conn.fetch(
                    """SELECT chunk_id, text FROM long_input_chunks
                       WHERE user_id = $1 AND embedding_space IS DISTINCT FROM $2
                       ORDER BY chunk_id LIMIT $3 FOR UPDATE SKIP LOCKED""",
                    user_id,
                    space.name,
                    batch_size,
                )
                if not rows:
                    break
                vectors = await embedder.embed([r["text"] for r in rows])
                await conn.executemany(
                    """UPDATE long_input_chunks SET embedding = $3::text::vector, embedding_space = $4
                       WHERE user_id = $1 AND chunk_id = $2""",
                    [
                        (user_id, r["chunk_id"], vector_literal(v), space.name)
                        for r, v in zip(rows, vectors, strict=True)
                    ],
                )
            done["long_input_chunks"] += len(rows)
            if progress:
                progress("long_input_chunks", len(rows))
    return done
