"""Long inputs: store a document once, retrieve labelled excerpts, verify citations.

A document given to :meth:`LongInputAPI.record_long_input` is validated, cut into
chunks by :func:`engram.chunking.chunk_document` (sizes from the policy), and
written together with one bounded ``artifact`` event in a single transaction, so a
failure leaves nothing behind.  Chunks are embedded later (by a worker through
:meth:`LongInputAPI.embed_pending_chunks`) unless ``embed_inline=True``.

Retrieval is hybrid: full-text search (OR semantics, so one matching word is
enough) and, for chunks that already have a vector, nearest-neighbour search, fused
by reciprocal rank.  Every statement here filters by ``user_id`` and ``agent_id``.

Citation checks re-run the normalised substring search of
:func:`engram.chunking.find_quote` against the stored chunk and report offsets in
the original document.  ``docs/long-inputs.md`` describes the whole loop.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import asyncpg

from . import plugins
from .chunking import (
    MAX_DOCUMENT_CHARS,
    ChunkSpan,
    chunk_document,
    document_sha256,
    estimate_tokens,
    find_quote,
    stable_chunk_id,
    validate_document_text,
)
from .chunking import quote_hash as quote_hash_of  # verify_citation has a parameter of that name
from .core import ClientCore
from .errors import InvalidInputError, NotFoundError, PluginError
from .interfaces import RecallCandidate
from .ledger import append_events, check_task_owner, claim_task
from .longinput_models import (
    ChunkSummary,
    CitationCheck,
    ContextChunk,
    LongInput,
    LongInputContext,
    LongInputRecord,
)
from .models import Event
from .validation import MAX_QUERY_CHARS, check_id, check_metadata, check_positive_int, check_scope, check_text
from .vectors import EmbeddingSpace, nearest, space_of, vector_literal

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "LongInputAPI",
    "excerpt_label",
    "keyword_chunks",
    "nearest_chunks",
]

Format = Literal["text", "markdown"]

MAX_TITLE_CHARS = 1_000
MAX_SOURCE_CHARS = 2_000
#: A quote longer than this is not a quote; refusing it keeps verification cheap.
MAX_QUOTE_CHARS = 100_000
#: The artifact event carries at most this much of the document.
PREVIEW_CHARS = 280
#: Title as repeated in the artifact event (the full title is on the document row).
EVENT_TITLE_CHARS = 200
MAX_CONTEXT_CHUNKS = 100
MAX_CONTEXT_TOKENS = 100_000
MAX_EMBED_BATCH = 1_024
#: Chunking a document this long takes tens of milliseconds or more; do it in a
#: thread so the event loop keeps serving other requests meanwhile.
_THREAD_CHUNKING_CHARS = 100_000
#: A neighbour of a retrieved chunk competes with a fraction of that chunk's score,
#: so it displaces weak hits but never the strong ones.
NEIGHBOUR_FACTOR = 0.5
#: Only the best few hits are expanded with their neighbours.
NEIGHBOUR_PARENTS = 2

_LONG_INPUT_ID = re.compile(r"li_[0-9a-f]{20}")
_HASH = re.compile(r"(?:sha256:)?([0-9a-f]{64})")
# Markdown is recognised by an ATX heading or a code fence at the start of a line.
_MARKDOWN_HINT = re.compile(r"^ {0,3}(?:#{1,6}[ \t]+\S|```|~~~)", re.MULTILINE)


# --------------------------------------------------------------------------- rows


@dataclass(slots=True)
class _Chunk:
    """A stored chunk as retrieval and verification need it."""

    chunk_id: str
    long_input_id: str
    ordinal: int
    start: int
    end: int
    text: str
    quote_hash: str
    token_count: int
    heading: str | None
    title: str | None


@dataclass(slots=True)
class _Hit:
    chunk: _Chunk
    score: float
    matched_by: list[str] = field(default_factory=list)
    neighbour_of: str | None = None


_CHUNK_COLUMNS = (
    "c.chunk_id, c.long_input_id, c.ordinal, c.start_offset, c.end_offset, c.text, c.quote_hash, "
    "c.token_count, c.heading, li.title"
)
# Joins each chunk to its document on the full tenant key.
_CHUNK_FROM = (
    "long_input_chunks c JOIN long_inputs li "
    "ON li.user_id = c.user_id AND li.agent_id = c.agent_id AND li.long_input_id = c.long_input_id"
)


def _chunk_from_row(row: asyncpg.Record) -> _Chunk:
    return _Chunk(
        chunk_id=row["chunk_id"],
        long_input_id=row["long_input_id"],
        ordinal=row["ordinal"],
        start=row["start_offset"],
        end=row["end_offset"],
        text=row["text"],
        quote_hash=row["quote_hash"],
        token_count=row["token_count"],
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


def _long_input_from_row(row: asyncpg.Record) -> LongInput:
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
    )


# --------------------------------------------------------------------------- SQL

_LONG_INPUT_COLUMNS = (
    "li.long_input_id, li.user_id, li.agent_id, li.task_id, li.event_id, li.title, li.source, li.metadata, "
    "li.sha256, li.char_count, li.chunk_count, li.format, li.chunk_max_tokens, li.chunk_overlap_tokens, "
    "li.created_at, li.embedded_at"
)
# $N is the parameter holding the active embedding space's name.
_PENDING_COUNT = """(SELECT count(*) FROM long_input_chunks c
     WHERE c.user_id = li.user_id AND c.agent_id = li.agent_id AND c.long_input_id = li.long_input_id
       AND (c.embedding IS NULL OR c.embedding_space IS DISTINCT FROM $N))::int AS pending_chunks"""


async def find_by_sha(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, sha256: str
) -> asyncpg.Record:
    """The scope's document with this exact text, or None."""
    return await conn.fetchrow(
        """SELECT long_input_id, chunk_count, embedded_at, format, char_count FROM long_inputs
           WHERE user_id = $1 AND agent_id = $2 AND sha256 = $3""",
        user_id,
        agent_id,
        sha256,
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


async def long_input_ids_of_task(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, task_id: str
) -> list[str]:
    """Documents recorded in a task: those its artifact events reference.

    Going through the ledger (rather than ``long_inputs.task_id``) also finds a
    document that was first stored by another task and provided again in this one.
    """
    rows = await conn.fetch(
        """SELECT DISTINCT li.long_input_id
           FROM events e JOIN long_inputs li
             ON li.user_id = e.user_id AND li.agent_id = e.agent_id AND li.long_input_id = e.metadata->>'long_input_id'
           WHERE e.user_id = $1 AND e.agent_id = $2 AND e.task_id = $3 AND e.role = 'artifact'
           ORDER BY 1""",
        user_id,
        agent_id,
        task_id,
    )
    return [r["long_input_id"] for r in rows]


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
    density) rewards chunks that hold more of them, closer together.
    """
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
) -> dict[str, _Chunk]:
    rows = await conn.fetch(
        f"""SELECT {_CHUNK_COLUMNS} FROM {_CHUNK_FROM}
            WHERE c.user_id = $1 AND c.agent_id = $2 AND c.chunk_id = ANY($3::text[])""",
        user_id,
        agent_id,
        list(chunk_ids),
    )
    return {r["chunk_id"]: _chunk_from_row(r) for r in rows}


async def fetch_neighbours(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, chunks: Sequence[_Chunk]
) -> list[_Chunk]:
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


# --------------------------------------------------------------------------- helpers


def excerpt_label(chunk_id: str, quote_hash_: str, long_input_id: str, start: int, end: int) -> str:
    """The label every excerpt carries, in the context block and in recall."""
    return (
        f"[chunk_id={chunk_id} quote_hash={quote_hash_} long_input_id={long_input_id} offsets={start}-{end}]"
    )


def _label(chunk: _Chunk) -> str:
    label = excerpt_label(chunk.chunk_id, chunk.quote_hash, chunk.long_input_id, chunk.start, chunk.end)
    parts = [p for p in (chunk.title, chunk.heading) if p]
    # A Markdown document's top heading is often its title too; say it once.
    if len(parts) == 2 and parts[1].split(" > ", 1)[0] == parts[0]:
        parts = [parts[1]]
    where = " > ".join(parts)
    return f"{label} {where}" if where else label


def _excerpt(chunk: _Chunk) -> str:
    return f"{_label(chunk)}\n{chunk.text}"


def _embedding_text(heading: str | None, text: str) -> str:
    # The heading path says what a chunk is about even when its text does not
    # repeat it ("30 days after notice" under "Lease > Termination").
    return f"{heading}\n{text}" if heading else text


def _optional_text(value: Any, what: str, max_chars: int) -> str | None:
    if value is None:
        return None
    return check_text(value, what, max_chars=max_chars).strip()


def _check_document(text: Any) -> str:
    if isinstance(text, bytes | bytearray | memoryview):
        raise InvalidInputError(
            "text must be a str, not bytes: decode the document first (for example data.decode('utf-8'))"
        )
    validated: str = validate_document_text(text, max_chars=MAX_DOCUMENT_CHARS)
    return validated


def _check_format(value: Any, text: str, source: str | None) -> Format:
    if value is not None:
        if value not in ("text", "markdown"):
            raise InvalidInputError(f"format must be 'text', 'markdown' or None, not {value!r}")
        return cast(Format, value)
    if source is not None:
        lowered = source.lower()
        if lowered.endswith((".md", ".markdown")):
            return "markdown"
        if lowered.endswith(".txt"):
            return "text"
    return "markdown" if _MARKDOWN_HINT.search(text) else "text"


def _check_long_input_id(value: Any) -> str:
    checked = check_id(value, "long_input_id")
    return checked


def _preview(text: str) -> str:
    """At most PREVIEW_CHARS of the document's beginning, whitespace collapsed, cut at a word."""
    flat = " ".join(text[: PREVIEW_CHARS * 4].split())
    if len(flat) <= PREVIEW_CHARS:
        return flat
    cut = flat[: PREVIEW_CHARS - 1]
    space = cut.rfind(" ")
    if space > PREVIEW_CHARS // 2:
        cut = cut[:space]
    return cut + "…"


