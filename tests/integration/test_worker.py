"""The memory worker end to end: derivation, lineage, reconciliation, checkpoints, hooks, bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engram import (
    Engram,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    WorkerOptions,
    hookimpl,
)
from engram.interfaces import CandidateFact, CheckpointRequest, ExtractionRequest, SourceSpan
from engram.plugins import get_plugin_manager

FAST = WorkerOptions(backoff_base_seconds=0, backoff_max_seconds=0, lease_seconds=30, reap_every_seconds=0.1)


class ScriptedExtractor:
    """A test extractor: each user event becomes one fact quoting the whole event, unless ``script`` says otherwise."""

    name = "scripted"

    def __init__(self, script: Callable[[ExtractionRequest], Awaitable[Any]] | None = None) -> None:
        self.script = script
        self.requests: list[ExtractionRequest] = []
        self.summaries: list[CheckpointRequest] = []

    async def extract(self, request: ExtractionRequest) -> Any:
        self.requests.append(request)
        if self.script is not None:
            return await self.script(request)
        return [
            CandidateFact(
                content=e.content,
                category="fact",
                spans=(SourceSpan(event_id=e.event_id, start=0, end=len(e.content), quote=e.content),),
            )
            for e in request.events
            if e.role == "user"
        ]

    async def summarize(self, request: CheckpointRequest) -> str:
        self.summaries.append(request)
        return f"{len(request.events)} events; last: {request.events[-1].content if request.events else '-'}"


def client(database_url: str, extractor: Any = None, **kw: Any) -> Engram:
    e = Engram(
        database_url,
        memory_policy=kw.pop("policy", "default"),
        embedder="hashing",
        extractor=extractor or "rules",
        **kw,
    )
    e.worker_options = FAST
    return e


async def drain(e: Engram, scope: dict[str, str], rounds: int = 50) -> None:
    """Run batches until this scope has no queued or running job that is due."""
    for _ in range(rounds):
        await e.process_jobs(50)
        stats = await e.job_stats(user_id=scope["user_id"])
        if stats.due == 0 and stats.running == 0:
            return
    raise AssertionError(f"queue did not drain: {stats}")


async def test_rules_extractor_end_to_end_with_lineage(
    engram: Engram, scope: dict[str, str], raw_conn: Any
) -> None:
    turn = await engram.record_turn(
        "t-" + uuid.uuid4().hex[:8],
        user_message="I prefer dark mode. My favourite editor is vim.",
        assistant_response="Noted, dark mode and vim.",
        **scope,
    )
    await drain(engram, scope)
    job = await engram.get_job(turn.job_id, **scope)
    assert job.state == "succeeded" and job.attempts == 1
    facts = await engram.list_facts(**scope)
    assert facts and all(f.origin == "extractor:rules" and f.task_id == turn.task_id for f in facts)
    rows = await raw_conn.fetch(
        """SELECT s.event_id, s.span_start, s.span_end, s.quote, e.content FROM fact_sources s
           JOIN events e ON e.user_id = s.user_id AND e.event_id = s.event_id WHERE s.user_id = $1""",
        scope["user_id"],
    )
    assert len(rows) >= len(facts)
    for r in rows:
        assert r["event_id"] == turn.user_event_id
        assert r["content"][r["span_start"] : r["span_end"]] == r["quote"] != ""
    vectors = await raw_conn.fetchval(
        "SELECT count(*) FROM event_vectors WHERE user_id = $1", scope["user_id"]
    )
    assert vectors == 2
    assert job.result is not None and len(job.result["added"]) == len(facts)


async def test_derived_facts_notify_fact_derived_hook(database_url: str, scope: dict[str, str]) -> None:
    seen: list[Any] = []

    class Observer:
        @hookimpl
        def fact_derived(self, fact: Any) -> None:
            seen.append(fact)

    pm = get_plugin_manager()
    observer = Observer()
    pm.register(observer, name="test-fact-derived-observer")
    try:
        async with client(database_url, ScriptedExtractor()) as e:
            await e.record_turn(
                "t-" + uuid.uuid4().hex[:8],
                user_message="The staging database is db-7",
                assistant_response="ok",
                **scope,
            )
            await drain(e, scope)
    finally:
        pm.unregister(observer)
    assert [f.content for f in seen] == ["The staging database is db-7"]
    assert seen[0].sources[0].quote == "The staging database is db-7"


async def test_duplicates_are_no_ops_and_updates_supersede(database_url: str, scope: dict[str, str]) -> None:
    async with client(database_url, ScriptedExtractor()) as e:
        task = "t-" + uuid.uuid4().hex[:8]
        for text in (
            "The user's favourite editor is vim",
            "the user's favourite editor is VIM!",
            "The user's favourite editor is helix",
        ):
            await e.record_turn(task, user_message=text, assistant_response="ok", **scope)
            await drain(e, scope)
        facts = await e.list_facts(**scope, status=None)
        by_status = {f.status: f for f in facts}
        assert len(facts) == 2, [f.content for f in facts]
        assert by_status["active"].content.endswith("helix")
        assert by_status["superseded"].superseded_by == by_status["active"].fact_id
        assert by_status["superseded"].valid_to is not None
        jobs = await e.list_jobs(**scope)
        assert sorted(j.result["duplicates"] for j in jobs if j.result) == [0, 0, 1]


async def test_slot_candidates_supersede_and_lineage_walks_the_chain(
    database_url: str, scope: dict[str, str]
) -> None:
    async def slot_script(request: ExtractionRequest) -> list[CandidateFact]:
        event = next(e for e in request.events if e.role == "user")
        value = event.content.rsplit(" ", 1)[-1]
        return [
            CandidateFact(
                content=f"Deploy target: {value}",
                slot="deploy_target",
                category="decision",
                spans=(
                    SourceSpan(event_id=event.event_id, start=0, end=len(event.content), quote=event.content),
                ),
            )
        ]

    async with client(database_url, ScriptedExtractor(slot_script)) as e:
        task = "t-" + uuid.uuid4().hex[:8]
        for target in ("staging", "staging", "canary", "production"):
            await e.record_turn(task, user_message=f"deploy to {target}", assistant_response="ok", **scope)
            await drain(e, scope)
        active = await e.list_facts(**scope, slot="deploy_target")
        assert [f.content for f in active] == ["Deploy target: production"]
        history = await e.list_facts(**scope, status=None)
        assert len(history) == 3  # the repeated "staging" was a no-op
        lineage = await e.lineage(active[0].fact_id, **scope)
        assert [n.fact.content.split()[-1] for n in lineage.nodes] == ["staging", "canary", "production"]
        assert [n.depth for n in lineage.nodes] == [-2, -1, 0]
        assert all(n.sources and n.sources[0].quote.startswith("deploy to") for n in lineage.nodes)
        assert lineage.current.fact_id == active[0].fact_id
        from_oldest = await e.lineage(lineage.nodes[0].fact.fact_id, **scope)
        assert [n.depth for n in from_oldest.nodes] == [0, 1, 2]
        assert len(lineage.event_ids) == 3
        other = {"user_id": scope["user_id"] + "-other", "agent_id": scope["agent_id"]}
        with pytest.raises(NotFoundError):
            await e.lineage(active[0].fact_id, **other)


async def test_checkpoints_every_n_turns_and_on_demand(database_url: str, scope: dict[str, str]) -> None:
    base = Engram(database_url, memory_policy="default", embedder="hashing")
    policy = base.policy.model_copy(update={"checkpoint_every_turns": 2})
    extractor = ScriptedExtractor()
    async with client(database_url, extractor, policy=policy) as e:
        task = "t-" + uuid.uuid4().hex[:8]
        await e.record_turn(task, user_message="step 0", assistant_response="did 0", **scope)
        assert await e.latest_checkpoint(task, **scope) is None
        for i in range(1, 5):
            await e.record_turn(task, user_message=f"step {i}", assistant_response=f"did {i}", **scope)
        kinds = sorted(j.kind for j in await e.list_jobs(**scope))
        assert kinds.count("checkpoint") == 2 and kinds.count("derive") == 5
        await drain(e, scope)
        latest = await e.latest_checkpoint(task, **scope)
        assert latest is not None and latest.turn_count == 4
        assert "last: did 3" in latest.summary
        fresh = await e.checkpoint(task, **scope)
        # Incremental: only the events after the latest checkpoint, with its summary as context.
        assert extractor.summaries[-1].previous_summary == latest.summary
        assert [ev.content for ev in extractor.summaries[-1].events] == ["step 4", "did 4"]
        assert fresh.checkpoint_id > latest.checkpoint_id and "last: did 4" in fresh.summary
        assert fresh.turn_count == 5
        again = await e.checkpoint(task, **scope)  # nothing new: the same checkpoint
        assert again.checkpoint_id == fresh.checkpoint_id
        from engram.checkpoints.store import latest_checkpoint

        async with e._rt.connection() as conn:
            row = await latest_checkpoint(conn, task_id=task, **scope)
        assert row is not None and row.checkpoint_id == fresh.checkpoint_id


async def test_checkpoint_and_lineage_refuse_bad_input(engram: Engram, scope: dict[str, str]) -> None:
    task = "t-" + uuid.uuid4().hex[:8]
    await engram.record_turn(task, user_message="hi", assistant_response="ok", **scope)
    other = {"user_id": scope["user_id"] + "-o", "agent_id": scope["agent_id"]}
    # Another scope's task id is simply unknown here: the same answer as for an id nobody uses.
    with pytest.raises(NotFoundError):
        await engram.checkpoint(task, **other)
    with pytest.raises(NotFoundError):
        await engram.latest_checkpoint(task, **other)
    with pytest.raises(NotFoundError):
        await engram.checkpoint("no-such-task-" + uuid.uuid4().hex, **scope)
    with pytest.raises(NotFoundError):
        await engram.latest_checkpoint("no-such-task-" + uuid.uuid4().hex, **scope)
    for bad_task in ("", None, 12):
        with pytest.raises(InvalidInputError):
            await engram.checkpoint(bad_task, **scope)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.checkpoint(task, user_id="", agent_id="a")
    with pytest.raises(InvalidInputError):
        await engram.latest_checkpoint(task, user_id=None, agent_id="a")  # type: ignore[arg-type]
    for bad in (0, -3, "7", 2.0, False):
        with pytest.raises(InvalidInputError):
            await engram.lineage(bad, **scope)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await engram.lineage(2**62, **scope)
    for bad_size in (0, -1, "20", 1.5, True, 10_001):
        with pytest.raises(InvalidInputError):
            await engram.process_jobs(bad_size)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            await engram.run_memory_worker(batch_size=bad_size)  # type: ignore[arg-type]
    for bad_interval in (0, -1, "1", 10_000):
        with pytest.raises(InvalidInputError):
            await engram.run_memory_worker(interval_seconds=bad_interval)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.run_memory_worker(stop_event="stop")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.run_memory_worker(worker_id="")


async def test_run_memory_worker_until_stopped(database_url: str, scope: dict[str, str]) -> None:
    async with client(database_url, ScriptedExtractor()) as e:
        stop = asyncio.Event()
        runner = asyncio.create_task(e.run_memory_worker(batch_size=5, interval_seconds=0.2, stop_event=stop))
        task = "t-" + uuid.uuid4().hex[:8]
        for i in range(7):
            await e.record_turn(
                task, user_message=f"The ticket number is T-{i}{i}", assistant_response="ok", **scope
            )
        for _ in range(200):
            if len(await e.list_facts(**scope)) == 7:
                break
            await asyncio.sleep(0.05)
        stop.set()
        done = await asyncio.wait_for(runner, 10)
        assert done >= 7
        assert (await e.job_stats(user_id=scope["user_id"])).succeeded == 7


async def test_rate_limit_snoozes_without_spending_an_attempt(own_dsn: str, scope: dict[str, str]) -> None:
    calls = 0

    async def limited(request: ExtractionRequest) -> list[CandidateFact]:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RateLimitedError("429 Too Many Requests", retry_after=0.01 if calls < 3 else 3600)
        return []

    async with client(own_dsn, ScriptedExtractor(limited)) as e:
        turn = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8], user_message="x", assistant_response="y", **scope
        )
        for _ in range(2):
            await e.process_jobs()
            await asyncio.sleep(0.05)
        await e.process_jobs()
        job = await e.get_job(turn.job_id, **scope)
        assert job.state == "queued" and job.attempts == 0 and calls == 3
        assert [x.kind for x in job.errors] == ["rate_limited"] * 3
        assert (job.run_at - job.created_at).total_seconds() > 3000  # Retry-After honoured (capped at 1h)


async def test_extractor_errors_retry_then_fail_then_retry_failed(
    database_url: str, scope: dict[str, str]
) -> None:
    broken = True

    async def flaky(request: ExtractionRequest) -> list[CandidateFact]:
        if broken:
            raise RuntimeError("model exploded")
        return [
            CandidateFact(
                content="Recovered fact about the build", source_event_ids=(request.events[0].event_id,)
            )
        ]

    async with client(database_url, ScriptedExtractor(flaky)) as e:
        e.worker_options = FAST.model_copy(update={"max_attempts": 3})
        turn = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8], user_message="x", assistant_response="y", **scope
        )
        await drain(e, scope)
        job = await e.get_job(turn.job_id, **scope)
        assert job.state == "failed" and job.attempts == 3
        assert job.last_error == "RuntimeError: model exploded" and len(job.errors) == 3
        broken = False
        assert await e.retry_failed_jobs(user_id=scope["user_id"]) == 1
        await drain(e, scope)
        assert (await e.get_job(turn.job_id, **scope)).state == "succeeded"
        (fact,) = await e.list_facts(**scope)
        assert fact.sources == () and fact.content == "Recovered fact about the build"
        full = await e.get_fact(fact.fact_id, **scope)
        assert [s.event_id for s in full.sources] == [turn.user_event_id]


async def test_malformed_extractor_output(database_url: str, scope: dict[str, str]) -> None:
    replies: list[Any] = [
        "not a list",
        [
            {"content": ""},  # violates the schema
            {"content": "ok", "confidence": 7},  # out of range
            {
                "content": "Valid fact from a dict",
                "spans": [{"event_id": 0, "start": 0, "end": 1, "quote": "x"}],
            },
            {"content": "Bad slot", "slot": "Not A Slot"},
            42,
            CandidateFact(content="Quote invented by the model", spans=()),
        ],
    ]

    async def malformed(request: ExtractionRequest) -> Any:
        reply = replies.pop(0)
        if isinstance(reply, list):
            # A span that cites an event the job does not have, and one with a made-up quote.
            eid = request.events[0].event_id
            reply[2]["spans"][0]["event_id"] = 10**12
            reply.append(
                CandidateFact(
                    content="Fact with a wrong quote",
                    spans=(SourceSpan(event_id=eid, start=0, end=3, quote="zzz"),),
                )
            )
        return reply

    async with client(database_url, ScriptedExtractor(malformed)) as e:
        turn = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8], user_message="hello there", assistant_response="y", **scope
        )
        await drain(e, scope)
        job = await e.get_job(turn.job_id, **scope)
        assert job.state == "succeeded" and job.attempts == 2
        assert "ExtractionError" in job.errors[0].error
        facts = {
            f.content: f for f in [await e.get_fact(x.fact_id, **scope) for x in await e.list_facts(**scope)]
        }
        assert set(facts) == {"Quote invented by the model", "Fact with a wrong quote"}
        assert facts["Fact with a wrong quote"].sources[0].quote == ""  # never store an invented quote
        assert job.result is not None and job.result["dropped"] == 5


async def test_redacted_or_purged_events_complete_without_facts(
    database_url: str, scope: dict[str, str], raw_conn: Any
) -> None:
    async def redact_meanwhile(request: ExtractionRequest) -> list[CandidateFact]:
        # Redaction lands after the job read the events and before it writes.
        async with raw_conn.transaction():
            await raw_conn.execute("SELECT set_config('engram.ledger_write', 'redact', true)")
            await raw_conn.execute(
                "UPDATE events SET content = '[REDACTED]', redacted_at = now() WHERE user_id = $1 AND event_id = $2",
                scope["user_id"],
                request.events[0].event_id,
            )
        e0 = request.events[0]
        return [
            CandidateFact(
                content="Secret-derived fact",
                spans=(SourceSpan(event_id=e0.event_id, start=0, end=len(e0.content), quote=e0.content),),
            )
        ]

    async with client(database_url, ScriptedExtractor(redact_meanwhile)) as e:
        purged = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8],
            user_message="my password is hunter2",
            assistant_response="ok",
            **scope,
        )
        async with raw_conn.transaction():
            await raw_conn.execute("SELECT set_config('engram.ledger_write', 'purge', true)")
            await raw_conn.execute(
                "DELETE FROM events WHERE user_id = $1 AND event_id = ANY($2::bigint[])",
                scope["user_id"],
                list(purged.event_ids),
            )
        redacted = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8], user_message="my pin is 1234", assistant_response="ok", **scope
        )
        await drain(e, scope)
        for turn in (purged, redacted):
            job = await e.get_job(turn.job_id, **scope)
            assert job.state == "succeeded" and job.attempts == 1
        assert (await e.get_job(purged.job_id, **scope)).result["skipped_events"] == 2  # type: ignore[index]
        assert await e.list_facts(**scope, status=None) == []
        assert len([r for r in e.get_extractor().requests if r.events]) == 1  # type: ignore[attr-defined]
        vectors = await raw_conn.fetch(
            "SELECT event_id FROM event_vectors WHERE user_id = $1", scope["user_id"]
        )
        assert [v["event_id"] for v in vectors] == [redacted.assistant_event_id]
