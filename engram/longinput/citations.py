"""Citation checks: is a quote really in the chunk it is attributed to?

The normalised substring search of :func:`engram.longinput.chunking.find_quote` is
run against the stored chunk, and the match is reported with offsets in the
original document.  When the quote is not in the cited chunk, the check says
where it is instead: across the chunk's edge, in another chunk, or nowhere.
``docs/citations.md`` describes the normalisation.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from ..errors import NotFoundError
from . import store
from .chunking import find_quote, quote_hash
from .models import CitationCheck

__all__ = ["MAX_QUOTE_CHARS", "check_citation"]

#: A quote longer than this is not a quote; refusing it keeps verification cheap.
MAX_QUOTE_CHARS = 100_000

_HASH = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


def _hash_matches(given: str, stored: str) -> bool:
    m = _HASH.fullmatch(given.strip().lower())
    return m is not None and "sha256:" + m.group(1) == stored


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


async def check_citation(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    chunk_id: str,
    quote: str,
    given_hash: str | None,
) -> CitationCheck:
    """Check an already validated citation against the scope's stored chunk.

    A chunk outside the scope raises ``NotFoundError``, exactly as a chunk that
    does not exist.
    """
    stored = await store.chunk_for_citation(conn, user_id=user_id, agent_id=agent_id, chunk_id=chunk_id)
    if stored is None:
        raise NotFoundError(f"no chunk {chunk_id!r} in this scope")
    chunk = stored.chunk
    # A redaction rewrites stored text; the chunk's hash and offsets then no
    # longer describe it, so nothing in it can be verified any more.
    intact = stored.intact and quote_hash(chunk.text) == chunk.quote_hash
    hash_ok = None if given_hash is None else _hash_matches(given_hash, chunk.quote_hash)
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
            reason = f"the quote is in the chunk, but quote_hash is not the chunk's ({chunk.quote_hash})"
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
    hi = min(stored.document_chars, chunk.end + margin)
    window = await store.document_window(
        conn, user_id=user_id, agent_id=agent_id, long_input_id=chunk.long_input_id, start=lo, length=hi - lo
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
    document = await store.document_text(
        conn, user_id=user_id, agent_id=agent_id, long_input_id=chunk.long_input_id
    )
    anywhere = find_quote(document or "", quote)
    if anywhere is None:
        return CitationCheck(
            verified=False,
            quote_found=False,
            reason="the quote does not occur in the chunk or anywhere in its document",
            **base,
        )
    containing = tuple(
        await store.chunks_containing(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            long_input_id=chunk.long_input_id,
            start=anywhere[0],
            end=anywhere[1],
        )
    )
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