def _artifact_event(
    *,
    long_input_id: str,
    sha256: str,
    title: str | None,
    source: str | None,
    char_count: int,
    chunk_count: int,
    fmt: str,
    deduplicated: bool,
    text: str,
) -> tuple[str, dict[str, Any]]:
    """Content and metadata of the bounded ledger event that references a document.

    Never the full text: a preview of at most PREVIEW_CHARS characters, the
    document's id and hash, and its size.
    """
    short_title = title[:EVENT_TITLE_CHARS] if title else None
    name = f'"{short_title}"' if short_title else "untitled document"
    verb = "provided again (identical to the stored copy)" if deduplicated else "recorded"
    content = (
        f"Long input {long_input_id} {verb}: {name}, {char_count:,} characters, {chunk_count} chunks "
        f"({fmt}), sha256 {sha256[:16]}.\nPreview: {_preview(text)}"
    )
    metadata: dict[str, Any] = {
        "kind": "long_input",
        "long_input_id": long_input_id,
        "sha256": sha256,
        "title": short_title,
        "source": source[:EVENT_TITLE_CHARS] if source else None,
        "char_count": char_count,
        "chunk_count": chunk_count,
        "format": fmt,
        "deduplicated": deduplicated,
    }
    return content, metadata


def _fuse(ranked: Sequence[tuple[str, Sequence[str]]], rrf_k: int) -> dict[str, tuple[float, list[str]]]:
    """Reciprocal rank fusion: score = Σ 1 / (rrf_k + rank) over the lists holding an id."""
    fused: dict[str, tuple[float, list[str]]] = {}
    for name, ids in ranked:
        for rank, chunk_id in enumerate(ids, start=1):
            score, by = fused.get(chunk_id, (0.0, []))
            fused[chunk_id] = (score + 1.0 / (rrf_k + rank), [*by, name])
    return fused


