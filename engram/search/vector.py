"""Filtered vector search over any table with an ``embedding``/``embedding_space`` pair.

The owning stores (facts, ledger, long inputs) call these with their table name;
every statement filters by the caller's ``user_id`` and ``agent_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from ..embeddings.space import VECTOR_TABLES, EmbeddingSpace, vector_literal

log = logging.getLogger("engram.search")

#: Scopes with at most this many rows are searched exactly (a scan of their rows
#: through the tenant btree); larger ones go through HNSW with iterative scans.
EXACT_SEARCH_MAX_ROWS = 10_000


async def nearest(
    conn: asyncpg.Connection,
    *,
    table: str,
    id_column: str,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    embedding: Sequence[float],
    k: int,
    extra_filter: str = "TRUE",
    exact_max_rows: int = EXACT_SEARCH_MAX_ROWS,
) -> list[tuple[int, float]]:
    """The k rows of the scope nearest to ``embedding``: (id, cosine similarity), best first.

    pgvector applies a WHERE clause after the HNSW scan, so a plain filtered
    HNSW query can return far fewer than k rows for a small tenant.  Small scopes
    are therefore searched exactly.  Large scopes use HNSW with
    ``hnsw.iterative_scan`` (SET LOCAL, so it is PgBouncer-safe), which keeps
    walking the graph until k rows pass the filter; if it still returns fewer
    than k, the exact search runs instead.
    """
    if table not in VECTOR_TABLES or VECTOR_TABLES[table] != id_column:
        raise ValueError(f"not a vector table: {table}.{id_column}")
    qvec = vector_literal(embedding)
    # One round trip for the common case: the scope's size (counted up to the
    # bound) and, when it is small, the exact search, in one statement.
    rows = await conn.fetch(
        f"""
        WITH size AS MATERIALIZED (
            SELECT count(*) AS n FROM (SELECT 1 FROM {table}
                WHERE user_id = $1 AND agent_id = $2 AND {extra_filter} LIMIT $6) s
        )
        SELECT (SELECT n FROM size) AS n, NULL AS id, NULL::float8 AS dist
        UNION ALL
        SELECT NULL, e.id, e.dist FROM (
            SELECT {id_column} AS id, embedding <=> (SELECT $3::text::vector) AS dist FROM {table}
            WHERE (SELECT n FROM size) < $6 AND user_id = $1 AND agent_id = $2
              AND embedding_space = $4 AND {extra_filter}
            ORDER BY dist, id LIMIT $5
        ) e
        """,
        user_id,
        agent_id,
        qvec,
        space.name,
        k,
        exact_max_rows + 1,
    )
    size = next(r["n"] for r in rows if r["n"] is not None)
    if size <= exact_max_rows:
        hits = sorted((r["dist"], r["id"]) for r in rows if r["n"] is None)
        return [(i, 1.0 - float(d)) for d, i in hits]
    # A large scope: filtered HNSW.
    async with conn.transaction():
        # One round trip (simple-query protocol allows several statements).  A
        # custom plan is forced because a generic plan of a prepared statement
        # assumes an average-sized tenant and skips the HNSW index.
        await conn.execute(
            "SET LOCAL plan_cache_mode = force_custom_plan; "
            "SET LOCAL hnsw.iterative_scan = relaxed_order; "
            f"SET LOCAL hnsw.ef_search = {max(100, min(1000, 4 * k))}; "
            "SET LOCAL hnsw.max_scan_tuples = 50000"
        )
        rows = await conn.fetch(
            # relaxed_order may return rows slightly out of order, and halfvec
            # rounds; over-fetch, then re-rank by full-precision distance.  The
            # MATERIALIZED CTE stops the planner from dropping the outer sort.
            f"""
            WITH q AS MATERIALIZED (SELECT $3::text::vector AS v),
            hits AS MATERIALIZED (
                SELECT {id_column} AS id, embedding
                FROM {table}
                WHERE embedding_space = {space.literal} AND user_id = $1 AND agent_id = $2 AND {extra_filter}
                ORDER BY {space.vector_sql()} <=> $3::text::halfvec({space.dimension}) LIMIT $5
            )
            SELECT id, embedding <=> (SELECT v FROM q) AS dist FROM hits ORDER BY dist, id LIMIT $4
            """,
            user_id,
            agent_id,
            qvec,
            k,
            3 * k,
        )
    if len(rows) >= k:
        return [(r["id"], 1.0 - float(r["dist"])) for r in rows]
    # Fewer than k rows passed the filter: exact search after all.  This
    # expression differs from the index's, so the planner reads the scope's rows
    # through the tenant btree instead of the filtered HNSW graph.  The scalar
    # subquery parses the query vector once, not once per row.
    rows = await conn.fetch(
        f"""
        SELECT {id_column} AS id, embedding <=> (SELECT $3::text::vector) AS dist FROM {table}
        WHERE user_id = $1 AND agent_id = $2 AND embedding_space = $4 AND {extra_filter}
        ORDER BY dist, id LIMIT $5
        """,
        user_id,
        agent_id,
        qvec,
        space.name,
        k,
    )
    return [(r["id"], 1.0 - float(r["dist"])) for r in rows]


async def similarities(
    conn: asyncpg.Connection,
    *,
    table: str,
    id_column: str,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    embedding: Sequence[float],
    ids: Sequence[int],
) -> dict[int, float]:
    """Cosine similarity of ``embedding`` to the given rows of the scope (rows
    without a vector in ``space`` are absent from the result)."""
    if table not in VECTOR_TABLES or VECTOR_TABLES[table] != id_column:
        raise ValueError(f"not a vector table: {table}.{id_column}")
    if not ids:
        return {}
    rows = await conn.fetch(
        f"""
        SELECT {id_column} AS id, embedding <=> (SELECT $3::text::vector) AS dist FROM {table}
        WHERE user_id = $1 AND agent_id = $2 AND embedding_space = $4 AND {id_column} = ANY($5::bigint[])
        """,
        user_id,
        agent_id,
        vector_literal(embedding),
        space.name,
        list(ids),
    )
    return {r["id"]: 1.0 - float(r["dist"]) for r in rows}
