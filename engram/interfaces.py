"""What plugins implement.

Plugins register *objects* (or factories returning them) through the hooks in
:mod:`engram.hookspecs`.  Hooks themselves stay synchronous, as pluggy requires;
the objects they register expose ``async`` methods where work may block.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import ConfigDict, Field

from .models import EngramModel
from .policy import MemoryPolicy

# --------------------------------------------------------------------------- embedders


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length vectors of a fixed dimension."""

    name: str  # stable identifier recorded in the database, e.g. "sentence-transformers/all-MiniLM-L6-v2"
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed documents (batched).  Must not block the event loop."""
        ...

    async def embed_query(self, text: str) -> list[float]:
        """Embed one query; may differ from documents for asymmetric models."""
        ...


# --------------------------------------------------------------------------- extractors


class SourceEvent(EngramModel):
    """A ledger event handed to an extractor."""

    event_id: int
    task_id: str
    role: str
    content: str
    created_at: datetime | None = None


class SourceSpan(EngramModel):
    """Where in an event a fact came from (character offsets into the event content)."""

    event_id: int
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str


class CandidateFact(EngramModel):
    """A fact an extractor proposes; reconciliation decides whether it is stored."""

    content: str = Field(min_length=1, max_length=2000)
    category: str | None = None
    slot: str | None = None
    confidence: float = Field(default=0.7, ge=0.0, le=1.0)
    source_event_ids: tuple[int, ...] = ()
    spans: tuple[SourceSpan, ...] = ()


class ExtractionRequest(EngramModel):
    """Everything an extractor may use to derive facts from new events."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str
    agent_id: str
    task_id: str
    events: tuple[SourceEvent, ...]
    policy: MemoryPolicy
    #: Current values of the policy's critical slots in this scope.
    current_slots: dict[str, str] = Field(default_factory=dict)


class CheckpointRequest(EngramModel):
    """A task's ledger so far, to be summarised into a checkpoint."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str
    agent_id: str
    task_id: str
    events: tuple[SourceEvent, ...]
    previous_summary: str | None = None
    policy: MemoryPolicy


@runtime_checkable
class Extractor(Protocol):
    """Derives facts and checkpoint summaries from ledger events."""

    name: str

    async def extract(self, request: ExtractionRequest) -> list[CandidateFact]:
        """Return candidate facts.  Raise ``RateLimitedError`` on a provider's 429."""
        ...

    async def summarize(self, request: CheckpointRequest) -> str:
        """Return a short summary of the task so far, for a checkpoint."""
        ...


# --------------------------------------------------------------------------- redactors


class Detection(EngramModel):
    """One sensitive span found by a redactor.  It never carries the secret itself."""

    kind: str  # e.g. "email", "openai_api_key", "payment_card"
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    redactor: str = ""

    @property
    def marker(self) -> str:
        return f"[REDACTED:{self.kind}]"


@runtime_checkable
class Redactor(Protocol):
    """Finds sensitive spans in text."""

    name: str

    def detect(self, text: str) -> list[Detection]: ...


# --------------------------------------------------------------------------- recall strategies


class RecallCandidate(EngramModel):
    """One item a strategy proposes, ranked within its own list."""

    key: str  # de-duplication key, e.g. "fact:12" or "event:99"
    source: str  # "fact" | "event" | "checkpoint" | "chunk" | "slot" | plugin-defined
    section: str  # context-block section the item belongs to
    text: str
    score: float = 0.0
    ids: dict[str, Any] = Field(default_factory=dict)  # e.g. {"fact_id": 12, "event_ids": [3, 4]}
    created_at: datetime | None = None
    pinned: bool = False  # pinned items bypass fusion and are always packed first


@runtime_checkable
class RecallStrategy(Protocol):
    """One retrieval method.  ``run`` receives a :class:`engram.RecallContext`."""

    name: str

    async def run(self, ctx: Any) -> list[RecallCandidate]: ...
