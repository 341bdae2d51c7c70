"""Chunk retrieval: keyword and vector search fused by reciprocal rank, neighbours, packing.

:func:`search_chunks` is shared by ``build_long_input_context`` and by recall's
``long_input`` strategy (:func:`recall_candidates`).  The keyword ranking covers
every chunk; the vector ranking only chunks a worker has embedded already, and
the query is embedded only when there are any.  Every read goes through
:mod:`engram.longinput.store`, so it is filtered by ``user_id`` and ``agent_id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg

from ..embeddings.space import EmbeddingSpace
from ..interfaces import RecallCandidate
from ..recall.fusion import reciprocal_rank_fusion
from ..tokens import estimate_tokens
from . import store
from .models import ContextChunk, LongInputContext
from .store import Chunk

__all__ = [
    "NEIGHBOUR_FACTOR",
    "NEIGHBOUR_PARENTS",
    "Hit",
    "build_context",
    "excerpt",
    "excerpt_label",
    "recall_candidates",
    "search_chunks",
    "select_hits",
    "with_neighbours",
]

#: A neighbour of a retrieved chunk competes with a fraction of that chunk's score,
#: so it displaces weak hits but never the strong ones.
NEIGHBOUR_FACTOR = 0.5
#: Only the best few hits are expanded with their neighbours.
NEIGHBOUR_PARENTS = 2


@dataclass(slots=True)
class Hit:
    """A retrieved chunk, its score and how it was found."""

    chunk: Chunk
    score: float
    matched_by: list[str] = field(default_factory=list)
    neighbour_of: str | None = None


# --------------------------------------------------------------------------- labels


def excerpt_label(chunk_id: str, quote_hash: str, long_input_id: str, start: int, end: int) -> str:
    """The label every excerpt carries, in the context block and in recall."""
    return (
        f"[chunk_id={chunk_id} quote_hash={quote_hash} long_input_id={long_input_id} offsets={start}-{end}]"
    )


def _label(chunk: Chunk) -> str:
    label = excerpt_label(chunk.chunk_id, chunk.quote_hash, chunk.long_input_id, chunk.start, chunk.end)
    parts = [p for p in (chunk.title, chunk.heading) if p]
    # A Markdown document's top heading is often its title too; say it once.
    if len(parts) == 2 and parts[1].split(" > ", 1)[0] == parts[0]:
        parts = [parts[1]]
    where = " > ".join(parts)
    return f"{label} {where}" if where else label


def _escape_labels(text: str) -> str:
    # A line of stored text that starts like a label would pose as another excerpt
    # with ids of its choosing; a backslash makes it plainly text.  Every line
    # break Python knows counts (splitlines), and so do blanks and invisible
    # format characters before the bracket.
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        lead = next((i for i, c in enumerate(line) if not (c.isspace() or c in _INVISIBLE)), len(line))
        out.append("\\" + line if line.startswith("[chunk_id=", lead) else line)
    return "".join(out)


_INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff")


def excerpt(chunk: Chunk) -> str:
    """A chunk under its label, as it appears in a context block.

    The label stays on one line (a title or heading with a line break in it
    would otherwise start a line of its own)."""
    return f"{' '.join(_label(chunk).split())}\n{_escape_labels(chunk.text)}"


# --------------------------------------------------------------------------- search


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
) -> tuple[list[Hit], bool]:
    """Hybrid retrieval over the scope's chunks; returns (hits best first, vectors used).

    ``long_input_ids`` restricts the search to those documents (an empty list finds
    nothing).  Scores are reciprocal-rank fusion, Σ 1 / (rrf_k + rank), over the
    keyword and vector rankings; ties go by chunk_id.
    """
    if long_input_ids is not None and not long_input_ids:
        return [], False
    any_chunks, used_vectors = await store.chunk_presence(
        conn, user_id=user_id, agent_id=agent_id, space=space, long_input_ids=long_input_ids
    )
    if not any_chunks:  # most scopes on most recalls: one round trip, not three
        return [], False
    keyword = await store.keyword_chunks(
        conn, user_id=user_id, agent_id=agent_id, query=query, k=k, long_input_ids=long_input_ids
    )
    ranked: dict[str, list[str]] = {"keyword": [chunk_id for chunk_id, _ in keyword]}
    if used_vectors:
        vector = await query_embedding()
        near = await store.nearest_chunks(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            space=space,
            embedding=vector,
            k=k,
            long_input_ids=long_input_ids,
        )
        ranked["vector"] = [chunk_id for chunk_id, _ in near]
    fused = reciprocal_rank_fusion(ranked, rrf_k=rrf_k)
    best = sorted(fused.items(), key=lambda kv: (-kv[1].score, kv[0]))[:k]
    if not best:
        return [], used_vectors
    chunks = await store.fetch_chunks(
        conn, user_id=user_id, agent_id=agent_id, chunk_ids=[cid for cid, _ in best]
    )
    hits = [Hit(chunks[cid], entry.score, list(entry.lists)) for cid, entry in best if cid in chunks]
    return hits, used_vectors


async def with_neighbours(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, hits: list[Hit]
) -> list[Hit]:
    """Add the neighbours of the best hits as candidates at a fraction of their score.

    A passage often runs past a chunk's end (a clause and its proviso, a quote
    across a boundary); the chunk next to the best hit is then worth more than
    a weak match elsewhere, but less than a strong one.
    """
    parents = hits[:NEIGHBOUR_PARENTS]
    by_id = {h.chunk.chunk_id: h for h in hits}
    for chunk in await store.fetch_neighbours(
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
            by_id[chunk.chunk_id] = Hit(chunk, score, ["neighbour"], neighbour_of=parent.chunk.chunk_id)
        elif known.score < score:
            known.score = score
            known.neighbour_of = parent.chunk.chunk_id
            known.matched_by.append("neighbour")
    return sorted(by_id.values(), key=lambda h: (-h.score, h.chunk.long_input_id, h.chunk.ordinal))


def select_hits(hits: Sequence[Hit], *, max_chunks: int, max_tokens: int) -> list[Hit]:
    """Greedy packing by score within both budgets; an excerpt that does not fit is
    skipped while smaller ones may still fit."""
    chosen: list[Hit] = []
    seen: set[str] = set()
    used = 0
    for hit in sorted(hits, key=lambda h: (-h.score, h.chunk.long_input_id, h.chunk.ordinal)):
        if len(chosen) >= max_chunks:
            break
        if hit.chunk.chunk_id in seen:
            continue
        cost = estimate_tokens(excerpt(hit.chunk)) + 1
        if used + cost > max_tokens:
            continue
        chosen.append(hit)
        seen.add(hit.chunk.chunk_id)
        used += cost
    return chosen


def build_context(
    query: str, hits: Sequence[Hit], *, max_chunks: int, max_tokens: int, used_vectors: bool
) -> LongInputContext:
    """Pack ``hits`` into a labelled block: reading order in the block (documents by
    their best excerpt, then position), best first in ``chunks``."""
    chosen = select_hits(hits, max_chunks=max_chunks, max_tokens=max_tokens)
    doc_rank: dict[str, int] = {}
    for hit in chosen:
        doc_rank.setdefault(hit.chunk.long_input_id, len(doc_rank))
    reading = sorted(chosen, key=lambda h: (doc_rank[h.chunk.long_input_id], h.chunk.ordinal))
    context = "\n\n".join(excerpt(h.chunk) for h in reading)
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


# --------------------------------------------------------------------------- recall


async def recall_candidates(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    query: str,
    k: int,
    rrf_k: int,
    space: EmbeddingSpace,
    query_embedding: Callable[[], Awaitable[list[float]]],
) -> list[RecallCandidate]:
    """Recall's ``long_input`` strategy: the same hybrid retrieval, scope-wide.

    ``query_embedding`` is awaited only when some chunk of the scope is embedded in
    ``space`` (recall passes its shared, lazily computed query vector).
    """
    hits, _ = await search_chunks(
        conn,
        user_id=user_id,
        agent_id=agent_id,
        query=query,
        k=k,
        rrf_k=rrf_k,
        space=space,
        query_embedding=query_embedding,
    )
    return [
        RecallCandidate(
            key=f"chunk:{h.chunk.chunk_id}",
            source="chunk",
            section="Document excerpts",
            text=excerpt(h.chunk),
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
