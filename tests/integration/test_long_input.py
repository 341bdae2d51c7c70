"""Long inputs: record_long_input, build_long_input_context, verify_citation, the CLI."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner
from conftest import count_rows

from engram import Engram, InvalidInputError, NotFoundError
from engram.longinput.api import PREVIEW_CHARS
from engram.longinput.chunking import MAX_DOCUMENT_CHARS, document_sha256, quote_hash, stable_chunk_id

CONTRACT = """# Master Services Agreement

This agreement is made between Acme Corp ("Client") and Widget Ltd ("Supplier").

## 1. Services

The Supplier shall provide software maintenance services as described in Schedule A.
Services are delivered remotely unless the parties agree otherwise in writing.

## 2. Fees

The Client shall pay the fees in Schedule B within thirty (30) days of each invoice.
Late payments accrue interest at one percent per month.

## 7. Termination

Either party may terminate this agreement by giving sixty (60) days' written notice to the other party.
The Client may terminate immediately if the Supplier commits a material breach that is not remedied
within fifteen (15) days of notice.

## 9. Governing law

This agreement is governed by the laws of England and Wales.
"""

WORDS = ["the", "lessee", "shall", "pay", "rent", "monthly", "notice", "agreement", "party", "warranty"]
WORDS += ["liability", "premises", "landlord", "tenant", "repair", "insurance", "schedule", "deposit"]


def _scope() -> dict[str, str]:
    return {"user_id": f"user-{uuid.uuid4().hex[:12]}", "agent_id": "agent-test"}


def _task() -> str:
    return f"task-{uuid.uuid4().hex[:12]}"


def _pages(n: int, seed: int = 7) -> str:
    """A generated text of ``n`` pages (~3,000 characters each) of legal-sounding prose."""
    rng = random.Random(seed)
    pages = []
    for p in range(1, n + 1):
        paras = [f"Page {p}."]
        while sum(len(x) for x in paras) < 3000:
            sentences = [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 22))).capitalize() + "."
                for _ in range(rng.randint(3, 6))
            ]
            paras.append(" ".join(sentences))
        pages.append("\n\n".join(paras))
    return "\n\n".join(pages)


async def _only_zero(raw_conn: asyncpg.Connection, user_id: str) -> None:
    assert {t: n for t, n in (await count_rows(raw_conn, user_id)).items() if n} == {}


# --------------------------------------------------------------------------- recording


async def test_record_stores_document_chunks_and_one_bounded_event(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    task = _task()
    rec = await engram.record_long_input(task, CONTRACT, title="MSA", source="msa.md", **scope)
    assert rec.deduplicated is False and rec.format == "markdown" and rec.embedded is False
    assert rec.sha256 == document_sha256(CONTRACT) and rec.char_count == len(CONTRACT)
    assert rec.chunk_count == len(rec.chunks) >= 4
    for chunk in rec.chunks:
        body = CONTRACT[chunk.start : chunk.end]
        assert chunk.quote_hash == quote_hash(body)
        assert chunk.chunk_id == stable_chunk_id(rec.sha256, chunk.ordinal, chunk.start, chunk.end)
    assert any(c.heading and "Termination" in c.heading for c in rec.chunks)

    counts = await count_rows(raw_conn, scope["user_id"])
    assert counts["long_inputs"] == 1 and counts["long_input_chunks"] == rec.chunk_count
    assert counts["events"] == 1
    event = await engram.get_event(rec.event_id, **scope)
    assert event.role == "artifact" and event.task_id == task
    assert event.metadata["long_input_id"] == rec.long_input_id
    assert event.metadata["sha256"] == rec.sha256 and event.metadata["deduplicated"] is False
    assert "sixty (60) days" not in event.content  # a preview, never the document

    doc = await engram.get_long_input(rec.long_input_id, include_text=True, include_chunks=True, **scope)
    assert doc.text == CONTRACT and doc.title == "MSA" and doc.event_id == rec.event_id
    assert doc.pending_chunks == rec.chunk_count and doc.embedded_at is None
    assert doc.chunks == rec.chunks
    assert doc.chunk_max_tokens == engram.policy.chunking.max_tokens
    listed = await engram.list_long_inputs(**scope)
    assert [d.long_input_id for d in listed] == [rec.long_input_id] and listed[0].text is None


async def test_artifact_event_is_bounded_for_a_large_document(engram: Engram, scope: dict[str, str]) -> None:
    text = _pages(20)
    rec = await engram.record_long_input(_task(), text, title="T" * 900, **scope)
    event = await engram.get_event(rec.event_id, **scope)
    preview = event.content.split("Preview: ", 1)[1]
    assert len(preview) <= PREVIEW_CHARS
    assert len(event.content) < 800
    assert len(event.metadata["title"]) <= 200
    assert event.metadata["char_count"] == len(text) and event.metadata["chunk_count"] == rec.chunk_count


async def test_identical_document_is_recognised_not_stored_twice(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    first = await engram.record_long_input(_task(), CONTRACT, **scope)
    other_task = _task()
    again = await engram.record_long_input(other_task, CONTRACT, title="copy", **scope)
    assert again.deduplicated is True
    assert again.long_input_id == first.long_input_id and again.chunks == first.chunks
    assert again.event_id != first.event_id and again.task_id == other_task
    counts = await count_rows(raw_conn, scope["user_id"])
    assert counts["long_inputs"] == 1 and counts["long_input_chunks"] == first.chunk_count
    assert counts["events"] == 2  # one artifact event per call
    event = await engram.get_event(again.event_id, **scope)
    assert event.metadata["deduplicated"] is True and event.metadata["long_input_id"] == first.long_input_id
    # The task that received the copy finds the document.
    listed = await engram.list_long_inputs(task_id=other_task, **scope)
    assert [d.long_input_id for d in listed] == [first.long_input_id]

    # The same user's other agent is another scope: it gets its own copy (same chunk ids).
    other_agent = {**scope, "agent_id": "agent-other"}
    theirs = await engram.record_long_input(_task(), CONTRACT, **other_agent)
    assert theirs.deduplicated is False and theirs.long_input_id != first.long_input_id
    assert [c.chunk_id for c in theirs.chunks] == [c.chunk_id for c in first.chunks]


async def test_concurrent_identical_uploads_store_one_copy(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    results = await asyncio.gather(*(engram.record_long_input(_task(), CONTRACT, **scope) for _ in range(4)))
    assert len({r.long_input_id for r in results}) == 1
    assert sorted(r.deduplicated for r in results) == [False, True, True, True]
    assert (await count_rows(raw_conn, scope["user_id"]))["long_inputs"] == 1


async def test_format_detection_and_choice(engram: Engram, scope: dict[str, str]) -> None:
    plain = "Just words.\n\nMore words here."
    assert (await engram.record_long_input(_task(), plain, **scope)).format == "text"
    md = await engram.record_long_input(_task(), "# A\n\nText under a.", **scope)
    assert md.format == "markdown" and md.chunks[0].heading == "A"
    forced = await engram.record_long_input(_task(), "# B\n\nText under b.", format="text", **scope)
    assert forced.format == "text" and forced.chunks[0].heading is None
    by_suffix = await engram.record_long_input(_task(), "# C\n\nText c.", source="notes.txt", **scope)
    assert by_suffix.format == "text"


async def test_fifty_page_document(engram: Engram, scope: dict[str, str]) -> None:
    text = _pages(50)
    assert len(text) > 140_000
    rec = await engram.record_long_input(_task(), text, **scope)
    assert rec.chunk_count > 100
    assert max(c.token_count for c in rec.chunks) <= engram.policy.chunking.max_tokens
    assert [c.ordinal for c in rec.chunks] == list(range(rec.chunk_count))
    # A passage from page 37, re-typed with other spacing and case, verifies in place.
    at = text.index("Page 37.")
    chunk = next(c for c in rec.chunks if c.start <= at and at + 60 <= c.end)
    passage = text[at : at + 60]
    check = await engram.verify_citation(
        chunk_id=chunk.chunk_id, quote="  " + passage.upper().replace(" ", "   "), **scope
    )
    assert check.verified and (check.start, check.end) == (at, at + 60)
    ctx = await engram.build_long_input_context("Page 37", long_input_id=rec.long_input_id, **scope)
    assert any("Page 37." in c.text for c in ctx.chunks)
    assert await engram.embed_pending_chunks(**scope) == rec.chunk_count


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        (b"bytes are not text", "decode"),
        ("before\x00after", "NUL"),
        ("".join(chr(i % 8 + 1) for i in range(2000)), "binary"),
        ("ok\ud800", "surrogate"),
        (12345, "str"),
    ],
)
async def test_bad_documents_are_refused_before_any_write(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection, text: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await engram.record_long_input(_task(), text, **scope)
    await _only_zero(raw_conn, scope["user_id"])


async def test_document_over_the_size_limit_is_refused(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    with pytest.raises(InvalidInputError, match=r"longer|limit|characters"):
        await engram.record_long_input(_task(), "a " * (MAX_DOCUMENT_CHARS // 2 + 1), **scope)
    await _only_zero(raw_conn, scope["user_id"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "pdf"},
        {"title": ""},
        {"title": 5},
        {"metadata": {"x": object()}},
        {"metadata": "nope"},
        {"embed_inline": "yes"},
        {"source": "a\x00b"},
    ],
)
async def test_bad_arguments_are_refused_before_any_write(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        await engram.record_long_input(_task(), CONTRACT, **scope, **kwargs)
    await _only_zero(raw_conn, scope["user_id"])


async def test_the_same_task_id_in_another_scope_is_another_task(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    # Task ids are per scope: recording into another scope's task id records into
    # a task of the caller's own, and each scope's task lists only its documents.
    owner = _scope()
    task = _task()
    await engram.record_event(task, role="user", content="hello", **owner)
    before = await count_rows(raw_conn, owner["user_id"])
    assert await engram.list_long_inputs(task_id=task, **scope) == []
    assert (await engram.build_long_input_context("notice", task_id=task, **scope)).chunks == ()
    record = await engram.record_long_input(task, CONTRACT, **scope)
    assert record.task_id == task and not record.deduplicated
    assert await count_rows(raw_conn, owner["user_id"]) == before
    assert await engram.list_long_inputs(task_id=task, **owner) == []
    assert [d.long_input_id for d in await engram.list_long_inputs(task_id=task, **scope)] == [
        record.long_input_id
    ]
    assert [e.role for e in await engram.get_task_events(task, **owner)] == ["user"]
    assert [e.role for e in await engram.get_task_events(task, **scope)] == ["artifact"]


async def test_failure_inside_the_transaction_leaves_nothing(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("queue unavailable")

    # Runs after the event, the document and its chunks were written.
    monkeypatch.setattr(engram._queue, "enqueue_chunk_embedding", broken)
    with pytest.raises(RuntimeError):
        await engram.record_long_input(_task(), CONTRACT, **scope)
    await _only_zero(raw_conn, scope["user_id"])


async def test_failing_inline_embedding_leaves_nothing(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = engram.get_embedder()

    async def broken(texts: Any) -> list[list[float]]:
        raise RuntimeError("model crashed")

    monkeypatch.setattr(embedder, "embed", broken)
    with pytest.raises(RuntimeError):
        await engram.record_long_input(_task(), CONTRACT, embed_inline=True, **scope)
    await _only_zero(raw_conn, scope["user_id"])


async def test_other_scopes_documents_and_chunks_are_not_found(engram: Engram, scope: dict[str, str]) -> None:
    rec = await engram.record_long_input(_task(), CONTRACT, **scope)
    intruder = _scope()
    same_user_other_agent = {**scope, "agent_id": "someone-else"}
    for other in (intruder, same_user_other_agent):
        with pytest.raises(NotFoundError):
            await engram.get_long_input(rec.long_input_id, **other)
        with pytest.raises(NotFoundError):
            await engram.build_long_input_context("notice", long_input_id=rec.long_input_id, **other)
        with pytest.raises(NotFoundError):
            await engram.embed_pending_chunks(long_input_id=rec.long_input_id, **other)
        with pytest.raises(NotFoundError) as err:
            await engram.verify_citation(chunk_id=rec.chunks[0].chunk_id, quote="agreement", **other)
        # The refusal is the same as for an id that exists nowhere.
        with pytest.raises(NotFoundError) as missing:
            await engram.verify_citation(chunk_id="ch_00000000000000000000", quote="agreement", **other)
        assert str(err.value).replace(rec.chunks[0].chunk_id, "X") == str(missing.value).replace(
            "ch_00000000000000000000", "X"
        )
        assert (await engram.build_long_input_context("notice", **other)).chunks == ()
        assert await engram.list_long_inputs(**other) == []
    with pytest.raises(NotFoundError):
        await engram.get_long_input("li_00000000000000000000", **scope)


async def test_bad_context_and_citation_arguments(engram: Engram, scope: dict[str, str]) -> None:
    for kwargs in ({"max_chunks": 0}, {"max_tokens": -1}, {"max_chunks": True}, {"long_input_id": ""}):
        with pytest.raises(InvalidInputError):
            await engram.build_long_input_context("x", **scope, **kwargs)
    with pytest.raises(InvalidInputError):
        await engram.build_long_input_context("", **scope)
    with pytest.raises(InvalidInputError):
        await engram.verify_citation(chunk_id="ch_x", quote="   ", **scope)
    with pytest.raises(InvalidInputError):
        await engram.verify_citation(chunk_id="ch_x", quote=b"bytes", **scope)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.embed_pending_chunks(batch_size=0, **scope)


# --------------------------------------------------------------------------- citations


async def test_verify_citation_offsets_and_hash(engram: Engram, scope: dict[str, str]) -> None:
    rec = await engram.record_long_input(_task(), CONTRACT, **scope)
    original = "sixty (60) days' written notice"
    chunk = next(c for c in rec.chunks if original in CONTRACT[c.start : c.end])
    # Re-typed by a model: curly apostrophe, other case and spacing.
    retyped = "Sixty (60)  days\u2019 WRITTEN\nnotice"
    check = await engram.verify_citation(chunk_id=chunk.chunk_id, quote=retyped, **scope)
    assert check.verified and check.quote_found and check.hash_matches is None
    assert CONTRACT[check.start : check.end] == original  # type: ignore[index]
    assert check.long_input_id == rec.long_input_id and check.chunk_id == chunk.chunk_id

    good = await engram.verify_citation(
        chunk_id=chunk.chunk_id, quote=original, quote_hash=chunk.quote_hash, **scope
    )
    assert good.verified and good.hash_matches is True
    bare = await engram.verify_citation(
        chunk_id=chunk.chunk_id, quote=original, quote_hash=chunk.quote_hash.removeprefix("sha256:"), **scope
    )
    assert bare.hash_matches is True
    bad = await engram.verify_citation(
        chunk_id=chunk.chunk_id, quote=original, quote_hash="sha256:" + "0" * 64, **scope
    )
    assert bad.quote_found and bad.hash_matches is False and not bad.verified
    assert "quote_hash" in bad.reason

    invented = await engram.verify_citation(
        chunk_id=chunk.chunk_id, quote="ninety (90) days' written notice", **scope
    )
    assert not invented.verified and not invented.quote_found and not invented.found_in_document
    assert invented.start is None

    wrong_chunk = next(c for c in rec.chunks if "Schedule B" in CONTRACT[c.start : c.end])
    misattributed = await engram.verify_citation(chunk_id=wrong_chunk.chunk_id, quote=original, **scope)
    assert not misattributed.verified and misattributed.found_in_document
    assert chunk.chunk_id in misattributed.containing_chunk_ids
    assert CONTRACT[misattributed.start : misattributed.end] == original  # type: ignore[index]


async def test_quote_across_a_chunk_boundary_is_not_verified_for_either_chunk(
    engram: Engram, scope: dict[str, str]
) -> None:
    text = _pages(3)
    rec = await engram.record_long_input(_task(), text, format="text", **scope)
    left, right = rec.chunks[3], rec.chunks[4]
    # From just before where `right` begins (so not in `right`) to just after where
    # `left` ends (so not in `left`): in the document, but in no single chunk.
    quote = text[right.start - 15 : left.end + 15].strip()
    assert left.start < right.start - 15 and quote not in text[left.start : left.end]
    for chunk in (left, right):
        check = await engram.verify_citation(chunk_id=chunk.chunk_id, quote=quote, **scope)
        assert not check.verified and not check.quote_found
        assert check.found_in_document and check.spans_chunk_boundary
        assert text[check.start : check.end] == quote  # type: ignore[index]
        assert "edge" in check.reason
    # The part inside each chunk, cited to that chunk, verifies.
    head = text[right.start - 15 : left.end].strip()
    assert (await engram.verify_citation(chunk_id=left.chunk_id, quote=head, **scope)).verified
    # Cited to a chunk far away, it is reported as in the document but in no chunk.
    far = await engram.verify_citation(chunk_id=rec.chunks[-1].chunk_id, quote=quote, **scope)
    assert far.found_in_document and far.spans_chunk_boundary and far.containing_chunk_ids == ()
    assert not far.verified


async def test_a_redacted_chunk_no_longer_verifies(engram: Engram, scope: dict[str, str]) -> None:
    task = _task()
    rec = await engram.record_long_input(task, CONTRACT, embed_inline=True, **scope)
    chunk = next(c for c in rec.chunks if "England and Wales" in CONTRACT[c.start : c.end])
    assert (await engram.verify_citation(chunk_id=chunk.chunk_id, quote="laws of England", **scope)).verified
    # The same sentence pasted into the chat and redacted there is scrubbed from
    # every derived row of the scope, the document's chunks included.
    event = await engram.record_event(
        task, role="user", content="This agreement is governed by the laws of England and Wales.", **scope
    )
    await engram.redact_event(event.event_id, reason="confidential", **scope)
    check = await engram.verify_citation(chunk_id=chunk.chunk_id, quote="laws of England", **scope)
    assert not check.verified and not check.quote_found
    # What is left of the chunk no longer matches its quote_hash: nothing in it verifies.
    rest = await engram.verify_citation(chunk_id=chunk.chunk_id, quote="Governing law", **scope)
    assert rest.quote_found and not rest.verified and "changed" in rest.reason
    # The scrubbed chunk lost its vector; re-embedding picks it up again.
    assert (await engram.get_long_input(rec.long_input_id, **scope)).pending_chunks >= 1
    assert await engram.embed_pending_chunks(**scope) >= 1


# --------------------------------------------------------------------------- retrieval


async def test_context_keyword_only_then_hybrid_after_embedding(
    engram: Engram, scope: dict[str, str]
) -> None:
    rec = await engram.record_long_input(_task(), CONTRACT, **scope)
    ctx = await engram.build_long_input_context("How much notice is needed to terminate?", **scope)
    assert ctx.used_vectors is False and ctx.chunks
    best = ctx.chunks[0]
    assert "sixty (60) days" in best.text and "keyword" in best.matched_by
    assert f"[chunk_id={best.chunk_id} quote_hash={best.quote_hash} long_input_id={rec.long_input_id} " in (
        ctx.context
    )
    assert f"offsets={best.start}-{best.end}]" in ctx.context
    assert CONTRACT[best.start : best.end] == best.text
    # Every excerpt in the block is labelled.
    assert ctx.context.count("[chunk_id=") == len(ctx.chunks)

    assert await engram.embed_pending_chunks(**scope) == rec.chunk_count
    assert await engram.embed_pending_chunks(**scope) == 0  # idempotent
    doc = await engram.get_long_input(rec.long_input_id, **scope)
    assert doc.pending_chunks == 0 and doc.embedded_at is not None
    hybrid = await engram.build_long_input_context("How much notice is needed to terminate?", **scope)
    assert hybrid.used_vectors is True
    assert hybrid.chunks[0].chunk_id == best.chunk_id
    assert "vector" in hybrid.chunks[0].matched_by
    # A citation from the context verifies with the label's quote_hash.
    check = await engram.verify_citation(
        chunk_id=best.chunk_id, quote="sixty (60) days' written notice", quote_hash=best.quote_hash, **scope
    )
    assert check.verified


async def test_embed_inline(engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection) -> None:
    rec = await engram.record_long_input(_task(), CONTRACT, embed_inline=True, **scope)
    assert rec.embedded is True and rec.job_id is None
    missing = await raw_conn.fetchval(
        "SELECT count(*) FROM long_input_chunks WHERE user_id = $1 AND embedding IS NULL", scope["user_id"]
    )
    assert missing == 0
    assert (await engram.get_long_input(rec.long_input_id, **scope)).embedded_at is not None
    assert await engram.embed_pending_chunks(**scope) == 0
    # A duplicate of a not-yet-embedded document is embedded by embed_inline too.
    other = {**scope, "agent_id": "agent-2"}
    await engram.record_long_input(_task(), CONTRACT, **other)
    dup = await engram.record_long_input(_task(), CONTRACT, embed_inline=True, **other)
    assert dup.deduplicated and dup.embedded
    assert (await engram.get_long_input(dup.long_input_id, **other)).pending_chunks == 0


async def test_context_budgets_and_neighbours(engram: Engram, scope: dict[str, str]) -> None:
    text = _pages(6) + "\n\nThe zebra covenant survives termination of this lease.\n\n" + _pages(2, seed=3)
    rec = await engram.record_long_input(_task(), text, format="text", **scope)
    ctx = await engram.build_long_input_context("zebra covenant", **scope)
    assert "zebra covenant" in ctx.chunks[0].text
    by_id = {c.chunk_id: c for c in ctx.chunks}
    neighbours = [c for c in ctx.chunks if c.neighbour_of]
    assert neighbours
    for n in neighbours:
        parent = by_id[n.neighbour_of]  # type: ignore[index]
        assert "keyword" in parent.matched_by and abs(n.ordinal - parent.ordinal) == 1
        assert n.score < parent.score
    # Reading order in the block.
    positions = [
        ctx.context.index(f"chunk_id={c.chunk_id}") for c in sorted(ctx.chunks, key=lambda c: c.ordinal)
    ]
    assert positions == sorted(positions)

    small = await engram.build_long_input_context("zebra covenant", max_chunks=1, **scope)
    assert len(small.chunks) == 1 and small.chunks[0].chunk_id == ctx.chunks[0].chunk_id
    tight = await engram.build_long_input_context(
        "lessee rent notice", max_tokens=400, max_chunks=50, **scope
    )
    assert tight.token_count <= 400 and tight.chunks
    nothing = await engram.build_long_input_context("lessee rent", max_tokens=10, **scope)
    assert nothing.chunks == () and nothing.context == ""
    assert rec.chunk_count > 10


async def test_context_narrowed_by_task_and_document(engram: Engram, scope: dict[str, str]) -> None:
    task_a, task_b = _task(), _task()
    a = await engram.record_long_input(task_a, CONTRACT, **scope)
    b = await engram.record_long_input(
        task_b, "Notice periods for the warehouse lease are ninety days.", **scope
    )
    only_b = await engram.build_long_input_context("notice", task_id=task_b, **scope)
    assert {c.long_input_id for c in only_b.chunks} == {b.long_input_id}
    only_a = await engram.build_long_input_context("notice", long_input_id=a.long_input_id, **scope)
    assert {c.long_input_id for c in only_a.chunks} == {a.long_input_id}
    both = await engram.build_long_input_context("notice", **scope)
    assert {c.long_input_id for c in both.chunks} == {a.long_input_id, b.long_input_id}
    # A task nobody owns has no documents; a document outside the task gives nothing.
    assert (await engram.build_long_input_context("notice", task_id=_task(), **scope)).chunks == ()
    assert (
        await engram.build_long_input_context(
            "notice", task_id=task_b, long_input_id=a.long_input_id, **scope
        )
    ).chunks == ()
    # Providing A again in task B makes it part of task B.
    await engram.record_long_input(task_b, CONTRACT, **scope)
    again = await engram.build_long_input_context("terminate notice", task_id=task_b, **scope)
    assert a.long_input_id in {c.long_input_id for c in again.chunks}


async def test_recall_shows_document_excerpts(engram: Engram, scope: dict[str, str]) -> None:
    rec = await engram.record_long_input(_task(), CONTRACT, title="MSA", **scope)
    await engram.embed_pending_chunks(**scope)
    trace = await engram.trace_recall("quote the termination clause", **scope)
    assert trace.intent == "quote"
    assert "## Document excerpts" in trace.context
    chunk_items = [i for i in trace.items if i.section == "Document excerpts"]
    assert chunk_items
    ids = {c.chunk_id for c in rec.chunks}
    for item in chunk_items:
        assert item.key == f"chunk:{item.ids['chunk_id']}" and item.ids["chunk_id"] in ids
        assert item.ids["long_input_id"] == rec.long_input_id and item.ids["quote_hash"].startswith("sha256:")
        assert f"chunk_id={item.ids['chunk_id']}" in trace.context
    assert any("Termination" in i.text for i in chunk_items)
    run = next(r for r in trace.strategies if r.name == "long_input")
    assert run.error is None and run.selected >= 1


async def test_purge_removes_long_inputs(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    await engram.record_long_input(_task(), CONTRACT, embed_inline=True, **scope)
    await engram.purge(user_id=scope["user_id"])
    await _only_zero(raw_conn, scope["user_id"])


# --------------------------------------------------------------------------- CLI


def test_cli_ingest(database_url: str, tmp_path: Path) -> None:
    from engram.cli import main

    scope = _scope()
    path = tmp_path / "msa.md"
    path.write_text(CONTRACT, encoding="utf-8")
    args = ["ingest", str(path), "--dsn", database_url, "--embedder", "hashing", "--task", _task()]
    args += ["--user", scope["user_id"], "--agent", scope["agent_id"]]
    result = CliRunner().invoke(main, [*args, "--embed-now"])
    assert result.exit_code == 0, result.output
    assert "stored" in result.output and "embedded" in result.output
    assert "li_" in result.output

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "already stored" in again.output

    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    bad = CliRunner().invoke(main, ["ingest", str(binary), *args[2:]])
    assert bad.exit_code == 1 and "UTF-8" in bad.output

    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    assert CliRunner().invoke(main, ["ingest", str(empty), *args[2:]]).exit_code == 1

    async def stored() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            n: int = await conn.fetchval(
                "SELECT count(*) FROM long_inputs WHERE user_id = $1", scope["user_id"]
            )
            return n
        finally:
            await conn.close()

    assert asyncio.run(stored()) == 1
