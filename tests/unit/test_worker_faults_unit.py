"""Faults: lost connections, lost leases, SIGKILL, SIGTERM, and 8 workers racing over 20k jobs."""

from __future__ import annotations

from engram import Engram, WorkerOptions


def test_engram_instances_start_with_default_worker_options() -> None:
    # Constructing a client opens nothing, so no database is needed here.
    client = Engram("postgresql://nobody@127.0.0.1:1/none", embedder="hashing")
    assert client.worker_options == WorkerOptions()
    client.worker_options = WorkerOptions(max_attempts=2)
    assert client.worker_options.max_attempts == 2
    assert (
        Engram("postgresql://nobody@127.0.0.1:1/none", embedder="hashing").worker_options == WorkerOptions()
    )


def test_client_tunables_refuse_the_wrong_type() -> None:
    import pytest

    from engram import InvalidInputError
    from engram.jobs.reconcile import Thresholds

    client = Engram("postgresql://nobody@127.0.0.1:1/none", embedder="hashing")
    for name, bad in (
        ("worker_options", {"max_attempts": 2}),
        ("reconcile_thresholds", 0.9),
        ("router", "default"),
    ):
        before = getattr(client, name)
        with pytest.raises(InvalidInputError, match=name):
            setattr(client, name, bad)
        assert getattr(client, name) is before
    client.reconcile_thresholds = Thresholds()
    assert client.reconcile_thresholds == Thresholds()
