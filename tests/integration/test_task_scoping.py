"""Task ids are scoped by ``(user_id, agent_id)`` (issue 14, defect 5).

Until 0.1.0 a task id was global: the first scope to use one owned it, and every
other scope got a ``ScopeError`` that also told it the id existed.  Here three
scopes -- two users, and a second agent of the first user -- use the very same
task id at the same time, and each must see a task of its own: its own events,
checkpoint, long inputs, jobs and recall, nothing of the others, and no answer
that differs from the one for an id nobody uses.  A database written by 0.1.0
keeps its tasks through the migration and then lets other scopes reuse their ids.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import uuid
from typing import Any

import asyncpg
import pytest
from test_upgrade_from_previous_release import apply_previous_release_schema, write_previous_release_rows

from engram import Engram, NotFoundError

TASK = "task-1"  # deliberately the same plain id in every scope
TURNS = 3


def _letters(n: int) -> str:
    # Letters only, so that no before-storage redactor mistakes a marker for a number.
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


def _scopes() -> dict[str, dict[str, str]]:
    run = uuid.uuid4().hex[:10]
    return {
        "a": {"user_id": f"ts-{run}-ann", "agent_id": "agent-planner"},
        "a2": {"user_id": f"ts-{run}-ann", "agent_id": "agent-booker"},
        "b": {"user_id": f"ts-{run}-bob", "agent_id": "agent-planner"},
    }


class World:
    """Three scopes that each wrote a turn history, a document and a checkpoint in TASK."""

    def __init__(self, engram: Engram) -> None:
        self.engram = engram
        self.scopes = _scopes()
        self.markers = {name: "mk" + _letters(12) for name in self.scopes}

    def others(self, name: str | None) -> list[str]:
        return [o for o in self.scopes if o != name]

    def foreign(self, name: str | None, text: str) -> list[str]:
        """Markers, user ids and agent ids of scopes other than ``name`` found in ``text``."""
        mine = self.scopes[name] if name is not None else {"user_id": None, "agent_id": None}
        found: list[str] = []
        for other in self.others(name):
            kw = self.scopes[other]
            found += [self.markers[other]] if self.markers[other] in text else []
            for key in ("user_id", "agent_id"):
                if kw[key] != mine[key] and kw[key] in text:
                    found.append(kw[key])
        return found

    def message(self, name: str, i: int) -> str:
        return f"Turn {i}: the codeword is {self.markers[name]} and I prefer the window seat."

    def document(self, name: str) -> str:
        return (
            f"# Booking terms for {self.markers[name]}\n\n"
            f"The traveller {self.markers[name]} must cancel at least ten days before departure.\n\n"
            "Refunds are paid to the original card within thirty days."
        )

    async def populate(self) -> None:
        e = self.engram
        # Every scope's turns at once, interleaved, all naming the same task id.
        await asyncio.gather(
            *(
                e.record_turn(TASK, user_message=self.message(n, i), assistant_response=f"Noted {i}.", **kw)
                for i in range(TURNS)
                for n, kw in self.scopes.items()
            )
        )
        await asyncio.gather(
            *(
                e.record_long_input(TASK, self.document(n), title="terms", **kw)
                for n, kw in self.scopes.items()
            )
        )
        await asyncio.gather(*(e.checkpoint(TASK, **kw) for kw in self.scopes.values()))
        while await e.process_jobs(batch_size=50):
            pass

    async def purge(self) -> None:
        for user in {kw["user_id"] for kw in self.scopes.values()}:
            await self.engram.purge(user_id=user)


@pytest.fixture
async def world(engram: Engram) -> Any:
    w = World(engram)
    await w.populate()
    try:
        yield w
    finally:
        await w.purge()


async def test_each_scope_has_its_own_task_of_the_same_id(world: World) -> None:
    e = world.engram
    event_ids: dict[str, set[int]] = {}
    for name, kw in world.scopes.items():
        me = (kw["user_id"], kw["agent_id"])
        # The ledger: this scope's turns and its artifact event, nobody else's.
        events = await e.get_task_events(TASK, **kw)
        assert {(ev.user_id, ev.agent_id, ev.task_id) for ev in events} == {(*me, TASK)}
        assert sorted(ev.content for ev in events if ev.role == "user") == [
            world.message(name, i) for i in range(TURNS)
        ]
        assert [ev.role for ev in events].count("artifact") == 1
        event_ids[name] = {ev.event_id for ev in events}
        (task,) = await e.list_tasks(**kw)
        assert (task.user_id, task.agent_id, task.task_id, task.turn_count) == (*me, TASK, TURNS)

        # The checkpoint summarises this scope's task only.
        checkpoint = await e.latest_checkpoint(TASK, **kw)
        assert checkpoint is not None
        assert (checkpoint.user_id, checkpoint.agent_id, checkpoint.task_id) == (*me, TASK)
        assert checkpoint.through_event_id in event_ids[name]

        # Long inputs recorded in the task.
        (doc,) = await e.list_long_inputs(task_id=TASK, **kw)
        assert (doc.user_id, doc.agent_id, doc.task_id) == (*me, TASK)
        context = await e.build_long_input_context(
            "how many days before departure must the traveller cancel?", task_id=TASK, **kw
        )
        assert context.chunks and {c.long_input_id for c in context.chunks} == {doc.long_input_id}

        # Jobs: this scope's derivation and chunk jobs, all for its task.
        jobs = await e.list_jobs(**kw)
        assert jobs and {(j.user_id, j.agent_id) for j in jobs} == {me}
        assert {j.task_id for j in jobs} == {TASK}

        # Recall with the task: the task's ledger, checkpoint and facts are this scope's.
        facts = {f.fact_id for f in await e.list_facts(**kw)}
        query = "what codeword and seat? " + " ".join(world.markers.values())
        trace = await e.trace_recall(query, task_id=TASK, **kw)
        assert world.markers[name] in trace.context
        assert any(item.source == "checkpoint" for item in trace.items)
        for item in trace.items:
            assert set(item.ids.get("event_ids", ())) <= event_ids[name], f"{name} recalled {item.key}"
            assert item.ids.get("task_id", TASK) == TASK
            assert item.ids.get("fact_id", next(iter(facts), None)) in facts
            assert item.ids.get("checkpoint_id", checkpoint.checkpoint_id) == checkpoint.checkpoint_id

        # Nothing any of these calls returned mentions another scope (the trace echoes
        # the query, which names every scope's marker, so only what it found counts).
        everything = repr((events, task, checkpoint, doc, context, jobs, trace.items, trace.context))
        assert world.foreign(name, everything) == [], f"{name} sees another scope"
    # Three tasks of one name, with disjoint events.
    assert not (event_ids["a"] & event_ids["a2"] or event_ids["a"] & event_ids["b"])
    assert not event_ids["a2"] & event_ids["b"]


async def test_purge_of_one_scope_leaves_the_others_task_intact(world: World) -> None:
    e = world.engram
    before = {n: await e.get_task_events(TASK, **kw) for n, kw in world.scopes.items()}
    checkpoints = {n: await e.latest_checkpoint(TASK, **kw) for n, kw in world.scopes.items()}

    await e.purge(user_id=world.scopes["b"]["user_id"])
    for n in ("a", "a2"):
        kw = world.scopes[n]
        assert await e.get_task_events(TASK, **kw) == before[n]
        assert await e.latest_checkpoint(TASK, **kw) == checkpoints[n]
        assert [t.task_id for t in await e.list_tasks(**kw)] == [TASK]
        assert len(await e.list_long_inputs(task_id=TASK, **kw)) == 1

    # Purging one agent of a user leaves that user's other agent's task of the same id.
    await e.purge(**world.scopes["a2"])
    assert await e.get_task_events(TASK, **world.scopes["a"]) == before["a"]
    assert await e.latest_checkpoint(TASK, **world.scopes["a"]) == checkpoints["a"]
    assert await e.get_task_events(TASK, **world.scopes["a2"]) == []

    # A purged scope may use the id again: it starts a fresh task.
    turn = await e.record_turn(TASK, user_message="back again", assistant_response="hi", **world.scopes["b"])
    assert turn.turn_count == 1
    assert [ev.content for ev in await e.get_task_events(TASK, **world.scopes["b"])] == ["back again", "hi"]
    assert await e.get_task_events(TASK, **world.scopes["a"]) == before["a"]


async def _answers(e: Engram, task_id: str, kw: dict[str, str]) -> list[str]:
    """What every task-scoped call answers for ``task_id`` in a scope that never used it,
    with the id itself replaced, so answers for two different ids can be compared."""
    out: list[Any] = [
        await e.get_task_events(task_id, **kw),
        await e.list_long_inputs(task_id=task_id, **kw),
        (await e.build_long_input_context("cancel before departure", task_id=task_id, **kw)).chunks,
        (await e.recall("the codeword and the seat", task_id=task_id, **kw)).items,
    ]
    for call in (e.checkpoint, e.latest_checkpoint):
        try:
            out.append(await call(task_id, **kw))
        except NotFoundError as exc:
            out.append(f"NotFoundError: {exc}")
    return [(x if isinstance(x, str) else repr(x)).replace(task_id, "<id>") for x in out]


async def test_nothing_reveals_whether_another_scope_uses_an_id(world: World) -> None:
    e = world.engram
    stranger = {"user_id": f"eve-{uuid.uuid4().hex[:10]}", "agent_id": "agent-planner"}
    unused = "task-" + _letters(10)
    try:
        used_elsewhere = await _answers(e, TASK, stranger)
        # An id three other scopes use reads exactly like an id that nobody uses.
        assert used_elsewhere == await _answers(e, unused, stranger)
        assert used_elsewhere[0] == "[]" and used_elsewhere[-1].startswith("NotFoundError")
        assert world.foreign(None, " ".join(used_elsewhere)) == []
        # Writing to it is writing to a new task of the stranger's own.
        turn = await e.record_turn(TASK, user_message="hello", assistant_response="hi", **stranger)
        assert turn.turn_count == 1
        fresh = await e.record_turn(unused, user_message="hello", assistant_response="hi", **stranger)
        assert fresh.turn_count == 1
        for name, kw in world.scopes.items():
            assert len(await e.get_task_events(TASK, **kw)) == 2 * TURNS + 1, name
    finally:
        await e.purge(user_id=stranger["user_id"])


async def test_a_previous_release_database_keeps_its_tasks_and_frees_their_ids(
    scratch_dsn: str, scope: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0.1.0 database (task_owners and all) migrates: the old task reads back whole,
    and other scopes can then use its id for tasks of their own."""
    await apply_previous_release_schema(scratch_dsn, monkeypatch)
    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        ids = await write_previous_release_rows(conn, scope)
    finally:
        await conn.close()
    task_id = ids["task_id"]
    other_user = {"user_id": scope["user_id"] + "-other", "agent_id": scope["agent_id"]}
    other_agent = {"user_id": scope["user_id"], "agent_id": scope["agent_id"] + "-2"}

    async with Engram(scratch_dsn, memory_policy="default", embedder="hashing") as e:
        old_events = await e.get_task_events(task_id, **scope)
        assert [ev.event_id for ev in old_events] == [
            ids["user_event_id"],
            ids["assistant_event_id"],
            ids["artifact_event_id"],
        ]
        for other in (other_user, other_agent):
            turn = await e.record_turn(task_id, user_message="mine", assistant_response="ok", **other)
            assert turn.turn_count == 1
            assert [ev.content for ev in await e.get_task_events(task_id, **other)] == ["mine", "ok"]
            assert await e.list_long_inputs(task_id=task_id, **other) == []
            assert await e.latest_checkpoint(task_id, **other) is None  # theirs has none yet
        # The old owner's task is untouched and keeps counting its own turns.
        assert await e.get_task_events(task_id, **scope) == old_events
        checkpoint = await e.latest_checkpoint(task_id, **scope)
        assert checkpoint is not None and checkpoint.checkpoint_id == ids["checkpoint_id"]
        turn = await e.record_turn(task_id, user_message="again", assistant_response="ok", **scope)
        assert turn.turn_count == 2

    conn = await asyncpg.connect(scratch_dsn, statement_cache_size=0)
    try:
        assert await conn.fetchval("SELECT to_regclass('task_owners')") is None
        tasks = await conn.fetch(
            "SELECT user_id, agent_id FROM tasks WHERE task_id = $1 ORDER BY 1, 2", task_id
        )
        assert sorted((r["user_id"], r["agent_id"]) for r in tasks) == sorted(
            (s["user_id"], s["agent_id"]) for s in (scope, other_user, other_agent)
        )
    finally:
        await conn.close()
