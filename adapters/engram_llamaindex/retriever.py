"""``EngramRetriever``: Engram recall as a LlamaIndex ``BaseRetriever``."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from engram import Engram, RecallItem
from engram.sync import SyncBridge

__all__ = ["EngramRetriever", "item_to_node"]


def item_to_node(item: RecallItem) -> NodeWithScore:
    """A recalled item as a scored ``TextNode`` (the fused recall score is the node's score)."""
    node = TextNode(
        id_=item.key,
        text=item.text,
        metadata={
            "source": item.source,
            "section": item.section,
            "strategy": item.strategy,
            "strategies": list(item.strategies),
            "ids": dict(item.ids),
            "created_at": item.created_at.isoformat() if item.created_at else None,
            "pinned": item.pinned,
        },
        # What the model reads is the memory text, not where it came from.
        excluded_llm_metadata_keys=["source", "section", "strategy", "strategies", "ids", "pinned"],
        excluded_embed_metadata_keys=["source", "section", "strategy", "strategies", "ids", "pinned"],
    )
    return NodeWithScore(node=node, score=item.score)


class EngramRetriever(BaseRetriever):
    """Nodes from Engram ``recall`` for one ``(user_id, agent_id)`` scope.

    ``similarity_top_k`` is recall's ``limit``; ``task_id`` adds a task's recent
    ledger and checkpoint; ``sources`` keeps only items of those sources.
    ``engram`` is a :class:`engram.sync.SyncBridge` (``retrieve`` and
    ``aretrieve`` from anywhere) or an ``Engram`` client (``aretrieve`` on the
    client's loop).  ``aretrieve`` awaits recall; it never blocks the loop.
    """

    def __init__(
        self,
        engram: Engram | SyncBridge,
        *,
        user_id: str,
        agent_id: str,
        similarity_top_k: int = 4,
        task_id: str | None = None,
        memory_policy: Any = None,
        sources: tuple[str, ...] | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self._bridge = SyncBridge.wrap(engram)
        self.user_id = user_id
        self.agent_id = agent_id
        self.similarity_top_k = similarity_top_k
        self.task_id = task_id
        self.memory_policy = memory_policy
        self.sources = sources

    @property
    def bridge(self) -> SyncBridge:
        return self._bridge

    async def _recall(self, query: str) -> list[NodeWithScore]:
        k = self.similarity_top_k
        result = await self._bridge.client.recall(
            query,
            agent_id=self.agent_id,
            user_id=self.user_id,
            task_id=self.task_id,
            limit=k if self.sources is None else min(200, k * 4),
            memory_policy=self.memory_policy,
        )
        items = [i for i in result.items if self.sources is None or i.source in self.sources]
        return [item_to_node(i) for i in items[:k]]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Sync path: recall on the client's loop through the bridge."""
        return self._bridge.run(self._recall(query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Async path: awaits recall (handed to the client's loop when called from another one)."""
        return await self._bridge.arun(self._recall(query_bundle.query_str))
