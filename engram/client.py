"""``Engram``: the one public client.

A flat facade over the capability services.  It builds one :class:`Runtime`
(settings, database, policy, embedder, extractor) and one service per capability,
passes each what it needs explicitly, and delegates every public call.  No
service inherits from another; the job queue is the only service others hold
(to enqueue inside their own transactions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .checkpoints.api import CheckpointService
from .checkpoints.jobs import CheckpointHandler
from .checkpoints.models import Checkpoint
from .embeddings.space import EmbeddingSpace
from .errors import ConfigurationError, InvalidInputError
from .facts.api import FactsService
from .facts.models import Fact, Lineage
from .interfaces import Embedder, Extractor
from .jobs.api import JobQueue, JobsService
from .jobs.derive import DeriveHandler
from .jobs.models import Job, JobStats, WorkerOptions
from .jobs.reconcile import Thresholds
from .jobs.worker import MemoryWorker
from .ledger.api import LedgerService
from .ledger.models import Event, Task, TurnRecord
from .longinput.api import LongInputService
from .longinput.jobs import EmbedChunksHandler
from .longinput.models import CitationCheck, Format, LongInput, LongInputContext, LongInputRecord
from .policy import MemoryPolicy
from .privacy.api import PrivacyService
from .privacy.models import PurgeReport, RedactionReport
from .recall.api import RecallService
from .recall.models import RecallResult, RecallTrace
from .recall.router import Router
from .runtime import Runtime
from .settings import EngramSettings
from .validation import check_flag


class Engram:
    """Long-term memory for LLM agents on PostgreSQL.

    ``Engram(dsn=None, *, memory_policy="default", embedder=None, extractor=None)``.
    With no ``dsn`` and no ``ENGRAM_DATABASE_URL`` an embedded PostgreSQL is
    started (or reused) under ``ENGRAM_HOME``.  Use ``async with Engram() as m``
    or ``await m.connect()`` / ``await m.close()``; calls connect lazily too.
    Other keyword arguments override settings (``Engram(max_pool_size=4)``).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        memory_policy: str | Path | MemoryPolicy | None = None,
        embedder: str | Embedder | None = None,
        extractor: str | Extractor | None = None,
        settings: EngramSettings | None = None,
        **overrides: Any,
    ) -> None:
        try:
            base = settings or EngramSettings()
            merged = base.model_copy(update=overrides) if overrides else base
            if overrides:
                # model_copy skips validation; re-validate so bad overrides fail here.
                merged = EngramSettings.model_validate(merged.model_dump())
        except ValueError as exc:
            raise ConfigurationError(f"invalid Engram settings: {exc}") from exc
        rt = Runtime(
            settings=merged,
            dsn=dsn or merged.database_url,
            memory_policy=memory_policy,
            embedder=embedder,
            extractor=extractor,
        )
        queue = JobQueue(rt)
        self._rt = rt
        self._queue = queue
        self._ledger = LedgerService(rt, queue)
        self._facts = FactsService(rt)
        self._recall = RecallService(rt)
        self._jobs = JobsService(rt, queue)
        self._checkpoints = CheckpointService(rt, lambda: queue.worker_options.checkpoint_max_events)
        self._long_inputs = LongInputService(rt, queue)
        self._privacy = PrivacyService(rt, queue)
        # Job kinds, registered by the capability that owns each.
        queue.register(DeriveHandler(rt, lambda: queue.reconcile_thresholds))
        queue.register(CheckpointHandler(rt, lambda: queue.worker_options.checkpoint_max_events))
        queue.register(EmbedChunksHandler(self._long_inputs))

    # ------------------------------------------------------------------ lifecycle

    @property
    def settings(self) -> EngramSettings:
        """The client's resolved settings (environment plus constructor overrides)."""
        return self._rt.settings

    @property
    def policy(self) -> MemoryPolicy:
        """The client's memory policy (calls may override it per call where they accept one)."""
        return self._rt.policy

    @property
    def is_connected(self) -> bool:
        """Whether the pool is open (calls connect on first use anyway)."""
        return self._rt.db.is_connected

    @property
    def embedding_space(self) -> EmbeddingSpace:
        """The embedder name and dimension this client writes and searches vectors in."""
        return self._rt.embedding_space

    async def connect(self) -> Self:
        """Open the pool, check the server, apply migrations, check the embedding space.  Idempotent."""
        await self._rt.connect()
        return self

    async def close(self) -> None:
        """Drain and close the pool.  The client can connect again afterwards."""
        await self._rt.db.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        """Check that the database answers (connecting first if needed); for health checks."""
        async with self._rt.connection() as conn:
            await conn.fetchval("SELECT 1")

    def get_embedder(self) -> Embedder:
        """The configured embedder (instantiated on first use)."""
        return self._rt.embedder()

    def get_extractor(self) -> Extractor:
        """The configured extractor (instantiated on first use)."""
        return self._rt.extractor()

    # ------------------------------------------------------------------ tunables

    @property
    def router(self) -> Router:
        """The intent router recall uses; assign any object with ``route(query, *, task_id, policy)``."""
        return self._recall.router

    @router.setter
    def router(self, value: Router) -> None:
        if not callable(getattr(value, "route", None)):
            raise InvalidInputError("router must be an object with route(query, *, task_id, policy)")
        self._recall.router = value

    @property
    def worker_options(self) -> WorkerOptions:
        """Queue and worker tunables; assign a new ``WorkerOptions`` to change them."""
        return self._queue.worker_options

    @worker_options.setter
    def worker_options(self, value: WorkerOptions) -> None:
        if not isinstance(value, WorkerOptions):
            raise InvalidInputError("worker_options must be a WorkerOptions")
        self._queue.worker_options = value

    @property
    def reconcile_thresholds(self) -> Thresholds:
        """Reconciliation cut-offs (cosine similarity in the embedding space)."""
        return self._queue.reconcile_thresholds

    @reconcile_thresholds.setter
    def reconcile_thresholds(self, value: Thresholds) -> None:
        if not isinstance(value, Thresholds):
            raise InvalidInputError("reconcile_thresholds must be a Thresholds")
        self._queue.reconcile_thresholds = value

    @property
    def notify_workers(self) -> bool:
        """Send a NOTIFY with each enqueue so LISTENing workers wake at once (a hint only)."""
        return self._queue.notify_workers

    @notify_workers.setter
    def notify_workers(self, value: bool) -> None:
        self._queue.notify_workers = check_flag(value, "notify_workers")

    # ------------------------------------------------------------------ ledger

    async def record_turn(
        self,
        task_id: str,
        *,
        user_message: str,
        assistant_response: str,
        agent_id: str,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        enqueue_processing: bool = True,
    ) -> TurnRecord:
        """Append a user message and the assistant's response to the task's ledger.

        Both events (and, with ``enqueue_processing``, the derivation job) are
        written in one transaction.  No model is called here: extraction and
        embedding happen in memory workers.
        """
        return await self._ledger.record_turn(
            task_id,
            user_message=user_message,
            assistant_response=assistant_response,
            agent_id=agent_id,
            user_id=user_id,
            metadata=metadata,
            enqueue_processing=enqueue_processing,
        )

    async def record_event(
        self,
        task_id: str,
        *,
        role: str,
        content: str,
        agent_id: str,
        user_id: str,
        metadata: dict[str, Any] | None = None,
        enqueue_processing: bool = False,
    ) -> Event:
        """Append one event (a tool call, an observation, a system note, ...)."""
        return await self._ledger.record_event(
            task_id,
            role=role,
            content=content,
            agent_id=agent_id,
            user_id=user_id,
            metadata=metadata,
            enqueue_processing=enqueue_processing,
        )

    async def get_task_events(
        self,
        task_id: str,
        *,
        agent_id: str,
        user_id: str,
        after_event_id: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """A task's events in the order they were recorded."""
        return await self._ledger.get_task_events(
            task_id,
            agent_id=agent_id,
            user_id=user_id,
            after_event_id=after_event_id,
            limit=limit,
        )

    async def get_event(self, event_id: int, *, agent_id: str, user_id: str) -> Event:
        """One event of the caller's scope; ``NotFoundError`` otherwise."""
        return await self._ledger.get_event(event_id, agent_id=agent_id, user_id=user_id)

    async def list_tasks(self, *, agent_id: str, user_id: str, limit: int = 100) -> list[Task]:
        """The scope's tasks, most recently active first."""
        return await self._ledger.list_tasks(agent_id=agent_id, user_id=user_id, limit=limit)

    # ------------------------------------------------------------------ facts

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
        return await self._facts.add(
            content,
            agent_id=agent_id,
            user_id=user_id,
            slot=slot,
            category=category,
            metadata=metadata,
            confidence=confidence,
        )

    async def get_fact(self, fact_id: int, *, agent_id: str, user_id: str) -> Fact:
        """One fact with its lineage sources; ``NotFoundError`` outside the caller's scope."""
        return await self._facts.get_fact(fact_id, agent_id=agent_id, user_id=user_id)

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
        return await self._facts.list_facts(
            agent_id=agent_id,
            user_id=user_id,
            status=status,
            slot=slot,
            limit=limit,
        )

    async def retract_fact(self, fact_id: int, *, agent_id: str, user_id: str) -> Fact:
        """Stop a fact from being recalled.  It is kept (status ``retracted``) for lineage."""
        return await self._facts.retract_fact(fact_id, agent_id=agent_id, user_id=user_id)

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
        return await self._facts.supersede_fact(
            fact_id,
            content,
            agent_id=agent_id,
            user_id=user_id,
            metadata=metadata,
        )

    async def lineage(self, fact_id: int, *, agent_id: str, user_id: str) -> Lineage:
        """A fact's versions (oldest first) and the events and spans each came from."""
        return await self._facts.lineage(fact_id, agent_id=agent_id, user_id=user_id)

    # ------------------------------------------------------------------ recall

    async def recall(
        self,
        query: str,
        *,
        agent_id: str,
        user_id: str,
        task_id: str | None = None,
        limit: int | None = None,
        expected_terms: Sequence[str] | None = None,
        memory_policy: str | Path | MemoryPolicy | None = None,
    ) -> RecallResult:
        """Build the prompt-ready memory block for ``query``.

        The same selection as :meth:`trace_recall`, without the diagnostics.
        """
        return await self._recall.recall(
            query,
            agent_id=agent_id,
            user_id=user_id,
            task_id=task_id,
            limit=limit,
            expected_terms=expected_terms,
            memory_policy=memory_policy,
        )

    async def trace_recall(
        self,
        query: str,
        *,
        agent_id: str,
        user_id: str,
        task_id: str | None = None,
        limit: int | None = None,
        expected_terms: Sequence[str] | None = None,
        memory_policy: str | Path | MemoryPolicy | None = None,
    ) -> RecallTrace:
        """Recall with a trace: routed intent, per-strategy counts and timings, and
        ``missing_expected_terms`` (salient query terms and ``expected_terms`` that
        appear nowhere in the context)."""
        return await self._recall.trace_recall(
            query,
            agent_id=agent_id,
            user_id=user_id,
            task_id=task_id,
            limit=limit,
            expected_terms=expected_terms,
            memory_policy=memory_policy,
        )

    # ------------------------------------------------------------------ memory jobs and workers

    def memory_worker(
        self,
        batch_size: int = 20,
        interval_seconds: float = 1.0,
        *,
        worker_id: str | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> MemoryWorker:
        """A worker object (for callers that want to stop it or read its counters)."""
        return self._jobs.memory_worker(
            batch_size,
            interval_seconds,
            worker_id=worker_id,
            stop_event=stop_event,
        )

    async def run_memory_worker(
        self,
        batch_size: int = 20,
        interval_seconds: float = 1.0,
        *,
        worker_id: str | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> int:
        """Process jobs until cancelled, ``stop_event`` is set, or SIGTERM/SIGINT arrives.

        Idle polling backs off up to ``interval_seconds``.  On the way out,
        in-flight jobs finish and claimed-but-unstarted ones are handed back.
        Returns the number of jobs that succeeded.
        """
        return await self._jobs.run_memory_worker(
            batch_size,
            interval_seconds,
            worker_id=worker_id,
            stop_event=stop_event,
        )

    async def process_jobs(self, batch_size: int = 20) -> int:
        """Re-queue expired leases, then claim and process one batch; returns how many succeeded."""
        return await self._jobs.process_jobs(batch_size)

    async def job_stats(self, *, user_id: str | None = None, agent_id: str | None = None) -> JobStats:
        """Queue figures: across all tenants, or for one user (and agent)."""
        return await self._jobs.job_stats(user_id=user_id, agent_id=agent_id)

    async def retry_failed_jobs(self, *, user_id: str | None = None, agent_id: str | None = None) -> int:
        """Re-queue failed jobs (all, or one user's/scope's) with fresh attempts; returns how many."""
        return await self._jobs.retry_failed_jobs(user_id=user_id, agent_id=agent_id)

    async def get_job(self, job_id: int, *, agent_id: str, user_id: str) -> Job:
        """One job of the caller's scope; ``NotFoundError`` otherwise."""
        return await self._jobs.get_job(job_id, agent_id=agent_id, user_id=user_id)

    async def list_jobs(
        self, *, agent_id: str, user_id: str, state: str | None = None, limit: int = 100
    ) -> list[Job]:
        """The scope's jobs, newest first."""
        return await self._jobs.list_jobs(agent_id=agent_id, user_id=user_id, state=state, limit=limit)

    async def cancel_job(self, job_id: int, *, agent_id: str, user_id: str) -> Job:
        """Cancel a queued job.  Running and finished jobs are refused with ``InvalidInputError``."""
        return await self._jobs.cancel_job(job_id, agent_id=agent_id, user_id=user_id)

    # ------------------------------------------------------------------ checkpoints

    async def latest_checkpoint(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint | None:
        """The task's newest checkpoint, or None if it has none yet."""
        return await self._checkpoints.latest_checkpoint(task_id, agent_id=agent_id, user_id=user_id)

    async def checkpoint(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint:
        """Summarise the task now (the extractor's ``summarize``) and store a checkpoint.

        With no new events since the latest checkpoint, that checkpoint is returned.
        The extractor is called with no transaction open.
        """
        return await self._checkpoints.checkpoint(task_id, agent_id=agent_id, user_id=user_id)

    # ------------------------------------------------------------------ long inputs and citations

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
        return await self._long_inputs.record_long_input(
            task_id,
            text,
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            source=source,
            metadata=metadata,
            format=format,
            embed_inline=embed_inline,
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
        return await self._long_inputs.embed_pending_chunks(
            user_id=user_id,
            agent_id=agent_id,
            long_input_id=long_input_id,
            batch_size=batch_size,
            progress=progress,
        )

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
        return await self._long_inputs.get_long_input(
            long_input_id,
            agent_id=agent_id,
            user_id=user_id,
            include_text=include_text,
            include_chunks=include_chunks,
        )

    async def list_long_inputs(
        self, *, agent_id: str, user_id: str, task_id: str | None = None, limit: int = 100
    ) -> list[LongInput]:
        """The scope's documents, newest first (without their text).

        With ``task_id``, only documents recorded (or provided again) in that task.
        """
        return await self._long_inputs.list_long_inputs(
            agent_id=agent_id,
            user_id=user_id,
            task_id=task_id,
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
        return await self._long_inputs.build_long_input_context(
            query,
            agent_id=agent_id,
            user_id=user_id,
            task_id=task_id,
            long_input_id=long_input_id,
            max_chunks=max_chunks,
            max_tokens=max_tokens,
        )

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
        return await self._long_inputs.verify_citation(
            chunk_id=chunk_id,
            quote=quote,
            agent_id=agent_id,
            user_id=user_id,
            quote_hash=quote_hash,
        )

    # ------------------------------------------------------------------ privacy

    async def purge(self, *, user_id: str, agent_id: str | None = None) -> PurgeReport:
        """Delete every row of ``user_id`` (or of that user and ``agent_id``) from every table.

        One transaction; returns the number of rows removed per table.  Other
        tenants' rows are untouched (every statement filters by user_id).
        """
        return await self._privacy.purge(user_id=user_id, agent_id=agent_id)

    async def redact_event(
        self,
        event_id: int,
        *,
        agent_id: str,
        user_id: str,
        reason: str,
        spans: Sequence[tuple[int, int]] | None = None,
    ) -> RedactionReport:
        """Replace an event's content (whole, or the given ``[start, end)`` spans) with a
        marker, and scrub the removed text from everything derived from it.

        Facts derived from the event are superseded and their text, vectors and
        lineage quotes scrubbed; checkpoints, long-input chunks and queued job
        payloads of the scope are scrubbed too; derivation is re-queued from the
        redacted text.  The event keeps a record of when and why, never what.
        """
        return await self._privacy.redact_event(
            event_id,
            agent_id=agent_id,
            user_id=user_id,
            reason=reason,
            spans=spans,
        )


async def connect(dsn: str | None = None, **kwargs: Any) -> Engram:
    """Create a client and connect it: ``engram = await engram.connect()``."""
    return await Engram(dsn, **kwargs).connect()
