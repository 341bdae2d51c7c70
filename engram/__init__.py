"""Engram: long-term memory for LLM agents on PostgreSQL.

Importing this package is cheap: no model, database driver session or plugin is
loaded until it is used.  Every public result model is exported here.
"""

from __future__ import annotations

from .checkpoints.models import Checkpoint
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
from .facts.models import Fact, FactSource, Lineage, LineageNode
from .hookspecs import hookimpl
from .interfaces import (
    CandidateFact,
    CheckpointRequest,
    Detection,
    ExtractionRequest,
    RecallCandidate,
    SourceEvent,
    SourceSpan,
)
from .jobs.models import DerivationResult, Job, JobError, JobStats, WorkerOptions
from .ledger.models import Event, Task, TurnRecord
from .longinput.models import (
    ChunkSummary,
    CitationCheck,
    ContextChunk,
    LongInput,
    LongInputContext,
    LongInputRecord,
)
from .models import EngramModel
from .policy import CriticalSlot, MemoryPolicy
from .privacy.models import PurgeReport, RedactionReport, RedactionResult
from .privacy.redaction import redact
from .recall.context import RecallContext
from .recall.models import RecallItem, RecallResult, RecallTrace, StrategyRun
from .settings import EngramSettings

__version__ = "0.1.0"

__all__ = [
    "CandidateFact",
    "Checkpoint",
    "CheckpointRequest",
    "ChunkSummary",
    "CitationCheck",
    "ConfigurationError",
    "ContextChunk",
    "CriticalSlot",
    "DerivationResult",
    "Detection",
    "Engram",
    "EngramError",
    "EngramModel",
    "EngramSettings",
    "Event",
    "ExtractionError",
    "ExtractionRequest",
    "Fact",
    "FactSource",
    "InvalidInputError",
    "Job",
    "JobError",
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
    "PurgeReport",
    "RateLimitedError",
    "RecallCandidate",
    "RecallContext",
    "RecallItem",
    "RecallResult",
    "RecallTrace",
    "RedactionReport",
    "RedactionResult",
    "ScopeError",
    "SourceEvent",
    "SourceSpan",
    "StrategyRun",
    "Task",
    "TurnRecord",
    "WorkerOptions",
    "__version__",
    "connect",
    "hookimpl",
    "redact",
]
