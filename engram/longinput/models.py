"""Public models of the long-input calls (frozen, like every Engram result).

Offsets are always character (code point) offsets into the *original* document as it
was given to ``record_long_input``: ``document[start:end]`` is the passage exactly as
written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ..models import EngramModel

__all__ = [
    "ChunkSummary",
    "CitationCheck",
    "ContextChunk",
    "Format",
    "LongInput",
    "LongInputContext",
    "LongInputRecord",
]

#: How a document is chunked: plain text, or Markdown (headings and code fences).
Format = Literal["text", "markdown"]


class ChunkSummary(EngramModel):
    """One stored chunk, without its text."""

    chunk_id: str
    ordinal: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote_hash: str
    token_count: int = Field(ge=0)
    heading: str | None = None


class LongInputRecord(EngramModel):
    """What ``record_long_input`` did.

    ``deduplicated`` is True when an identical document (same SHA-256 of its exact
    text) was already stored in this scope: nothing was stored again, the existing
    ``long_input_id`` and chunks are returned, and ``event_id`` is the new artifact
    event that records, in this call's task, that the document was provided again.
    """

    long_input_id: str
    task_id: str
    event_id: int
    deduplicated: bool
    sha256: str
    char_count: int
    chunk_count: int
    format: Format
    #: True when every chunk already has a vector (``embed_inline=True``, or a
    #: deduplicated document that a worker embedded earlier).
    embedded: bool
    #: The id of the job that will embed the chunks, when a job queue took it.
    job_id: int | None = None
    chunks: tuple[ChunkSummary, ...]


class LongInput(EngramModel):
    """A stored document, as ``get_long_input`` and ``list_long_inputs`` return it."""

    long_input_id: str
    user_id: str
    agent_id: str
    task_id: str
    event_id: int
    title: str | None
    source: str | None
    metadata: dict[str, Any] = Field(default_factory=dict)
    sha256: str
    char_count: int
    chunk_count: int
    format: Format
    chunk_max_tokens: int
    chunk_overlap_tokens: int
    created_at: datetime
    embedded_at: datetime | None
    #: Chunks that have no vector in the active embedding space yet.
    pending_chunks: int
    #: The full text; only with ``get_long_input(..., include_text=True)``.
    text: str | None = None
    #: Chunk summaries; only with ``get_long_input(..., include_chunks=True)``.
    chunks: tuple[ChunkSummary, ...] = ()


class ContextChunk(EngramModel):
    """One excerpt of a ``LongInputContext``."""

    chunk_id: str
    long_input_id: str
    ordinal: int
    quote_hash: str
    text: str
    start: int
    end: int
    #: Reciprocal-rank-fusion score of the keyword and vector rankings.  A chunk
    #: added only as the neighbour of a retrieved one gets a fraction of that
    #: chunk's score and ``neighbour_of`` set.
    score: float
    heading: str | None = None
    title: str | None = None
    neighbour_of: str | None = None
    #: Which retrievals found it: ``"keyword"``, ``"vector"``, ``"neighbour"``.
    matched_by: tuple[str, ...] = ()


class LongInputContext(EngramModel):
    """``build_long_input_context``'s result: a prompt-ready block and its excerpts.

    ``context`` lists the excerpts in reading order (document, then position), each
    under a label ``[chunk_id=… quote_hash=… long_input_id=… offsets=start-end]``;
    ``chunks`` holds the same excerpts best first.
    """

    query: str
    context: str
    chunks: tuple[ContextChunk, ...]
    token_count: int
    #: Whether a vector ranking took part (False when no chunk in reach is embedded yet).
    used_vectors: bool


class CitationCheck(EngramModel):
    """Whether a quote attributed to a chunk really is in that chunk.

    ``verified`` is the one flag an application needs: the quote occurs in the cited
    chunk after normalisation, the chunk is unchanged since it was stored, and the
    ``quote_hash`` (if one was given) is that chunk's.  The other fields say why not.
    """

    verified: bool
    #: The quote occurs inside the cited chunk.
    quote_found: bool
    #: The given quote_hash equals the chunk's; None when none was given.
    hash_matches: bool | None
    chunk_id: str
    long_input_id: str
    #: Offsets in the original document of the match: inside the chunk when
    #: ``quote_found``; otherwise of the occurrence found elsewhere in the document
    #: (see ``found_in_document``), or None.
    start: int | None = None
    end: int | None = None
    #: The quote occurs in the document (in this chunk or anywhere else).
    found_in_document: bool = False
    #: The quote is in the document across this chunk's boundary with a neighbour,
    #: so no single chunk holds all of it.
    spans_chunk_boundary: bool = False
    #: Chunks whose text wholly contains the document occurrence, when it is not
    #: the cited one (the citation names the wrong chunk).
    containing_chunk_ids: tuple[str, ...] = ()
    reason: str
