"""All SQL for ``memory_jobs``.

Tenant rule: every statement that reads or writes one tenant's jobs filters by
``user_id``.  Three statements deliberately do not, because a worker serves
every tenant: :func:`claim`, :func:`reap` (and :func:`prune`) and :func:`stats`
without a scope.  They are why ``memory_jobs`` stays a coordinator-local table
on Citus (``FOR UPDATE SKIP LOCKED`` works only within one node).

State machine::

    queued --claim--> running --complete--> succeeded
       ^                 |  \\--fail (last attempt)--> failed --retry_failed--> queued
       |                 |--fail (backoff) / snooze / release / reaper--> queued
    cancelled <--cancel--'(queued only)

Completion, failure, snooze, release and heartbeat are *fenced*: they match
``job_id``, ``lease_owner`` and ``attempts`` of the claim, and ``state =
'running'``.  A worker whose lease expired and whose job was claimed again gets
0 rows back and must drop its result.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from .models import Job, JobStats

#: Channel a direct-connection worker may LISTEN on.  Only a hint: workers poll.
NOTIFY_CHANNEL = "engram_memory_jobs"
#: The error history keeps this many entries (snoozes do not spend attempts, so
#: an unbounded history could grow without limit under a long rate limit).
MAX_ERROR_HISTORY = 20
MAX_ERROR_CHARS = 2_000

# Queue transitions (and the derivation writes that commit with them) use
# asynchronous commit: a server crash can lose the last fraction of a second of
# them, which only means a job runs again -- its facts are lost in the same
# transaction, so nothing is duplicated -- while every commit stops waiting for
# an fsync (the difference between ~250 and several thousand jobs/s on a
# commodity disk).  The ledger itself is written by record_turn with the
# server's normal, synchronous setting.  set_config(..., true) is transaction-
# local, so this is PgBouncer-safe.
_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"

_JOB_COLUMNS = (
    "job_id, user_id, agent_id, kind, task_id, payload, state, priority, attempts, max_attempts, run_at, "
    "lease_owner, lease_expires_at, dedupe_key, last_error, errors, result, created_at, started_at, finished_at"
)

# Appends one entry to the error history, dropping the oldest beyond the cap.
# $E is substituted with the parameter holding the entry's jsonb.
_APPEND_ERROR = (
    f"(CASE WHEN jsonb_array_length(errors) >= {MAX_ERROR_HISTORY} THEN errors - 0 ELSE errors END) "
    "|| jsonb_build_array($E::jsonb)"
)


def job_from_row(row: asyncpg.Record) -> Job:
    return Job.model_validate(dict(row))


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    Attempt 1 waits ~base, attempt 2 ~2*base, ... capped at ``cap``.  The random
    half spreads retries of jobs that failed together (a provider outage) so
    they do not come back as one thundering herd; the fixed half guarantees a
    minimum pause.
    """
    ceiling: float = min(cap, base * float(2 ** min(max(0, attempt - 1), 60)))
    r: float = (rng or random).random()
    return ceiling / 2 + r * ceiling / 2


def _error_entry(job: Job, error: str, kind: str) -> dict[str, Any]:
    return {
        "attempt": job.attempts,
        "at": datetime.now(UTC).isoformat(),
        "kind": kind,
        "error": error[:MAX_ERROR_CHARS],
        "worker": job.lease_owner,
    }


# --------------------------------------------------------------------------- enqueue


async def enqueue(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    kind: str,
    task_id: str | None,
    payload: dict[str, Any],
    dedupe_key: str | None = None,
    priority: int = 0,
    max_attempts: int = 5,
    delay_seconds: float = 0.0,
    notify: bool = False,
) -> tuple[int, bool]:
    """Insert a job; returns (job_id, created).  A duplicate dedupe_key is a no-op.

    Runs in the caller's transaction, so the job commits with the events it is about.
    """
    job_id = await conn.fetchval(
        """
        INSERT INTO memory_jobs (user_id, agent_id, kind, task_id, payload, dedupe_key, priority, max_attempts,
                                 run_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, now() + make_interval(secs => $9))
        ON CONFLICT (user_id, agent_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
        RETURNING job_id
        """,
        user_id,
        agent_id,
        kind,
        task_id,
        payload,
        dedupe_key,
        priority,
        max_attempts,
        float(delay_seconds),
    )
    if job_id is not None:
        if notify:
            # Delivered at commit, and only if it commits.  NOTIFY passes PgBouncer.
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return int(job_id), True
    existing = await conn.fetchval(
        "SELECT job_id FROM memory_jobs WHERE user_id = $1 AND agent_id = $2 AND dedupe_key = $3",
        user_id,
        agent_id,
        dedupe_key,
    )
    return int(existing), False


