"""Faults: lost connections, lost leases, SIGKILL, SIGTERM, and 8 workers racing over 20k jobs."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_worker import FAST, ScriptedExtractor, client, drain

from engram import Engram, WorkerOptions
from engram.interfaces import CandidateFact, ExtractionRequest, SourceSpan

REPO = Path(__file__).resolve().parents[2]


async def _no_duplicate_facts(raw_conn: Any, user_id: str) -> None:
    dupes = await raw_conn.fetch(
        "SELECT content, count(*) FROM facts WHERE user_id = $1 GROUP BY content HAVING count(*) > 1", user_id
    )
    assert dupes == []


async def test_lost_connection_mid_batch_reruns_without_duplicates(
    own_dsn: str, scope: dict[str, str], own_raw_conn: Any
) -> None:
    terminated = False

    async def kill_connections(request: ExtractionRequest) -> list[CandidateFact]:
        nonlocal terminated
        if not terminated:
            terminated = True
            pool = worker._rt.db.pool
            assert pool is not None
            pids = [
                h._con.get_server_pid()
                for h in pool._holders
                if h._con is not None and not h._con.is_closed()
            ]
            await own_raw_conn.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
        e0 = next(ev for ev in request.events if ev.role == "user")
        return [
            CandidateFact(
                content=e0.content,
                spans=(SourceSpan(event_id=e0.event_id, start=0, end=len(e0.content), quote=e0.content),),
            )
        ]

    worker = client(own_dsn, ScriptedExtractor(kill_connections), min_pool_size=3, max_pool_size=3)
    worker.worker_options = FAST.model_copy(update={"lease_seconds": 1.0, "heartbeat_seconds": 0.5})
    # Idle pooled connections killed during extraction are replaced by asyncpg on the
    # next acquire.  To lose a connection *inside* the write transaction, a trigger
    # makes the backend terminate itself on this scope's third fact insert (a
    # sequence, because it is not rolled back with the aborted transaction).
    tag = uuid.uuid4().hex[:8]
    await worker.connect()  # migrations first: the trigger needs the facts table
    await own_raw_conn.execute(f"""
        CREATE SEQUENCE kill_seq_{tag};
        CREATE FUNCTION kill_fn_{tag}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('kill_seq_{tag}') = 3 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER kill_trg_{tag} BEFORE INSERT ON facts FOR EACH ROW
            WHEN (NEW.user_id = '{scope["user_id"]}') EXECUTE FUNCTION kill_fn_{tag}();
    """)
    try:
        await _run_lost_connection(worker, scope, own_raw_conn)
    finally:
        await own_raw_conn.execute(f"""DROP TRIGGER kill_trg_{tag} ON facts; DROP FUNCTION kill_fn_{tag}();
                                   DROP SEQUENCE kill_seq_{tag};""")
    assert terminated


async def _run_lost_connection(worker: Engram, scope: dict[str, str], raw_conn: Any) -> None:
    async with worker:
        task = "t-" + uuid.uuid4().hex[:8]
        for i in range(6):
            await worker.record_turn(
                task, user_message=f"Server number {i} runs service s{i}", assistant_response="ok", **scope
            )
        first = await worker.process_jobs(10)
        assert first < 6  # the batch was disrupted
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await worker.process_jobs(10)
            stats = await worker.job_stats(user_id=scope["user_id"])
            if stats.succeeded == 6:
                break
            await asyncio.sleep(0.2)
        assert stats.succeeded == 6, stats
        await _no_duplicate_facts(raw_conn, scope["user_id"])
        assert len(await worker.list_facts(**scope)) == 6


async def test_a_worker_that_lost_its_lease_drops_its_result(
    own_dsn: str, scope: dict[str, str], own_raw_conn: Any
) -> None:
    async def stolen(request: ExtractionRequest) -> list[CandidateFact]:
        # While we think, our lease expires and another worker claims the job.
        await own_raw_conn.execute(
            """UPDATE memory_jobs SET lease_owner = 'thief', attempts = attempts + 1
               WHERE user_id = $1 AND state = 'running'""",
            scope["user_id"],
        )
        return [CandidateFact(content="A fact the old owner must not write")]

    async with client(own_dsn, ScriptedExtractor(stolen)) as e:
        turn = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8], user_message="x", assistant_response="y", **scope
        )
        assert await e.process_jobs() == 0
        job = await e.get_job(turn.job_id, **scope)
        assert job.state == "running" and job.lease_owner == "thief"  # untouched by the old owner
        assert await e.list_facts(**scope, status=None) == []
        assert (
            await own_raw_conn.fetchval(
                "SELECT count(*) FROM event_vectors WHERE user_id = $1", scope["user_id"]
            )
            == 0
        )


@pytest.mark.slow
async def test_eight_workers_twenty_thousand_jobs_each_exactly_once(
    database_url: str, scope: dict[str, str], raw_conn: Any
) -> None:
    n_jobs = 20_000
    user, agent = scope["user_id"], scope["agent_id"]
    task = "bulk-" + uuid.uuid4().hex[:8]
    # The rows below are written in raw SQL: make sure the schema exists even when
    # this test is the first of the run to touch the shared database.
    async with Engram(database_url, embedder="hashing"):
        pass
    # Bulk-load the ledger and the queue in SQL: the subject here is the queue, not record_turn.
    async with raw_conn.transaction():
        await raw_conn.execute(
            "INSERT INTO tasks (user_id, agent_id, task_id) VALUES ($1, $2, $3)", user, agent, task
        )
        event_ids = [
            r["event_id"]
            for r in await raw_conn.fetch(
                """INSERT INTO events (user_id, agent_id, task_id, role, content)
               SELECT $1, $2, $3, 'user', 'note ' || g FROM generate_series(1, $4) g RETURNING event_id""",
                user,
                agent,
                task,
                n_jobs,
            )
        ]
        await raw_conn.execute(
            """INSERT INTO memory_jobs (user_id, agent_id, kind, task_id, payload, dedupe_key)
               SELECT $1, $2, 'derive', $3, jsonb_build_object('event_ids', jsonb_build_array(e)), 'bulk:' || e
               FROM unnest($4::bigint[]) e""",
            user,
            agent,
            task,
            event_ids,
        )

    seen: collections.Counter[int] = collections.Counter()

    async def count_only(request: ExtractionRequest) -> list[CandidateFact]:
        if request.user_id == user:  # workers serve every tenant; count only ours
            for ev in request.events:
                seen[ev.event_id] += 1
        return []

    extractor = ScriptedExtractor(count_only)
    clients = [client(database_url, extractor, max_pool_size=3) for _ in range(8)]
    stops = [asyncio.Event() for _ in clients]
    for c in clients:
        c.worker_options = WorkerOptions(lease_seconds=120, listen=False)
        await c.connect()
    try:
        runners = [
            asyncio.create_task(c.run_memory_worker(batch_size=50, interval_seconds=0.1, stop_event=s))
            for c, s in zip(clients, stops, strict=True)
        ]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            stats = await clients[0].job_stats(user_id=user)
            if stats.succeeded == n_jobs:
                break
            assert not any(r.done() for r in runners), [r.exception() for r in runners if r.done()]
            await asyncio.sleep(0.5)
        for s in stops:
            s.set()
        done = await asyncio.gather(*runners)
    finally:
        for c in clients:
            await c.close()
    assert stats.succeeded == n_jobs and stats.failed == 0
    # >= : the workers serve every tenant, so leftovers of other tests count too.
    assert sum(done) >= n_jobs and sum(1 for d in done if d > 0) >= 2  # several workers really took part
    rows = await raw_conn.fetch(
        "SELECT attempts, count(*) AS n FROM memory_jobs WHERE user_id = $1 GROUP BY attempts", user
    )
    assert [(r["attempts"], r["n"]) for r in rows] == [(1, n_jobs)]  # nobody claimed a job twice
    assert len(seen) == n_jobs and set(seen.values()) == {1}


_KILLABLE_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from engram import Engram, WorkerOptions
    from engram.interfaces import CandidateFact, SourceSpan

    class Slow:
        name = "slow"

        async def extract(self, request):
            await asyncio.sleep(0.25)
            return [
                CandidateFact(content=e.content, spans=(SourceSpan(event_id=e.event_id, start=0,
                              end=len(e.content), quote=e.content),))
                for e in request.events if e.role == "user"
            ]

        async def summarize(self, request):
            return "summary"

    async def main():
        e = Engram(sys.argv[1], memory_policy="default", embedder="hashing", extractor=Slow())
        e.worker_options = WorkerOptions(lease_seconds=3, heartbeat_seconds=1, extract_concurrency=2)
        async with e:
            await e.run_memory_worker(batch_size=6, interval_seconds=0.1)

    asyncio.run(main())
    """
)


