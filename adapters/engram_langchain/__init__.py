"""LangChain 1.x and LangGraph adapters for Engram (``pip install 'engram-pg[langchain]'``).

* :class:`EngramMemoryMiddleware` -- agent middleware for ``create_agent``: recall
  into the system message before the model, ``record_turn`` after the agent.
* :class:`EngramStore` -- a LangGraph ``BaseStore`` (``create_agent(store=...)``)
  whose items are Engram facts.
* :class:`EngramRetriever` -- Engram recall as a ``BaseRetriever``.

Sync framework calls reach the async client through :class:`engram.sync.SyncBridge`.
"""

from __future__ import annotations

from engram.sync import LoopReentryError, SyncBridge

from .middleware import EngramMemoryMiddleware, EngramMemoryState
from .retriever import EngramRetriever
from .store import EngramStore

__all__ = [
    "EngramMemoryMiddleware",
    "EngramMemoryState",
    "EngramRetriever",
    "EngramStore",
    "LoopReentryError",
    "SyncBridge",
]