# --------------------------------------------------------------------------- claim (cross-tenant)

# The MATERIALIZED CTE makes the row choice happen exactly once: without it the
# planner may inline the sub-select into the UPDATE and re-evaluate it, which
# with SKIP LOCKED can claim more rows than LIMIT or lock rows it then skips.
_CLAIM = f"""
WITH picked AS MATERIALIZED (
    SELECT user_id, job_id FROM memory_jobs
    WHERE state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at, job_id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE memory_jobs j
SET state = 'running', attempts = j.attempts + 1, lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3), heartbeat_at = now(),
    started_at = now(), updated_at = now()
FROM picked, {_ASYNC_COMMIT}
WHERE j.user_id = picked.user_id AND j.job_id = picked.job_id
RETURNING {", ".join("j." + c.strip() for c in _JOB_COLUMNS.split(","))}
"""


async def claim(conn: asyncpg.Connection, *, worker_id: str, limit: int, lease_seconds: float) -> list[Job]:
    """Claim up to ``limit`` due jobs of any tenant.  One statement = one short transaction."""
    rows = await conn.fetch(_CLAIM, worker_id, limit, float(lease_seconds))
    jobs = [job_from_row(r) for r in rows]
    jobs.sort(key=lambda j: (-j.priority, j.job_id))
    return jobs


# --------------------------------------------------------------------------- fenced updates


async def heartbeat(conn: asyncpg.Connection, jobs: Sequence[Job], *, lease_seconds: float) -> set[int]:
    """Extend the leases of ``jobs`` still held; returns the job ids still held."""
    if not jobs:
        return set()
    rows = await conn.fetch(
        f"""
        UPDATE memory_jobs j
        SET lease_expires_at = now() + make_interval(secs => $5), heartbeat_at = now()
        FROM unnest($1::text[], $2::bigint[], $3::int[]) AS h(user_id, job_id, attempts), {_ASYNC_COMMIT}
        WHERE j.user_id = h.user_id AND j.job_id = h.job_id AND j.attempts = h.attempts
          AND j.lease_owner = $4 AND j.state = 'running'
        RETURNING j.job_id
        """,
        [j.user_id for j in jobs],
        [j.job_id for j in jobs],
        [j.attempts for j in jobs],
        jobs[0].lease_owner,
        float(lease_seconds),
    )
    return {r["job_id"] for r in rows}


async def fence(conn: asyncpg.Connection, job: Job) -> bool:
    """Lock our job row inside the caller's transaction; False if the lease was lost.

    Locked, the reaper skips the row, so nobody can take the job over before the
    transaction that writes its results commits or rolls back.
    """
    held = await conn.fetchval(
        """SELECT 1 FROM memory_jobs
           WHERE user_id = $1 AND job_id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'running'
           FOR UPDATE""",
        job.user_id,
        job.job_id,
        job.lease_owner,
        job.attempts,
    )
    return held is not None


async def complete(conn: asyncpg.Connection, job: Job, result: dict[str, Any] | None = None) -> bool:
    """Mark a claimed job succeeded.  False means the lease was lost: roll back."""
    row = await conn.fetchval(
        f"""
        UPDATE memory_jobs
        SET state = 'succeeded', result = $5::jsonb, lease_expires_at = NULL,
            finished_at = clock_timestamp(), updated_at = clock_timestamp()
        FROM {_ASYNC_COMMIT}
        WHERE user_id = $1 AND job_id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'running'
        RETURNING job_id
        """,
        job.user_id,
        job.job_id,
        job.lease_owner,
        job.attempts,
        result,
    )
    return row is not None


