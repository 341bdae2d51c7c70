"""The memory worker loop: claim a batch, run it, repeat; stop cleanly on a signal.

One :class:`MemoryWorker` per ``run_memory_worker`` call.  Each claimed job goes
to the handler registered for its kind (see :mod:`engram.jobs.handlers`):
``prepare`` calls run concurrently (bounded by ``WorkerOptions.extract_concurrency``)
with no transaction open, the embedder gets one call for the whole batch, and
each job is then written and completed in its own fenced transaction.

Stopping: the first SIGTERM/SIGINT (or ``stop_event``) lets in-flight jobs finish
and releases the claimed jobs that had not started, without spending an attempt;
a second signal cancels in-flight work too, which is then released as well.
Whatever a killed worker held comes back through the reaper once its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from .. import plugins
from ..errors import ExtractionError, RateLimitedError
from ..privacy import fence
from . import store
from .handlers import JobHandler, JobWork
from .models import Job

if TYPE_CHECKING:
    from ..facts.models import Fact
    from ..runtime import Runtime
    from .api import JobQueue

log = logging.getLogger("engram.jobs")

#: Errors that mean "the database went away", not "this job is bad".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # A connection killed mid-protocol can surface as this instead of a clean error.
    asyncpg.InternalClientError,
)

_MIN_IDLE_WAIT = 0.05
#: Longest wait between reconnection attempts while the database is unavailable.
_MAX_RECONNECT_WAIT = 5.0


class _QuietPoolFloor(logging.Filter):
    """Drop asyncpg's "Failed to restore the pool connection floor" tracebacks.

    While the database is down the pool retries its minimum size in the
    background and logs a full traceback each time; the worker already says,
    once, that the database is unavailable.  Other asyncpg records pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, CONNECTION_ERRORS)


_quiet_pool_floor = _QuietPoolFloor()
_quiet_users: set[MemoryWorker] = set()  # the filter stays while any worker runs


def _alive(conn: asyncpg.Connection) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # a pool proxy whose connection the pool already dropped
        return False


class LeaseLost(Exception):
    """The job's lease was taken over by another worker; the result must be dropped."""


