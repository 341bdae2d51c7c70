"""Memory jobs: the ``memory_jobs`` queue, the worker loop, and the job handlers.

API processes only append events and enqueue jobs (in the same transaction);
workers (``engram worker`` or ``await engram.run_memory_worker()``) claim jobs,
run each through the handler registered for its kind (extractor and embedder
outside any transaction), then write and complete it in one transaction.
"""

from __future__ import annotations

from .models import DerivationResult, Job, JobError, JobStats, WorkerOptions

__all__ = ["DerivationResult", "Job", "JobError", "JobStats", "WorkerOptions"]
