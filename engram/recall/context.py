"""``RecallContext``: what a strategy receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from ..policy import MemoryPolicy

if TYPE_CHECKING:
    from ..facts import EmbeddingSpace


@dataclass
class RecallContext:
    """One recall's inputs.  Strategies read it; they must filter every query by
    ``user_id`` and ``agent_id`` and should use ``conn`` (one connection per recall)."""

    client: Any
    conn: asyncpg.Connection
    query: str
    user_id: str
    agent_id: str
    task_id: str | None
    policy: MemoryPolicy
    intent: str
    limit: int  # items wanted in the final context
    candidates: int  # how many each strategy should propose
    terms: list[str]
    identifiers: list[str]
    space: EmbeddingSpace
    #: More than ~1,000 facts, events or chunks: strategies may trade exhaustive
    #: fallbacks for bounded work.
    large_scope: bool = False
    _embedding: asyncio.Task[list[float]] | None = field(default=None, repr=False)
    embedding_ms: float = 0.0
    #: Scratch space shared by strategies within one recall (e.g. lineage reads
    #: the fact ids the fact strategies found).
    cache: dict[str, Any] = field(default_factory=dict)

    async def query_embedding(self) -> list[float]:
        """The query's vector (computed once, concurrently with keyword strategies)."""
        assert self._embedding is not None
        return await self._embedding
