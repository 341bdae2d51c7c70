"""SQL for ``embedding_spaces``: the database's record of its active embedding space."""

from __future__ import annotations

import logging

import asyncpg

from ..errors import ConfigurationError
from .space import VECTOR_TABLES, EmbeddingSpace

log = logging.getLogger("engram.embeddings")


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
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {space.index_name(table)} ON {table} USING hnsw "
                f"({space.vector_sql()} halfvec_cosine_ops) WHERE embedding_space = {space.literal}"
            )
    return changed


async def active_space(conn: asyncpg.Connection) -> EmbeddingSpace | None:
    """The space the database's vectors are in (None before any client connected)."""
    row = await conn.fetchrow("SELECT embedder, dimension FROM embedding_spaces WHERE active")
    return EmbeddingSpace(row["embedder"], row["dimension"]) if row else None
