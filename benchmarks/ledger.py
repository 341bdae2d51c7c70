"""record_turn latency (1 writer) and throughput (8 concurrent writers) on the embedded database.

Targets on a 2-core machine: p50 <= 3 ms, >= 1,000 turns/s.  Also prints which heavy
modules `import engram` pulls in (should be none).  Prints figures; asserts nothing.

    python benchmarks/ledger.py [--turns 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid

from _common import benchmark_database, summary

from engram import Engram


async def single_writer(engram: Engram, n: int) -> list[float]:
    user = f"bench-{uuid.uuid4().hex[:8]}"
    timings = []
    for i in range(n):
        t0 = time.perf_counter()
        await engram.record_turn(
            f"{user}-task-{i % 20}",
            user_message=f"message {i}: please remember that build {i} passed",
            assistant_response="Noted.",
            agent_id="bench",
            user_id=user,
        )
        timings.append((time.perf_counter() - t0) * 1000)
    return timings


async def concurrent_writers(engram: Engram, writers: int, per_writer: int) -> float:
    async def writer(w: int) -> None:
        user = f"bench-{uuid.uuid4().hex[:8]}"
        for i in range(per_writer):
            await engram.record_turn(
                f"{user}-task-{i % 10}",
                user_message=f"writer {w} message {i}",
                assistant_response="ok",
                agent_id="bench",
                user_id=user,
            )

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return writers * per_writer / (time.perf_counter() - t0)


def heavy_imports() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import engram"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    heavy = ("torch", "openai", "anthropic", "langchain", "llama_index", "sentence_transformers")
    return sorted(
        {
            line.rsplit("|", 1)[-1].strip()
            for line in out.splitlines()
            if line.rsplit("|", 1)[-1].strip().split(".")[0] in heavy
        }
    )


async def main(turns: int) -> None:
    with benchmark_database() as dsn:
        async with Engram(dsn, embedder="hashing", max_pool_size=10) as engram:
            await single_writer(engram, 200)  # warm-up: pool, prepared statements
            timings = await single_writer(engram, turns)
            print(f"record_turn, 1 writer ({turns} turns, job enqueued in the same transaction)")
            print("  " + summary(timings))
            for writers in (1, 8):
                rate = await concurrent_writers(engram, writers, max(50, turns // writers))
                print(f"throughput, {writers} concurrent writer(s): {rate:,.0f} turns/s")
    print(f"heavy modules imported by `import engram`: {heavy_imports() or 'none'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=2000)
    asyncio.run(main(parser.parse_args().turns))
