"""Turning a claimed job into facts, event vectors and checkpoints.

A job runs in three steps, and only the last holds a transaction:

1. **load** (short reads): the job's events in its scope.  Purged events are
   simply missing; redacted ones are skipped, so their former content never
   reaches an extractor.
2. **think** (no transaction, no pooled connection held): the extractor's
   ``extract`` or ``summarize``, then the embedder (batched across a worker's batch).
3. **write** (one transaction): re-check the events under a share lock, write
   facts + lineage + event vectors (or the checkpoint), and complete the job
   with a fenced update.  If the lease was lost, everything rolls back, so a
   retry never duplicates a fact.

The SQL for ``checkpoints`` lives here too; :func:`latest_checkpoint_row` is what
recall's checkpoint strategy reads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import ValidationError

from ..errors import ExtractionError
from ..facts import MAX_FACT_CHARS, current_slots
from ..interfaces import CandidateFact, CheckpointRequest, ExtractionRequest, Extractor, SourceEvent
from ..ledger import event_embedding_text, events_by_ids, recent_task_events, store_event_vectors
from ..models import Event, Fact, FactSource
from ..policy import MemoryPolicy
from ..vectors import EmbeddingSpace
from . import queue
from .models import Checkpoint, DerivationResult, Job
from .reconcile import PreparedFact, Thresholds, lock_scope, normalise, reconcile

log = logging.getLogger("engram.jobs")

MAX_SUMMARY_CHARS = 20_000
_SLOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


class LeaseLost(Exception):
    """The job's lease was taken over by another worker; the result must be dropped."""


# --------------------------------------------------------------------------- work items


@dataclass
class Work:
    """One claimed job travelling through load → think → write."""

    job: Job
    events: list[Event] = field(default_factory=list)
    skipped_events: int = 0
    candidates: list[PreparedFact] = field(default_factory=list)
    #: Parallel to ``candidates`` until embedded; texts to embed.
    candidate_texts: list[str] = field(default_factory=list)
    dropped: int = 0
    event_vectors: list[list[float]] = field(default_factory=list)
    summary: str | None = None
    previous_through: int = 0
    through_event_id: int = 0
    turn_count: int = 0
    error: BaseException | None = None
    done: bool = False  # nothing to think about (events gone): complete as a no-op
    chunks_embedded: int = 0  # embed_chunks jobs: how many chunk vectors were written

    @property
    def needs_embedding(self) -> bool:
        return self.job.kind == "derive" and self.error is None and not self.done


def _payload_event_ids(job: Job) -> list[int]:
    raw = job.payload.get("event_ids")
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
    ):
        raise ExtractionError(f"job {job.job_id} has a malformed payload (event_ids)")
    return sorted(set(raw))


def to_source_events(events: Sequence[Event]) -> tuple[SourceEvent, ...]:
    return tuple(
        SourceEvent(
            event_id=e.event_id, task_id=e.task_id, role=e.role, content=e.content, created_at=e.created_at
        )
        for e in events
    )


async def load(conn: asyncpg.Connection, work: Work, *, policy: MemoryPolicy, max_events: int) -> None:
    """Step 1: read what the job needs (short, read-only)."""
    job = work.job
    if job.kind == "derive":
        wanted = _payload_event_ids(job)
        found = await events_by_ids(conn, user_id=job.user_id, agent_id=job.agent_id, event_ids=wanted)
        work.events = [e for e in found if not e.redacted]
        work.skipped_events = len(wanted) - len(work.events)
        if not work.events:
            work.done = True
        return
    # checkpoint
    assert job.task_id is not None
    previous = await latest_checkpoint_row(
        conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id
    )
    work.previous_through = previous["through_event_id"] if previous else 0
    work.summary = previous["summary"] if previous else None
    upper = job.payload.get("through_event_id")
    events = await recent_task_events(
        conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id, limit=max_events
    )
    events = [
        e
        for e in events
        if e.event_id > work.previous_through and (not isinstance(upper, int) or e.event_id <= upper)
    ]
    work.through_event_id = events[-1].event_id if events else 0
    work.events = [e for e in events if not e.redacted]
    turns = job.payload.get("turn_count")
    work.turn_count = turns if isinstance(turns, int) else 0
    if not work.events:
        work.done = True


async def think(work: Work, *, extractor: Extractor, policy: MemoryPolicy, slots: dict[str, str]) -> None:
    """Step 2: call the extractor.  No database connection is held here."""
    job = work.job
    if job.kind == "derive":
        request = ExtractionRequest(
            user_id=job.user_id,
            agent_id=job.agent_id,
            task_id=job.task_id or work.events[0].task_id,
            events=to_source_events(work.events),
            policy=policy,
            current_slots=slots,
        )
        raw = await extractor.extract(request)
        prepare_candidates(work, raw)
        return
    request_cp = CheckpointRequest(
        user_id=job.user_id,
        agent_id=job.agent_id,
        task_id=job.task_id or "",
        events=to_source_events(work.events),
        previous_summary=work.summary,
        policy=policy,
    )
    work.summary = check_summary(await extractor.summarize(request_cp))


