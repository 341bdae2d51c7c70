"""All SQL of ``long_inputs`` and ``long_input_chunks``.

Every statement filters by ``user_id`` and ``agent_id``, except the operator-wide
re-embedding reads (:func:`count_chunks_outside_space`,
:func:`users_with_chunks_outside_space`), which serve ``engram reembed``.  Writes take
a connection already inside the caller's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..embeddings.space import EmbeddingSpace, vector_literal
from ..errors import InvalidInputError
from ..ledger import store as ledger_store
from ..search.terms import bounded_query_text
from ..search.vector import nearest
from .chunking import ChunkSpan, chunk_embedding_text
from .models import ChunkSummary, Format, LongInput

__all__ = [
    "Chunk",
    "KnownDocument",
    "PendingChunk",
    "StoredCitationChunk",
    "chunk_for_citation",
    "chunk_presence",
    "chunk_summaries",
    "chunks_containing",
    "count_chunks_outside_space",
    "document_text",
    "document_window",
    "fetch_chunks",
    "fetch_neighbours",
    "find_by_sha",
    "get_long_input",
    "insert_long_input",
    "keyword_chunks",
    "list_long_inputs",
    "lock_chunks_outside_space",
    "lock_document_hash",
    "long_input_exists",
    "long_input_ids_of_task",
    "mark_embedded",
    "nearest_chunks",
    "pending_chunks",
    "scope_size_sql",
    "set_chunk_vectors",
    "store_chunk_vectors",
    "users_with_chunks_outside_space",
]

_LONG_INPUT_ID = re.compile(r"li_[0-9a-f]{20}")


# --------------------------------------------------------------------------- rows


@dataclass(slots=True)
class Chunk:
    """A stored chunk as retrieval and verification need it."""

    chunk_id: str
    long_input_id: str
    ordinal: int
    start: int
    end: int
    text: str
    quote_hash: str
    heading: str | None
    title: str | None


@dataclass(frozen=True, slots=True)
class KnownDocument:
    """The scope's stored copy of a document, as deduplication needs it."""

    long_input_id: str
    chunk_count: int
    format: Format
    embedded: bool


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A chunk with no vector in the active space yet."""

    long_input_id: str
    ordinal: int
    chunk_id: str
    heading: str | None
    text: str


@dataclass(frozen=True, slots=True)
class StoredCitationChunk:
    """A chunk to verify a citation against, with its document's size."""

    chunk: Chunk
    document_chars: int
    #: The chunk's text is still exactly its span of the stored document.
    intact: bool


_CHUNK_COLUMNS = (
    "c.chunk_id, c.long_input_id, c.ordinal, c.start_offset, c.end_offset, c.text, c.quote_hash, "
    "c.heading, li.title"
)
# Joins each chunk to its document on the full tenant key.
_CHUNK_FROM = (
    "long_input_chunks c JOIN long_inputs li "
    "ON li.user_id = c.user_id AND li.agent_id = c.agent_id AND li.long_input_id = c.long_input_id"
)
_LONG_INPUT_COLUMNS = (
    "li.long_input_id, li.user_id, li.agent_id, li.task_id, li.event_id, li.title, li.source, li.metadata, "
    "li.sha256, li.char_count, li.chunk_count, li.format, li.chunk_max_tokens, li.chunk_overlap_tokens, "
    "li.created_at, li.embedded_at"
)


def _pending_count(space_param: str) -> str:
    """The select-list item counting a document's chunks outside the space named by ``space_param``."""
    return f"""(SELECT count(*) FROM long_input_chunks c
     WHERE c.user_id = li.user_id AND c.agent_id = li.agent_id AND c.long_input_id = li.long_input_id
       AND (c.embedding IS NULL OR c.embedding_space IS DISTINCT FROM {space_param}))::int AS pending_chunks"""


def _chunk_from_row(row: asyncpg.Record) -> Chunk:
    return Chunk(
        chunk_id=row["chunk_id"],
        long_input_id=row["long_input_id"],
        ordinal=row["ordinal"],
        start=row["start_offset"],
        end=row["end_offset"],
        text=row["text"],
        quote_hash=row["quote_hash"],
        heading=row["heading"],
        title=row["title"],
    )


