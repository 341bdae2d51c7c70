"""The memory worker: the ``memory_jobs`` queue, derivation, reconciliation, checkpoints, lineage.

API processes only append events and enqueue jobs (in the same transaction);
workers (``engram worker`` or ``await engram.run_memory_worker()``) claim jobs,
call the extractor and embedder outside any transaction, and write facts with
their lineage and complete the job in one transaction.
"""

from __future__ import annotations

from .models import (
    Checkpoint,
    DerivationResult,
    Job,
    JobError,
    JobStats,
    Lineage,
    LineageNode,
    WorkerOptions,
)

__all__ = [
    "Checkpoint",
    "DerivationResult",
    "Job",
    "JobError",
    "JobStats",
    "Lineage",
    "LineageNode",
    "WorkerOptions",
]
