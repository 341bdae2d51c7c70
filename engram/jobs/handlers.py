"""Job kinds and the handlers that run them.

The worker knows no job kind by name: it looks the kind up in a
:class:`HandlerRegistry` and drives the handler through the same three steps
for every job of a claimed batch:

1. ``prepare(job)`` with no transaction open: read what the job needs and call
   models (an extractor, say).  Returns a :class:`JobWork`.
2. The embedder gets one call for the whole batch: each handler says which texts
   it needs embedded (``embedding_texts``) and receives their vectors
   (``attach_embeddings``).
3. ``write(conn, work)`` inside the job's own transaction, after the worker has
   fenced the job's lease and checked that no redaction or purge of the scope
   committed since the job's inputs were read (:mod:`engram.privacy.fence`; a
   stale job is re-queued to run again on the redacted text); it returns the
   job's JSON result and the facts it stored.  The worker then completes the job
   in the same transaction, so a lost lease rolls everything back and a retry
   never duplicates a write.

Capabilities register their kinds when the client is built: the jobs package
registers ``derive`` and ``checkpoint``, long inputs register ``embed_chunks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import asyncpg

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..facts.models import Fact
    from .models import Job


@dataclass
class JobWork:
    """One claimed job on its way through prepare → embed → write.

    Handlers subclass it for what they carry between the steps.
    """

    job: Job
    error: BaseException | None = None
    #: Nothing left to do (its events were purged, say): complete it as a no-op.
    done: bool = False


@runtime_checkable
class JobHandler(Protocol):
    """Runs one kind of job (see the module docstring for the three steps)."""

    kind: str

    async def prepare(self, job: Job) -> JobWork: ...

    def embedding_texts(self, work: JobWork) -> list[str]: ...

    def attach_embeddings(self, work: JobWork, vectors: Sequence[Sequence[float]]) -> None: ...

    async def write(self, conn: asyncpg.Connection, work: JobWork) -> tuple[dict[str, Any], list[Fact]]: ...


class HandlerRegistry:
    """Job kind → handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, JobHandler] = {}

    def register(self, handler: JobHandler) -> None:
        if not isinstance(handler, JobHandler):
            raise ConfigurationError(f"{handler!r} does not implement the JobHandler protocol")
        if handler.kind in self._handlers:
            raise ConfigurationError(f"a handler for job kind {handler.kind!r} is already registered")
        self._handlers[handler.kind] = handler

    def get(self, kind: str) -> JobHandler | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))
