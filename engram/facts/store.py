"""SQL for ``facts`` and ``fact_sources``.

The worker's reconciliation, the recall readers and the fact calls all go
through these functions; nothing else writes SQL for these two tables.  Every
statement filters by ``user_id`` and ``agent_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ..embeddings.space import EmbeddingSpace, vector_literal
from ..search.keyword import keyword_search
from ..search.vector import nearest
from .models import Fact, FactSource

#: Trigram search compares scopes up to this size row by row (see trigram_facts).
SCOPE_SCAN_ROWS = 1_000

_FACT_COLUMNS = (
    "fact_id, user_id, agent_id, content, slot, category, confidence, status, superseded_by, origin, "
    "task_id, metadata, valid_from, valid_to, created_at"
)


# --------------------------------------------------------------------------- rows


def fact_from_row(row: asyncpg.Record, sources: Sequence[FactSource] = ()) -> Fact:
    # Column names are the model's field names; extra columns are ignored.
    return Fact.model_validate({**dict(row), "metadata": row["metadata"] or {}, "sources": tuple(sources)})


async def insert_fact(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    content: str,
    embedding: Sequence[float] | None,
    space: EmbeddingSpace,
    slot: str | None = None,
    category: str | None = None,
    confidence: float = 0.7,
    origin: str = "api",
    task_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    sources: Sequence[FactSource] = (),
) -> Fact:
    """Insert one active fact and its lineage.  Call inside a transaction."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO facts (user_id, agent_id, content, slot, category, confidence, origin, task_id, metadata,
                           embedding, embedding_space)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::text::vector, $11)
        RETURNING {_FACT_COLUMNS}
        """,
        user_id,
        agent_id,
        content,
        slot,
        category,
        confidence,
        origin,
        task_id,
        metadata or {},
        vector_literal(embedding) if embedding is not None else None,
        space.name if embedding is not None else None,
    )
    if sources:
        await conn.executemany(
            """INSERT INTO fact_sources (user_id, agent_id, fact_id, event_id, span_start, span_end, quote)
               VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
            [
                (user_id, agent_id, row["fact_id"], s.event_id, s.span_start, s.span_end, s.quote)
                for s in sources
            ],
        )
    return fact_from_row(row, sources)


async def supersede(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, old_id: int, new_id: int
) -> None:
    """Point an already-retired fact at its successor."""
    await conn.execute(
        "UPDATE facts SET superseded_by = $4 WHERE user_id = $1 AND agent_id = $2 AND fact_id = $3",
        user_id,
        agent_id,
        old_id,
        new_id,
    )


async def retire(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fact_id: int, status: str = "superseded"
) -> bool:
    """Mark an active fact superseded or retracted (closing its validity).  Never deletes."""
    result: str = await conn.execute(
        """UPDATE facts SET status = $4, valid_to = clock_timestamp()
           WHERE user_id = $1 AND agent_id = $2 AND fact_id = $3 AND status = 'active'""",
        user_id,
        agent_id,
        fact_id,
        status,
    )
    return result.endswith(" 1")


async def active_slot_fact(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, slot: str
) -> Fact | None:
    row = await conn.fetchrow(
        f"""SELECT {_FACT_COLUMNS} FROM facts
            WHERE user_id = $1 AND agent_id = $2 AND slot = $3 AND status = 'active' FOR UPDATE""",
        user_id,
        agent_id,
        slot,
    )
    return fact_from_row(row) if row else None


async def current_slots(conn: asyncpg.Connection, *, user_id: str, agent_id: str) -> dict[str, Fact]:
    rows = await conn.fetch(
        f"""SELECT {_FACT_COLUMNS} FROM facts
            WHERE user_id = $1 AND agent_id = $2 AND status = 'active' AND slot IS NOT NULL""",
        user_id,
        agent_id,
    )
    return {r["slot"]: fact_from_row(r) for r in rows}