def _summary_from_row(row: asyncpg.Record) -> ChunkSummary:
    return ChunkSummary(
        chunk_id=row["chunk_id"],
        ordinal=row["ordinal"],
        start=row["start_offset"],
        end=row["end_offset"],
        quote_hash=row["quote_hash"],
        token_count=row["token_count"],
        heading=row["heading"],
    )


def _long_input_from_row(row: asyncpg.Record, *, text: str | None = None) -> LongInput:
    return LongInput(
        long_input_id=row["long_input_id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        task_id=row["task_id"],
        event_id=row["event_id"],
        title=row["title"],
        source=row["source"],
        metadata=row["metadata"] or {},
        sha256=row["sha256"],
        char_count=row["char_count"],
        chunk_count=row["chunk_count"],
        format=row["format"],
        chunk_max_tokens=row["chunk_max_tokens"],
        chunk_overlap_tokens=row["chunk_overlap_tokens"],
        created_at=row["created_at"],
        embedded_at=row["embedded_at"],
        pending_chunks=row["pending_chunks"],
        text=text,
    )


# --------------------------------------------------------------------------- documents


async def lock_document_hash(conn: asyncpg.Connection, *, user_id: str, agent_id: str, sha256: str) -> None:
    """Serialise, until the transaction ends, writers of the same document in one scope.

    Two identical uploads at once must not both pass the "not stored yet" check.
    Ids cannot hold control characters, so the separator makes the key unambiguous.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"engram.long_input\x1f{user_id}\x1f{agent_id}\x1f{sha256}",
    )


async def find_by_sha(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, sha256: str
) -> KnownDocument | None:
    """The scope's document with this exact text, or None."""
    row = await conn.fetchrow(
        """SELECT long_input_id, chunk_count, embedded_at, format FROM long_inputs
           WHERE user_id = $1 AND agent_id = $2 AND sha256 = $3""",
        user_id,
        agent_id,
        sha256,
    )
    if row is None:
        return None
    return KnownDocument(
        long_input_id=row["long_input_id"],
        chunk_count=row["chunk_count"],
        format=row["format"],
        embedded=row["embedded_at"] is not None,
    )


async def insert_long_input(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    long_input_id: str,
    task_id: str,
    event_id: int,
    title: str | None,
    source: str | None,
    metadata: dict[str, Any],
    sha256: str,
    text: str,
    fmt: Format,
    max_tokens: int,
    overlap_tokens: int,
    chunks: Sequence[ChunkSpan],
    chunk_ids: Sequence[str],
    vectors: Sequence[Sequence[float]] | None,
    space: EmbeddingSpace | None,
) -> None:
    """Insert a document and all its chunks.  Call inside the caller's transaction."""
    embedded = vectors is not None and space is not None
    await conn.execute(
        """INSERT INTO long_inputs (user_id, agent_id, long_input_id, task_id, event_id, title, source, metadata,
                                    sha256, text, char_count, format, chunk_max_tokens, chunk_overlap_tokens,
                                    chunk_count, embedded_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, $15,
                   CASE WHEN $16::boolean THEN clock_timestamp() END)""",
        user_id,
        agent_id,
        long_input_id,
        task_id,
        event_id,
        title,
        source,
        metadata,
        sha256,
        text,
        len(text),
        fmt,
        max_tokens,
        overlap_tokens,
        len(chunks),
        embedded,
    )
    # One statement for every chunk: a book-length document has thousands of them.
    await conn.execute(
        """INSERT INTO long_input_chunks (user_id, agent_id, long_input_id, chunk_id, ordinal, start_offset,
                                          end_offset, text, quote_hash, token_count, heading, embedding,
                                          embedding_space)
           SELECT $1, $2, $3, u.chunk_id, u.ordinal, u.s, u.e, u.body, u.qh, u.tokens, u.heading,
                  u.vec::vector, CASE WHEN u.vec IS NULL THEN NULL ELSE $13 END
           FROM unnest($4::text[], $5::int[], $6::int[], $7::int[], $8::text[], $9::text[], $10::int[],
                       $11::text[], $12::text[]) AS u(chunk_id, ordinal, s, e, body, qh, tokens, heading, vec)""",
        user_id,
        agent_id,
        long_input_id,
        list(chunk_ids),
        [c.ordinal for c in chunks],
        [c.start for c in chunks],
        [c.end for c in chunks],
        [c.text for c in chunks],
        [c.quote_hash for c in chunks],
        [c.token_count for c in chunks],
        [c.heading for c in chunks],
        [vector_literal(v) for v in vectors] if embedded and vectors is not None else [None] * len(chunks),
        space.name if embedded and space is not None else None,
    )


async def long_input_exists(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, long_input_id: str
) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM long_inputs WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3)",
        user_id,
        agent_id,
        long_input_id,
    )
    return bool(found)