def _occurrence_overlapping(
    document_part: str, offset: int, quote: str, lo: int, hi: int
) -> tuple[int, int] | None:
    """An occurrence of ``quote`` in ``document_part`` (which starts at ``offset`` in the
    document) that overlaps the document range [lo, hi), or None."""
    pos = 0
    while pos < len(document_part):
        hit = find_quote(document_part[pos:], quote)
        if hit is None:
            return None
        start, end = hit[0] + pos + offset, hit[1] + pos + offset
        if start < hi and end > lo:
            return start, end
        if start >= hi:
            return None
        pos += hit[0] + 1
    return None


def _hash_matches(given: str, stored: str) -> bool:
    m = _HASH.fullmatch(given.strip().lower())
    return m is not None and "sha256:" + m.group(1) == stored


# --------------------------------------------------------------------------- retrieval


async def search_chunks(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    query: str,
    k: int,
    rrf_k: int,
    space: EmbeddingSpace,
    query_embedding: Callable[[], Awaitable[list[float]]],
    long_input_ids: Sequence[str] | None = None,
) -> tuple[list[_Hit], bool]:
    """Hybrid retrieval over the scope's chunks; returns (hits best first, vectors used).

    The keyword ranking covers every chunk; the vector ranking only the chunks a
    worker has embedded already, and the query is embedded only when there are any.
    """
    if long_input_ids is not None and not long_input_ids:
        return [], False
    any_chunks, used_vectors = await chunk_presence(
        conn, user_id=user_id, agent_id=agent_id, space=space, long_input_ids=long_input_ids
    )
    if not any_chunks:  # most scopes on most recalls: one round trip, not three
        return [], False
    ranked: list[tuple[str, Sequence[str]]] = []
    keyword = await keyword_chunks(
        conn, user_id=user_id, agent_id=agent_id, query=query, k=k, long_input_ids=long_input_ids
    )
    ranked.append(("keyword", [chunk_id for chunk_id, _ in keyword]))
    if used_vectors:
        vector = await query_embedding()
        near = await nearest_chunks(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            space=space,
            embedding=vector,
            k=k,
            long_input_ids=long_input_ids,
        )
        ranked.append(("vector", [chunk_id for chunk_id, _ in near]))
    fused = _fuse(ranked, rrf_k)
    best = sorted(fused.items(), key=lambda kv: (-kv[1][0], kv[0]))[:k]
    if not best:
        return [], used_vectors
    chunks = await fetch_chunks(conn, user_id=user_id, agent_id=agent_id, chunk_ids=[cid for cid, _ in best])
    hits = [_Hit(chunks[cid], score, list(by)) for cid, (score, by) in best if cid in chunks]
    return hits, used_vectors


def _select(hits: Sequence[_Hit], *, max_chunks: int, max_tokens: int) -> tuple[list[_Hit], int]:
    """Greedy packing by score within both budgets; an excerpt that does not fit is
    skipped while smaller ones may still fit."""
    chosen: list[_Hit] = []
    seen: set[str] = set()
    used = 0
    for hit in sorted(hits, key=lambda h: (-h.score, h.chunk.long_input_id, h.chunk.ordinal)):
        if len(chosen) >= max_chunks:
            break
        if hit.chunk.chunk_id in seen:
            continue
        cost = estimate_tokens(_excerpt(hit.chunk)) + 1
        if used + cost > max_tokens:
            continue
        chosen.append(hit)
        seen.add(hit.chunk.chunk_id)
        used += cost
    return chosen, used