def check_summary(value: Any) -> str:
    if not isinstance(value, str):
        raise ExtractionError(f"extractor summarize() returned {type(value).__name__}, not str")
    text = value.strip()
    if not text:
        raise ExtractionError("extractor summarize() returned an empty summary")
    return text[:MAX_SUMMARY_CHARS]


def _sources_for(candidate: CandidateFact, events: dict[int, Event]) -> tuple[list[FactSource], bool]:
    """Lineage for a candidate, keeping only what checks out against the real events.

    Returns (sources, referenced_anything).  A span whose quote is not in the
    event is not trusted: we keep the event but drop the invented quote.
    """
    sources: dict[tuple[int, int], FactSource] = {}
    referenced = bool(candidate.spans or candidate.source_event_ids)
    for span in candidate.spans:
        event = events.get(span.event_id)
        if event is None:
            continue
        content = event.content
        start, end, quote = span.start, span.end, span.quote
        if not (start <= end <= len(content) and content[start:end] == quote):
            found = content.find(quote) if quote else -1
            if found >= 0:
                start, end = found, found + len(quote)
            else:
                start, end, quote = 0, 0, ""
        sources.setdefault(
            (event.event_id, start),
            FactSource(event_id=event.event_id, span_start=start, span_end=end, quote=quote),
        )
    for event_id in candidate.source_event_ids:
        if event_id in events and not any(k[0] == event_id for k in sources):
            sources[(event_id, 0)] = FactSource(event_id=event_id)
    return list(sources.values()), referenced


def prepare_candidates(work: Work, raw: Any) -> None:
    """Validate extractor output.  A non-list is an error; bad items are dropped and counted."""
    if not isinstance(raw, list | tuple):
        raise ExtractionError(f"extractor returned {type(raw).__name__}, expected a list of CandidateFact")
    events = {e.event_id: e for e in work.events}
    seen: set[tuple[str | None, str]] = set()
    for item in raw:
        try:
            candidate = item if isinstance(item, CandidateFact) else CandidateFact.model_validate(item)
        except (ValidationError, TypeError, ValueError):
            work.dropped += 1
            continue
        content = " ".join(candidate.content.split())[:MAX_FACT_CHARS]
        slot = candidate.slot
        if not content or (slot is not None and not _SLOT_NAME.match(slot)):
            work.dropped += 1
            continue
        sources, referenced = _sources_for(candidate, events)
        if not sources:
            if referenced:
                # It cites only events that are gone or redacted: not ours to keep.
                work.dropped += 1
                continue
            # No citation at all: it came from this job's events, we just don't know where.
            sources = [FactSource(event_id=e.event_id) for e in work.events]
        key = (slot, normalise(content))
        if key in seen:
            continue  # the same fact twice in one reply
        seen.add(key)
        times = [events[s.event_id].created_at for s in sources if s.event_id in events]
        category = candidate.category if candidate.category and _CATEGORY.match(candidate.category) else None
        work.candidates.append(
            PreparedFact(
                content=content,
                embedding=(),
                sources=tuple(sources),
                slot=slot,
                category=category,
                confidence=float(candidate.confidence),
                observed_at=max(times) if times else None,
                metadata={"job_id": work.job.job_id},
            )
        )
        work.candidate_texts.append(content)


def embedding_texts(work: Work) -> list[str]:
    return [event_embedding_text(e) for e in work.events] + work.candidate_texts


def attach_embeddings(work: Work, vectors: Sequence[Sequence[float]], dimension: int) -> None:
    n_events = len(work.events)
    if len(vectors) != n_events + len(work.candidates):
        raise ExtractionError("the embedder returned a different number of vectors than texts")
    for v in vectors:
        if len(v) != dimension:
            raise ExtractionError(
                f"the embedder returned a vector of dimension {len(v)}, expected {dimension}"
            )
    work.event_vectors = [list(v) for v in vectors[:n_events]]
    work.candidates = [
        PreparedFact(**{**c.__dict__, "embedding": list(v)})
        for c, v in zip(work.candidates, vectors[n_events:], strict=True)
    ]


# --------------------------------------------------------------------------- step 3: write


async def _fence(conn: asyncpg.Connection, job: Job) -> None:
    """Lock our job row, or find out we lost it.  Locked, the reaper skips it."""
    held = await conn.fetchval(
        """SELECT 1 FROM memory_jobs
           WHERE user_id = $1 AND job_id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'running'
           FOR UPDATE""",
        job.user_id,
        job.job_id,
        job.lease_owner,
        job.attempts,
    )
    if held is None:
        raise LeaseLost(job.job_id)


