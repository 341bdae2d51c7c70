"""``RecallContext``: everything a recall strategy receives, built-in or plugin.

A strategy reads memory only through the context's scoped readers
(``ctx.facts``, ``ctx.ledger``, ``ctx.checkpoints``, ``ctx.documents``).  They run
on the recall's one read-only connection and every statement they issue is
already filtered by the recall's ``user_id`` and ``agent_id``, so a strategy
cannot reach another tenant's rows by forgetting a filter.  The built-in
strategies use nothing else, so a plugin can do anything they do.

A strategy that needs SQL of its own may use ``ctx.conn`` directly; it must then
filter every statement by ``ctx.user_id`` and ``ctx.agent_id`` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from ..checkpoints import store as checkpoints_store
from ..checkpoints.models import Checkpoint
from ..embeddings.space import EmbeddingSpace
from ..facts import store as facts_store
from ..facts.models import Fact
from ..interfaces import RecallCandidate
from ..ledger import store as ledger_store
from ..ledger.models import Event
from ..longinput import retrieval as longinput_retrieval
from ..models import EngramModel
from ..policy import MemoryPolicy
from ..search.terms import bounded_query_text

Hits = list[tuple[int, float]]


class SourceQuote(EngramModel):
    """A lineage quote behind a fact, from an event that is not redacted."""

    fact_id: int
    event_id: int
    quote: str
    task_id: str
    created_at: datetime


@dataclass(frozen=True)
class Neighbourhood:
    """Where an event sits: its task, and the unredacted events just before and after it."""

    task_id: str
    prev_id: int | None
    next_id: int | None


class FactReader:
    """The recall scope's facts (active ones, unless a method says otherwise)."""

    def __init__(self, ctx: RecallContext) -> None:
        self._ctx = ctx

    async def current_slots(self) -> dict[str, Fact]:
        """Slot name → its current (active) fact."""
        c = self._ctx
        return await facts_store.current_slots(c.conn, user_id=c.user_id, agent_id=c.agent_id)

    async def keyword(self, k: int) -> Hits:
        """(fact_id, score) by IDF-weighted full text over the query, best first."""
        c = self._ctx
        return await facts_store.keyword_facts(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, query=c.search_query, k=k
        )

    async def trigram(self, terms: Sequence[str], k: int) -> Hits:
        """(fact_id, similarity) for fuzzy matches of names and identifiers."""
        c = self._ctx
        return await facts_store.trigram_facts(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, terms=terms, k=k
        )

    async def nearest(self, k: int) -> Hits:
        """(fact_id, cosine) nearest to the query embedding (exact or filtered HNSW)."""
        c = self._ctx
        return await facts_store.nearest_facts(
            c.conn,
            user_id=c.user_id,
            agent_id=c.agent_id,
            space=c.space,
            embedding=await c.query_embedding(),
            k=k,
        )

    async def by_ids(self, fact_ids: Sequence[int]) -> list[Fact]:
        """The facts with these ids (without their sources), in id order."""
        c = self._ctx
        return await facts_store.fetch_facts(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, fact_ids=list(fact_ids), with_sources=False
        )

    async def source_quotes(self, fact_ids: Sequence[int]) -> list[SourceQuote]:
        """Non-empty lineage quotes of these facts, in the order of ``fact_ids``."""
        c = self._ctx
        rows = await facts_store.source_quotes(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, fact_ids=fact_ids
        )
        return [SourceQuote.model_validate(dict(r)) for r in rows]