# --------------------------------------------------------------------------- public API


class LongInputAPI(ClientCore):
    """Documents stored once, chunked, retrieved with labels, and citations checked."""

    # ------------------------------------------------------------------ hooks

    async def _enqueue_chunk_embedding(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: str,
        agent_id: str,
        task_id: str,
        long_input_id: str,
        chunk_count: int,
    ) -> int | None:
        """Queue embedding of a new document's chunks, inside the caller's transaction.

        The job queue's mixin overrides this and returns the job id; the job's
        handler calls :meth:`embed_pending_chunks` with the same scope and
        ``long_input_id``.  Without a queue nothing is enqueued (returns None) and
        chunks stay keyword-searchable until someone calls ``embed_pending_chunks``.
        """
        return None

    def _chunk_space(self) -> EmbeddingSpace:
        return space_of(self.get_embedder())

    async def _embed_texts(
        self, texts: Sequence[str], *, batch_size: int, progress: Callable[[int], None] | None
    ) -> list[list[float]]:
        embedder = self.get_embedder()
        dimension = embedder.dimension
        out: list[list[float]] = []
        for i in range(0, len(texts), batch_size):
            batch = list(texts[i : i + batch_size])
            vectors = await embedder.embed(batch)
            if len(vectors) != len(batch) or any(len(v) != dimension for v in vectors):
                raise PluginError(
                    f"embedder {embedder.name!r} returned {len(vectors)} vectors for {len(batch)} texts "
                    f"or a vector whose dimension is not {dimension}"
                )
            out.extend(vectors)
            if progress is not None:
                progress(len(batch))
        return out

    # ------------------------------------------------------------------ write

    async def record_long_input(
        self,
        task_id: str,
        text: str,
        *,
        agent_id: str,
        user_id: str,
        title: str | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        format: Format | None = None,
        embed_inline: bool = False,
    ) -> LongInputRecord:
        """Store a document once, chunked for citation, and note it in the task's ledger.

        The text is validated (a non-empty ``str`` of at most ``MAX_DOCUMENT_CHARS``
        characters, no NUL, not binary), chunked with the policy's ``chunking``
        sizes (``format`` ``"text"`` or ``"markdown"``; detected when None), and
        written with one bounded ``artifact`` event in one transaction.

        An identical document (same SHA-256 of its exact text) already stored in this
        scope is not stored again: the existing id and chunks come back with
        ``deduplicated=True``, and a new artifact event still records in this task
        that the document was provided.

        Chunks are embedded later by a worker; ``embed_inline=True`` embeds them now,
        before the transaction (sensible for small documents).
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        text = _check_document(text)
        title = _optional_text(title, "title", MAX_TITLE_CHARS)
        source = _optional_text(source, "source", MAX_SOURCE_CHARS)
        meta = check_metadata(metadata)
        fmt = _check_format(format, text, source)
        if not isinstance(embed_inline, bool):
            raise InvalidInputError("embed_inline must be a bool")
        settings = self.policy.chunking
        sha = document_sha256(text)

        def cut() -> list[ChunkSpan]:
            return chunk_document(
                text, max_tokens=settings.max_tokens, overlap_tokens=settings.overlap_tokens, fmt=fmt
            )

        spans = await asyncio.to_thread(cut) if len(text) > _THREAD_CHUNKING_CHARS else cut()
        if not spans:  # validate_document_text refuses blank text, so this cannot happen
            raise InvalidInputError("the document has no text to chunk")
        chunk_ids = [stable_chunk_id(sha, c.ordinal, c.start, c.end) for c in spans]

        # Read-only checks first, so a refused call never pays for embedding.
        async with self._connection() as conn:
            await check_task_owner(conn, task_id, user_id, agent_id)
            known = await find_by_sha(conn, user_id=user_id, agent_id=agent_id, sha256=sha)
        vectors: list[list[float]] | None = None
        space: EmbeddingSpace | None = None
        if embed_inline and known is None:
            space = self._chunk_space()
            vectors = await self._embed_texts(
                [_embedding_text(c.heading, c.text) for c in spans], batch_size=64, progress=None
            )

        policy = self.policy
        async with self._transaction() as conn:
            await claim_task(conn, task_id, user_id, agent_id)
            # Two identical uploads at once must not both pass the "not stored yet"
            # check; serialise them on (scope, hash).  Ids cannot hold control
            # characters, so the separator makes the key unambiguous.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"engram.long_input\x1f{user_id}\x1f{agent_id}\x1f{sha}",
            )
            existing = await find_by_sha(conn, user_id=user_id, agent_id=agent_id, sha256=sha)
            deduplicated = existing is not None
            if existing is not None:
                long_input_id = existing["long_input_id"]
                chunk_count = existing["chunk_count"]
                stored_format = existing["format"]
            else:
                long_input_id = "li_" + secrets.token_hex(10)
                chunk_count = len(spans)
                stored_format = fmt
            content, event_meta = _artifact_event(
                long_input_id=long_input_id,
                sha256=sha,
                title=title,
                source=source,
                char_count=len(text),
                chunk_count=chunk_count,
                fmt=stored_format,
                deduplicated=deduplicated,
                text=text,
            )
            # The ledger's own before-storage redaction applies to the event (it is
            # ledger content); the document is stored verbatim so offsets stay exact.
            content = self._redact_for_storage(content, policy)
            rows = await append_events(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                roles=("artifact",),
                contents=(content,),
                metadata=event_meta,
                turns=0,
            )
            event_id = rows[0]["event_id"]
            job_id: int | None = None
            if existing is None:
                await insert_long_input(
                    conn,
                    user_id=user_id,
                    agent_id=agent_id,
                    long_input_id=long_input_id,
                    task_id=task_id,
                    event_id=event_id,
                    title=title,
                    source=source,
                    metadata=meta,
                    sha256=sha,
                    text=text,
                    fmt=fmt,
                    max_tokens=settings.max_tokens,
                    overlap_tokens=settings.overlap_tokens,
                    chunks=spans,
                    chunk_ids=chunk_ids,
                    vectors=vectors,
                    space=space,
                )
                summaries = [
                    ChunkSummary(
                        chunk_id=cid,
                        ordinal=c.ordinal,
                        start=c.start,
                        end=c.end,
                        quote_hash=c.quote_hash,
                        token_count=c.token_count,
                        heading=c.heading,
                    )
                    for cid, c in zip(chunk_ids, spans, strict=True)
                ]
                embedded = vectors is not None
                if not embedded:
                    job_id = await self._enqueue_chunk_embedding(
                        conn,
                        user_id=user_id,
                        agent_id=agent_id,
                        task_id=task_id,
                        long_input_id=long_input_id,
                        chunk_count=len(spans),
                    )
            else:
                summaries = await chunk_summaries(
                    conn, user_id=user_id, agent_id=agent_id, long_input_id=long_input_id
                )
                embedded = existing["embedded_at"] is not None
        plugins.notify(
            "event_recorded",
            event=Event(
                event_id=event_id,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                role="artifact",
                content=content,
                metadata=event_meta,
                created_at=rows[0]["created_at"],
            ),
        )
        if embed_inline and not embedded:
            # A duplicate of a document no worker has embedded yet: finish it now.
            await self.embed_pending_chunks(user_id=user_id, agent_id=agent_id, long_input_id=long_input_id)
            embedded = True
        return LongInputRecord(
            long_input_id=long_input_id,
            task_id=task_id,
            event_id=event_id,
            deduplicated=deduplicated,
            sha256=sha,
            char_count=len(text),
            chunk_count=chunk_count,
            format=stored_format,
            embedded=embedded,
            job_id=job_id,
            chunks=tuple(summaries),
        )

    async def embed_pending_chunks(
        self,
        *,
        user_id: str,
        agent_id: str,
        long_input_id: str | None = None,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Embed the scope's chunks that have no vector in the active space; returns how many.

        The worker's entry point (also ``engram ingest --embed-now``).  Chunks are
        read in pages, embedded outside any transaction, and written back only if
        their text is unchanged (a redaction may have scrubbed it meanwhile), so the
        call is idempotent and safe to run concurrently or to repeat after a crash.
        ``progress`` is called with the number of chunks embedded after each batch.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        if long_input_id is not None:
            long_input_id = _check_long_input_id(long_input_id)
        batch_size = check_positive_int(batch_size, "batch_size", maximum=MAX_EMBED_BATCH)
        if long_input_id is not None:
            async with self._connection() as conn:
                await self._require_long_input(conn, user_id, agent_id, long_input_id)
        space = self._chunk_space()
        total = 0
        touched: set[str] = {long_input_id} if long_input_id is not None else set()
        # Keyset pagination over (long_input_id, ordinal) guarantees the loop ends even
        # if a write-back is skipped; a skipped chunk is picked up by the next call.
        after_doc, after_ordinal = "", -1
        while True:
            async with self._connection() as conn:
                rows = await conn.fetch(
                    """SELECT long_input_id, ordinal, chunk_id, heading, text FROM long_input_chunks
                       WHERE user_id = $1 AND agent_id = $2 AND ($3::text IS NULL OR long_input_id = $3)
                         AND (embedding IS NULL OR embedding_space IS DISTINCT FROM $4)
                         AND (long_input_id, ordinal) > ($5, $6)
                       ORDER BY long_input_id, ordinal LIMIT $7""",
                    user_id,
                    agent_id,
                    long_input_id,
                    space.name,
                    after_doc,
                    after_ordinal,
                    batch_size,
                )
            if not rows:
                break
            after_doc, after_ordinal = rows[-1]["long_input_id"], rows[-1]["ordinal"]
            vectors = await self._embed_texts(
                [_embedding_text(r["heading"], r["text"]) for r in rows], batch_size=batch_size, progress=None
            )
            async with self._transaction() as conn:
                status: str = await conn.execute(
                    """UPDATE long_input_chunks c SET embedding = u.vec::vector, embedding_space = $3
                       FROM unnest($4::text[], $5::text[], $6::text[]) AS u(chunk_id, vec, body)
                       WHERE c.user_id = $1 AND c.agent_id = $2 AND c.chunk_id = u.chunk_id AND c.text = u.body""",
                    user_id,
                    agent_id,
                    space.name,
                    [r["chunk_id"] for r in rows],
                    [vector_literal(v) for v in vectors],
                    [r["text"] for r in rows],
                )
            total += int(status.rsplit(" ", 1)[-1])
            touched.update(r["long_input_id"] for r in rows)
            if progress is not None:
                progress(len(rows))
        if touched:
            async with self._transaction() as conn:
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
                    sorted(touched),
                    space.name,
                )
        return total

    # ------------------------------------------------------------------ read

    async def _require_long_input(
        self, conn: asyncpg.Connection, user_id: str, agent_id: str, long_input_id: str
    ) -> None:
        found = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM long_inputs WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3)",
            user_id,
            agent_id,
            long_input_id,
        )
        if not found:
            # The same answer whether it exists in another scope or nowhere.
            raise NotFoundError(f"no long input {long_input_id!r} in this scope")

    async def get_long_input(
        self,
        long_input_id: str,
        *,
        agent_id: str,
        user_id: str,
        include_text: bool = False,
        include_chunks: bool = False,
    ) -> LongInput:
        """One stored document of the caller's scope; ``NotFoundError`` otherwise."""
        user_id, agent_id = check_scope(user_id, agent_id)
        long_input_id = _check_long_input_id(long_input_id)
        space = self._chunk_space()
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"""SELECT {_LONG_INPUT_COLUMNS}, {_PENDING_COUNT.replace("$N", "$4")},
                           CASE WHEN $5::boolean THEN li.text END AS text
                    FROM long_inputs li WHERE li.user_id = $1 AND li.agent_id = $2 AND li.long_input_id = $3""",
                user_id,
                agent_id,
                long_input_id,
                space.name,
                bool(include_text),
            )
            if row is None:
                raise NotFoundError(f"no long input {long_input_id!r} in this scope")
            chunks = (
                await chunk_summaries(conn, user_id=user_id, agent_id=agent_id, long_input_id=long_input_id)
                if include_chunks
                else []
            )
        return _long_input_from_row(row).model_copy(update={"text": row["text"], "chunks": tuple(chunks)})

    async def list_long_inputs(
        self, *, agent_id: str, user_id: str, task_id: str | None = None, limit: int = 100
    ) -> list[LongInput]:
        """The scope's documents, newest first (without their text).

        With ``task_id``, only documents recorded (or provided again) in that task.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        limit = check_positive_int(limit, "limit", maximum=10_000)
        space = self._chunk_space()
        async with self._connection() as conn:
            ids: list[str] | None = None
            if task_id is not None:
                task_id = check_id(task_id, "task_id")
                if not await check_task_owner(conn, task_id, user_id, agent_id):
                    return []
                ids = await long_input_ids_of_task(conn, user_id=user_id, agent_id=agent_id, task_id=task_id)
            rows = await conn.fetch(
                f"""SELECT {_LONG_INPUT_COLUMNS}, {_PENDING_COUNT.replace("$N", "$3")}
                    FROM long_inputs li
                    WHERE li.user_id = $1 AND li.agent_id = $2 AND ($4::text[] IS NULL OR li.long_input_id = ANY($4))
                    ORDER BY li.created_at DESC, li.long_input_id LIMIT $5""",
                user_id,
                agent_id,
                space.name,
                ids,
                limit,
            )
        return [_long_input_from_row(r) for r in rows]

    async def build_long_input_context(
        self,
        query: str,
        *,
        agent_id: str,
        user_id: str,
        task_id: str | None = None,
        long_input_id: str | None = None,
        max_chunks: int = 8,
        max_tokens: int = 2000,
    ) -> LongInputContext:
        """Retrieve the excerpts that best answer ``query``, each labelled for citation.

        Hybrid retrieval (full-text with OR semantics, plus vectors for chunks that
        are embedded already), fused by reciprocal rank; the neighbours of the best
        hits compete for the remaining room at half their score.  ``task_id``
        narrows the search to documents recorded in that task, ``long_input_id`` to
        one document; both are checked against the caller's scope.  ``max_tokens``
        bounds the whole block, labels included.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        query = check_text(query, "query", max_chars=MAX_QUERY_CHARS)
        if task_id is not None:
            task_id = check_id(task_id, "task_id")
        if long_input_id is not None:
            long_input_id = _check_long_input_id(long_input_id)
        max_chunks = check_positive_int(max_chunks, "max_chunks", maximum=MAX_CONTEXT_CHUNKS)
        max_tokens = check_positive_int(max_tokens, "max_tokens", maximum=MAX_CONTEXT_TOKENS)
        policy = self.policy
        space = self._chunk_space()
        embed_query = getattr(self, "_embed_query", None)  # recall's cached query embedding

        async def query_embedding() -> list[float]:
            if embed_query is not None:
                vector: list[float] = await embed_query(query)
                return vector
            return await self.get_embedder().embed_query(query)

        async with self._connection() as conn:
            scope_ids: list[str] | None = None
            if task_id is not None:
                owned = await check_task_owner(conn, task_id, user_id, agent_id)
                scope_ids = (
                    await long_input_ids_of_task(conn, user_id=user_id, agent_id=agent_id, task_id=task_id)
                    if owned
                    else []
                )
            if long_input_id is not None:
                await self._require_long_input(conn, user_id, agent_id, long_input_id)
                scope_ids = [long_input_id] if scope_ids is None or long_input_id in scope_ids else []
            hits, used_vectors = await search_chunks(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                query=query,
                k=max(20, 3 * max_chunks),
                rrf_k=policy.recall.rrf_k,
                space=space,
                query_embedding=query_embedding,
                long_input_ids=scope_ids,
            )
            if hits:
                hits = await self._with_neighbours(conn, user_id, agent_id, hits)
        chosen, _ = _select(hits, max_chunks=max_chunks, max_tokens=max_tokens)
        # Reading order in the block (documents by their best excerpt, then position),
        # best first in ``chunks``.
        doc_rank: dict[str, int] = {}
        for hit in chosen:
            doc_rank.setdefault(hit.chunk.long_input_id, len(doc_rank))
        reading = sorted(chosen, key=lambda h: (doc_rank[h.chunk.long_input_id], h.chunk.ordinal))
        context = "\n\n".join(_excerpt(h.chunk) for h in reading)
        return LongInputContext(
            query=query,
            context=context,
            chunks=tuple(
                ContextChunk(
                    chunk_id=h.chunk.chunk_id,
                    long_input_id=h.chunk.long_input_id,
                    ordinal=h.chunk.ordinal,
                    quote_hash=h.chunk.quote_hash,
                    text=h.chunk.text,
                    start=h.chunk.start,
                    end=h.chunk.end,
                    score=round(h.score, 6),
                    heading=h.chunk.heading,
                    title=h.chunk.title,
                    neighbour_of=h.neighbour_of,
                    matched_by=tuple(h.matched_by),
                )
                for h in chosen
            ),
            token_count=estimate_tokens(context),
            used_vectors=used_vectors,
        )

    async def _with_neighbours(
        self, conn: asyncpg.Connection, user_id: str, agent_id: str, hits: list[_Hit]
    ) -> list[_Hit]:
        """Add the neighbours of the best hits as candidates at a fraction of their score.

        A passage often runs past a chunk's end (a clause and its proviso, a quote
        across a boundary); the chunk next to the best hit is then worth more than
        a weak match elsewhere, but less than a strong one.
        """
        parents = hits[:NEIGHBOUR_PARENTS]
        by_id = {h.chunk.chunk_id: h for h in hits}
        for chunk in await fetch_neighbours(
            conn, user_id=user_id, agent_id=agent_id, chunks=[p.chunk for p in parents]
        ):
            parent = next(
                p
                for p in parents
                if p.chunk.long_input_id == chunk.long_input_id and abs(p.chunk.ordinal - chunk.ordinal) == 1
            )
            score = parent.score * NEIGHBOUR_FACTOR
            known = by_id.get(chunk.chunk_id)
            if known is None:
                by_id[chunk.chunk_id] = _Hit(chunk, score, ["neighbour"], neighbour_of=parent.chunk.chunk_id)
            elif known.score < score:
                known.score = score
                known.neighbour_of = parent.chunk.chunk_id
                known.matched_by.append("neighbour")
        return sorted(by_id.values(), key=lambda h: (-h.score, h.chunk.long_input_id, h.chunk.ordinal))

    async def _long_input_candidates(self, ctx: Any) -> list[RecallCandidate]:
        """Recall's ``long_input`` strategy: the same hybrid retrieval, scope-wide.

        ``ctx`` is a :class:`engram.recall.RecallContext`; its connection, embedding
        space and (lazily computed, shared) query embedding are reused.
        """
        hits, _ = await search_chunks(
            ctx.conn,
            user_id=ctx.user_id,
            agent_id=ctx.agent_id,
            query=ctx.query,
            k=ctx.candidates,
            rrf_k=ctx.policy.recall.rrf_k,
            space=ctx.space,
            query_embedding=ctx.query_embedding,
        )
        return [
            RecallCandidate(
                key=f"chunk:{h.chunk.chunk_id}",
                source="chunk",
                section="Document excerpts",
                text=_excerpt(h.chunk),
                score=h.score,
                ids={
                    "chunk_id": h.chunk.chunk_id,
                    "long_input_id": h.chunk.long_input_id,
                    "quote_hash": h.chunk.quote_hash,
                    "start": h.chunk.start,
                    "end": h.chunk.end,
                },
            )
            for h in hits
        ]

    # ------------------------------------------------------------------ citations

    async def verify_citation(
        self,
        *,
        chunk_id: str,
        quote: str,
        agent_id: str,
        user_id: str,
        quote_hash: str | None = None,
    ) -> CitationCheck:
        """Check that ``quote`` really is in the stored chunk ``chunk_id``.

        The quote is compared after the normalisation of ``docs/citations.md``
        (Unicode NFKC, typographic quotes and dashes, whitespace, case), and the
        match is reported with offsets in the original document.  ``quote_hash``,
        if given, must be the chunk's (as printed in its excerpt label; with or
        without the ``sha256:`` prefix).  A quote that is in the document but not
        wholly inside this chunk is not verified: ``spans_chunk_boundary`` or
        ``containing_chunk_ids`` say where it is.  A chunk outside the caller's
        scope raises ``NotFoundError``, exactly as a chunk that does not exist.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        chunk_id = check_id(chunk_id, "chunk_id")
        quote = check_text(quote, "quote", max_chars=MAX_QUOTE_CHARS)
        if quote_hash is not None:
            quote_hash = check_text(quote_hash, "quote_hash", max_chars=200)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"""SELECT {_CHUNK_COLUMNS}, li.char_count,
                           substr(li.text, c.start_offset + 1, c.end_offset - c.start_offset) = c.text AS intact
                    FROM {_CHUNK_FROM} WHERE c.user_id = $1 AND c.agent_id = $2 AND c.chunk_id = $3""",
                user_id,
                agent_id,
                chunk_id,
            )
            if row is None:
                raise NotFoundError(f"no chunk {chunk_id!r} in this scope")
            chunk = _chunk_from_row(row)
            # A redaction rewrites stored text; the chunk's hash and offsets then no
            # longer describe it, so nothing in it can be verified any more.
            intact = bool(row["intact"]) and quote_hash_of(chunk.text) == chunk.quote_hash
            hash_ok = None if quote_hash is None else _hash_matches(quote_hash, chunk.quote_hash)
            base: dict[str, Any] = {
                "chunk_id": chunk.chunk_id,
                "long_input_id": chunk.long_input_id,
                "hash_matches": hash_ok,
            }
            hit = find_quote(chunk.text, quote)
            if hit is not None:
                start, end = chunk.start + hit[0], chunk.start + hit[1]
                verified = intact and hash_ok is not False
                if not intact:
                    reason = "the chunk's stored text changed after it was recorded (redacted?)"
                elif hash_ok is False:
                    reason = (
                        f"the quote is in the chunk, but quote_hash is not the chunk's ({chunk.quote_hash})"
                    )
                else:
                    reason = "the quote occurs in the chunk"
                return CitationCheck(
                    verified=verified,
                    quote_found=True,
                    start=start,
                    end=end,
                    found_in_document=True,
                    reason=reason,
                    **base,
                )
            # Not in the chunk: is it in the document right across this chunk's edge?
            margin = 4 * len(quote) + 256
            lo = max(0, chunk.start - margin)
            hi = min(row["char_count"], chunk.end + margin)
            window = await conn.fetchval(
                """SELECT substr(text, $4, $5) FROM long_inputs
                   WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3""",
                user_id,
                agent_id,
                chunk.long_input_id,
                lo + 1,
                hi - lo,
            )
            near = _occurrence_overlapping(window or "", lo, quote, chunk.start, chunk.end)
            if near is not None:
                return CitationCheck(
                    verified=False,
                    quote_found=False,
                    start=near[0],
                    end=near[1],
                    found_in_document=True,
                    spans_chunk_boundary=True,
                    reason=(
                        f"the quote runs across the edge of chunk {chunk.chunk_id} (document offsets "
                        f"{near[0]}-{near[1]}); no single chunk holds all of it: cite the part inside each chunk"
                    ),
                    **base,
                )
            document = await conn.fetchval(
                "SELECT text FROM long_inputs WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3",
                user_id,
                agent_id,
                chunk.long_input_id,
            )
            anywhere = find_quote(document or "", quote)
            if anywhere is None:
                return CitationCheck(
                    verified=False,
                    quote_found=False,
                    reason="the quote does not occur in the chunk or anywhere in its document",
                    **base,
                )
            holders = await conn.fetch(
                """SELECT chunk_id FROM long_input_chunks
                   WHERE user_id = $1 AND agent_id = $2 AND long_input_id = $3
                     AND start_offset <= $4 AND end_offset >= $5 ORDER BY ordinal""",
                user_id,
                agent_id,
                chunk.long_input_id,
                anywhere[0],
                anywhere[1],
            )
        containing = tuple(r["chunk_id"] for r in holders)
        where = f"chunk {', '.join(containing)}" if containing else "no single chunk (it spans a boundary)"
        return CitationCheck(
            verified=False,
            quote_found=False,
            start=anywhere[0],
            end=anywhere[1],
            found_in_document=True,
            spans_chunk_boundary=not containing,
            containing_chunk_ids=containing,
            reason=f"the quote is elsewhere in the document (offsets {anywhere[0]}-{anywhere[1]}, in {where}), "
            f"not in chunk {chunk.chunk_id}",
            **base,
        )
