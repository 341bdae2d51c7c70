"""The job queue service (enqueueing inside callers' transactions) and the
client-facing queue calls (workers, stats, retry, cancel)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

from ..errors import InvalidInputError, NotFoundError
from ..validation import check_id, check_positive_int, check_row_id, check_scope
from . import store
from .handlers import HandlerRegistry, JobHandler
from .models import Job, JobStats, WorkerOptions
from .reconcile import Thresholds
from .worker import MemoryWorker

if TYPE_CHECKING:
    from ..runtime import Runtime

MAX_BATCH_SIZE = 1000
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


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


class JobQueue:
    """Enqueueing, called by other capabilities inside their own transactions,
    and the registry of handlers the worker dispatches job kinds through."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.handlers = HandlerRegistry()
        #: Queue and worker tunables; assign a new ``WorkerOptions`` to change them.
        self.worker_options = WorkerOptions()
        #: Reconciliation cut-offs (cosine similarity in the embedding space).
        self.reconcile_thresholds = Thresholds()
        #: Send a NOTIFY with each enqueue so LISTENing workers wake at once.  Only a
        #: hint (workers poll anyway); NOTIFY itself is PgBouncer-safe.
        self.notify_workers = True

    def register(self, handler: JobHandler) -> None:
        """Make the worker run jobs of ``handler.kind`` with ``handler``."""
        self.handlers.register(handler)

    async def enqueue_derivation(
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
        job_id, _ = await store.enqueue(
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
        every = self._rt.policy.checkpoint_every_turns
        if every and turn_count > 0 and turn_count % every == 0:
            # Lower priority: fresh facts matter more to the next recall than a summary.
            await store.enqueue(
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

    async def enqueue_chunk_embedding(
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
        job_id, _ = await store.enqueue(
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


class JobsService:
    """Client-facing queue calls: run workers, inspect, retry and cancel jobs."""

    def __init__(self, rt: Runtime, queue: JobQueue) -> None:
        self._rt = rt
        self._queue = queue

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
            self._rt,
            self._queue,
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
        await self._rt.ready()
        return await worker.run()

    async def process_jobs(self, batch_size: int = 20) -> int:
        """Re-queue expired leases, then claim and process one batch; returns how many succeeded."""
        batch_size = _check_batch_size(batch_size)
        worker = MemoryWorker(self._rt, self._queue, batch_size=batch_size)
        async with self._rt.connection() as conn:
            await store.reap(conn)
            jobs = await store.claim(
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
        async with self._rt.connection() as conn:
            return await store.stats(conn, user_id=user_id, agent_id=agent_id)

    async def retry_failed_jobs(self, *, user_id: str | None = None, agent_id: str | None = None) -> int:
        """Re-queue failed jobs (all, or one user's/scope's) with fresh attempts; returns how many."""
        if user_id is None and agent_id is not None:
            raise InvalidInputError("agent_id needs user_id")
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        if agent_id is not None:
            agent_id = check_id(agent_id, "agent_id")
        async with self._rt.connection() as conn:
            return await store.retry_failed(conn, user_id=user_id, agent_id=agent_id)

    async def get_job(self, job_id: int, *, agent_id: str, user_id: str) -> Job:
        """One job of the caller's scope; ``NotFoundError`` otherwise."""
        user_id, agent_id = check_scope(user_id, agent_id)
        job_id = _check_job_id(job_id)
        async with self._rt.connection() as conn:
            job = await store.get_job(conn, user_id=user_id, agent_id=agent_id, job_id=job_id)
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
        async with self._rt.connection() as conn:
            return await store.list_jobs(conn, user_id=user_id, agent_id=agent_id, state=state, limit=limit)

    async def cancel_job(self, job_id: int, *, agent_id: str, user_id: str) -> Job:
        """Cancel a queued job.  Running and finished jobs are refused with ``InvalidInputError``."""
        user_id, agent_id = check_scope(user_id, agent_id)
        job_id = _check_job_id(job_id)
        async with self._rt.transaction() as conn:
            job = await store.cancel(conn, user_id=user_id, agent_id=agent_id, job_id=job_id)
            if job is None:
                existing = await store.get_job(conn, user_id=user_id, agent_id=agent_id, job_id=job_id)
                if existing is None:
                    raise NotFoundError(f"no job {job_id} in this scope")
                raise InvalidInputError(
                    f"job {job_id} is {existing.state}; only queued jobs can be cancelled"
                )
        return job
