"""Semantic memory: the ``facts`` table, its embedding space, and the public fact calls.

SQL for ``facts``, ``fact_sources`` and ``embedding_spaces`` lives here; the
worker's reconciliation and the recall strategies call these functions rather
than writing their own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from .core import ClientCore
from .errors import InvalidInputError, NotFoundError
from .models import Fact, FactSource
from .validation import check_id, check_metadata, check_positive_int, check_row_id, check_scope, check_text
from .vectors import EmbeddingSpace, ensure_space, nearest, space_of, vector_literal

__all__ = ["EmbeddingSpace", "ensure_space", "space_of", "vector_literal"]

log = logging.getLogger("engram.facts")

MAX_FACT_CHARS = 4_000
#: Trigram search compares scopes up to this size row by row (see trigram_facts).
SCOPE_SCAN_ROWS = 1_000
FACT_STATUSES = ("active", "superseded", "retracted")

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


# --------------------------------------------------------------------------- public API


def _check_fact_id(value: Any) -> int:
    return check_row_id(value, "fact_id")


def _check_slot(value: Any) -> str | None:
    if value is None:
        return None
    from .policy import CriticalSlot

    check_id(value, "slot")
    try:
        CriticalSlot(name=value)
    except ValueError:
        raise InvalidInputError(f"slot {value!r} must be lower_snake_case, 1-63 characters") from None
    return str(value)


class FactsAPI(ClientCore):
    """Direct fact calls, and the embedding-space guard run at connect."""

    _space: EmbeddingSpace | None = None

    async def _after_connect(self) -> None:
        await super()._after_connect()
        space = space_of(self.get_embedder())
        async with self._connection() as conn:
            await ensure_space(conn, space, allow_change=self.settings.allow_embedding_dimension_change)
        self._space = space

    @property
    def embedding_space(self) -> EmbeddingSpace:
        if self._space is None:
            self._space = space_of(self.get_embedder())
        return self._space

    async def add(
        self,
        content: str,
        *,
        agent_id: str,
        user_id: str,
        slot: str | None = None,
        category: str | None = None,
        metadata: dict[str, Any] | None = None,
        confidence: float = 1.0,
    ) -> Fact:
        """Store a fact directly, embedding it now (the one write path that embeds inline).

        With ``slot``, the fact becomes that slot's current value and the previous
        value is superseded (kept, with ``superseded_by`` pointing here).  Adding
        the same text to the same slot again is a no-op that returns the existing fact.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        content = check_text(content, "content", max_chars=MAX_FACT_CHARS).strip()
        slot = _check_slot(slot)
        if category is not None:
            check_id(category, "category")
        meta = check_metadata(metadata)
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0 <= confidence <= 1
        ):
            raise InvalidInputError("confidence must be a number between 0 and 1")
        embedder = self.get_embedder()
        await self._get_pool()
        (vector,) = await embedder.embed([content])
        space = self.embedding_space
        async with self._transaction() as conn:
            previous = None
            if slot is not None:
                previous = await active_slot_fact(conn, user_id=user_id, agent_id=agent_id, slot=slot)
                if previous is not None and previous.content.casefold() == content.casefold():
                    return previous
                if previous is not None:
                    await retire(conn, user_id=user_id, agent_id=agent_id, fact_id=previous.fact_id)
            fact = await insert_fact(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                content=content,
                embedding=vector,
                space=space,
                slot=slot,
                category=category,
                confidence=float(confidence),
                metadata=meta,
            )
            if previous is not None:
                await supersede(
                    conn, user_id=user_id, agent_id=agent_id, old_id=previous.fact_id, new_id=fact.fact_id
                )
        from . import plugins

        plugins.notify("fact_derived", fact=fact)
        return fact

    async def get_fact(self, fact_id: int, *, agent_id: str, user_id: str) -> Fact:
        """One fact with its lineage sources; ``NotFoundError`` outside the caller's scope."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        async with self._connection() as conn:
            found = await fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id])
        if not found:
            raise NotFoundError(f"no fact {fact_id} in this scope")
        return found[0]

    async def list_facts(
        self,
        *,
        agent_id: str,
        user_id: str,
        status: str | None = "active",
        slot: str | None = None,
        limit: int = 100,
    ) -> list[Fact]:
        """The scope's facts, newest first.  ``status=None`` lists every status."""
        user_id, agent_id = check_scope(user_id, agent_id)
        if status is not None and status not in FACT_STATUSES:
            raise InvalidInputError(f"status must be one of {FACT_STATUSES} or None")
        slot = _check_slot(slot)
        limit = check_positive_int(limit, "limit", maximum=10_000)
        async with self._connection() as conn:
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

    async def retract_fact(self, fact_id: int, *, agent_id: str, user_id: str) -> Fact:
        """Stop a fact from being recalled.  It is kept (status ``retracted``) for lineage."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        async with self._transaction() as conn:
            existing = await fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id])
            if not existing:
                raise NotFoundError(f"no fact {fact_id} in this scope")
            await retire(conn, user_id=user_id, agent_id=agent_id, fact_id=fact_id, status="retracted")
            (fact,) = await fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id])
        return fact

    async def supersede_fact(
        self,
        fact_id: int,
        content: str,
        *,
        agent_id: str,
        user_id: str,
        metadata: dict[str, Any] | None = None,
    ) -> Fact:
        """Replace an active fact with a corrected one; the old one is kept as ``superseded``."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        content = check_text(content, "content", max_chars=MAX_FACT_CHARS).strip()
        meta = check_metadata(metadata)
        (vector,) = await self.get_embedder().embed([content])
        async with self._transaction() as conn:
            found = await fetch_facts(
                conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id], with_sources=True
            )
            if not found:
                raise NotFoundError(f"no fact {fact_id} in this scope")
            old = found[0]
            if old.status != "active":
                raise InvalidInputError(
                    f"fact {fact_id} is {old.status}; only active facts can be superseded"
                )
            await retire(conn, user_id=user_id, agent_id=agent_id, fact_id=fact_id)
            new = await insert_fact(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                content=content,
                embedding=vector,
                space=self.embedding_space,
                slot=old.slot,
                category=old.category,
                confidence=old.confidence,
                task_id=old.task_id,
                metadata=meta or old.metadata,
                sources=old.sources,
            )
            await supersede(conn, user_id=user_id, agent_id=agent_id, old_id=fact_id, new_id=new.fact_id)
        return new


# --------------------------------------------------------------------------- keyword search


async def keyword_facts(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, query: str, k: int
) -> list[tuple[int, float]]:
    """Active facts matching any query term, ranked by IDF within the scope
    (see :mod:`engram.keyword`)."""
    from .keyword import keyword_search

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
