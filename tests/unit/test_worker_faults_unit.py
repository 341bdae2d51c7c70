"""Faults: lost connections, lost leases, SIGKILL, SIGTERM, and 8 workers racing over 20k jobs."""

from __future__ import annotations

from engram import Engram, WorkerOptions


def test_engram_instances_share_worker_options_default() -> None:
    assert Engram.worker_options == WorkerOptions()