async def get_long_input(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    long_input_id: str,
    space_name: str,
    include_text: bool,
) -> LongInput | None:
    """One document of the scope (its ``text`` only with ``include_text``), or None."""
    row = await conn.fetchrow(
        f"""SELECT {_LONG_INPUT_COLUMNS}, {_pending_count("$4")},
                   CASE WHEN $5::boolean THEN li.text END AS text
            FROM long_inputs li WHERE li.user_id = $1 AND li.agent_id = $2 AND li.long_input_id = $3""",
        user_id,
        agent_id,
        long_input_id,
        space_name,
        include_text,
    )
    if row is None:
        return None
    return _long_input_from_row(row, text=row["text"])


async def list_long_inputs(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space_name: str,
    long_input_ids: Sequence[str] | None,
    limit: int,
) -> list[LongInput]:
    """The scope's documents (optionally only ``long_input_ids``), newest first, without text."""
    rows = await conn.fetch(
        f"""SELECT {_LONG_INPUT_COLUMNS}, {_pending_count("$3")}
            FROM long_inputs li
            WHERE li.user_id = $1 AND li.agent_id = $2 AND ($4::text[] IS NULL OR li.long_input_id = ANY($4))
            ORDER BY li.created_at DESC, li.long_input_id LIMIT $5""",
        user_id,
        agent_id,
        space_name,
        list(long_input_ids) if long_input_ids is not None else None,
        limit,
    )
    return [_long_input_from_row(r) for r in rows]


async def long_input_ids_of_task(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str
) -> list[str]:
    """Documents recorded in a task: those its artifact events reference.

    Going through the ledger (rather than ``long_inputs.task_id``) also finds a
    document that was first stored by another task and provided again in this one.
    """
    referenced = await ledger_store.artifact_references(
        conn, user_id=user_id, agent_id=agent_id, task_id=task_id, key="long_input_id"
    )
    if not referenced:
        return []
    rows = await conn.fetch(
        """SELECT long_input_id FROM long_inputs
           WHERE user_id = $1 AND agent_id = $2 AND long_input_id = ANY($3::text[])
           ORDER BY 1""",
        user_id,
        agent_id,
        referenced,
    )
    return [r["long_input_id"] for r in rows]


async def document_window(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, long_input_id: str, start: int, length: int
) -> str | None:
    """``length`` characters of a document's text from offset ``start`` (0-based)."""
    window: str | None = await conn.fetchval(
        """SELECT substr(text, $4, $5) FROM long_inputs
           WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3""",
        user_id,
        agent_id,
        long_input_id,
        start + 1,
        length,
    )
    return window


async def document_text(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, long_input_id: str
) -> str | None:
    text: str | None = await conn.fetchval(
        "SELECT text FROM long_inputs WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3",
        user_id,
        agent_id,
        long_input_id,
    )
    return text


# --------------------------------------------------------------------------- chunks