async def test_sigkilled_worker_jobs_are_rerun_without_duplicates(
    database_url: str, scope: dict[str, str], raw_conn: Any, tmp_path: Path
) -> None:
    n = 30
    async with client(database_url, ScriptedExtractor()) as e:
        task = "t-" + uuid.uuid4().hex[:8]
        for i in range(n):
            await e.record_turn(
                task, user_message=f"Warehouse {i} stores crate {i * 7}", assistant_response="ok", **scope
            )
    total = await raw_conn.fetchval("SELECT count(*) FROM memory_jobs WHERE user_id = $1", scope["user_id"])
    assert total >= n  # derive jobs, plus the policy's periodic checkpoint jobs
    script = tmp_path / "killable_worker.py"
    script.write_text(_KILLABLE_WORKER)
    env = {**os.environ, "ENGRAM_EMBEDDER": "hashing"}
    proc = subprocess.Popen([sys.executable, str(script), database_url], cwd=REPO, env=env)  # noqa: ASYNC220
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = await raw_conn.fetchrow(
                """SELECT count(*) FILTER (WHERE state = 'succeeded') AS ok,
                          count(*) FILTER (WHERE state = 'running') AS running
                   FROM memory_jobs WHERE user_id = $1""",
                scope["user_id"],
            )
            if row["ok"] >= 6 and row["running"] >= 1:
                break
            assert proc.poll() is None, "worker exited early"
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_running = await raw_conn.fetchval(
        "SELECT count(*) FROM memory_jobs WHERE user_id = $1 AND state = 'running'", scope["user_id"]
    )
    assert killed_running >= 1  # the kill really happened mid-batch

    async def same_facts(request: ExtractionRequest) -> list[CandidateFact]:
        return [
            CandidateFact(
                content=ev.content,
                spans=(SourceSpan(event_id=ev.event_id, start=0, end=len(ev.content), quote=ev.content),),
            )
            for ev in request.events
            if ev.role == "user"
        ]

    async with client(database_url, ScriptedExtractor(same_facts)) as e:
        e.worker_options = FAST.model_copy(update={"lease_seconds": 2.0, "heartbeat_seconds": 0.5})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await e.process_jobs(50)
            stats = await e.job_stats(user_id=scope["user_id"])
            if stats.succeeded == total:
                break
            await asyncio.sleep(0.2)
        assert stats.succeeded == total and stats.failed == 0 and stats.running == 0, stats
        facts = await e.list_facts(**scope, status=None)
    assert len(facts) == n
    await _no_duplicate_facts(raw_conn, scope["user_id"])
    per_fact = await raw_conn.fetch(
        "SELECT fact_id, count(*) AS n FROM fact_sources WHERE user_id = $1 GROUP BY fact_id",
        scope["user_id"],
    )
    assert len(per_fact) == n and {r["n"] for r in per_fact} == {1}


