"""Memory-worker throughput.  Prints figures; asserts nothing.

1. End to end (enqueue → facts): record N turns, then run 1 or 2 worker
   *processes* (``engram worker``) with the rules extractor and the local MiniLM
   embedder until the queue is empty; events/s = 2N / wall time.
2. Queue only: claim + fenced complete of M empty jobs, batch 50, in one process.

Uses its own embedded PostgreSQL under a temporary ENGRAM_HOME (the MiniLM
embedding space differs from the tests' hashing space), or ENGRAM_DATABASE_URL
if set (point it at a scratch database).

    python benchmarks/worker.py [--turns 600] [--queue-jobs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TEXTS = [
    "I prefer dark mode in every editor.",
    "My favourite language is Rust, but at work we use Python.",
    "We decided to deploy on Fridays only after the smoke tests pass.",
    "I live in Lisbon and work remotely for a Berlin company.",
    "Please always answer in British English.",
    "The staging database is called pg-stage-3.",
    "I'm allergic to peanuts.",
    "Let's use PostgreSQL 18 for the new service.",
]


async def seed(dsn: str, turns: int) -> str:
    from engram import Engram

    user = f"bench-{uuid.uuid4().hex[:8]}"
    async with Engram(dsn, embedder="sentence-transformers") as e:
        for i in range(turns):
            await e.record_turn(
                f"{user}-task-{i % 20}",
                user_message=f"{TEXTS[i % len(TEXTS)]} (note {i})",
                assistant_response=f"Understood, noted item {i}.",
                user_id=user,
                agent_id="bench",
            )
    return user


async def wait_empty(dsn: str, user: str) -> tuple[float, int]:
    """Wait until the scope's queue is empty; returns (time of the first success, jobs done by then)."""
    from engram import Engram

    first: tuple[float, int] | None = None
    async with Engram(dsn, embedder="sentence-transformers") as e:
        while True:
            s = await e.job_stats(user_id=user)
            if first is None and s.succeeded:
                first = (time.perf_counter(), s.succeeded)
            if s.queued == 0 and s.running == 0:
                assert first is not None
                return first
            await asyncio.sleep(0.05)


def end_to_end(dsn: str, turns: int, workers: int, home: str) -> None:
    user = asyncio.run(seed(dsn, turns))
    env = {**os.environ, "ENGRAM_HOME": home, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "engram.cli",
        "worker",
        "--dsn",
        dsn,
        "--extractor",
        "rules",
        "--embedder",
        "sentence-transformers",
        "--batch-size",
        "50",
        "--interval",
        "0.05",
    ]
    # Let the workers load the model before timing (one warm-up turn each).
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL) for _ in range(workers)]
    try:
        start = time.perf_counter()
        warm_at, warm_jobs = asyncio.run(wait_empty(dsn, user))
        end = time.perf_counter()
        elapsed = end - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)

    async def facts() -> int:
        from engram import Engram

        async with Engram(dsn, embedder="sentence-transformers") as e, e._rt.connection() as conn:
            n: int = await conn.fetchval("SELECT count(*) FROM facts WHERE user_id = $1", user)
            return n

    async def jobs_total() -> int:
        from engram import Engram

        async with Engram(dsn, embedder="sentence-transformers") as e:
            return (await e.job_stats(user_id=user)).succeeded

    total = asyncio.run(jobs_total())
    events_per_job = 2 * turns / total  # checkpoint jobs carry no new events
    steady = (total - warm_jobs) * events_per_job / max(end - warm_at, 1e-9)
    print(
        f"end to end, {workers} worker process(es): {2 * turns} events, {total} jobs in {elapsed:.1f}s "
        f"incl. start-up and model load -> {2 * turns / elapsed:.0f} events/s; "
        f"after the first job: {steady:.0f} events/s; {asyncio.run(facts())} facts"
    )


async def queue_only(dsn: str, jobs: int) -> None:
    from engram import Engram
    from engram.jobs import store as queue

    user = f"qbench-{uuid.uuid4().hex[:8]}"
    async with Engram(dsn, embedder="sentence-transformers") as e, e._rt.connection() as conn:
        await conn.execute(
            """INSERT INTO memory_jobs (user_id, agent_id, kind, payload)
               SELECT $1, 'bench', 'derive', '{}'::jsonb FROM generate_series(1, $2)""",
            user,
            jobs,
        )
        done = 0
        start = time.perf_counter()
        while done < jobs:
            claimed = await queue.claim(conn, worker_id="bench", limit=50, lease_seconds=60)
            if not claimed:
                break
            for job in claimed:
                await queue.complete(conn, job, None)  # autocommit: one fenced UPDATE per job
            done += len(claimed)
        elapsed = time.perf_counter() - start
    print(
        f"queue only: claim(50) + fenced complete: {done} jobs in {elapsed:.2f}s -> {done / elapsed:.0f} jobs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=600)
    parser.add_argument("--queue-jobs", type=int, default=20_000)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="engram-bench-")
    dsn = os.environ.get("ENGRAM_DATABASE_URL")
    stop_home = None
    if not dsn:
        from engram.db.embedded import embedded_dsn

        dsn = embedded_dsn(Path(home), keep_running=True)
        stop_home = Path(home)
    try:
        print(f"cpus: {os.cpu_count()}")
        for workers in (1, 2):
            end_to_end(dsn, args.turns, workers, home)
        asyncio.run(queue_only(dsn, args.queue_jobs))
    finally:
        if stop_home is not None:
            from engram.db.embedded import stop_embedded

            stop_embedded(stop_home)


if __name__ == "__main__":
    main()
