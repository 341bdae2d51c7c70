"""Public models of recall results and traces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from ..models import EngramModel


class RecallItem(EngramModel):
    """One line of the context block, and why it is there."""

    key: str = Field(description="De-duplication key, e.g. 'fact:12', 'event:99', 'chunk:ch_...'.")
    source: str = Field(
        description="'slot', 'fact', 'event', 'checkpoint', 'chunk', 'lineage' or a plugin's."
    )
    section: str = Field(description="The context-block section it was packed into.")
    text: str
    score: float = Field(description="Fused score (weighted reciprocal rank fusion with recency).")
    strategy: str = Field(description="The strategy that ranked it best.")
    strategies: tuple[str, ...] = Field(description="Every strategy that proposed it.")
    ids: dict[str, Any] = Field(
        default_factory=dict, description="Source ids: fact_id, event_ids, chunk_id, ..."
    )
    created_at: datetime | None = None
    pinned: bool = False


class StrategyRun(EngramModel):
    """What one strategy contributed."""

    name: str
    weight: float
    candidates: int
    selected: int = 0
    ms: float
    error: str | None = None


class RecallResult(EngramModel):
    """What ``recall`` returns: the context block and the items in it."""

    query: str
    context: str
    items: tuple[RecallItem, ...]
    token_count: int


class RecallTrace(RecallResult):
    """``trace_recall``'s result: the recall plus the diagnostics behind it."""

    user_id: str
    agent_id: str
    task_id: str | None
    intent: str
    policy: str
    strategies: tuple[StrategyRun, ...]
    token_budget: int
    embedding_ms: float
    total_ms: float
    missing_expected_terms: tuple[str, ...] = Field(
        description="Salient query terms and caller-supplied expected terms that appear nowhere in the context."
    )