async def chunk_summaries(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, long_input_id: str
) -> list[ChunkSummary]:
    rows = await conn.fetch(
        """SELECT chunk_id, ordinal, start_offset, end_offset, quote_hash, token_count, heading
           FROM long_input_chunks WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3
           ORDER BY ordinal""",
        user_id,
        agent_id,
        long_input_id,
    )
    return [_summary_from_row(r) for r in rows]


async def keyword_chunks(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    query: str,
    k: int,
    long_input_ids: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """Full-text search over the scope's chunks: (chunk_id, rank), best first.

    plainto_tsquery ANDs the query's words; a question rarely shares every word
    with the passage that answers it, so the ANDs become ORs and ranking (cover
    density) rewards chunks that hold more of them, closer together.  A long
    query is cut to its most informative words first (``bounded_query_text``):
    cover density walks every query term for every matching chunk.
    """
    query = bounded_query_text(query)
    rows = await conn.fetch(
        """
        WITH q AS (SELECT replace(plainto_tsquery('english', $3)::text, '&', '|') AS t)
        SELECT c.chunk_id, ts_rank_cd(c.content_tsv, to_tsquery('english', q.t), 1) AS rank
        FROM long_input_chunks c, q
        WHERE q.t <> '' AND c.user_id = $1 AND c.agent_id = $2
          AND ($5::text[] IS NULL OR c.long_input_id = ANY($5::text[]))
          AND c.content_tsv @@ to_tsquery('english', q.t)
        ORDER BY rank DESC, c.long_input_id, c.ordinal LIMIT $4
        """,
        user_id,
        agent_id,
        query,
        k,
        list(long_input_ids) if long_input_ids is not None else None,
    )
    return [(r["chunk_id"], float(r["rank"])) for r in rows]


def _ids_filter(long_input_ids: Sequence[str] | None) -> str:
    """An SQL condition restricting chunks to some documents, for ``nearest``'s extra_filter.

    ``nearest`` inlines the filter, so only ids of our own strict shape are accepted.
    """
    if long_input_ids is None:
        return "embedding IS NOT NULL"
    for value in long_input_ids:
        if not _LONG_INPUT_ID.fullmatch(value):
            raise InvalidInputError(f"malformed long_input_id {value!r}")
    listed = ", ".join(f"'{v}'" for v in long_input_ids)
    return f"embedding IS NOT NULL AND long_input_id IN ({listed})"


async def chunk_presence(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    long_input_ids: Sequence[str] | None = None,
) -> tuple[bool, bool]:
    """Whether the scope has any chunks, and any embedded in ``space`` (one round trip)."""
    row = await conn.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM long_input_chunks
                          WHERE user_id = $1 AND agent_id = $2
                            AND ($4::text[] IS NULL OR long_input_id = ANY($4::text[]))) AS any,
                  EXISTS (SELECT 1 FROM long_input_chunks
                          WHERE user_id = $1 AND agent_id = $2 AND embedding_space = $3
                            AND ($4::text[] IS NULL OR long_input_id = ANY($4::text[]))) AS embedded""",
        user_id,
        agent_id,
        space.name,
        list(long_input_ids) if long_input_ids is not None else None,
    )
    assert row is not None
    return bool(row["any"]), bool(row["embedded"])


async def nearest_chunks(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    embedding: Sequence[float],
    k: int,
    long_input_ids: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """The k embedded chunks nearest to ``embedding``: (chunk_id, cosine similarity), best first."""
    hits = await nearest(
        conn,
        table="long_input_chunks",
        id_column="chunk_id",
        user_id=user_id,
        agent_id=agent_id,
        space=space,
        embedding=embedding,
        k=k,
        extra_filter=_ids_filter(long_input_ids),
    )
    # nearest() is typed for integer ids; this table's ids are text.
    return [(str(chunk_id), score) for chunk_id, score in hits]


async def fetch_chunks(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, chunk_ids: Sequence[str]
) -> dict[str, Chunk]:
    rows = await conn.fetch(
        f"""SELECT {_CHUNK_COLUMNS} FROM {_CHUNK_FROM}
            WHERE c.user_id = $1 AND c.agent_id = $2 AND c.chunk_id = ANY($3::text[])""",
        user_id,
        agent_id,
        list(chunk_ids),
    )
    return {r["chunk_id"]: _chunk_from_row(r) for r in rows}


async def fetch_neighbours(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, chunks: Sequence[Chunk]
) -> list[Chunk]:
    """The chunks just before and after each of ``chunks`` in its document."""
    if not chunks:
        return []
    wanted_docs: list[str] = []
    wanted_ordinals: list[int] = []
    for chunk in chunks:
        for ordinal in (chunk.ordinal - 1, chunk.ordinal + 1):
            if ordinal >= 0:
                wanted_docs.append(chunk.long_input_id)
                wanted_ordinals.append(ordinal)
    rows = await conn.fetch(
        f"""SELECT {_CHUNK_COLUMNS}
            FROM unnest($3::text[], $4::int[]) AS w(long_input_id, ordinal)
            JOIN {_CHUNK_FROM} ON c.user_id = $1 AND c.agent_id = $2
                 AND c.long_input_id = w.long_input_id AND c.ordinal = w.ordinal""",
        user_id,
        agent_id,
        wanted_docs,
        wanted_ordinals,
    )
    return [_chunk_from_row(r) for r in rows]


async def chunk_for_citation(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, chunk_id: str
) -> StoredCitationChunk | None:
    """A chunk of the scope, whether it is intact, and its document's length; or None."""
    row = await conn.fetchrow(
        f"""SELECT {_CHUNK_COLUMNS}, li.char_count,
                   substr(li.text, c.start_offset + 1, c.end_offset - c.start_offset) = c.text AS intact
            FROM {_CHUNK_FROM} WHERE c.user_id = $1 AND c.agent_id = $2 AND c.chunk_id = $3""",
        user_id,
        agent_id,
        chunk_id,
    )
    if row is None:
        return None
    return StoredCitationChunk(
        chunk=_chunk_from_row(row), document_chars=row["char_count"], intact=bool(row["intact"])
    )


