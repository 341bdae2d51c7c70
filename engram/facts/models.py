"""Public models of semantic memory: facts, their sources and their lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from ..models import EngramModel

#: The longest fact text accepted (characters), from callers and extractors alike.
MAX_FACT_CHARS = 4_000


class FactSource(EngramModel):
    """One piece of lineage: the event (and span of it) a fact came from."""

    event_id: int
    span_start: int = 0
    span_end: int = 0
    quote: str = ""


class Fact(EngramModel):
    """A unit of semantic memory."""

    fact_id: int
    user_id: str
    agent_id: str
    content: str
    slot: str | None = None
    category: str | None = None
    confidence: float
    status: str  # "active" | "superseded" | "retracted"
    superseded_by: int | None = None
    origin: str = "api"
    task_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    valid_from: datetime
    valid_to: datetime | None = None
    created_at: datetime
    sources: tuple[FactSource, ...] = ()


class LineageNode(EngramModel):
    """One version of a fact in a supersession chain, with the events it came from."""

    fact: Fact
    #: 0 for the fact asked about; -1, -2 ... for the versions it replaced; 1, 2 ... for later ones.
    depth: int
    sources: tuple[FactSource, ...] = ()


class Lineage(EngramModel):
    """Where a fact came from: its versions (oldest first) and their source spans."""

    fact_id: int
    nodes: tuple[LineageNode, ...]

    @property
    def current(self) -> Fact:
        """The newest version in the chain."""
        return self.nodes[-1].fact

    @property
    def event_ids(self) -> tuple[int, ...]:
        seen: dict[int, None] = {}
        for node in self.nodes:
            for source in node.sources:
                seen.setdefault(source.event_id, None)
        return tuple(seen)
