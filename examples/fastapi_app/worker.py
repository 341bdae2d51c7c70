"""The memory worker, deployed as its own process (or container) next to the API.

    python -m examples.fastapi_app.worker

It runs until SIGTERM or SIGINT and then finishes or releases its claimed jobs.
`engram worker` does the same from the command line.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os

from engram import Engram


async def main() -> None:
    async with Engram(memory_policy=os.environ.get("ENGRAM_POLICY", "default")) as engram:
        await engram.run_memory_worker(
            batch_size=int(os.environ.get("ENGRAM_WORKER_BATCH", "20")),
            interval_seconds=float(os.environ.get("ENGRAM_WORKER_INTERVAL", "1.0")),
        )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main())
    # Skip the interpreter's exit-time garbage collections: with a local model
    # loaded they took seconds between SIGTERM and exit (see `engram worker`).
    gc.freeze()