async def chunks_containing(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, long_input_id: str, start: int, end: int
) -> list[str]:
    """Ids of the document's chunks whose span wholly contains [start, end), in document order."""
    rows = await conn.fetch(
        """SELECT chunk_id FROM long_input_chunks
           WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3
             AND start_offset <= $4 AND end_offset >= $5 ORDER BY ordinal""",
        user_id,
        agent_id,
        long_input_id,
        start,
        end,
    )
    return [r["chunk_id"] for r in rows]


# --------------------------------------------------------------------------- embedding


async def pending_chunks(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    long_input_id: str | None,
    space_name: str,
    after: tuple[str, int],
    limit: int,
) -> list[PendingChunk]:
    """The next page of the scope's chunks with no vector in the space, after ``after``.

    Keyset pagination over (long_input_id, ordinal), so a caller's loop ends even if
    some of them are never written back.
    """
    rows = await conn.fetch(
        """SELECT long_input_id, ordinal, chunk_id, heading, text FROM long_input_chunks
           WHERE user_id = $1 AND agent_id = $2 AND ($3::text IS NULL OR long_input_id = $3)
             AND (embedding IS NULL OR embedding_space IS DISTINCT FROM $4)
             AND (long_input_id, ordinal) > ($5, $6)
           ORDER BY long_input_id, ordinal LIMIT $7""",
        user_id,
        agent_id,
        long_input_id,
        space_name,
        after[0],
        after[1],
        limit,
    )
    return [
        PendingChunk(
            long_input_id=r["long_input_id"],
            ordinal=r["ordinal"],
            chunk_id=r["chunk_id"],
            heading=r["heading"],
            text=r["text"],
        )
        for r in rows
    ]


