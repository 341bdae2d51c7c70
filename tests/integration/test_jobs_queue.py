"""The memory_jobs queue: enqueue in the write transaction, dedupe, claim, fencing, retries, reaper, CLI."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import count_rows

from engram import Engram, InvalidInputError, NotFoundError
from engram.jobs import store as queue
from engram.ledger.store import append_events


async def _turn(engram: Engram, scope: dict[str, str], task: str | None = None, text: str = "hello") -> Any:
    return await engram.record_turn(
        task or f"task-{uuid.uuid4().hex[:8]}", user_message=text, assistant_response="ok", **scope
    )


async def _enqueue(engram: Engram, scope: dict[str, str], **kw: Any) -> int:
    async with engram._rt.transaction() as conn:
        job_id, _ = await queue.enqueue(
            conn,
            kind=kw.pop("kind", "derive"),
            task_id=kw.pop("task_id", None),
            payload=kw.pop("payload", {"event_ids": [1]}),
            **scope,
            **kw,
        )
    return job_id


async def _claim_only(engram: Engram, job_id: int, scope: dict[str, str], worker: str, lease: float) -> Any:
    """Claim exactly ``job_id`` (other tests' jobs share the table): bump everything else's run_at away."""
    async with engram._rt.connection() as conn:
        # Make only this job due for the claim by giving it top priority and claiming 1.
        await conn.execute(
            "UPDATE memory_jobs SET priority = 32000 WHERE user_id = $1 AND job_id = $2",
            scope["user_id"],
            job_id,
        )
        jobs = await queue.claim(conn, worker_id=worker, limit=1, lease_seconds=lease)
        await conn.execute(
            "UPDATE memory_jobs SET priority = 0 WHERE user_id = $1 AND job_id = $2", scope["user_id"], job_id
        )
    assert [j.job_id for j in jobs] == [job_id]
    return jobs[0].model_copy(update={"priority": 0})


async def test_record_turn_enqueues_in_the_same_transaction(engram: Engram, scope: dict[str, str]) -> None:
    turn = await _turn(engram, scope)
    job = await engram.get_job(turn.job_id, **scope)
    assert job.state == "queued" and job.kind == "derive" and job.task_id == turn.task_id
    assert job.payload["event_ids"] == [turn.user_event_id, turn.assistant_event_id]
    assert job.attempts == 0 and job.max_attempts == engram.worker_options.max_attempts
    quiet = await engram.record_turn(
        "quiet-" + uuid.uuid4().hex[:6],
        user_message="x",
        assistant_response="y",
        enqueue_processing=False,
        **scope,
    )
    assert quiet.job_id is None
    assert len(await engram.list_jobs(**scope)) == 1


async def test_rollback_leaves_neither_events_nor_job(
    engram: Engram, scope: dict[str, str], raw_conn: Any
) -> None:
    task = "rb-" + uuid.uuid4().hex[:8]
    with pytest.raises(RuntimeError):
        async with engram._rt.transaction() as conn:
            rows = await append_events(
                conn, **scope, task_id=task, roles=("user",), contents=("hi",), metadata={}, turns=1
            )
            job_id = await engram._queue.enqueue_derivation(
                conn, **scope, task_id=task, event_ids=[rows[0]["event_id"]], turn_count=1
            )
            assert job_id is not None
            raise RuntimeError("crash before commit")
    counts = await count_rows(raw_conn, scope["user_id"])
    assert counts["events"] == 0 and counts["memory_jobs"] == 0


async def test_dedupe_key_makes_enqueue_idempotent(
    engram: Engram, scope: dict[str, str], raw_conn: Any
) -> None:
    first = await _enqueue(engram, scope, dedupe_key="same")
    again = await _enqueue(engram, scope, dedupe_key="same")
    other_scope = {"user_id": scope["user_id"] + "-b", "agent_id": scope["agent_id"]}
    theirs = await _enqueue(engram, other_scope, dedupe_key="same")
    assert first == again and theirs != first
    assert (
        await raw_conn.fetchval("SELECT count(*) FROM memory_jobs WHERE user_id = $1", scope["user_id"]) == 1
    )
    # The record_turn hook uses a key per event range: calling it twice adds nothing.
    turn = await _turn(engram, scope)
    async with engram._rt.transaction() as conn:
        dup = await engram._queue.enqueue_derivation(
            conn, **scope, task_id=turn.task_id, event_ids=list(turn.event_ids), turn_count=1
        )
    assert dup == turn.job_id


async def test_claim_skips_locked_and_future_jobs(
    engram: Engram, database_url: str, scope: dict[str, str]
) -> None:
    ids = [await _enqueue(engram, scope, priority=30000) for _ in range(6)]
    later = await _enqueue(engram, scope, priority=30000, delay_seconds=3600)
    pool = await engram._rt.pool()
    async with pool.acquire() as a, pool.acquire() as b:
        got_a, got_b = await asyncio.gather(
            queue.claim(a, worker_id="wa", limit=3, lease_seconds=60),
            queue.claim(b, worker_id="wb", limit=3, lease_seconds=60),
        )
    claimed = [j.job_id for j in got_a + got_b]
    assert sorted(claimed) == sorted(ids)  # disjoint, and the future job was not taken
    assert later not in claimed
    assert all(j.state == "running" and j.attempts == 1 for j in got_a + got_b)


async def test_fencing_expired_worker_cannot_complete(engram: Engram, scope: dict[str, str]) -> None:
    job_id = await _enqueue(engram, scope)
    old = await _claim_only(engram, job_id, scope, "worker-old", lease=0.05)
    await asyncio.sleep(0.1)
    async with engram._rt.connection() as conn:
        assert await queue.reap(conn) >= 1
        assert (await queue.get_job(conn, job_id=job_id, **scope)).state == "queued"  # type: ignore[union-attr]
    new = await _claim_only(engram, job_id, scope, "worker-new", lease=60)
    assert new.attempts == 2
    async with engram._rt.connection() as conn:
        assert await queue.complete(conn, old, {"by": "old"}) is False
        assert await queue.fail(conn, old, "late", retry_in_seconds=0) is None
        assert await queue.heartbeat(conn, [old], lease_seconds=60) == set()
        assert await queue.heartbeat(conn, [new], lease_seconds=60) == {job_id}
        assert await queue.complete(conn, new, {"by": "new"}) is True
    job = await engram.get_job(job_id, **scope)
    assert job.state == "succeeded" and job.result == {"by": "new"}
    assert job.errors[0].kind == "lease_expired"


async def test_fail_backs_off_then_fails_with_error_kept(engram: Engram, scope: dict[str, str]) -> None:
    job_id = await _enqueue(engram, scope, max_attempts=2)
    job = await _claim_only(engram, job_id, scope, "w", lease=60)
    async with engram._rt.connection() as conn:
        assert await queue.fail(conn, job, "boom 1", retry_in_seconds=30) == "queued"
    queued = await engram.get_job(job_id, **scope)
    assert queued.attempts == 1 and queued.last_error == "boom 1"
    assert (queued.run_at - queued.created_at).total_seconds() > 25
    async with engram._rt.connection() as conn:
        await conn.execute(
            "UPDATE memory_jobs SET run_at = now() WHERE user_id = $1 AND job_id = $2",
            scope["user_id"],
            job_id,
        )
    job = await _claim_only(engram, job_id, scope, "w", lease=60)
    async with engram._rt.connection() as conn:
        assert await queue.fail(conn, job, "boom 2", retry_in_seconds=30) == "failed"
    failed = await engram.get_job(job_id, **scope)
    assert failed.state == "failed" and failed.attempts == 2 and failed.last_error == "boom 2"
    assert [e.error for e in failed.errors] == ["boom 1", "boom 2"]
    assert failed.finished_at is not None
    stats = await engram.job_stats(user_id=scope["user_id"])
    assert stats.failed == 1 and stats.queued == 0
    assert await engram.retry_failed_jobs(user_id=scope["user_id"]) == 1
    again = await engram.get_job(job_id, **scope)
    assert again.state == "queued" and again.attempts == 0 and len(again.errors) == 2


async def test_snooze_keeps_attempts_and_release_gives_back(engram: Engram, scope: dict[str, str]) -> None:
    job_id = await _enqueue(engram, scope)
    job = await _claim_only(engram, job_id, scope, "w", lease=60)
    async with engram._rt.connection() as conn:
        assert await queue.snooze(conn, job, "429 slow down", seconds=120)
    snoozed = await engram.get_job(job_id, **scope)
    assert snoozed.state == "queued" and snoozed.attempts == 0
    assert snoozed.errors[-1].kind == "rate_limited"
    assert (snoozed.run_at - snoozed.created_at).total_seconds() > 100
    async with engram._rt.connection() as conn:
        await conn.execute(
            "UPDATE memory_jobs SET run_at = now() WHERE user_id = $1 AND job_id = $2",
            scope["user_id"],
            job_id,
        )
    job = await _claim_only(engram, job_id, scope, "w2", lease=60)
    async with engram._rt.connection() as conn:
        assert await queue.release(conn, [job]) == 1
    released = await engram.get_job(job_id, **scope)
    assert released.state == "queued" and released.attempts == 0


async def test_reaper_fails_a_job_that_keeps_losing_its_worker(engram: Engram, scope: dict[str, str]) -> None:
    job_id = await _enqueue(engram, scope, max_attempts=1)
    await _claim_only(engram, job_id, scope, "doomed", lease=0.05)
    await asyncio.sleep(0.1)
    async with engram._rt.connection() as conn:
        await queue.reap(conn)
    job = await engram.get_job(job_id, **scope)
    assert job.state == "failed" and "lease expired" in (job.last_error or "")


async def test_cancel_and_error_history_cap(engram: Engram, scope: dict[str, str]) -> None:
    job_id = await _enqueue(engram, scope)
    assert (await engram.cancel_job(job_id, **scope)).state == "cancelled"
    with pytest.raises(InvalidInputError):
        await engram.cancel_job(job_id, **scope)
    capped = await _enqueue(engram, scope, max_attempts=1000)
    for i in range(queue.MAX_ERROR_HISTORY + 5):
        job = await _claim_only(engram, capped, scope, "w", lease=60)
        async with engram._rt.connection() as conn:
            await queue.snooze(conn, job, f"rate limit {i}", seconds=0)
    job = await engram.get_job(capped, **scope)
    assert len(job.errors) == queue.MAX_ERROR_HISTORY
    assert job.errors[-1].error == f"rate limit {queue.MAX_ERROR_HISTORY + 4}"


async def test_public_queue_calls_refuse_bad_input(engram: Engram, scope: dict[str, str]) -> None:
    turn = await _turn(engram, scope)
    other = {"user_id": scope["user_id"] + "-x", "agent_id": scope["agent_id"]}
    with pytest.raises(NotFoundError):
        await engram.get_job(turn.job_id, **other)  # another tenant's job does not exist for them
    with pytest.raises(NotFoundError):
        await engram.cancel_job(turn.job_id, **other)
    for bad in (0, -1, "1", 1.5, True, None):
        with pytest.raises(InvalidInputError):
            await engram.get_job(bad, **scope)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.get_job(turn.job_id, user_id="", agent_id="a")
    with pytest.raises(InvalidInputError):
        await engram.list_jobs(**scope, state="done")
    with pytest.raises(InvalidInputError):
        await engram.list_jobs(**scope, limit=0)
    with pytest.raises(InvalidInputError):
        await engram.job_stats(agent_id="a")
    with pytest.raises(InvalidInputError):
        await engram.job_stats(user_id=123)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.retry_failed_jobs(agent_id="a")


# --------------------------------------------------------------------------- CLI


def _seed_failed(database_url: str, scope: dict[str, str]) -> int:
    async def go() -> int:
        async with Engram(database_url, memory_policy="default", embedder="hashing") as e:
            job_id = await _enqueue(e, scope, max_attempts=1)
            job = await _claim_only(e, job_id, scope, "cli", lease=60)
            async with e._rt.connection() as conn:
                await queue.fail(conn, job, "broken", retry_in_seconds=0)
            return job_id

    return asyncio.run(go())


def test_cli_jobs_stats_and_retry(database_url: str) -> None:
    from engram.cli import main

    scope = {"user_id": f"user-{uuid.uuid4().hex[:10]}", "agent_id": "agent-cli"}
    job_id = _seed_failed(database_url, scope)
    runner = CliRunner()
    env = {"ENGRAM_EMBEDDER": "hashing"}
    result = runner.invoke(main, ["jobs", "--dsn", database_url], env=env)
    assert result.exit_code == 0, result.output
    assert "pending" in result.output and "failed" in result.output and "oldest pending age" in result.output
    result = runner.invoke(main, ["jobs", "--dsn", database_url, "--json"], env=env)
    assert result.exit_code == 0 and '"failed"' in result.output
    result = runner.invoke(
        main, ["jobs", "--dsn", database_url, "retry", "--failed", "--user-id", scope["user_id"]], env=env
    )
    assert result.exit_code == 0, result.output
    assert "re-queued 1 failed job" in result.output

    async def state() -> str:
        async with Engram(database_url, memory_policy="default", embedder="hashing") as e:
            return (await e.get_job(job_id, **scope)).state

    assert asyncio.run(state()) == "queued"
    result = runner.invoke(main, ["jobs", "--dsn", database_url, "retry"], env=env)
    assert result.exit_code == 2  # --failed is required