class LedgerReader:
    """The recall scope's ledger events (redacted ones are never returned as matches)."""

    def __init__(self, ctx: RecallContext) -> None:
        self._ctx = ctx

    async def recent(self, n: int) -> list[Event]:
        """The current task's last ``n`` events, oldest first (empty without a task)."""
        c = self._ctx
        if c.task_id is None or n <= 0:
            return []
        return await ledger_store.recent_task_events(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, task_id=c.task_id, limit=n
        )

    async def keyword(self, k: int) -> Hits:
        """(event_id, score) by IDF-weighted full text over the query, best first."""
        c = self._ctx
        return await ledger_store.keyword_events(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, query=c.search_query, k=k
        )

    async def nearest(self, k: int) -> Hits:
        """(event_id, cosine) of event vectors nearest to the query embedding."""
        c = self._ctx
        return await ledger_store.nearest_events(
            c.conn,
            user_id=c.user_id,
            agent_id=c.agent_id,
            space=c.space,
            embedding=await c.query_embedding(),
            k=k,
        )

    async def similarities(self, event_ids: Sequence[int]) -> dict[int, float]:
        """Exact cosine of these events' vectors to the query embedding (absent: no vector)."""
        c = self._ctx
        if not event_ids:
            return {}
        return await ledger_store.event_similarities(
            c.conn,
            user_id=c.user_id,
            agent_id=c.agent_id,
            space=c.space,
            embedding=await c.query_embedding(),
            event_ids=event_ids,
        )

    async def neighbourhoods(self, event_ids: Sequence[int]) -> dict[int, Neighbourhood]:
        """For each unredacted event: its task and its unredacted neighbours in that task."""
        c = self._ctx
        found = await ledger_store.event_neighbours(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, event_ids=event_ids
        )
        return {i: Neighbourhood(task, prev, nxt) for i, (task, prev, nxt) in found.items()}

    async def by_ids(self, event_ids: Sequence[int]) -> list[Event]:
        """The events with these ids (redacted ones included, flagged), in id order."""
        c = self._ctx
        return await ledger_store.events_by_ids(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, event_ids=event_ids
        )


class CheckpointReader:
    """The current task's checkpoints."""

    def __init__(self, ctx: RecallContext) -> None:
        self._ctx = ctx

    async def latest(self) -> Checkpoint | None:
        """The current task's newest checkpoint (None without a task or checkpoint)."""
        c = self._ctx
        if c.task_id is None:
            return None
        return await checkpoints_store.latest_checkpoint(
            c.conn, user_id=c.user_id, agent_id=c.agent_id, task_id=c.task_id
        )


class DocumentReader:
    """The recall scope's long inputs (documents), chunk by chunk."""

    def __init__(self, ctx: RecallContext) -> None:
        self._ctx = ctx

    async def excerpts(self, k: int) -> list[RecallCandidate]:
        """Long-input chunks for the query (keyword + vector, fused), as labelled excerpts."""
        c = self._ctx
        return await longinput_retrieval.recall_candidates(
            c.conn,
            user_id=c.user_id,
            agent_id=c.agent_id,
            query=c.search_query,
            k=k,
            rrf_k=c.policy.recall.rrf_k,
            space=c.space,
            query_embedding=c.query_embedding,
        )


@dataclass
class RecallContext:
    """One recall's inputs and scoped readers.

    Read memory through ``facts``, ``ledger``, ``checkpoints`` and ``documents``:
    every statement they issue runs on this recall's read-only connection and is
    filtered by its ``user_id`` and ``agent_id``.  Code that uses ``conn``
    directly must add that filter to every statement itself.
    """

    conn: asyncpg.Connection
    query: str
    user_id: str
    agent_id: str
    task_id: str | None
    policy: MemoryPolicy
    intent: str
    limit: int  # items wanted in the final context
    candidates: int  # how many each strategy should propose
    terms: list[str]  # salient query terms, at most MAX_SEARCH_TERMS
    identifiers: list[str]  # name- and identifier-like query terms (for fuzzy matching), bounded
    space: EmbeddingSpace
    #: More than ~1,000 facts, events or chunks: strategies may trade exhaustive
    #: fallbacks for bounded work.
    large_scope: bool = False
    #: Scratch space shared by strategies within one recall (e.g. lineage reads
    #: the fact ids the fact strategies found).
    cache: dict[str, Any] = field(default_factory=dict)
    _embedding: asyncio.Task[list[float]] | None = field(default=None, repr=False)
    #: The text keyword searches receive: ``query`` itself when it is short, else
    #: its most informative words (:func:`engram.search.terms.bounded_query_text`).
    #: A strategy searching by words should use this, not ``query``, so that its
    #: cost is bounded whatever the query's size.  Derived when not given.
    search_query: str = ""

    def __post_init__(self) -> None:
        if not self.search_query:
            self.search_query = bounded_query_text(self.query)
        self.facts = FactReader(self)
        self.ledger = LedgerReader(self)
        self.checkpoints = CheckpointReader(self)
        self.documents = DocumentReader(self)

    async def query_embedding(self) -> list[float]:
        """The query's vector, computed once per recall and concurrently with the
        strategies that run before the first one that needs it."""
        if self._embedding is None:
            raise RuntimeError(
                "this recall computed no query embedding: declare `uses_embedding = True` on the strategy"
            )
        return await self._embedding
