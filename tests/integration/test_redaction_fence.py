"""The redaction fence: a redaction or purge that commits while a derived row is being
produced (a summary, facts, vectors) leaves nothing of the removed text behind.

The extractor below blocks inside ``summarize`` / ``extract`` until the test lets
it go, so the redaction (or purge) commits exactly between the writer's read of
its inputs and its write.  Before the fence, the summary was written afterwards
with the secret in it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from conftest import count_rows
from privacy_helpers import find_everywhere

from engram import Engram, NotFoundError, WorkerOptions
from engram.interfaces import CandidateFact, CheckpointRequest, ExtractionRequest, SourceSpan


def _secret() -> str:
    # Unique per test: find_everywhere scans every tenant's rows.
    return f"vault-code Kq7Z{uuid.uuid4().hex[:10]}"


FAST = WorkerOptions(backoff_base_seconds=0, backoff_max_seconds=0, lease_seconds=30, reap_every_seconds=0.1)


class GatedExtractor:
    """Copies every event it is given into its output, after waiting for ``gate``."""

    name = "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered: dict[str, asyncio.Event] = {"extract": asyncio.Event(), "summarize": asyncio.Event()}
        self.calls = {"extract": 0, "summarize": 0}
        self.second_summary = asyncio.Event()

    async def _wait(self, what: str) -> None:
        self.calls[what] += 1
        self.entered[what].set()
        if self.calls["summarize"] >= 2:
            self.second_summary.set()
        await self.gate.wait()

    async def extract(self, request: ExtractionRequest) -> Any:
        await self._wait("extract")
        return [
            CandidateFact(
                content=f"the user said: {e.content}",
                category="fact",
                spans=(SourceSpan(event_id=e.event_id, start=0, end=len(e.content), quote=e.content),),
            )
            for e in request.events
        ]

    async def summarize(self, request: CheckpointRequest) -> str:
        await self._wait("summarize")
        return "so far: " + " | ".join(e.content for e in request.events) if request.events else "nothing"


async def _client(database_url: str, extractor: GatedExtractor, *, checkpoint_every: int) -> Engram:
    base = Engram(database_url, memory_policy="default", embedder="hashing")
    policy = base.policy.model_copy(update={"checkpoint_every_turns": checkpoint_every})
    e = Engram(database_url, memory_policy=policy, embedder="hashing", extractor=extractor)
    e.worker_options = FAST
    await e.connect()
    return e


async def _wait_entered(extractor: GatedExtractor, *what: str) -> None:
    await asyncio.wait_for(asyncio.gather(*(extractor.entered[w].wait() for w in what)), timeout=60)


async def _drain(e: Engram, scope: dict[str, str]) -> None:
    for _ in range(50):
        await e.process_jobs(50)
        stats = await e.job_stats(**scope)
        if stats.due == 0 and stats.running == 0:
            return
    raise AssertionError(f"queue did not drain: {stats}")


async def test_checkpoint_call_refuses_a_summary_made_before_a_redaction(
    own_dsn: str, scope: dict[str, str], own_raw_conn: asyncpg.Connection
) -> None:
    SECRET = _secret()
    extractor = GatedExtractor()
    e = await _client(own_dsn, extractor, checkpoint_every=0)
    try:
        task = "t-" + uuid.uuid4().hex[:8]
        turn = await e.record_turn(
            task, user_message=f"remember {SECRET} for me", assistant_response="stored", **scope
        )
        pending = asyncio.create_task(e.checkpoint(task, **scope))
        await _wait_entered(extractor, "summarize")
        # The summary now being made holds the secret; the redaction commits meanwhile.
        await e.redact_event(turn.user_event_id, reason="pasted a code", **scope)
        extractor.gate.set()
        checkpoint = await pending
        assert SECRET not in checkpoint.summary
        assert checkpoint.summary == "so far: stored"  # made again, from the redacted events
        assert extractor.calls["summarize"] == 2
        assert await find_everywhere(own_raw_conn, SECRET) == []
    finally:
        extractor.gate.set()
        await e.close()


async def test_worker_jobs_in_flight_during_a_redaction_write_nothing_then_rerun(
    own_dsn: str, scope: dict[str, str], own_raw_conn: asyncpg.Connection
) -> None:
    SECRET = _secret()
    extractor = GatedExtractor()
    e = await _client(own_dsn, extractor, checkpoint_every=1)
    try:
        task = "t-" + uuid.uuid4().hex[:8]
        turn = await e.record_turn(
            task, user_message=f"remember {SECRET} for me", assistant_response="stored", **scope
        )
        jobs = {j.kind: j for j in await e.list_jobs(**scope)}
        assert set(jobs) == {"derive", "checkpoint"}
        batch = asyncio.create_task(e.process_jobs(10))
        await _wait_entered(extractor, "extract", "summarize")
        await e.redact_event(turn.user_event_id, reason="pasted a code", **scope)
        extractor.gate.set()
        await batch
        # Nothing computed from the secret was written, by either job.
        assert await find_everywhere(own_raw_conn, SECRET) == []
        for kind, job in jobs.items():
            again = await e.get_job(job.job_id, **scope)
            assert again.state == "queued", (kind, again.state)
            assert again.attempts == 0, "a fenced-off result must not spend an attempt"
        # Re-queued at once: they run again on the redacted text and complete.
        await _drain(e, scope)
        for kind, job in jobs.items():
            done = await e.get_job(job.job_id, **scope)
            assert done.state == "succeeded" and done.attempts == 1, (kind, done)
        latest = await e.latest_checkpoint(task, **scope)
        assert latest is not None and latest.summary == "so far: stored"
        facts = [f.content for f in await e.list_facts(**scope)]
        assert "the user said: stored" in facts and not any(SECRET in f for f in facts)
        assert await find_everywhere(own_raw_conn, SECRET) == []
    finally:
        extractor.gate.set()
        await e.close()


async def test_a_purge_during_derivation_leaves_no_row_of_the_scope(
    own_dsn: str, scope: dict[str, str], own_raw_conn: asyncpg.Connection
) -> None:
    SECRET = _secret()
    extractor = GatedExtractor()
    e = await _client(own_dsn, extractor, checkpoint_every=1)
    try:
        task = "t-" + uuid.uuid4().hex[:8]
        await e.record_turn(
            task, user_message=f"remember {SECRET} for me", assistant_response="stored", **scope
        )
        batch = asyncio.create_task(e.process_jobs(10))
        direct = asyncio.create_task(e.checkpoint(task, **scope))
        await _wait_entered(extractor, "extract", "summarize")
        # Both summaries are being made: the worker's and the direct call's.
        await asyncio.wait_for(extractor.second_summary.wait(), timeout=60)
        await e.purge(user_id=scope["user_id"])
        extractor.gate.set()
        await batch
        try:
            await direct
        except NotFoundError:
            pass  # the task it was summarising is gone
        else:
            raise AssertionError("checkpoint() of a purged task must not succeed")
        assert set((await count_rows(own_raw_conn, scope["user_id"])).values()) == {0}
        assert await find_everywhere(own_raw_conn, SECRET) == []
    finally:
        extractor.gate.set()
        await e.close()


async def test_a_redaction_waits_for_a_derived_write_in_flight_and_scrubs_it(
    own_dsn: str, scope: dict[str, str], own_raw_conn: asyncpg.Connection
) -> None:
    """The other order: the write holds the fence's row; the redaction waits, then sees it."""
    from engram.privacy import fence

    SECRET = _secret()
    e = Engram(own_dsn, memory_policy="default", embedder="hashing")
    await e.connect()
    try:
        task = "t-" + uuid.uuid4().hex[:8]
        turn = await e.record_turn(
            task, user_message=f"remember {SECRET} for me", assistant_response="stored", **scope
        )
        writer = await asyncpg.connect(own_dsn, statement_cache_size=0)
        try:
            generation = await fence.capture(writer, **scope)
            tx = writer.transaction()
            await tx.start()
            assert await fence.check(writer, generation) == "current"
            await writer.execute(
                """INSERT INTO checkpoints (user_id, agent_id, task_id, summary, through_event_id, turn_count)
                   VALUES ($1, $2, $3, $4, $5, 1)""",
                scope["user_id"],
                scope["agent_id"],
                task,
                f"so far: remember {SECRET} for me",
                turn.assistant_event_id,
            )
            redaction = asyncio.create_task(e.redact_event(turn.user_event_id, reason="r", **scope))
            await asyncio.sleep(0.2)  # let it reach the fence (not a timing assertion: either order is safe)
            await tx.commit()
            await redaction
        finally:
            await writer.close()
        assert await find_everywhere(own_raw_conn, SECRET) == []
    finally:
        await e.close()
