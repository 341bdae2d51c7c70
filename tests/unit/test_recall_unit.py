"""recall / trace_recall: strategies, routing, pinned slots, budgets, traces, bad input."""

from __future__ import annotations

import pytest

from engram import (
    ConfigurationError,
    Engram,
    MemoryPolicy,
)
from engram.policy import RecallSettings


def test_weights_for_unknown_strategies_are_refused() -> None:
    policy = MemoryPolicy(name="typo", recall=RecallSettings(weights={"facts_vectr": 1.0}))
    with pytest.raises(ConfigurationError, match="facts_vectr"):
        Engram("postgresql://unused", memory_policy=policy)
