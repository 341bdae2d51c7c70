"""Semantic memory: facts, supersession, slots and lineage."""

from .models import Fact, FactSource, Lineage, LineageNode

__all__ = ["Fact", "FactSource", "Lineage", "LineageNode"]
