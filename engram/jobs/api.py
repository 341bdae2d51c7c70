"""``JobsAPI``: the memory-worker half of the public client."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ..core import ClientCore
from ..errors import InvalidInputError, NotFoundError
from ..ledger import check_task_owner, recent_task_events
from ..validation import check_id, check_positive_int, check_row_id, check_scope
from ..vectors import EmbeddingSpace, space_of
from . import derive, queue
from .models import Checkpoint, Job, JobStats, Lineage, LineageNode, WorkerOptions
from .reconcile import Thresholds
from .worker import MemoryWorker

MAX_BATCH_SIZE = 1000
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

# Walks a fact's supersession chain both ways.  Both recursive branches filter by
# user_id (and agent_id), as Citus requires and as the tenant rule demands.  The
# depth bound stops a corrupted cycle from recursing forever.
_LINEAGE = """
WITH RECURSIVE older(fact_id, depth) AS (
    SELECT fact_id, 0 FROM facts WHERE user_id = $1 AND agent_id = $2 AND fact_id = $3
  UNION
    SELECT f.fact_id, o.depth - 1 FROM facts f JOIN older o ON f.superseded_by = o.fact_id
    WHERE f.user_id = $1 AND f.agent_id = $2 AND o.depth > -1000
), newer(fact_id, next_id, depth) AS (
    SELECT fact_id, superseded_by, 0 FROM facts WHERE user_id = $1 AND agent_id = $2 AND fact_id = $3
  UNION
    SELECT f.fact_id, f.superseded_by, n.depth + 1 FROM facts f JOIN newer n ON f.fact_id = n.next_id
    WHERE f.user_id = $1 AND f.agent_id = $2 AND n.depth < 1000
)
SELECT fact_id, depth FROM older UNION SELECT fact_id, depth FROM newer ORDER BY depth
"""


def _check_job_id(value: Any) -> int:
    return check_row_id(value, "job_id")


def _check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH_SIZE:
        raise InvalidInputError(f"batch_size must be an int between 1 and {MAX_BATCH_SIZE}")
    return value


def _check_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise InvalidInputError("interval_seconds must be a number in (0, 3600]")
    return float(value)


class JobsAPI(ClientCore):
    """Background derivation: the job queue, the worker, checkpoints and lineage."""

    #: Queue and worker tunables; assign a new ``WorkerOptions`` to change them.
    worker_options: WorkerOptions = WorkerOptions()
    #: Reconciliation cut-offs (cosine similarity in the embedding space).
    reconcile_thresholds: Thresholds = Thresholds()
    #: Send a NOTIFY with each enqueue so LISTENing workers wake at once.  Only a
    #: hint (workers poll anyway); NOTIFY itself is PgBouncer-safe.
    notify_workers: bool = True

    # The facts mixin provides the real one; this keeps the jobs mixin usable alone.
    @property
    def embedding_space(self) -> EmbeddingSpace:
        return space_of(self.get_embedder())

    # ------------------------------------------------------------------ enqueue hook

    async def _enqueue_derivation(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: str,
        agent_id: str,
        task_id: str,
        event_ids: list[int],
        turn_count: int,
    ) -> int | None:
        """Queue derivation of new events (and a checkpoint every N turns) in the caller's transaction."""
        if not event_ids:
            return None
        opts = self.worker_options
        job_id, _ = await queue.enqueue(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            kind="derive",
            task_id=task_id,
            payload={"event_ids": list(event_ids), "turn_count": turn_count},
            dedupe_key=f"derive:{task_id}:{min(event_ids)}-{max(event_ids)}",
            max_attempts=opts.max_attempts,
            notify=self.notify_workers,
        )
        every = self.policy.checkpoint_every_turns
        if every and turn_count > 0 and turn_count % every == 0:
            # Lower priority: fresh facts matter more to the next recall than a summary.
            await queue.enqueue(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                kind="checkpoint",
                task_id=task_id,
                payload={"turn_count": turn_count, "through_event_id": max(event_ids)},
                dedupe_key=f"checkpoint:{task_id}:{turn_count}",
                priority=-1,
                max_attempts=opts.max_attempts,
            )
        return job_id

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
        """Queue embedding of a new document's chunks, in ``record_long_input``'s transaction."""
        job_id, _ = await queue.enqueue(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            kind="embed_chunks",
            task_id=task_id,
            payload={"long_input_id": long_input_id, "chunk_count": chunk_count},
            dedupe_key=f"embed_chunks:{long_input_id}",
            max_attempts=self.worker_options.max_attempts,
            notify=self.notify_workers,
        )
        return job_id

    # ------------------------------------------------------------------ worker

    def memory_worker(
        self,
        batch_size: int = 20,
        interval_seconds: float = 1.0,
        *,
        worker_id: str | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> MemoryWorker:
        """A worker object (for callers that want to stop it or read its counters)."""
        batch_size = _check_batch_size(batch_size)
        interval_seconds = _check_interval(interval_seconds)
        if worker_id is not None:
            worker_id = check_id(worker_id, "worker_id")
        if stop_event is not None and not isinstance(stop_event, asyncio.Event):
            raise InvalidInputError("stop_event must be an asyncio.Event")
        return MemoryWorker(
            self,
            batch_size=batch_size,
            interval_seconds=interval_seconds,
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
        worker = self.memory_worker(batch_size, interval_seconds, worker_id=worker_id, stop_event=stop_event)
        await self._get_pool()
        return await worker.run()

    async def process_jobs(self, batch_size: int = 20) -> int:
        """Re-queue expired leases, then claim and process one batch; returns how many succeeded."""
        batch_size = _check_batch_size(batch_size)
        worker = MemoryWorker(self, batch_size=batch_size)
        async with self._connection() as conn:
            await queue.reap(conn)
            jobs = await queue.claim(
                conn, worker_id=worker.worker_id, limit=batch_size, lease_seconds=worker.options.lease_seconds
            )
        if not jobs:
            return 0
        return await worker.process_batch(jobs)

    # ------------------------------------------------------------------ queue admin

    async def job_stats(self, *, user_id: str | None = None, agent_id: str | None = None) -> JobStats:
        """Queue figures: across all tenants, or for one user (and agent)."""
        if user_id is None and agent_id is not None:
            raise InvalidInputError("agent_id needs user_id")
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        if agent_id is not None:
            agent_id = check_id(agent_id, "agent_id")
        async with self._connection() as conn:
            return await queue.stats(conn, user_id=user_id, agent_id=agent_id)

    async def retry_failed_jobs(self, *, user_id: str | None = None, agent_id: str | None = None) -> int:
        """Re-queue failed jobs (all, or one user's/scope's) with fresh attempts; returns how many."""
        if user_id is None and agent_id is not None:
            raise InvalidInputError("agent_id needs user_id")
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        if agent_id is not None:
            agent_id = check_id(agent_id, "agent_id")
        async with self._connection() as conn:
            return await queue.retry_failed(conn, user_id=user_id, agent_id=agent_id)

    async def get_job(self, job_id: int, *, agent_id: str, user_id: str) -> Job:
        """One job of the caller's scope; ``NotFoundError`` otherwise."""
        user_id, agent_id = check_scope(user_id, agent_id)
        job_id = _check_job_id(job_id)
        async with self._connection() as conn:
            job = await queue.get_job(conn, user_id=user_id, agent_id=agent_id, job_id=job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id} in this scope")
        return job

    async def list_jobs(
        self, *, agent_id: str, user_id: str, state: str | None = None, limit: int = 100
    ) -> list[Job]:
        """The scope's jobs, newest first."""
        user_id, agent_id = check_scope(user_id, agent_id)
        if state is not None and state not in JOB_STATES:
            raise InvalidInputError(f"state must be one of {JOB_STATES} or None")
        limit = check_positive_int(limit, "limit", maximum=10_000)
        async with self._connection() as conn:
            return await queue.list_jobs(conn, user_id=user_id, agent_id=agent_id, state=state, limit=limit)

    async def cancel_job(self, job_id: int, *, agent_id: str, user_id: str) -> Job:
        """Cancel a queued job.  Running and finished jobs are refused with ``InvalidInputError``."""
        user_id, agent_id = check_scope(user_id, agent_id)
        job_id = _check_job_id(job_id)
        async with self._transaction() as conn:
            job = await queue.cancel(conn, user_id=user_id, agent_id=agent_id, job_id=job_id)
            if job is None:
                existing = await queue.get_job(conn, user_id=user_id, agent_id=agent_id, job_id=job_id)
                if existing is None:
                    raise NotFoundError(f"no job {job_id} in this scope")
                raise InvalidInputError(
                    f"job {job_id} is {existing.state}; only queued jobs can be cancelled"
                )
        return job

    # ------------------------------------------------------------------ checkpoints

    async def _require_task(
        self, conn: asyncpg.Connection, task_id: str, user_id: str, agent_id: str
    ) -> None:
        if not await check_task_owner(conn, task_id, user_id, agent_id):
            raise NotFoundError(f"no task {task_id!r} in this scope")

    async def latest_checkpoint(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint | None:
        """The task's newest checkpoint, or None if it has none yet."""
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        async with self._connection() as conn:
            await self._require_task(conn, task_id, user_id, agent_id)
            row = await derive.latest_checkpoint_row(
                conn, user_id=user_id, agent_id=agent_id, task_id=task_id
            )
        return derive.checkpoint_from_row(row) if row else None

    async def checkpoint(self, task_id: str, *, agent_id: str, user_id: str) -> Checkpoint:
        """Summarise the task now (the extractor's ``summarize``) and store a checkpoint.

        With no new events since the latest checkpoint, that checkpoint is returned.
        The extractor is called with no transaction open.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        task_id = check_id(task_id, "task_id")
        extractor = self.get_extractor()
        limit = self.worker_options.checkpoint_max_events
        async with self._connection() as conn:
            await self._require_task(conn, task_id, user_id, agent_id)
            previous = await derive.latest_checkpoint_row(
                conn, user_id=user_id, agent_id=agent_id, task_id=task_id
            )
            through = previous["through_event_id"] if previous else 0
            events = [
                e
                for e in await recent_task_events(
                    conn, user_id=user_id, agent_id=agent_id, task_id=task_id, limit=limit
                )
                if e.event_id > through
            ]
            turns = await derive.task_turn_count(conn, user_id=user_id, agent_id=agent_id, task_id=task_id)
        if not events:
            if previous is not None:
                return derive.checkpoint_from_row(previous)
            raise InvalidInputError(f"task {task_id!r} has no events to summarise")
        usable = [e for e in events if not e.redacted]
        from ..interfaces import CheckpointRequest

        summary = derive.check_summary(
            await extractor.summarize(
                CheckpointRequest(
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    events=derive.to_source_events(usable),
                    previous_summary=previous["summary"] if previous else None,
                    policy=self.policy,
                )
            )
        )
        async with self._transaction() as conn:
            if (
                await derive.task_turn_count(
                    conn, user_id=user_id, agent_id=agent_id, task_id=task_id, lock=True
                )
                is None
            ):
                raise NotFoundError(f"task {task_id!r} was purged")
            return await derive.insert_checkpoint(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                task_id=task_id,
                summary=summary,
                through_event_id=events[-1].event_id,
                turn_count=turns or 0,
            )

    # ------------------------------------------------------------------ lineage

    async def lineage(self, fact_id: int, *, agent_id: str, user_id: str) -> Lineage:
        """A fact's versions (oldest first) and the events and spans each came from."""
        from ..facts import fetch_facts

        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = check_row_id(fact_id, "fact_id")
        async with self._connection() as conn:
            rows = await conn.fetch(_LINEAGE, user_id, agent_id, fact_id)
            if not rows:
                raise NotFoundError(f"no fact {fact_id} in this scope")
            depth = {r["fact_id"]: r["depth"] for r in rows}
            facts = await fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=list(depth))
        nodes = sorted(
            (LineageNode(fact=f, depth=depth[f.fact_id], sources=f.sources) for f in facts),
            key=lambda n: n.depth,
        )
        return Lineage(fact_id=fact_id, nodes=tuple(nodes))