async def test_cli_worker_stops_cleanly_on_sigterm(
    database_url: str, scope: dict[str, str], raw_conn: Any
) -> None:
    async with client(database_url) as e:
        turn = await e.record_turn(
            "t-" + uuid.uuid4().hex[:8], user_message="I prefer green tea.", assistant_response="ok", **scope
        )
    env = {**os.environ, "ENGRAM_EMBEDDER": "hashing"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; nothing else runs on this loop
        [
            sys.executable,
            "-m",
            "engram.cli",
            "worker",
            "--dsn",
            database_url,
            "--extractor",
            "rules",
            "--interval",
            "0.1",
            "--batch-size",
            "5",
            "--worker-id",
            "cli-sigterm",
        ],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline:
            state = await raw_conn.fetchval(
                "SELECT state FROM memory_jobs WHERE user_id = $1 AND job_id = $2",
                scope["user_id"],
                turn.job_id,
            )
            if state == "succeeded":
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            await asyncio.sleep(0.1)
        assert state == "succeeded"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "memory worker stopped" in err
    assert (
        await raw_conn.fetchval(
            "SELECT count(*) FROM memory_jobs WHERE lease_owner = 'cli-sigterm' AND state = 'running'"
        )
        == 0
    )


async def test_stop_releases_claimed_but_unstarted_jobs(database_url: str, scope: dict[str, str]) -> None:
    stop = asyncio.Event()

    async def stop_after_first(request: ExtractionRequest) -> list[CandidateFact]:
        stop.set()
        worker_obj.request_stop()
        await asyncio.sleep(0.05)
        return []

    async with client(database_url, ScriptedExtractor(stop_after_first)) as e:
        e.worker_options = FAST.model_copy(update={"extract_concurrency": 1})
        task = "t-" + uuid.uuid4().hex[:8]
        for i in range(5):
            await e.record_turn(task, user_message=f"m{i}", assistant_response="ok", **scope)
        worker_obj = e.memory_worker(batch_size=5, interval_seconds=0.1, stop_event=stop)
        done = await asyncio.wait_for(worker_obj.run(install_signal_handlers=False), 20)
        assert done == 1
        jobs = await e.list_jobs(**scope)
        assert sorted(j.state for j in jobs) == ["queued"] * 4 + ["succeeded"]
        assert all(j.attempts == 0 for j in jobs if j.state == "queued")  # released, not failed
        await drain(e, scope)
        assert (await e.job_stats(user_id=scope["user_id"])).succeeded == 5
