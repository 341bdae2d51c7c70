"""Long inputs: documents stored once, chunked with stable ids, retrieved with citation labels.

``api.LongInputService`` holds the client calls, ``store`` all SQL of ``long_inputs``
and ``long_input_chunks``, ``retrieval`` the hybrid chunk search (also recall's
``long_input`` strategy), ``citations`` the quote checks, ``chunking`` the pure
chunking and quote normalisation, and ``jobs`` the ``embed_chunks`` worker handler.
"""

from .models import (
    ChunkSummary,
    CitationCheck,
    ContextChunk,
    Format,
    LongInput,
    LongInputContext,
    LongInputRecord,
)

__all__ = [
    "ChunkSummary",
    "CitationCheck",
    "ContextChunk",
    "Format",
    "LongInput",
    "LongInputContext",
    "LongInputRecord",
]