async def fetch_facts(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    fact_ids: Sequence[int],
    with_sources: bool = True,
) -> list[Fact]:
    rows = await conn.fetch(
        f"""SELECT {_FACT_COLUMNS} FROM facts
            WHERE user_id = $1 AND agent_id = $2 AND fact_id = ANY($3::bigint[]) ORDER BY fact_id""",
        user_id,
        agent_id,
        list(fact_ids),
    )
    sources: dict[int, list[FactSource]] = {}
    if with_sources and rows:
        for s in await conn.fetch(
            """SELECT fact_id, event_id, span_start, span_end, quote FROM fact_sources
               WHERE user_id = $1 AND fact_id = ANY($2::bigint[]) ORDER BY event_id, span_start""",
            user_id,
            [r["fact_id"] for r in rows],
        ):
            sources.setdefault(s["fact_id"], []).append(
                FactSource(
                    event_id=s["event_id"],
                    span_start=s["span_start"],
                    span_end=s["span_end"],
                    quote=s["quote"],
                )
            )
    return [fact_from_row(r, sources.get(r["fact_id"], ())) for r in rows]


async def nearest_facts(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    embedding: Sequence[float],
    k: int,
) -> list[tuple[int, float]]:
    """The k active facts nearest to ``embedding`` as (fact_id, cosine similarity), best first."""
    return await nearest(
        conn,
        table="facts",
        id_column="fact_id",
        user_id=user_id,
        agent_id=agent_id,
        space=space,
        embedding=embedding,
        k=k,
        extra_filter="status = 'active'",
    )


# --------------------------------------------------------------------------- keyword search


async def keyword_facts(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, query: str, k: int
) -> list[tuple[int, float]]:
    """Active facts matching any query term, ranked by IDF within the scope
    (see :mod:`engram.search.keyword`)."""
    hits = await keyword_search(
        conn,
        table="facts",
        id_column="fact_id",
        user_id=user_id,
        agent_id=agent_id,
        query=query,
        k=k,
        extra_filter="status = 'active'",
    )
    return [(int(i), s) for i, s in hits]


async def trigram_facts(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    terms: Sequence[str],
    k: int,
    per_term: int = 200,
    scan_rows: int = SCOPE_SCAN_ROWS,
) -> list[tuple[int, float]]:
    """Fuzzy matches for names and identifiers (``pg_trgm`` word similarity).

    A scope of up to ``scan_rows`` active facts is compared row by row (read
    through the tenant btree: cheaper than the trigram index's posting lists).  A
    larger one goes through the tenant-first trigram index, at most ``per_term``
    rows per term: a term that matches more is a common word of the scope, and
    its matches tie anyway.
    """
    if not terms:
        return []
    rows = await conn.fetch(
        f"""
        WITH small AS MATERIALIZED (
            SELECT count(*) <= {int(scan_rows)} AS yes FROM (
                SELECT 1 FROM facts WHERE user_id = $1 AND agent_id = $2 AND status = 'active'
                LIMIT {int(scan_rows) + 1}) s
        ),
        scoped AS MATERIALIZED (  -- read only for a small scope (CTEs run on demand)
            SELECT fact_id, content FROM facts WHERE user_id = $1 AND agent_id = $2 AND status = 'active'
        ),
        hits AS (
            SELECT s.fact_id, word_similarity(t, s.content) AS sim
            FROM scoped s, unnest($3::text[]) AS t
            WHERE (SELECT yes FROM small) AND t <% s.content
            UNION ALL
            SELECT h.fact_id, h.sim
            FROM unnest($3::text[]) AS t, LATERAL (
                SELECT fact_id, word_similarity(t, content) AS sim FROM facts
                WHERE user_id = $1 AND agent_id = $2 AND status = 'active' AND t <% content
                LIMIT $5
            ) h
            WHERE NOT (SELECT yes FROM small)
        )
        SELECT fact_id, max(sim) AS sim FROM hits
        GROUP BY fact_id ORDER BY sim DESC, fact_id DESC LIMIT $4
        """,
        user_id,
        agent_id,
        list(terms),
        k,
        per_term,
    )
    return [(r["fact_id"], float(r["sim"])) for r in rows]


