"""Embedding spaces: which embedder (name and dimension) a database's vectors belong to.

A database has one active embedding space.  Vector columns have no fixed
dimension; each space gets a partial HNSW index over a ``halfvec`` cast of its
dimension on every vector table, so a model change needs no table rewrite and the
index takes half the memory of full-precision vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from ..interfaces import Embedder

#: Tables holding an ``embedding``/``embedding_space`` pair, with their id column.
VECTOR_TABLES: dict[str, str] = {
    "facts": "fact_id",
    "event_vectors": "event_id",
    "long_input_chunks": "chunk_id",
}


@dataclass(frozen=True)
class EmbeddingSpace:
    """The embedder a database's vectors belong to."""

    embedder: str
    dimension: int

    @property
    def name(self) -> str:
        return f"{self.embedder}@{self.dimension}"

    @property
    def literal(self) -> str:
        # Inlined into SQL (never user input) so the planner can match the
        # partial HNSW index's predicate even for generic prepared plans.
        return "'" + self.name.replace("'", "''") + "'"

    def index_name(self, table: str = "facts") -> str:
        return f"{table}_hnsw_" + hashlib.sha256(self.name.encode()).hexdigest()[:12]

    def vector_sql(self, column: str = "embedding") -> str:
        return f"({column}::halfvec({self.dimension}))"


def space_of(embedder: Embedder) -> EmbeddingSpace:
    dim = embedder.dimension
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or dim > 16000:
        raise ConfigurationError(f"embedder {embedder.name!r} reports an invalid dimension {dim!r}")
    return EmbeddingSpace(embedder.name, dim)


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text input format; avoids needing a client-side codec."""
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"
