"""Engram: long-term memory for LLM agents on PostgreSQL.

Importing this package is cheap: no model, database driver session or plugin is
loaded until it is used.
"""

from __future__ import annotations

from .client import Engram, connect
from .errors import (
    ConfigurationError,
    EngramError,
    ExtractionError,
    InvalidInputError,
    MigrationError,
    NotFoundError,
    PluginError,
    RateLimitedError,
    ScopeError,
)
from .hookspecs import hookimpl
from .jobs.models import Checkpoint, Job, JobStats, Lineage, LineageNode, WorkerOptions
from .longinput_models import (
    ChunkSummary,
    CitationCheck,
    ContextChunk,
    LongInput,
    LongInputContext,
    LongInputRecord,
)
from .models import Event, Task, TurnRecord
from .policy import CriticalSlot, MemoryPolicy
from .settings import EngramSettings

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "ChunkSummary",
    "CitationCheck",
    "ConfigurationError",
    "ContextChunk",
    "CriticalSlot",
    "Engram",
    "EngramError",
    "EngramSettings",
    "Event",
    "ExtractionError",
    "InvalidInputError",
    "Job",
    "JobStats",
    "Lineage",
    "LineageNode",
    "LongInput",
    "LongInputContext",
    "LongInputRecord",
    "MemoryPolicy",
    "MigrationError",
    "NotFoundError",
    "PluginError",
    "RateLimitedError",
    "ScopeError",
    "Task",
    "TurnRecord",
    "WorkerOptions",
    "__version__",
    "connect",
    "hookimpl",
]