async def list_facts(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, status: str | None, slot: str | None, limit: int
) -> list[Fact]:
    """The scope's facts, newest first, optionally of one status and slot."""
    rows = await conn.fetch(
        f"""SELECT {_FACT_COLUMNS} FROM facts
            WHERE user_id = $1 AND agent_id = $2 AND ($3::text IS NULL OR status = $3)
              AND ($4::text IS NULL OR slot = $4)
            ORDER BY fact_id DESC LIMIT $5""",
        user_id,
        agent_id,
        status,
        slot,
        limit,
    )
    return [fact_from_row(r) for r in rows]


# Walks a fact's supersession chain both ways.  Both recursive branches filter by
# user_id (and agent_id), as Citus requires and as the tenant rule demands.  The
# depth bound stops a corrupted cycle from recursing forever.
_LINEAGE = """
WITH RECURSIVE older(fact_id, depth) AS (
    SELECT fact_id, 0 FROM facts WHERE user_id = $1 AND agent_id = $2 AND fact_id = $3
  UNION
    SELECT f.fact_id, o.depth - 1 FROM facts f JOIN older o ON f.superseded_by = o.fact_id
    WHERE f.user_id = $1 AND f.agent_id = $2 AND o.depth > -1000
), newer(fact_id, next_id, depth) AS (
    SELECT fact_id, superseded_by, 0 FROM facts WHERE user_id = $1 AND agent_id = $2 AND fact_id = $3
  UNION
    SELECT f.fact_id, f.superseded_by, n.depth + 1 FROM facts f JOIN newer n ON f.fact_id = n.next_id
    WHERE f.user_id = $1 AND f.agent_id = $2 AND n.depth < 1000
)
SELECT fact_id, depth FROM older UNION SELECT fact_id, depth FROM newer ORDER BY depth
"""


async def supersession_chain(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fact_id: int
) -> dict[int, int]:
    """fact_id -> depth for every version of a fact (0 = the one asked about); empty if unknown."""
    rows = await conn.fetch(_LINEAGE, user_id, agent_id, fact_id)
    return {r["fact_id"]: r["depth"] for r in rows}


async def source_quotes(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fact_ids: Sequence[int]
) -> list[asyncpg.Record]:
    """Non-empty lineage quotes of the given facts whose events are not redacted,
    in the order of ``fact_ids``.  Columns: fact_id, event_id, quote, task_id, created_at."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT s.fact_id, s.event_id, s.quote, e.task_id, e.created_at
           FROM fact_sources s JOIN events e ON e.user_id = s.user_id AND e.event_id = s.event_id
           WHERE s.user_id = $1 AND s.agent_id = $2 AND s.fact_id = ANY($3::bigint[])
             AND s.quote <> '' AND e.redacted_at IS NULL
           ORDER BY array_position($3::bigint[], s.fact_id), s.event_id""",
        user_id,
        agent_id,
        list(fact_ids),
    )
    return rows


# --------------------------------------------------------------------------- redaction (privacy)


async def fact_ids_from_event(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, event_id: int
) -> list[int]:
    """The facts whose lineage names ``event_id``."""
    rows = await conn.fetch(
        "SELECT DISTINCT fact_id FROM fact_sources WHERE user_id = $1 AND agent_id = $2 AND event_id = $3",
        user_id,
        agent_id,
        event_id,
    )
    return [r["fact_id"] for r in rows]


async def supersede_without_successor(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fact_ids: Sequence[int]
) -> list[int]:
    """Supersede facts with no replacement and drop their vectors; returns their ids, sorted."""
    rows = await conn.fetch(
        """UPDATE facts SET status = 'superseded', valid_to = coalesce(valid_to, clock_timestamp()),
                            embedding = NULL, embedding_space = NULL
           WHERE user_id = $1 AND agent_id = $2 AND fact_id = ANY($3::bigint[])
           RETURNING fact_id""",
        user_id,
        agent_id,
        list(fact_ids),
    )
    return sorted(r["fact_id"] for r in rows)


