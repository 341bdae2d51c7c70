"""Long inputs: store a document once, retrieve labelled excerpts, verify citations.

A document given to :meth:`LongInputService.record_long_input` is validated, cut
into chunks by :func:`engram.longinput.chunking.chunk_document` (sizes from the
policy), and written together with one bounded ``artifact`` event in a single
transaction, so a failure leaves nothing behind.  Chunks are embedded later (by a
worker through :meth:`LongInputService.embed_pending_chunks`) unless
``embed_inline=True``.

Retrieval (:mod:`engram.longinput.retrieval`) is hybrid: full-text search (OR
semantics, so one matching word is enough) and, for chunks that already have a
vector, nearest-neighbour search, fused by reciprocal rank.  Citation checks are in
:mod:`engram.longinput.citations`, and all SQL in :mod:`engram.longinput.store`,
where every statement filters by ``user_id`` and ``agent_id``.
``docs/long-inputs.md`` describes the whole loop.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from .. import plugins
from ..errors import InvalidInputError, NotFoundError, PluginError
from ..ledger.models import Event
from ..ledger.store import append_events, has_task
from ..privacy import fence
from ..validation import (
    MAX_QUERY_CHARS,
    check_flag,
    check_id,
    check_metadata,
    check_positive_int,
    check_scope,
    check_text,
)
from . import retrieval, store
from .chunking import (
    MAX_DOCUMENT_CHARS,
    ChunkSpan,
    chunk_document,
    chunk_embedding_text,
    document_sha256,
    stable_chunk_id,
    validate_document_text,
)
from .citations import MAX_QUOTE_CHARS, check_citation
from .models import (
    ChunkSummary,
    CitationCheck,
    Format,
    LongInput,
    LongInputContext,
    LongInputRecord,
)

if TYPE_CHECKING:
    import asyncpg

    from ..embeddings.space import EmbeddingSpace
    from ..jobs.api import JobQueue
    from ..runtime import Runtime

__all__ = ["MAX_DOCUMENT_CHARS", "PREVIEW_CHARS", "LongInputService"]

MAX_TITLE_CHARS = 1_000
MAX_SOURCE_CHARS = 2_000
#: The artifact event carries at most this much of the document.
PREVIEW_CHARS = 280
#: Title as repeated in the artifact event (the full title is on the document row).
EVENT_TITLE_CHARS = 200
MAX_CONTEXT_CHUNKS = 100
MAX_CONTEXT_TOKENS = 100_000
MAX_EMBED_BATCH = 1_024
#: A page whose scope was redacted while it was being embedded is embedded again
#: this many times per call at most; later ones are left for the next call.
_MAX_FENCE_RETRIES = 5
#: Chunking a document this long takes tens of milliseconds or more; do it in a
#: thread so the event loop keeps serving other requests meanwhile.
_THREAD_CHUNKING_CHARS = 100_000

# Markdown is recognised by an ATX heading or a code fence at the start of a line.
_MARKDOWN_HINT = re.compile(r"^ {0,3}(?:#{1,6}[ \t]+\S|```|~~~)", re.MULTILINE)


# --------------------------------------------------------------------------- input checks


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


# --------------------------------------------------------------------------- helpers


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


async def _require_long_input(
    conn: asyncpg.Connection, user_id: str, agent_id: str, long_input_id: str
) -> None:
    if not await store.long_input_exists(
        conn, user_id=user_id, agent_id=agent_id, long_input_id=long_input_id
    ):
        # The same answer whether it exists in another scope or nowhere.
        raise NotFoundError(f"no long input {long_input_id!r} in this scope")


# --------------------------------------------------------------------------- service


class LongInputService:
    """Documents stored once, chunked, retrieved with labels, and citations checked."""

    def __init__(self, rt: Runtime, queue: JobQueue) -> None:
        self._rt = rt
        self._queue = queue

    async def _embed_texts(self, texts: Sequence[str], *, batch_size: int) -> list[list[float]]:
        embedder = self._rt.embedder()
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
        embed_inline = check_flag(embed_inline, "embed_inline")
        policy = self._rt.policy
        settings = policy.chunking
        sha = document_sha256(text)

        def cut() -> list[ChunkSpan]:
            return chunk_document(
                text, max_tokens=settings.max_tokens, overlap_tokens=settings.overlap_tokens, fmt=fmt
            )

        spans = await asyncio.to_thread(cut) if len(text) > _THREAD_CHUNKING_CHARS else cut()
        if not spans:  # validate_document_text refuses blank text, so this cannot happen
            raise InvalidInputError("the document has no text to chunk")
        chunk_ids = [stable_chunk_id(sha, c.ordinal, c.start, c.end) for c in spans]

        # Read-only first: a document the scope already has is not embedded again.
        async with self._rt.connection() as conn:
            known = await store.find_by_sha(conn, user_id=user_id, agent_id=agent_id, sha256=sha)
        vectors: list[list[float]] | None = None
        space: EmbeddingSpace | None = None
        if embed_inline and known is None:
            space = self._rt.embedding_space
            vectors = await self._embed_texts(
                [chunk_embedding_text(c.heading, c.text) for c in spans], batch_size=64
            )

        async with self._rt.transaction() as conn:
            await store.lock_document_hash(conn, user_id=user_id, agent_id=agent_id, sha256=sha)
            existing = await store.find_by_sha(conn, user_id=user_id, agent_id=agent_id, sha256=sha)
            deduplicated = existing is not None
            if existing is not None:
                long_input_id = existing.long_input_id
                chunk_count = existing.chunk_count
                stored_format = existing.format
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
            content = self._rt.redact_for_storage(content, policy)
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
                await store.insert_long_input(
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
                    job_id = await self._queue.enqueue_chunk_embedding(
                        conn,
                        user_id=user_id,
                        agent_id=agent_id,
                        task_id=task_id,
                        long_input_id=long_input_id,
                        chunk_count=len(spans),
                    )
            else:
                summaries = await store.chunk_summaries(
                    conn, user_id=user_id, agent_id=agent_id, long_input_id=long_input_id
                )
                embedded = existing.embedded
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
        their text is unchanged and no redaction or purge of the scope committed
        meanwhile (the redaction fence, :mod:`engram.privacy.fence`: the page is
        then read and embedded again), so the call is idempotent and safe to run
        concurrently or to repeat after a crash.
        ``progress`` is called with the number of chunks embedded after each batch.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        if long_input_id is not None:
            long_input_id = check_id(long_input_id, "long_input_id")
        batch_size = check_positive_int(batch_size, "batch_size", maximum=MAX_EMBED_BATCH)
        if long_input_id is not None:
            async with self._rt.connection() as conn:
                await _require_long_input(conn, user_id, agent_id, long_input_id)
        space = self._rt.embedding_space
        total = 0
        touched: set[str] = {long_input_id} if long_input_id is not None else set()
        # Keyset pagination over (long_input_id, ordinal) guarantees the loop ends even
        # if a write-back is skipped; a skipped chunk is picked up by the next call.
        after: tuple[str, int] = ("", -1)
        refused = 0
        while True:
            async with self._rt.connection() as conn:
                generation = await fence.capture(conn, user_id=user_id, agent_id=agent_id)
                page = await store.pending_chunks(
                    conn,
                    user_id=user_id,
                    agent_id=agent_id,
                    long_input_id=long_input_id,
                    space_name=space.name,
                    after=after,
                    limit=batch_size,
                )
            if not page:
                break
            vectors = await self._embed_texts(
                [chunk_embedding_text(c.heading, c.text) for c in page], batch_size=batch_size
            )
            async with self._rt.transaction() as conn:
                freshness = await fence.check(conn, generation)
                if freshness == "current":
                    total += await store.store_chunk_vectors(
                        conn,
                        user_id=user_id,
                        agent_id=agent_id,
                        space_name=space.name,
                        chunks=page,
                        vectors=vectors,
                    )
            if freshness == "purged":
                return total  # nothing of the scope is left to embed
            if freshness == "changed" and refused < _MAX_FENCE_RETRIES:
                refused += 1
                continue  # the same page again, on the redacted text
            after = (page[-1].long_input_id, page[-1].ordinal)
            touched.update(c.long_input_id for c in page)
            if progress is not None:
                progress(len(page))
        if touched:
            async with self._rt.transaction() as conn:
                await store.mark_embedded(
                    conn,
                    user_id=user_id,
                    agent_id=agent_id,
                    long_input_ids=sorted(touched),
                    space_name=space.name,
                )
        return total

    # ------------------------------------------------------------------ read

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
        long_input_id = check_id(long_input_id, "long_input_id")
        include_text = check_flag(include_text, "include_text")
        include_chunks = check_flag(include_chunks, "include_chunks")
        space = self._rt.embedding_space
        async with self._rt.connection() as conn:
            found = await store.get_long_input(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                long_input_id=long_input_id,
                space_name=space.name,
                include_text=include_text,
            )
            if found is None:
                raise NotFoundError(f"no long input {long_input_id!r} in this scope")
            chunks = (
                await store.chunk_summaries(
                    conn, user_id=user_id, agent_id=agent_id, long_input_id=long_input_id
                )
                if include_chunks
                else []
            )
        return found.model_copy(update={"chunks": tuple(chunks)})

    async def list_long_inputs(
        self, *, agent_id: str, user_id: str, task_id: str | None = None, limit: int = 100
    ) -> list[LongInput]:
        """The scope's documents, newest first (without their text).

        With ``task_id``, only documents recorded (or provided again) in that task.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        limit = check_positive_int(limit, "limit", maximum=10_000)
        space = self._rt.embedding_space
        async with self._rt.connection() as conn:
            ids: list[str] | None = None
            if task_id is not None:
                task_id = check_id(task_id, "task_id")
                if not await has_task(conn, user_id=user_id, agent_id=agent_id, task_id=task_id):
                    return []
                ids = await store.long_input_ids_of_task(
                    conn, user_id=user_id, agent_id=agent_id, task_id=task_id
                )
            return await store.list_long_inputs(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                space_name=space.name,
                long_input_ids=ids,
                limit=limit,
            )

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
            long_input_id = check_id(long_input_id, "long_input_id")
        max_chunks = check_positive_int(max_chunks, "max_chunks", maximum=MAX_CONTEXT_CHUNKS)
        max_tokens = check_positive_int(max_tokens, "max_tokens", maximum=MAX_CONTEXT_TOKENS)
        policy = self._rt.policy
        space = self._rt.embedding_space

        async def query_embedding() -> list[float]:
            return await self._rt.embed_query(query)

        async with self._rt.connection() as conn:
            scope_ids: list[str] | None = None
            if task_id is not None:
                owned = await has_task(conn, user_id=user_id, agent_id=agent_id, task_id=task_id)
                scope_ids = (
                    await store.long_input_ids_of_task(
                        conn, user_id=user_id, agent_id=agent_id, task_id=task_id
                    )
                    if owned
                    else []
                )
            if long_input_id is not None:
                await _require_long_input(conn, user_id, agent_id, long_input_id)
                scope_ids = [long_input_id] if scope_ids is None or long_input_id in scope_ids else []
            hits, used_vectors = await retrieval.search_chunks(
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
                hits = await retrieval.with_neighbours(conn, user_id=user_id, agent_id=agent_id, hits=hits)
        return retrieval.build_context(
            query, hits, max_chunks=max_chunks, max_tokens=max_tokens, used_vectors=used_vectors
        )

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
        async with self._rt.connection() as conn:
            return await check_citation(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                chunk_id=chunk_id,
                quote=quote,
                given_hash=quote_hash,
            )
