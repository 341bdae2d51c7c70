"""The memory_jobs queue: enqueue in the write transaction, dedupe, claim, fencing, retries, reaper, CLI."""

from __future__ import annotations

import random

import pytest

from engram import WorkerOptions
from engram.jobs import store as queue


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        values = [queue.backoff_seconds(attempt, base=2.0, cap=60.0, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= v <= ceiling for v in values)
        assert len(set(values)) > 1  # jittered
    assert queue.backoff_seconds(10_000, base=2.0, cap=60.0) <= 60.0


def test_worker_options_validate() -> None:
    assert WorkerOptions().heartbeat_interval == pytest.approx(100.0)
    with pytest.raises(ValueError):
        WorkerOptions(lease_seconds=5, heartbeat_seconds=10)
    with pytest.raises(ValueError):
        WorkerOptions(max_attempts=0)


# --------------------------------------------------------------------------- CLI