async def fail(
    conn: asyncpg.Connection, job: Job, error: str, *, retry_in_seconds: float, kind: str = "error"
) -> str | None:
    """Record a failed attempt: back to ``queued`` after a backoff, or ``failed`` after the last one.

    Returns the new state, or None if the lease was lost.
    """
    state: str | None = await conn.fetchval(
        f"""
        UPDATE memory_jobs
        SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
            run_at = CASE WHEN attempts >= max_attempts THEN run_at
                          ELSE clock_timestamp() + make_interval(secs => $6) END,
            finished_at = CASE WHEN attempts >= max_attempts THEN clock_timestamp() END,
            lease_expires_at = NULL, last_error = $5,
            errors = {_APPEND_ERROR.replace("$E", "$7")}, updated_at = clock_timestamp()
        FROM {_ASYNC_COMMIT}
        WHERE user_id = $1 AND job_id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'running'
        RETURNING state
        """,
        job.user_id,
        job.job_id,
        job.lease_owner,
        job.attempts,
        error[:MAX_ERROR_CHARS],
        float(retry_in_seconds),
        _error_entry(job, error, kind),
    )
    return state


async def snooze(conn: asyncpg.Connection, job: Job, reason: str, *, seconds: float) -> bool:
    """Re-queue at now + ``seconds`` without spending an attempt (a provider's rate limit)."""
    row = await conn.fetchval(
        f"""
        UPDATE memory_jobs
        SET state = 'queued', attempts = attempts - 1, run_at = clock_timestamp() + make_interval(secs => $6),
            lease_expires_at = NULL, last_error = $5,
            errors = {_APPEND_ERROR.replace("$E", "$7")}, updated_at = clock_timestamp()
        FROM {_ASYNC_COMMIT}
        WHERE user_id = $1 AND job_id = $2 AND lease_owner = $3 AND attempts = $4 AND state = 'running'
        RETURNING job_id
        """,
        job.user_id,
        job.job_id,
        job.lease_owner,
        job.attempts,
        reason[:MAX_ERROR_CHARS],
        float(seconds),
        _error_entry(job, reason, "rate_limited"),
    )
    return row is not None


async def release(conn: asyncpg.Connection, jobs: Sequence[Job]) -> int:
    """Give back claimed jobs that were never started (a stopping worker): no attempt spent."""
    if not jobs:
        return 0
    rows = await conn.fetch(
        f"""
        UPDATE memory_jobs j
        SET state = 'queued', attempts = j.attempts - 1, run_at = now(), lease_expires_at = NULL,
            updated_at = clock_timestamp()
        FROM unnest($1::text[], $2::bigint[], $3::int[]) AS h(user_id, job_id, attempts), {_ASYNC_COMMIT}
        WHERE j.user_id = h.user_id AND j.job_id = h.job_id AND j.attempts = h.attempts
          AND j.lease_owner = $4 AND j.state = 'running'
        RETURNING j.job_id
        """,
        [j.user_id for j in jobs],
        [j.job_id for j in jobs],
        [j.attempts for j in jobs],
        jobs[0].lease_owner,
    )
    return len(rows)


# --------------------------------------------------------------------------- maintenance (cross-tenant)


async def reap(conn: asyncpg.Connection, *, limit: int = 1000) -> int:
    """Re-queue running jobs whose lease expired (their worker died or hung).

    The lost attempt counts: a job that kills its worker every time must end up
    ``failed`` rather than take workers down forever.  SKIP LOCKED lets several
    workers reap at once, and skips a job whose owner is committing right now.
    """
    entry = (
        "jsonb_build_object('attempt', j.attempts, 'at', now(), 'kind', 'lease_expired', 'worker', j.lease_owner, "
        "'error', 'lease expired (worker ' || coalesce(j.lease_owner, '?') || ' stopped heartbeating)')"
    )
    rows = await conn.fetch(
        f"""
        WITH expired AS MATERIALIZED (
            SELECT user_id, job_id FROM memory_jobs
            WHERE state = 'running' AND lease_expires_at < now()
            ORDER BY lease_expires_at LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE memory_jobs j
        SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'queued' END,
            finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
            run_at = now(), lease_expires_at = NULL,
            last_error = 'lease expired (worker ' || coalesce(j.lease_owner, '?') || ' stopped heartbeating)',
            errors = (CASE WHEN jsonb_array_length(j.errors) >= {MAX_ERROR_HISTORY} THEN j.errors - 0
                      ELSE j.errors END) || jsonb_build_array({entry}),
            updated_at = now()
        FROM expired
        WHERE j.user_id = expired.user_id AND j.job_id = expired.job_id
        RETURNING j.job_id
        """,
        limit,
    )
    return len(rows)


