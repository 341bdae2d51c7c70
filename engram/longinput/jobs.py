"""The ``embed_chunks`` job: embed a recorded document's chunks in the worker.

``record_long_input`` enqueues one such job per new document (in its own
transaction).  The handler does its work in ``prepare``: embedding writes its own
short, idempotent transactions (:meth:`LongInputService.embed_pending_chunks`), so a
retried job only redoes what is still missing.  ``write`` then only reports the
count; the worker fences the lease and completes the job in that transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from ..jobs.handlers import JobWork

if TYPE_CHECKING:
    from ..facts.models import Fact
    from ..jobs.models import Job
    from .api import LongInputService

__all__ = ["EmbedChunksHandler", "EmbedChunksWork"]


@dataclass
class EmbedChunksWork(JobWork):
    """An ``embed_chunks`` job after ``prepare``: how many chunks it embedded."""

    chunks_embedded: int = 0


class EmbedChunksHandler:
    """Runs ``embed_chunks`` jobs through :meth:`LongInputService.embed_pending_chunks`."""

    kind = "embed_chunks"

    def __init__(self, service: LongInputService) -> None:
        self._service = service

    async def prepare(self, job: Job) -> JobWork:
        """Embed the job's pending chunks (in short transactions of their own).

        A failure is kept on the work (``error``) for the worker to retry or fail
        the job; cancellation propagates.
        """
        work = EmbedChunksWork(job)
        try:
            work.chunks_embedded = await self._service.embed_pending_chunks(
                user_id=job.user_id,
                agent_id=job.agent_id,
                long_input_id=str(job.payload.get("long_input_id", "")) or None,
            )
        except Exception as exc:
            work.error = exc
        return work

    def embedding_texts(self, work: JobWork) -> list[str]:
        return []

    def attach_embeddings(self, work: JobWork, vectors: Sequence[Sequence[float]]) -> None:
        pass

    async def write(self, conn: asyncpg.Connection, work: JobWork) -> tuple[dict[str, Any], list[Fact]]:
        if not isinstance(work, EmbedChunksWork):
            raise TypeError(f"{self.kind} handler given {type(work).__name__}, not EmbedChunksWork")
        return {"chunks_embedded": work.chunks_embedded}, []
