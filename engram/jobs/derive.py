"""The ``derive`` job: turning new ledger events into facts and event vectors.

A derive job runs in the worker's three steps (see :mod:`engram.jobs.handlers`):

1. **prepare** (short reads, then no connection held): the job's events in its
   scope — purged events are simply missing, redacted ones skipped, so their
   former content never reaches an extractor — then the extractor's ``extract``.
2. **embed**: the events' and candidate facts' texts, batched across the worker's batch.
3. **write** (the job's transaction): re-check the events under a share lock,
   write event vectors, reconcile each candidate (supersede, never overwrite) and
   store facts with lineage.  If the lease was lost, everything rolls back, so a
   retry never duplicates a fact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import ValidationError

from ..errors import ExtractionError
from ..facts import store as facts_store
from ..facts.models import MAX_FACT_CHARS, Fact, FactSource
from ..interfaces import CandidateFact, ExtractionRequest
from ..ledger import store as ledger_store
from ..ledger.models import Event, source_events
from .handlers import JobWork
from .models import DerivationResult, Job
from .reconcile import PreparedFact, Thresholds, normalise, reconcile

if TYPE_CHECKING:
    from ..runtime import Runtime

_SLOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


@dataclass
class DeriveWork(JobWork):
    """A derive job between its steps."""

    events: list[Event] = field(default_factory=list)
    skipped_events: int = 0
    candidates: list[PreparedFact] = field(default_factory=list)
    #: Parallel to ``candidates`` until embedded; texts to embed.
    candidate_texts: list[str] = field(default_factory=list)
    dropped: int = 0
    event_vectors: list[list[float]] = field(default_factory=list)


def _payload_event_ids(job: Job) -> list[int]:
    raw = job.payload.get("event_ids")
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
    ):
        raise ExtractionError(f"job {job.job_id} has a malformed payload (event_ids)")
    return sorted(set(raw))


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


def prepare_candidates(work: DeriveWork, raw: Any) -> None:
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


class DeriveHandler:
    """Runs ``derive`` jobs: extractor, embedder, reconciliation."""

    kind = "derive"

    def __init__(self, rt: Runtime, thresholds: Callable[[], Thresholds]) -> None:
        self._rt = rt
        # A getter, so ``engram.reconcile_thresholds = ...`` applies to the next batch.
        self._thresholds = thresholds

    async def prepare(self, job: Job) -> JobWork:
        work = DeriveWork(job)
        policy = self._rt.policy
        wanted = _payload_event_ids(job)
        async with self._rt.connection() as conn:
            found = await ledger_store.events_by_ids(
                conn, user_id=job.user_id, agent_id=job.agent_id, event_ids=wanted
            )
            work.events = [e for e in found if not e.redacted]
            work.skipped_events = len(wanted) - len(work.events)
            if not work.events:
                work.done = True
                return work
            slots: dict[str, str] = {}
            if policy.critical_slots:
                current = await facts_store.current_slots(conn, user_id=job.user_id, agent_id=job.agent_id)
                slots = {name: fact.content for name, fact in current.items()}
        request = ExtractionRequest(
            user_id=job.user_id,
            agent_id=job.agent_id,
            task_id=job.task_id or work.events[0].task_id,
            events=source_events(work.events),
            policy=policy,
            current_slots=slots,
        )
        prepare_candidates(work, await self._rt.extractor().extract(request))
        return work

    def embedding_texts(self, work: JobWork) -> list[str]:
        if not isinstance(work, DeriveWork) or work.done or work.error is not None:
            return []
        return [ledger_store.event_embedding_text(e) for e in work.events] + work.candidate_texts

    def attach_embeddings(self, work: JobWork, vectors: Sequence[Sequence[float]]) -> None:
        assert isinstance(work, DeriveWork)
        dimension = self._rt.embedding_space.dimension
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

    async def write(self, conn: asyncpg.Connection, work: JobWork) -> tuple[dict[str, Any], list[Fact]]:
        """Step 3, inside the job's transaction (the worker has fenced its lease)."""
        assert isinstance(work, DeriveWork)
        job = work.job
        if work.done:
            return DerivationResult(skipped_events=work.skipped_events).model_dump(mode="json"), []
        space = self._rt.embedding_space
        origin = f"extractor:{self._rt.extractor().name}"
        thresholds = self._thresholds()
        usable = await ledger_store.lock_usable_events(
            conn, user_id=job.user_id, agent_id=job.agent_id, event_ids=[e.event_id for e in work.events]
        )
        vector_ids = [e.event_id for e in work.events if e.event_id in usable]
        vectors = [v for e, v in zip(work.events, work.event_vectors, strict=True) if e.event_id in usable]
        if vector_ids:
            await ledger_store.store_event_vectors(
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
            await facts_store.lock_scope(conn, user_id=job.user_id, agent_id=job.agent_id)
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
        return result.model_dump(mode="json"), added