async def replace_fact_contents(
    conn: asyncpg.Connection, *, user_id: str, fact_ids: Sequence[int], content: str
) -> None:
    """Overwrite the text of the given facts with ``content``."""
    await conn.execute(
        "UPDATE facts SET content = $3 WHERE user_id = $1 AND fact_id = ANY($2::bigint[])",
        user_id,
        list(fact_ids),
        content,
    )


async def replace_event_quotes(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, event_id: int, quote: str
) -> None:
    """Overwrite every lineage quote taken from ``event_id`` with ``quote``."""
    await conn.execute(
        "UPDATE fact_sources SET quote = $4 WHERE user_id = $1 AND agent_id = $2 AND event_id = $3",
        user_id,
        agent_id,
        event_id,
        quote,
    )


async def lock_scope(conn: asyncpg.Connection, *, user_id: str, agent_id: str) -> None:
    """Serialise fact writes of one (user, agent) until the transaction ends.

    A transaction-level advisory lock: released at commit/rollback, and safe
    behind PgBouncer in transaction mode (session locks are not).
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"engram.facts:{user_id}\x1f{agent_id}"
    )


async def observed_at(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, fact: Fact
) -> datetime | None:
    """When the facts behind ``fact`` were observed: its newest source event, else its creation."""
    newest: datetime | None = await conn.fetchval(
        """SELECT max(e.created_at) FROM fact_sources s
           JOIN events e ON e.user_id = s.user_id AND e.event_id = s.event_id
           WHERE s.user_id = $1 AND e.user_id = $1 AND s.agent_id = $2 AND s.fact_id = $3""",
        user_id,
        agent_id,
        fact.fact_id,
    )
    return newest if newest is not None else fact.valid_from


# --------------------------------------------------------------------------- re-embedding


async def count_facts_outside_space(conn: asyncpg.Connection, *, space_name: str) -> int:
    """Active facts (all tenants: an operator count) without a vector in ``space_name``."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM facts WHERE status = 'active' AND embedding_space IS DISTINCT FROM $1",
        space_name,
    )
    return count


async def users_with_facts_outside_space(conn: asyncpg.Connection, *, space_name: str) -> list[str]:
    """The tenants that have such facts (the one cross-tenant read re-embedding needs)."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM facts WHERE status = 'active' AND embedding_space IS DISTINCT FROM $1",
        space_name,
    )
    return [r["user_id"] for r in rows]


async def lock_facts_outside_space(
    conn: asyncpg.Connection, *, user_id: str, space_name: str, limit: int
) -> list[tuple[int, str]]:
    """Up to ``limit`` of the user's facts to re-embed, as (fact_id, content), locked until commit."""
    rows = await conn.fetch(
        """SELECT fact_id, content FROM facts
           WHERE user_id = $1 AND status = 'active' AND embedding_space IS DISTINCT FROM $2
           ORDER BY fact_id LIMIT $3 FOR UPDATE SKIP LOCKED""",
        user_id,
        space_name,
        limit,
    )
    return [(r["fact_id"], r["content"]) for r in rows]


async def set_fact_vectors(
    conn: asyncpg.Connection, *, user_id: str, vectors: Sequence[tuple[int, Sequence[float]]], space_name: str
) -> None:
    await conn.executemany(
        """UPDATE facts SET embedding = $3::text::vector, embedding_space = $4
           WHERE user_id = $1 AND fact_id = $2""",
        [(user_id, fact_id, vector_literal(v), space_name) for fact_id, v in vectors],
    )


def scope_size_sql(cap: int) -> str:
    """A scalar subquery counting the scope's facts, capped at ``cap``
    (``$1`` user_id, ``$2`` agent_id), for one-round-trip planning decisions."""
    return (
        f"(SELECT count(*) FROM (SELECT 1 FROM facts WHERE user_id = $1 AND agent_id = $2 "
        f"LIMIT {int(cap)}) f)"
    )
