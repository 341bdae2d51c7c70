"""LlamaIndex 0.14 adapters for Engram (``pip install 'engram-pg[llamaindex]'``).

* :class:`EngramRetriever` -- Engram recall as a ``BaseRetriever`` (real ``_aretrieve``).
* :class:`EngramMemoryBlock` -- a ``BaseMemoryBlock[str]`` for ``Memory``.
* :class:`EngramWriteThroughMemory` -- a ``BaseMemory`` that records every message
  to the Engram ledger as soon as it is put.

Sync framework calls reach the async client through :class:`engram.sync.SyncBridge`.
"""

from __future__ import annotations

from engram.sync import LoopReentryError, SyncBridge

from .memory import EngramMemoryBlock, EngramWriteThroughMemory
from .retriever import EngramRetriever

__all__ = [
    "EngramMemoryBlock",
    "EngramRetriever",
    "EngramWriteThroughMemory",
    "LoopReentryError",
    "SyncBridge",
]
