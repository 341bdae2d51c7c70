"""Embedding spaces and the guard that keeps one database on one model."""

from .space import EmbeddingSpace, space_of, vector_literal

__all__ = ["EmbeddingSpace", "space_of", "vector_literal"]
