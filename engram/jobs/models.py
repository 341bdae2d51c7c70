"""Public models of the memory worker: jobs, queue statistics, checkpoints, lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from ..models import EngramModel

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: Built-in kinds are "derive", "checkpoint" and "embed_chunks"; each has a handler
#: registered with the worker (see :mod:`engram.jobs.handlers`).
JobKind = str


class JobError(EngramModel):
    """One entry of a job's error history."""

    attempt: int
    at: datetime | None = None
    kind: str = "error"  # "error" | "rate_limited" | "lease_expired"
    error: str
    worker: str | None = None


class Job(EngramModel):
    """One row of ``memory_jobs``."""

    job_id: int
    user_id: str
    agent_id: str
    kind: JobKind
    task_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    state: JobState
    priority: int = 0
    attempts: int
    max_attempts: int
    run_at: datetime
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    dedupe_key: str | None = None
    last_error: str | None = None
    errors: tuple[JobError, ...] = ()
    result: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobStats(EngramModel):
    """Queue figures, as ``engram jobs`` prints them."""

    queued: int = 0
    #: Queued jobs whose run_at has come (the rest wait for a backoff or a snooze).
    due: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    #: Seconds since the oldest queued job was created; None when nothing is queued.
    oldest_pending_age_seconds: float | None = None
    #: Running jobs whose lease has expired (the reaper will re-queue them).
    expired_leases: int = 0

    @property
    def pending(self) -> int:
        return self.queued


class WorkerOptions(EngramModel):
    """Tunables of the queue and the worker loop.

    Set ``engram.worker_options = WorkerOptions(...)`` before running a worker.
    """

    model_config = ConfigDict(extra="forbid")

    lease_seconds: float = Field(default=300.0, gt=0, le=86_400)
    #: How often a worker extends the leases of the jobs it holds; default lease/3.
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=1000)
    backoff_base_seconds: float = Field(default=2.0, ge=0)
    backoff_max_seconds: float = Field(default=600.0, ge=0)
    #: A Retry-After longer than this is capped (a provider asking for a day is wrong).
    max_snooze_seconds: float = Field(default=3600.0, gt=0)
    #: Extractor calls in flight per worker (hosted models are I/O-bound).
    extract_concurrency: int = Field(default=4, ge=1, le=256)
    reap_every_seconds: float = Field(default=15.0, gt=0)
    #: Events handed to the extractor's summarize() for one checkpoint, newest kept.
    checkpoint_max_events: int = Field(default=400, ge=1, le=100_000)
    #: LISTEN for enqueue notifications on a direct connection (never via PgBouncer).
    listen: bool = True

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds if self.heartbeat_seconds is not None else self.lease_seconds / 3

    @model_validator(mode="after")
    def _check(self) -> WorkerOptions:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds")
        return self


class DerivationResult(EngramModel):
    """What one derive job did (stored in ``memory_jobs.result``)."""

    added: tuple[int, ...] = ()
    superseded: tuple[int, ...] = ()
    duplicates: int = 0
    stale: int = 0
    dropped: int = 0
    skipped_events: int = 0
    event_vectors: int = 0