async def prune(conn: asyncpg.Connection, *, older_than_days: int, limit: int = 5000) -> int:
    """Delete succeeded/cancelled jobs finished more than ``older_than_days`` ago (history retention)."""
    result: str = await conn.execute(
        """
        DELETE FROM memory_jobs j USING (
            SELECT user_id, job_id FROM memory_jobs
            WHERE state IN ('succeeded', 'cancelled') AND finished_at < now() - make_interval(days => $1)
            LIMIT $2 FOR UPDATE SKIP LOCKED
        ) old
        WHERE j.user_id = old.user_id AND j.job_id = old.job_id
        """,
        older_than_days,
        limit,
    )
    return int(result.split()[-1])


async def stats(
    conn: asyncpg.Connection, *, user_id: str | None = None, agent_id: str | None = None
) -> JobStats:
    """Counts per state and the oldest pending age; across tenants unless a scope is given."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
               count(*) FILTER (WHERE state = 'queued' AND run_at <= now()) AS due,
               count(*) FILTER (WHERE state = 'running') AS running,
               count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE state = 'failed') AS failed,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE state = 'running' AND lease_expires_at < now()) AS expired_leases,
               extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'queued'))::float8 AS oldest
        FROM memory_jobs
        WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR agent_id = $2)
        """,
        user_id,
        agent_id,
    )
    assert row is not None
    return JobStats(
        queued=row["queued"],
        due=row["due"],
        running=row["running"],
        succeeded=row["succeeded"],
        failed=row["failed"],
        cancelled=row["cancelled"],
        expired_leases=row["expired_leases"],
        oldest_pending_age_seconds=max(0.0, row["oldest"]) if row["oldest"] is not None else None,
    )


async def retry_failed(
    conn: asyncpg.Connection,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    job_ids: Sequence[int] | None = None,
) -> int:
    """Re-queue failed jobs with a fresh set of attempts; their error history is kept."""
    result: str = await conn.execute(
        """
        UPDATE memory_jobs
        SET state = 'queued', attempts = 0, run_at = now(), lease_owner = NULL, lease_expires_at = NULL,
            finished_at = NULL, updated_at = now()
        WHERE state = 'failed' AND ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR agent_id = $2)
          AND ($3::bigint[] IS NULL OR job_id = ANY($3::bigint[]))
        """,
        user_id,
        agent_id,
        list(job_ids) if job_ids is not None else None,
    )
    return int(result.split()[-1])


# --------------------------------------------------------------------------- per-tenant reads


async def get_job(conn: asyncpg.Connection, *, user_id: str, agent_id: str, job_id: int) -> Job | None:
    row = await conn.fetchrow(
        f"SELECT {_JOB_COLUMNS} FROM memory_jobs WHERE user_id = $1 AND agent_id = $2 AND job_id = $3",
        user_id,
        agent_id,
        job_id,
    )
    return job_from_row(row) if row else None


async def list_jobs(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, state: str | None, limit: int
) -> list[Job]:
    rows = await conn.fetch(
        f"""SELECT {_JOB_COLUMNS} FROM memory_jobs
            WHERE user_id = $1 AND agent_id = $2 AND ($3::text IS NULL OR state = $3)
            ORDER BY job_id DESC LIMIT $4""",
        user_id,
        agent_id,
        state,
        limit,
    )
    return [job_from_row(r) for r in rows]


async def cancel(conn: asyncpg.Connection, *, user_id: str, agent_id: str, job_id: int) -> Job | None:
    """Cancel a queued job (a running one finishes; a finished one stays as it is)."""
    row = await conn.fetchrow(
        f"""UPDATE memory_jobs SET state = 'cancelled', finished_at = now(), updated_at = now()
            WHERE user_id = $1 AND agent_id = $2 AND job_id = $3 AND state = 'queued'
            RETURNING {_JOB_COLUMNS}""",
        user_id,
        agent_id,
        job_id,
    )
    return job_from_row(row) if row else None