async def _complete(conn: asyncpg.Connection, job: Job, result: dict[str, Any]) -> None:
    if not await queue.complete(conn, job, result):
        raise LeaseLost(job.job_id)


async def complete_embed_chunks(conn: asyncpg.Connection, work: Work) -> None:
    """Finish an ``embed_chunks`` job (the vectors are already written)."""
    await _fence(conn, work.job)
    await _complete(conn, work.job, {"chunks_embedded": work.chunks_embedded})


async def write_derivation(
    conn: asyncpg.Connection,
    work: Work,
    *,
    space: EmbeddingSpace,
    origin: str,
    thresholds: Thresholds,
) -> tuple[DerivationResult, list[Fact]]:
    """Step 3 for a derive job.  Call inside a transaction; raises LeaseLost to roll back."""
    job = work.job
    await _fence(conn, job)
    if work.done:
        result = DerivationResult(skipped_events=work.skipped_events)
        await _complete(conn, job, result.model_dump(mode="json"))
        return result, []
    usable = await lock_usable_events(
        conn, user_id=job.user_id, agent_id=job.agent_id, event_ids=[e.event_id for e in work.events]
    )
    vector_ids = [e.event_id for e in work.events if e.event_id in usable]
    vectors = [v for e, v in zip(work.events, work.event_vectors, strict=True) if e.event_id in usable]
    if vector_ids:
        await store_event_vectors(
            conn,
            user_id=job.user_id,
            agent_id=job.agent_id,
            event_ids=vector_ids,
            vectors=vectors,
            space_name=space.name,
        )
    added: list[Fact] = []
    superseded: list[int] = []
    duplicates = stale = 0
    dropped = work.dropped
    if work.candidates:
        await lock_scope(conn, user_id=job.user_id, agent_id=job.agent_id)
    for candidate in work.candidates:
        sources = tuple(s for s in candidate.sources if s.event_id in usable)
        if not sources:
            dropped += 1  # its events were redacted or purged while we were thinking
            continue
        if len(sources) != len(candidate.sources):
            candidate = PreparedFact(**{**candidate.__dict__, "sources": sources})
        outcome = await reconcile(
            conn,
            user_id=job.user_id,
            agent_id=job.agent_id,
            space=space,
            candidate=candidate,
            origin=origin,
            task_id=job.task_id,
            thresholds=thresholds,
        )
        if outcome.fact is not None:
            added.append(outcome.fact)
        if outcome.action == "supersede" and outcome.existing_id is not None:
            superseded.append(outcome.existing_id)
        elif outcome.action == "duplicate":
            duplicates += 1
        elif outcome.action == "stale":
            stale += 1
    result = DerivationResult(
        added=tuple(f.fact_id for f in added),
        superseded=tuple(superseded),
        duplicates=duplicates,
        stale=stale,
        dropped=dropped,
        skipped_events=work.skipped_events + (len(work.events) - len(usable)),
        event_vectors=len(vector_ids),
    )
    await _complete(conn, job, result.model_dump(mode="json"))
    return result, added


async def write_checkpoint(conn: asyncpg.Connection, work: Work) -> Checkpoint | None:
    """Step 3 for a checkpoint job.  Call inside a transaction; raises LeaseLost to roll back."""
    job = work.job
    await _fence(conn, job)
    checkpoint = None
    if not work.done and work.summary and job.task_id is not None:
        turns = await task_turn_count(
            conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id, lock=True
        )
        previous = await latest_checkpoint_row(
            conn, user_id=job.user_id, agent_id=job.agent_id, task_id=job.task_id
        )
        # Skip if the task is gone, or a newer checkpoint (e.g. on demand) already covers these events.
        if turns is not None and (previous is None or previous["through_event_id"] < work.through_event_id):
            checkpoint = await insert_checkpoint(
                conn,
                user_id=job.user_id,
                agent_id=job.agent_id,
                task_id=job.task_id,
                summary=work.summary,
                through_event_id=work.through_event_id,
                turn_count=work.turn_count or turns,
            )
    await _complete(
        conn,
        job,
        {"checkpoint_id": checkpoint.checkpoint_id if checkpoint else None, "events": len(work.events)},
    )
    return checkpoint


async def slots_for(conn: asyncpg.Connection, job: Job, policy: MemoryPolicy) -> dict[str, str]:
    """Current values of the policy's critical slots, for the extractor's context."""
    if not policy.critical_slots:
        return {}
    slots = await current_slots(conn, user_id=job.user_id, agent_id=job.agent_id)
    return {name: fact.content for name, fact in slots.items()}
