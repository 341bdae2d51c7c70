"""``EngramRetriever``: Engram recall as a LangChain ``BaseRetriever``."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from engram import Engram, RecallItem, RecallResult
from engram.sync import SyncBridge

__all__ = ["EngramRetriever", "item_to_document"]


def item_to_document(item: RecallItem) -> Document:
    """A recalled item as a ``Document``: its text, with where it came from in ``metadata``."""
    return Document(
        page_content=item.text,
        id=item.key,
        metadata={
            "key": item.key,
            "source": item.source,
            "section": item.section,
            "score": item.score,
            "strategy": item.strategy,
            "strategies": list(item.strategies),
            "ids": dict(item.ids),
            "created_at": item.created_at.isoformat() if item.created_at else None,
            "pinned": item.pinned,
        },
    )


class EngramRetriever(BaseRetriever):
    """Documents from Engram ``recall`` for one ``(user_id, agent_id)`` scope.

    ``k`` (constructor or ``invoke(query, k=...)``) is the number of documents:
    recall's ``limit``.  ``task_id`` adds that task's recent ledger and checkpoint
    to the candidates; ``sources`` keeps only items of those sources (``"fact"``,
    ``"slot"``, ``"event"``, ``"checkpoint"``, ``"chunk"``, ``"lineage"``).
    ``engram`` is a :class:`engram.sync.SyncBridge` (sync and async use) or an
    ``Engram`` client (async use on the client's own loop).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engram: Any = Field(description="An engram.sync.SyncBridge or an Engram client.")
    user_id: str
    agent_id: str
    k: int = Field(default=4, ge=1, le=200)
    task_id: str | None = None
    memory_policy: Any = None
    sources: tuple[str, ...] | None = None

    @property
    def bridge(self) -> SyncBridge:
        engram: Engram | SyncBridge = self.engram
        bridge = SyncBridge.wrap(engram)
        if bridge is not engram:
            # Bind a plain client once, to the loop we first see it on.
            object.__setattr__(self, "engram", bridge)
        return bridge

    async def _recall(self, query: str, k: int) -> list[Document]:
        client = self.bridge.client
        result: RecallResult = await client.recall(
            query,
            agent_id=self.agent_id,
            user_id=self.user_id,
            task_id=self.task_id,
            limit=k if self.sources is None else min(200, k * 4),
            memory_policy=self.memory_policy,
        )
        items = [i for i in result.items if self.sources is None or i.source in self.sources]
        return [item_to_document(i) for i in items[:k]]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """Sync path: runs recall on the client's loop through the bridge."""
        return self.bridge.run(self._recall(query, k or self.k))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """Async path: awaits recall on the client's loop (no thread, no new loop)."""
        return await self.bridge.arun(self._recall(query, k or self.k))