def new_worker_id() -> str:
    """host:pid:random — unique per worker run, so fencing never confuses two runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------- signals

_active: set[MemoryWorker] = set()
_installed: list[signal.Signals] = []


def _on_signal(signum: int) -> None:
    log.info("received %s; stopping memory workers", signal.Signals(signum).name)
    for worker in list(_active):
        worker.request_stop(force=worker.stopping)


def _install_signal_handlers(worker: MemoryWorker) -> None:
    _active.add(worker)
    if _installed:
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, _on_signal, int(sig))
            _installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread, or a platform without loop signal support:
            # the caller stops us with stop_event or task cancellation instead.
            pass


def _remove_signal_handlers(worker: MemoryWorker) -> None:
    _active.discard(worker)
    if _active or not _installed:
        return
    loop = asyncio.get_running_loop()
    while _installed:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(_installed.pop())


# --------------------------------------------------------------------------- worker


class MemoryWorker:
    """Processes ``memory_jobs`` for one client."""

    def __init__(
        self,
        rt: Runtime,
        queue: JobQueue,
        *,
        batch_size: int = 20,
        interval_seconds: float = 1.0,
        worker_id: str | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> None:
        self.rt = rt
        self.queue = queue
        self.batch_size = batch_size
        self.interval_seconds = interval_seconds
        self.worker_id = worker_id or new_worker_id()
        self.options = queue.worker_options
        self.stop_event = stop_event or asyncio.Event()
        self.stopping = False
        self._wake = asyncio.Event()
        self._force = False
        self._batch_task: asyncio.Task[int] | None = None
        self._last_reap = 0.0
        self.processed = 0

    # ------------------------------------------------------------------ control

    def request_stop(self, *, force: bool = False) -> None:
        self.stopping = True
        self.stop_event.set()
        self._wake.set()
        if force and self._batch_task is not None and not self._batch_task.done():
            self._force = True
            self._batch_task.cancel()

    # ------------------------------------------------------------------ loop

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Run until stopped; returns the number of jobs that succeeded."""
        if install_signal_handlers:
            _install_signal_handlers(self)
        pool_log = logging.getLogger("asyncpg.pool")
        pool_log.addFilter(_quiet_pool_floor)
        _quiet_users.add(self)
        listener = await self._listen()
        stop_waiter = asyncio.create_task(self.stop_event.wait())
        wait = _MIN_IDLE_WAIT
        unavailable_since: float | None = None
        try:
            log.info("memory worker %s started (batch %d)", self.worker_id, self.batch_size)
            while not self.stop_event.is_set():
                try:
                    await self._maybe_reap()
                    async with self.rt.connection() as conn:
                        jobs = await store.claim(
                            conn,
                            worker_id=self.worker_id,
                            limit=self.batch_size,
                            lease_seconds=self.options.lease_seconds,
                        )
                except CONNECTION_ERRORS as exc:
                    # The server is stopped or restarting (`engram server stop`, a
                    # failover): an expected state, not a bug.  Say so once, without
                    # a traceback, and poll with backoff until it is back.
                    if unavailable_since is None:
                        unavailable_since = time.monotonic()
                        wait = _MIN_IDLE_WAIT
                        log.warning(
                            "memory worker %s: database unavailable (%s); waiting for it to come back",
                            self.worker_id,
                            _describe(exc),
                        )
                    else:
                        log.debug("memory worker %s: database still unavailable (%s)", self.worker_id, exc)
                    await self._idle(stop_waiter, wait)
                    wait = min(_MAX_RECONNECT_WAIT, wait * 2)
                    continue
                if unavailable_since is not None:
                    log.warning(
                        "memory worker %s: database available again after %.1fs; resuming",
                        self.worker_id,
                        time.monotonic() - unavailable_since,
                    )
                    unavailable_since = None
                    wait = _MIN_IDLE_WAIT
                    if listener is not None and not _alive(listener):
                        # The LISTEN connection died with the server: listen again,
                        # or NOTIFYs would never wake this worker early.
                        await self._release(listener)
                        listener = await self._listen()
                if jobs:
                    self._batch_task = asyncio.create_task(self.process_batch(jobs))
                    try:
                        self.processed += await self._batch_task
                    except asyncio.CancelledError:
                        if not self._force:
                            raise  # we ourselves are being cancelled
                    finally:
                        self._batch_task = None
                    wait = _MIN_IDLE_WAIT
                    continue
                # Idle: back off up to interval_seconds; a NOTIFY or stop wakes us early.
                await self._idle(stop_waiter, wait)
                wait = min(max(self.interval_seconds, _MIN_IDLE_WAIT), wait * 2)
        finally:
            stop_waiter.cancel()
            await self._unlisten(listener)
            _quiet_users.discard(self)
            if not _quiet_users:
                pool_log.removeFilter(_quiet_pool_floor)
            if install_signal_handlers:
                _remove_signal_handlers(self)
            log.info("memory worker %s stopped after %d jobs", self.worker_id, self.processed)
        return self.processed

    async def _idle(self, stop_waiter: asyncio.Task[Any], seconds: float) -> None:
        self._wake.clear()
        wake = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({wake, stop_waiter}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()

    async def _maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < self.options.reap_every_seconds:
            return
        self._last_reap = now
        async with self.rt.connection() as conn:
            reaped = await store.reap(conn)
            pruned = await store.prune(conn, older_than_days=self.rt.policy.retention.job_history_days)
        if reaped or pruned:
            log.info("reaper: re-queued %d expired leases, pruned %d old jobs", reaped, pruned)

    async def _listen(self) -> asyncpg.Connection | None:
        """LISTEN on a direct connection as a wake-up hint.  Never through PgBouncer."""
        settings = self.rt.settings
        if not self.options.listen or settings.pgbouncer or settings.max_pool_size < 2:
            return None
        try:
            pool = await self.rt.pool()
            conn: asyncpg.Connection = await pool.acquire()
        except CONNECTION_ERRORS:
            return None
        try:
            await conn.add_listener(store.NOTIFY_CHANNEL, self._on_notify)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            await self._release(conn)
            return None
        return conn

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()

    async def _unlisten(self, conn: asyncpg.Connection | None) -> None:
        if conn is None:
            return
        with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
            await conn.remove_listener(store.NOTIFY_CHANNEL, self._on_notify)
        await self._release(conn)

    async def _release(self, conn: asyncpg.Connection) -> None:
        pool = self.rt.db.pool
        if pool is None:
            with contextlib.suppress(Exception):
                await conn.close()
            return
        with contextlib.suppress(Exception):
            await pool.release(conn)

    # ------------------------------------------------------------------ one batch

    async def process_batch(self, jobs: Sequence[Job]) -> int:
        """Process claimed jobs; returns how many succeeded.  Unfinished ones are released."""
        held: dict[int, Job] = {j.job_id: j for j in jobs}
        started: set[int] = set()
        heartbeat = asyncio.create_task(self._heartbeat(held))
        succeeded = 0
        try:
            sem = asyncio.Semaphore(self.options.extract_concurrency)
            # The redaction fence (engram/privacy/fence.py), for every handler alike:
            # each scope's generation is read before any handler reads its inputs,
            # and checked again in the job's write transaction (see _write).
            generations: dict[tuple[str, str], fence.Generation] = {}
            capture_error: BaseException | None = None
            try:
                async with self.rt.connection() as conn:
                    generations = await fence.capture_many(conn, [(j.user_id, j.agent_id) for j in jobs])
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                capture_error = exc

            async def prepare(job: Job) -> tuple[JobHandler | None, JobWork] | None:
                async with sem:
                    if self.stopping:
                        return None  # never started: released below
                    started.add(job.job_id)
                    handler = self.queue.handlers.get(job.kind)
                    if handler is None:
                        error = ExtractionError(f"no handler is registered for job kind {job.kind!r}")
                        return None, JobWork(job, error=error)
                    if capture_error is not None:
                        return handler, JobWork(job, error=capture_error)
                    try:
                        return handler, await handler.prepare(job)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        return handler, JobWork(job, error=exc)

            prepared = await asyncio.gather(*(prepare(j) for j in jobs))
            unstarted = [j for j in jobs if j.job_id not in started]
            if unstarted:
                await self._give_back(unstarted, held)
            ready = [p for p in prepared if p is not None]
            await self._embed(ready)
            for handler, work in ready:
                if work.job.job_id not in held:
                    continue  # lease lost (heartbeat said so): drop the result
                generation = generations.get((work.job.user_id, work.job.agent_id))
                if await self._finish(handler, work, generation):
                    succeeded += 1
                held.pop(work.job.job_id, None)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if held:
                # Cancelled mid-batch (second signal, task cancel): hand the rest back.
                await asyncio.shield(self._give_back(list(held.values()), held))
        return succeeded

    async def _give_back(self, jobs: Sequence[Job], held: dict[int, Job]) -> None:
        try:
            async with self.rt.connection() as conn:
                released = await store.release(conn, jobs)
            log.info("memory worker %s released %d unstarted jobs", self.worker_id, released)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            log.warning("could not release jobs (%s); the reaper will re-queue them", exc)
        for job in jobs:
            held.pop(job.job_id, None)

    async def _heartbeat(self, held: dict[int, Job]) -> None:
        interval = self.options.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            if not held:
                continue
            try:
                async with self.rt.connection() as conn:
                    alive = await store.heartbeat(
                        conn, list(held.values()), lease_seconds=self.options.lease_seconds
                    )
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                log.warning("heartbeat failed (%s); will retry", exc)
                continue
            for job_id in [j for j in held if j not in alive]:
                log.warning("memory worker %s lost the lease of job %d", self.worker_id, job_id)
                held.pop(job_id, None)

    async def _embed(self, ready: Sequence[tuple[JobHandler | None, JobWork]]) -> None:
        """One embedder call for every text the batch's handlers asked for."""
        wanted: list[tuple[JobHandler, JobWork, list[str]]] = []
        for handler, work in ready:
            if handler is not None and work.error is None:
                texts = handler.embedding_texts(work)
                if texts:
                    wanted.append((handler, work, texts))
        if not wanted:
            return
        texts = [t for _, _, ts in wanted for t in ts]
        try:
            vectors = await self.rt.embedder().embed(texts)
            if len(vectors) != len(texts):
                raise ExtractionError("the embedder returned a different number of vectors than texts")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for _, work, _ in wanted:
                work.error = exc
            return
        pos = 0
        for handler, work, ts in wanted:
            try:
                handler.attach_embeddings(work, vectors[pos : pos + len(ts)])
            except Exception as exc:
                work.error = exc
            pos += len(ts)

    async def _finish(
        self, handler: JobHandler | None, work: JobWork, generation: fence.Generation | None
    ) -> bool:
        """Write (or fail/snooze/release) one job.  True if it succeeded."""
        job = work.job
        if work.error is None and handler is not None and generation is not None:
            try:
                added = await self._write(handler, work, generation)
            except LeaseLost:
                log.warning("job %d: lease lost before commit; result dropped", job.job_id)
                return False
            except fence.InputsChanged as changed:
                log.info(
                    "job %d: its scope was %s after its inputs were read; result dropped, job re-queued",
                    job.job_id,
                    "purged" if changed.freshness == "purged" else "redacted",
                )
                return False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                work.error = exc
            else:
                for fact in added:
                    plugins.notify("fact_derived", fact=fact)
                return True
        # No error and no generation cannot happen (every claimed job's scope is
        # captured); fail the attempt rather than write unfenced.
        error = work.error or ExtractionError(f"job {job.job_id}: its scope's generation was not captured")
        await self._record_failure(job, error)
        return False

    async def _write(self, handler: JobHandler, work: JobWork, generation: fence.Generation) -> list[Fact]:
        """The handler's writes and the job's completion, in one fenced transaction.

        Two fences: the job's lease, and the scope's redaction generation.  A
        redaction or purge that committed since the inputs were read means the
        handler's result may hold removed text: nothing is written, and the job
        goes back to the queue without spending an attempt (like a stopping
        worker's unstarted job), so it runs again on what is left.
        """
        async with self.rt.transaction() as conn:
            # The generation row is locked before the job row: redaction and purge
            # take it first too (and then job rows, which they scrub or delete).
            freshness = await fence.check(conn, generation)
            if not await store.fence(conn, work.job):
                raise LeaseLost(work.job.job_id)
            if freshness == "current":
                result, added = await handler.write(conn, work)
                if not await store.complete(conn, work.job, result):
                    raise LeaseLost(work.job.job_id)
                return added
            await store.release(conn, [work.job])
        raise fence.InputsChanged(freshness)

    async def _record_failure(self, job: Job, error: BaseException) -> None:
        opts = self.options
        try:
            async with self.rt.connection() as conn:
                if isinstance(error, RateLimitedError):
                    delay = error.retry_after
                    if delay is None or delay < 0:
                        delay = store.backoff_seconds(
                            job.attempts, base=opts.backoff_base_seconds, cap=opts.backoff_max_seconds
                        )
                    delay = min(float(delay), opts.max_snooze_seconds)
                    await store.snooze(conn, job, _describe(error), seconds=delay)
                    log.info("job %d rate-limited; snoozed %.1fs", job.job_id, delay)
                    return
                delay = store.backoff_seconds(
                    job.attempts, base=opts.backoff_base_seconds, cap=opts.backoff_max_seconds
                )
                state = await store.fail(conn, job, _describe(error), retry_in_seconds=delay)
            if state == "failed":
                log.error(
                    "job %d failed permanently after %d attempts: %s",
                    job.job_id,
                    job.attempts,
                    _describe(error),
                )
            else:
                log.warning(
                    "job %d attempt %d failed (%s); retry in %.1fs",
                    job.job_id,
                    job.attempts,
                    _describe(error),
                    delay,
                )
        except Exception as exc:
            # Best effort: if even this fails, the lease expires and the reaper
            # re-queues the job; nothing is lost.
            log.warning("could not record the failure of job %d (%s)", job.job_id, exc)
