"""``Engram``: the public client, assembled from one mixin per capability."""

from __future__ import annotations

from .facts import FactsAPI
from .jobs.api import JobsAPI
from .ledger import LedgerAPI
from .longinput import LongInputAPI
from .privacy import PrivacyAPI
from .recall.api import RecallAPI


class Engram(LedgerAPI, RecallAPI, FactsAPI, PrivacyAPI, JobsAPI, LongInputAPI):
    """Long-term memory for LLM agents on PostgreSQL.

    ``Engram(dsn=None, *, memory_policy="default", embedder=None, extractor=None)``.
    With no ``dsn`` and no ``ENGRAM_DATABASE_URL`` an embedded PostgreSQL is
    started (or reused) under ``ENGRAM_HOME``.  Use ``async with Engram() as m``
    or ``await m.connect()`` / ``await m.close()``; calls connect lazily too.
    """


async def connect(dsn: str | None = None, **kwargs: object) -> Engram:
    """Create a client and connect it: ``engram = await engram.connect()``."""
    client = Engram(dsn, **kwargs)  # type: ignore[arg-type]
    return await client.connect()
