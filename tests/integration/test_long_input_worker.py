"""Long-input chunks are embedded by the memory worker, not on the write path."""

from __future__ import annotations

from engram import Engram

CONTRACT = """# Services Agreement

## Termination
Either party may terminate this agreement with sixty (60) days' written notice to the other party.

## Payment
Invoices are due within thirty (30) days. Late payments accrue interest at 1.5% per month.
"""


async def test_record_long_input_queues_chunk_embedding_for_the_worker(
    engram: Engram, scope: dict[str, str]
) -> None:
    task = f"{scope['user_id']}:contract"
    record = await engram.record_long_input(task, CONTRACT, title="MSA", **scope)
    assert record.job_id is not None if hasattr(record, "job_id") else True
    async with engram._rt.connection() as conn:
        missing = await conn.fetchval(
            "SELECT count(*) FROM long_input_chunks WHERE user_id = $1 AND embedding IS NULL",
            scope["user_id"],
        )
        kinds = [
            r["kind"]
            for r in await conn.fetch(
                "SELECT kind FROM memory_jobs WHERE user_id = $1 ORDER BY job_id", scope["user_id"]
            )
        ]
    assert missing == len(record.chunks) > 0
    assert "embed_chunks" in kinds

    while await engram.process_jobs(batch_size=10):
        pass

    async with engram._rt.connection() as conn:
        still_missing = await conn.fetchval(
            "SELECT count(*) FROM long_input_chunks WHERE user_id = $1 AND embedding IS NULL",
            scope["user_id"],
        )
        states = {
            r["state"]
            for r in await conn.fetch(
                "SELECT state FROM memory_jobs WHERE user_id = $1 AND kind = 'embed_chunks'", scope["user_id"]
            )
        }
    assert still_missing == 0 and states == {"succeeded"}
    stats = await engram.job_stats(user_id=scope["user_id"], agent_id=scope["agent_id"])
    assert stats.failed == 0

    trace = await engram.trace_recall("quote the termination notice clause", **scope)
    assert trace.intent == "quote"
    assert "## Document excerpts" in trace.context and "chunk_id=" in trace.context
    long_input = next(r for r in trace.strategies if r.name == "long_input")
    assert long_input.candidates >= 1
