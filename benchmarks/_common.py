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
