"""Embedding spaces and filtered vector search, shared by every table with vectors.

A database has one active embedding space (embedder name + dimension).  Vector
columns have no fixed dimension; each space gets a partial HNSW index over a
``halfvec`` cast of its dimension on every vector table, so a model change needs
no table rewrite and the index takes half the memory of full-precision vectors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from .errors import ConfigurationError
from .interfaces import Embedder

log = logging.getLogger("engram.vectors")

#: Tables holding an ``embedding``/``embedding_space`` pair, with their id column.
VECTOR_TABLES: dict[str, str] = {
    "facts": "fact_id",
    "event_vectors": "event_id",
    "long_input_chunks": "chunk_id",
}

#: Scopes with at most this many rows are searched exactly (a scan of their rows
#: through the tenant btree); larger ones go through HNSW with iterative scans.
EXACT_SEARCH_MAX_ROWS = 10_000


@dataclass(frozen=True)
class EmbeddingSpace:
    """The embedder a database's vectors belong to."""

    embedder: str
    dimension: int

    @property
    def name(self) -> str:
        return f"{self.embedder}@{self.dimension}"

    @property
    def literal(self) -> str:
        # Inlined into SQL (never user input) so the planner can match the
        # partial HNSW index's predicate even for generic prepared plans.
        return "'" + self.name.replace("'", "''") + "'"

    def index_name(self, table: str = "facts") -> str:
        return f"{table}_hnsw_" + hashlib.sha256(self.name.encode()).hexdigest()[:12]

    def vector_sql(self, column: str = "embedding") -> str:
        return f"({column}::halfvec({self.dimension}))"


def space_of(embedder: Embedder) -> EmbeddingSpace:
    dim = embedder.dimension
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or dim > 16000:
        raise ConfigurationError(f"embedder {embedder.name!r} reports an invalid dimension {dim!r}")
    return EmbeddingSpace(embedder.name, dim)


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text input format; avoids needing a client-side codec."""
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


async def ensure_space(conn: asyncpg.Connection, space: EmbeddingSpace, *, allow_change: bool) -> bool:
    """Record ``space`` as the database's active one, or refuse a mismatch.

    Returns True when the active space changed and vectors need re-embedding.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('engram.embedding_spaces'))")
        active = await conn.fetchrow("SELECT space, embedder, dimension FROM embedding_spaces WHERE active")
        changed = False
        if active is not None and active["space"] != space.name:
            if not allow_change:
                raise ConfigurationError(
                    f"this database's vectors were made by {active['embedder']!r} with dimension "
                    f"{active['dimension']}, but this client uses {space.embedder!r} with dimension "
                    f"{space.dimension}. Configure the original embedder (ENGRAM_EMBEDDER), or set "
                    "ENGRAM_ALLOW_EMBEDDING_DIMENSION_CHANGE=true and run `engram reembed` to move "
                    "every vector to the new model."
                )
            log.warning(
                "embedding space changes from %s to %s; run `engram reembed`", active["space"], space.name
            )
            await conn.execute("UPDATE embedding_spaces SET active = false WHERE active")
            changed = True
        if active is None or changed:
            await conn.execute(
                "INSERT INTO embedding_spaces (space, embedder, dimension, active) VALUES ($1, $2, $3, true) "
                "ON CONFLICT (space) DO UPDATE SET active = true",
                space.name,
                space.embedder,
                space.dimension,
            )
        for table in VECTOR_TABLES:
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {space.index_name(table)} ON {table} USING hnsw "
                    f"({space.vector_sql()} halfvec_cosine_ops) WHERE embedding_space = {space.literal}"
                )
    return changed


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