async def store_chunk_vectors(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space_name: str,
    chunks: Sequence[PendingChunk],
    vectors: Sequence[Sequence[float]],
) -> int:
    """Write vectors of chunks whose text is still the one embedded; returns how many were written."""
    status: str = await conn.execute(
        """UPDATE long_input_chunks c SET embedding = u.vec::vector, embedding_space = $3
           FROM unnest($4::text[], $5::text[], $6::text[]) AS u(chunk_id, vec, body)
           WHERE c.user_id = $1 AND c.agent_id = $2 AND c.chunk_id = u.chunk_id AND c.text = u.body""",
        user_id,
        agent_id,
        space_name,
        [c.chunk_id for c in chunks],
        [vector_literal(v) for v in vectors],
        [c.text for c in chunks],
    )
    return int(status.rsplit(" ", 1)[-1])


async def mark_embedded(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, long_input_ids: Sequence[str], space_name: str
) -> None:
    """Set ``embedded_at`` on those of the documents whose every chunk has a vector in the space."""
    await conn.execute(
        """UPDATE long_inputs li SET embedded_at = clock_timestamp()
           WHERE li.user_id = $1 AND li.agent_id = $2 AND li.long_input_id = ANY($3::text[])
             AND NOT EXISTS (
                 SELECT 1 FROM long_input_chunks c
                 WHERE c.user_id = li.user_id AND c.agent_id = li.agent_id
                   AND c.long_input_id = li.long_input_id
                   AND (c.embedding IS NULL OR c.embedding_space IS DISTINCT FROM $4))""",
        user_id,
        agent_id,
        list(long_input_ids),
        space_name,
    )


# --------------------------------------------------------------------------- re-embedding


async def count_chunks_outside_space(conn: asyncpg.Connection, *, space_name: str) -> int:
    """Chunks of every tenant whose vector is missing or from another space (an operator read)."""
    count = await conn.fetchval(
        "SELECT count(*) FROM long_input_chunks WHERE embedding_space IS DISTINCT FROM $1", space_name
    )
    return int(count)


async def users_with_chunks_outside_space(conn: asyncpg.Connection, *, space_name: str) -> list[str]:
    """The user_ids having chunks outside the space, sorted (an operator read)."""
    rows = await conn.fetch(
        "SELECT DISTINCT user_id FROM long_input_chunks WHERE embedding_space IS DISTINCT FROM $1", space_name
    )
    return sorted(r["user_id"] for r in rows)


async def lock_chunks_outside_space(
    conn: asyncpg.Connection, *, user_id: str, space_name: str, limit: int
) -> list[tuple[str, str]]:
    """Lock up to ``limit`` of the user's chunks outside the space: (chunk_id, text to embed), by chunk_id.

    ``FOR UPDATE SKIP LOCKED``, so concurrent re-embedders share the work; call it
    inside the transaction that writes their vectors back.
    """
    rows = await conn.fetch(
        """SELECT chunk_id, heading, text FROM long_input_chunks
           WHERE user_id = $1 AND embedding_space IS DISTINCT FROM $2
           ORDER BY chunk_id LIMIT $3 FOR UPDATE SKIP LOCKED""",
        user_id,
        space_name,
        limit,
    )
    # The same text the worker embedded first, so a re-embedded chunk ranks as before.
    return [(r["chunk_id"], chunk_embedding_text(r["heading"], r["text"])) for r in rows]


async def set_chunk_vectors(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    vectors: Sequence[tuple[str, Sequence[float]]],
    space_name: str,
) -> None:
    """Store (chunk_id, vector) pairs of the user's chunks in the space."""
    await conn.executemany(
        """UPDATE long_input_chunks SET embedding = $3::text::vector, embedding_space = $4
           WHERE user_id = $1 AND chunk_id = $2""",
        [(user_id, chunk_id, vector_literal(vector), space_name) for chunk_id, vector in vectors],
    )


def scope_size_sql(cap: int) -> str:
    """A scalar subquery counting the scope's long-input chunks, capped at ``cap``
    (``$1`` user_id, ``$2`` agent_id), for one-round-trip planning decisions."""
    return (
        f"(SELECT count(*) FROM (SELECT 1 FROM long_input_chunks WHERE user_id = $1 AND agent_id = $2 "
        f"LIMIT {int(cap)}) c)"
    )
