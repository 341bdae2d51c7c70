"""Tenant isolation, proved by a hypothesis state machine (issue 6, "Proofs, as tests").

Three users with two agents each (six ``(user_id, agent_id)`` scopes) run random
sequences of every public call.  The machine keeps a model of what each scope
owns (tasks, events and their content, facts and their status, long inputs and
their chunks, jobs) and plants a unique marker token in everything it writes, so
a leak is a substring search away.  It checks:

* every value a call returns belongs to the caller's scope (ids checked against
  the model, ``user_id``/``agent_id`` fields, and no other scope's marker in any
  recall or long-input context);
* a call on another scope's id raises ``ScopeError``/``NotFoundError`` and leaves
  every row of every tenant table of the six scopes byte-for-byte unchanged;
* task ids are per scope: scopes often pick a task id another scope already uses,
  and a read naming a task id only another scope uses answers as for an unknown id
  (``NotFoundError`` or an empty task), shows nothing of the other scope and
  changes no row;
* ``purge`` of a user (or of one user and agent) leaves every other row of the
  database byte-for-byte unchanged;
* after every step (invariant), the database holds exactly the modelled ids per
  scope, and no row of a scope carries another scope's marker, a purged scope's
  marker, or a redacted marker.

The async client runs on an event loop owned by the machine (not pytest-asyncio's
session loop).  ``HYPOTHESIS_PROFILE=long`` runs >= 1,000 examples (docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from privacy_helpers import snapshot_except

from engram import Engram, InvalidInputError, NotFoundError, ScopeError

T = TypeVar("T")

N_USERS = 3
N_AGENTS = 2
SCOPES: list[tuple[int, int]] = [(u, a) for u in range(N_USERS) for a in range(N_AGENTS)]
FOREIGN_ERRORS = (ScopeError, NotFoundError)
REDACTED = "[REDACTED]"

WORDS = ["harbour", "invoice", "deploy", "garden", "violin", "lantern", "orbit", "quartz", "meadow"]
# Some templates trigger the rules extractor, so process_jobs derives facts too.
TEMPLATES = [
    "My name is {m}.",
    "I live in {m} these days.",
    "I prefer {m} for every deploy.",
    "Please always mention {m} in replies.",
    "The {w} report mentions {m} twice.",
    "Notes on {w}: {m} is the codename.",
]
FACT_TEMPLATES = ["The user likes {w} {m}.", "Project {m} uses the {w} stack.", "{m} is the {w} owner."]
SLOTS = ["home_city", "favourite_colour"]
ROLES = ["user", "assistant", "system", "tool", "observation"]


def _letters(n: int) -> str:
    # Letters only: digits could look like phone numbers to a before-storage redactor.
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


@dataclass
class EventModel:
    task_id: str
    content: str | None  # None: written by the library (long-input artifact events)
    marker: str | None
    redacted: bool = False


@dataclass
class FactModel:
    content: str
    status: str
    slot: str | None


@dataclass
class ScopeModel:
    user_id: str
    agent_id: str
    tasks: set[str] = field(default_factory=set)
    events: dict[int, EventModel] = field(default_factory=dict)
    facts: dict[int, FactModel] = field(default_factory=dict)
    long_inputs: dict[str, set[str]] = field(default_factory=dict)
    jobs: set[int] = field(default_factory=set)
    markers: set[str] = field(default_factory=set)

    @property
    def kw(self) -> dict[str, str]:
        return {"user_id": self.user_id, "agent_id": self.agent_id}

    @property
    def chunks(self) -> set[str]:
        return {c for cs in self.long_inputs.values() for c in cs}

    def clear(self) -> None:
        self.tasks.clear()
        self.events.clear()
        self.facts.clear()
        self.long_inputs.clear()
        self.jobs.clear()
        self.markers.clear()


def _pick(items: Any, index: int) -> Any:
    ordered = sorted(items)
    return ordered[index % len(ordered)] if ordered else None


TENANT_TABLES_SQL = """
SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'user_id')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'agent_id')
ORDER BY 1
"""

ID_COLUMNS = {
    "tasks": "task_id",
    "events": "event_id",
    "facts": "fact_id",
    "long_inputs": "long_input_id",
    "long_input_chunks": "chunk_id",
}

Rows = dict[str, list[tuple[str, str, str]]]

ATTACK_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "s": st.sampled_from(SCOPES),
    "v": st.sampled_from(SCOPES),
    "i": st.integers(0, 1_000),
}

#: Cross-scope calls, and which kind of the victim's ids each one names.
ATTACK_KINDS = {
    "get_event": "events",
    "redact_event": "events",
    "get_fact": "facts",
    "retract_fact": "facts",
    "supersede_fact": "facts",
    "lineage": "facts",
    "get_task_events": "tasks",
    "recall": "tasks",
    "trace_recall": "tasks",
    "checkpoint": "tasks",
    "latest_checkpoint": "tasks",
    "list_long_inputs": "tasks",
    "build_context_task": "tasks",
    "build_context_long_input": "long_inputs",
    "get_long_input": "long_inputs",
    "embed_pending_chunks": "long_inputs",
    "verify_citation": "chunks",
    "get_job": "jobs",
    "cancel_job": "jobs",
}


class IsolationMachine(RuleBasedStateMachine):
    """Random sequences of every public call over six scopes, checked against a model."""

    dsn: str = ""
    #: How often each checked call really ran (printed by the test, for coverage).
    hits: Counter[str] = Counter()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.run_id = _letters(8)
        self.engram = Engram(self.dsn, memory_policy="default", embedder="hashing")
        self.run(self.engram.connect())
        self.conn: asyncpg.Connection = self.run(asyncpg.connect(self.dsn, statement_cache_size=0))
        self.tables: list[str] = [r["t"] for r in self.run(self.conn.fetch(TENANT_TABLES_SQL))]
        self.users = [f"iso-{self.run_id}-u{u}" for u in range(N_USERS)]
        self.scopes = {(u, a): ScopeModel(user_id=self.users[u], agent_id=f"agent-{a}") for (u, a) in SCOPES}
        self.counter = 0
        # Markers no scope owns any more: purged scopes' and redacted events'.
        self.dead_markers: set[str] = set()
        self.dead_events: set[int] = set()
        self.dead_facts: set[int] = set()
        self.dead_tasks: set[str] = set()
        self.dead_long_inputs: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    def run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def teardown(self) -> None:
        try:
            for user in self.users:
                self.run(self.engram.purge(user_id=user))
        finally:
            self.run(self.conn.close())
            self.run(self.engram.close())
            self.loop.close()

    def fresh(self, scope: ScopeModel, kind: str) -> str:
        self.counter += 1
        u = self.users.index(scope.user_id)
        return f"mk{self.run_id}u{u}{scope.agent_id[-1]}{kind}{self.counter}z"

    def new_task_id(self) -> str:
        self.counter += 1
        return f"iso-{self.run_id}-task-{self.counter}"

    def all_markers(self) -> set[str]:
        return set().union(*(s.markers for s in self.scopes.values())) | self.dead_markers

    def foreign_markers(self, scope: ScopeModel) -> set[str]:
        return self.all_markers() - scope.markers

    def assert_no_foreign(self, scope: ScopeModel, text: str, what: str) -> None:
        leaked = sorted(m for m in self.foreign_markers(scope) if m in text)
        assert not leaked, f"{what} for {scope.kw} contains markers of other scopes: {leaked}"

    def task_for(self, scope: ScopeModel, new: bool, index: int) -> str:
        if new or not scope.tasks:
            # Task ids are per scope: a new task often takes a name another scope uses
            # (not in the seed, index 0, so that every scope starts with a task of its own).
            others = set().union(*(o.tasks for o in self.scopes.values())) - scope.tasks
            if index % 3 == 1 and others:
                self.hits["task id of another scope reused"] += 1
                return str(_pick(others, index))
            return self.new_task_id()
        return str(_pick(scope.tasks, index))

    async def rows(self) -> Rows:
        """Every row of every tenant table belonging to this machine's users."""
        out: Rows = {}
        for table in self.tables:
            recs = await self.conn.fetch(
                f'SELECT user_id, agent_id, to_jsonb(x)::text AS j FROM "{table}" x '
                "WHERE user_id = ANY($1::text[]) ORDER BY 3",
                self.users,
            )
            out[table] = [(r["user_id"], r["agent_id"], r["j"]) for r in recs]
        return out

    def expect_refused(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """A call on another scope's id: ScopeError/NotFoundError, and no row changes."""
        self.hits["refused: " + what.split("(")[0]] += 1
        before = self.run(self.rows())
        try:
            result = self.run(call())
        except FOREIGN_ERRORS:
            pass
        else:
            raise AssertionError(f"{what} on another scope's id returned {result!r}")
        assert self.run(self.rows()) == before, f"{what} on another scope's id changed rows"

    def expect_unseen(
        self, me: ScopeModel, victim: ScopeModel, what: str, call: Callable[[], Awaitable[Any]]
    ) -> None:
        """A read naming a task id only another scope uses: the caller has no such task, so
        the answer is NotFoundError or an empty task, never a hint of the other scope."""
        self.hits["unseen: " + what.split("(")[0]] += 1
        before = self.run(self.rows())
        try:
            answer = repr(self.run(call()))
        except NotFoundError as exc:
            answer = str(exc)
        self.assert_no_foreign(me, answer, what)
        assert victim.user_id not in answer or victim.user_id == me.user_id, f"{what} names {victim.kw}"
        assert self.run(self.rows()) == before, f"{what} on another scope's task id changed rows"

    def resync_facts(self) -> None:
        """Facts as the database has them (after the worker or a redaction touched them).

        Only the rows are re-read; the invariant then checks that each new fact's
        lineage points at events of its own scope.
        """
        recs = self.run(
            self.conn.fetch(
                "SELECT user_id, agent_id, fact_id, content, status, slot FROM facts WHERE user_id = ANY($1::text[])",
                self.users,
            )
        )
        for scope in self.scopes.values():
            scope.facts = {
                r["fact_id"]: FactModel(r["content"], r["status"], r["slot"])
                for r in recs
                if (r["user_id"], r["agent_id"]) == (scope.user_id, scope.agent_id)
            }

    def check_event(self, scope: ScopeModel, event: Any) -> None:
        assert (event.user_id, event.agent_id) == (scope.user_id, scope.agent_id)
        assert event.event_id in scope.events, f"event {event.event_id} is not {scope.kw}'s"
        model = scope.events[event.event_id]
        assert event.task_id == model.task_id
        assert event.redacted == model.redacted
        if model.content is not None:
            assert event.content == model.content
        self.assert_no_foreign(scope, event.content, "event content")

    def check_fact(self, scope: ScopeModel, fact: Any) -> None:
        assert (fact.user_id, fact.agent_id) == (scope.user_id, scope.agent_id)
        assert fact.fact_id in scope.facts, f"fact {fact.fact_id} is not {scope.kw}'s"
        model = scope.facts[fact.fact_id]
        assert (fact.status, fact.slot, fact.content) == (model.status, model.slot, model.content)
        for source in fact.sources:
            assert source.event_id in scope.events
        self.assert_no_foreign(scope, fact.content, "fact content")

    # ------------------------------------------------------------------ invariant

    @invariant()
    def database_matches_model_and_holds_no_foreign_marker(self) -> None:
        self.hits["invariant"] += 1
        rows = self.run(self.rows())
        owned: dict[tuple[str, str], dict[str, set[Any]]] = {
            (s.user_id, s.agent_id): {t: set() for t in ID_COLUMNS} for s in self.scopes.values()
        }
        all_markers = self.all_markers()
        for table, recs in rows.items():
            id_col = ID_COLUMNS.get(table)
            for user_id, agent_id, text in recs:
                key = (user_id, agent_id)
                assert key in owned, f"{table} has a row for an unknown scope {key}"
                if id_col is not None:
                    owned[key][table].add(json.loads(text)[id_col])
                mine = self.scopes[(self.users.index(user_id), int(agent_id[-1]))].markers
                leaked = sorted(m for m in all_markers - mine if m in text)
                assert not leaked, f"{table} row of {key} holds foreign/dead markers {leaked}: {text[:300]}"
        for scope in self.scopes.values():
            got = owned[(scope.user_id, scope.agent_id)]
            assert got["tasks"] == scope.tasks, f"tasks of {scope.kw}"
            assert got["events"] == set(scope.events), f"events of {scope.kw}"
            assert got["facts"] == set(scope.facts), f"facts of {scope.kw}"
            assert got["long_inputs"] == set(scope.long_inputs), f"long inputs of {scope.kw}"
            assert got["long_input_chunks"] == scope.chunks, f"chunks of {scope.kw}"
        # Lineage never crosses scopes: every source event is the fact's own scope's.
        crossing = self.run(
            self.conn.fetch(
                """SELECT s.fact_id, s.event_id FROM fact_sources s
                   JOIN facts f ON f.user_id = s.user_id AND f.fact_id = s.fact_id
                   JOIN events e ON e.user_id = s.user_id AND e.event_id = s.event_id
                   WHERE s.user_id = ANY($1::text[])
                     AND (f.agent_id <> s.agent_id OR e.agent_id <> s.agent_id)""",
                self.users,
            )
        )
        assert not crossing, f"fact lineage crosses scopes: {crossing}"

    # ------------------------------------------------------------------ writes

    @initialize(
        templates=st.lists(st.sampled_from(TEMPLATES), min_size=len(SCOPES), max_size=len(SCOPES)),
        w=st.sampled_from(WORDS),
        doc_scope=st.sampled_from(SCOPES),
    )
    def seed(self, templates: list[str], w: str, doc_scope: tuple[int, int]) -> None:
        """Every scope starts with a turn, an event and a fact (and one a document), so that
        attacks have targets from the first step."""
        for s, template in zip(SCOPES, templates, strict=True):
            self.record_turn(s, True, 0, template, w)
            self.record_event(s, False, 0, "tool", w, False)
            self.add(s, None, FACT_TEMPLATES[0], w)
        self.record_long_input(doc_scope, False, 0, w, 2)

    @rule(
        s=st.sampled_from(SCOPES),
        new=st.booleans(),
        i=st.integers(0, 1_000),
        template=st.sampled_from(TEMPLATES),
        w=st.sampled_from(WORDS),
    )
    def record_turn(self, s: tuple[int, int], new: bool, i: int, template: str, w: str) -> None:
        scope = self.scopes[s]
        task = self.task_for(scope, new, i)
        marker = self.fresh(scope, "t")
        message = template.format(m=marker, w=w)
        answer = f"Noted, {w}."
        turn = self.run(
            self.engram.record_turn(task, user_message=message, assistant_response=answer, **scope.kw)
        )
        assert turn.task_id == task
        scope.tasks.add(task)
        scope.markers.add(marker)
        scope.events[turn.user_event_id] = EventModel(task, message, marker)
        scope.events[turn.assistant_event_id] = EventModel(task, answer, None)
        if turn.job_id is not None:
            scope.jobs.add(turn.job_id)

    @rule(
        s=st.sampled_from(SCOPES),
        new=st.booleans(),
        i=st.integers(0, 1_000),
        role=st.sampled_from(ROLES),
        w=st.sampled_from(WORDS),
        enqueue=st.booleans(),
    )
    def record_event(self, s: tuple[int, int], new: bool, i: int, role: str, w: str, enqueue: bool) -> None:
        scope = self.scopes[s]
        task = self.task_for(scope, new, i)
        marker = self.fresh(scope, "e")
        content = f"{role} output about {w}: {marker} done."
        event = self.run(
            self.engram.record_event(task, role=role, content=content, enqueue_processing=enqueue, **scope.kw)
        )
        assert (event.user_id, event.agent_id, event.task_id, event.content) == (
            scope.user_id,
            scope.agent_id,
            task,
            content,
        )
        scope.tasks.add(task)
        scope.markers.add(marker)
        scope.events[event.event_id] = EventModel(task, content, marker)

    @rule(
        s=st.sampled_from(SCOPES),
        slot=st.none() | st.sampled_from(SLOTS),
        template=st.sampled_from(FACT_TEMPLATES),
        w=st.sampled_from(WORDS),
    )
    def add(self, s: tuple[int, int], slot: str | None, template: str, w: str) -> None:
        scope = self.scopes[s]
        marker = self.fresh(scope, "f")
        content = template.format(m=marker, w=w)
        fact = self.run(self.engram.add(content, slot=slot, **scope.kw))
        scope.markers.add(marker)
        if slot is not None:
            for fid, model in scope.facts.items():
                if model.slot == slot and model.status == "active" and fid != fact.fact_id:
                    model.status = "superseded"
        scope.facts[fact.fact_id] = FactModel(content, "active", slot)
        self.check_fact(scope, fact)

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000))
    def retract_fact(self, s: tuple[int, int], i: int) -> None:
        scope = self.scopes[s]
        fid = _pick(scope.facts, i)
        if fid is None:
            return
        fact = self.run(self.engram.retract_fact(fid, **scope.kw))
        if scope.facts[fid].status == "active":
            scope.facts[fid].status = "retracted"
        self.check_fact(scope, fact)

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000), w=st.sampled_from(WORDS))
    def supersede_fact(self, s: tuple[int, int], i: int, w: str) -> None:
        scope = self.scopes[s]
        fid = _pick(scope.facts, i)
        if fid is None:
            return
        marker = self.fresh(scope, "f")
        content = f"Corrected: {w} {marker}."
        old = scope.facts[fid]
        if old.status != "active":
            before = self.run(self.rows())
            with pytest.raises(InvalidInputError):
                self.run(self.engram.supersede_fact(fid, content, **scope.kw))
            assert self.run(self.rows()) == before
            return
        new = self.run(self.engram.supersede_fact(fid, content, **scope.kw))
        scope.markers.add(marker)
        old.status = "superseded"
        scope.facts[new.fact_id] = FactModel(content, "active", old.slot)
        self.check_fact(scope, new)

    @rule(
        s=st.sampled_from(SCOPES),
        new=st.booleans(),
        i=st.integers(0, 1_000),
        w=st.sampled_from(WORDS),
        paragraphs=st.integers(1, 6),
    )
    def record_long_input(self, s: tuple[int, int], new: bool, i: int, w: str, paragraphs: int) -> None:
        scope = self.scopes[s]
        task = self.task_for(scope, new, i)
        marker = self.fresh(scope, "d")
        text = "\n\n".join(
            f"Section {n} on the {w} contract. Clause {n} names {marker} as the party. " * 12
            for n in range(paragraphs)
        )
        record = self.run(self.engram.record_long_input(task, text, title=f"{w} contract", **scope.kw))
        assert record.task_id == task and not record.deduplicated
        scope.tasks.add(task)
        scope.markers.add(marker)
        scope.long_inputs[record.long_input_id] = {c.chunk_id for c in record.chunks}
        scope.events[record.event_id] = EventModel(task, None, None)
        if record.job_id is not None:
            scope.jobs.add(record.job_id)

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000), whole=st.booleans())
    def redact_event(self, s: tuple[int, int], i: int, whole: bool) -> None:
        scope = self.scopes[s]
        candidates = {eid for eid, e in scope.events.items() if e.marker is not None and not e.redacted}
        eid = _pick(candidates, i)
        if eid is None:
            return
        model = scope.events[eid]
        assert model.content is not None and model.marker is not None
        if whole:
            spans = None
            content = REDACTED
        else:
            start = model.content.index(model.marker)
            spans = [(start, start + len(model.marker))]
            content = model.content.replace(model.marker, REDACTED)
        report = self.run(self.engram.redact_event(eid, reason="state machine", spans=spans, **scope.kw))
        self.hits["redact_event"] += 1
        assert report.event_id == eid and report.task_id == model.task_id
        assert model.marker not in report.model_dump_json()
        model.content, model.redacted = content, True
        # The marker must now be nowhere (the invariant checks every row of the six scopes).
        scope.markers.discard(model.marker)
        self.dead_markers.add(model.marker)
        model.marker = None
        self.resync_facts()
        for fid in report.facts_superseded:
            assert fid in scope.facts and scope.facts[fid].status == "superseded"

    @rule(
        s=st.sampled_from(SCOPES),
        i=st.integers(0, 1_000),
        whole=st.booleans(),
        order=st.permutations(range(3)),
    )
    def redaction_races_derived_writers(
        self, s: tuple[int, int], i: int, whole: bool, order: list[int]
    ) -> None:
        """redact_event while checkpoint() and a worker batch derive from the same scope
        (issue 14, defect 1); the invariant then finds the redacted marker nowhere."""
        scope = self.scopes[s]
        candidates = {eid for eid, e in scope.events.items() if e.marker is not None and not e.redacted}
        eid = _pick(candidates, i)
        if eid is None:
            return
        model = scope.events[eid]
        assert model.content is not None and model.marker is not None
        spans: list[tuple[int, int]] | None = None
        content = REDACTED
        if not whole:
            start = model.content.index(model.marker)
            spans = [(start, start + len(model.marker))]
            content = model.content.replace(model.marker, REDACTED)
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: self.engram.redact_event(eid, reason="race", spans=spans, **scope.kw),
            lambda: self.engram.checkpoint(model.task_id, **scope.kw),
            lambda: self.engram.process_jobs(batch_size=50),
        ]

        async def race() -> list[Any]:
            started = [asyncio.ensure_future(calls[k]()) for k in order]
            return list(await asyncio.gather(*started))

        results = self.run(race())
        self.hits["redaction raced derived writers"] += 1
        report, cp = results[order.index(0)], results[order.index(1)]
        assert report.event_id == eid and model.marker not in report.model_dump_json()
        assert (cp.user_id, cp.agent_id, cp.task_id) == (scope.user_id, scope.agent_id, model.task_id)
        model.content, model.redacted = content, True
        scope.markers.discard(model.marker)
        self.dead_markers.add(model.marker)
        model.marker = None
        self.resync_facts()

    @rule(u=st.integers(0, N_USERS - 1), agent=st.none() | st.integers(0, N_AGENTS - 1))
    def purge(self, u: int, agent: int | None) -> None:
        user = self.users[u]
        agent_id = None if agent is None else f"agent-{agent}"
        before = self.run(self._snapshot_outside(user, agent_id))
        report = self.run(self.engram.purge(user_id=user, agent_id=agent_id))
        self.hits["purge"] += 1
        assert (report.user_id, report.agent_id) == (user, agent_id)
        assert self.run(self._snapshot_outside(user, agent_id)) == before, "purge changed other scopes"
        left = self.run(
            self.conn.fetchval(
                "SELECT count(*) FROM events WHERE user_id = $1 AND ($2::text IS NULL OR agent_id = $2)",
                user,
                agent_id,
            )
        )
        assert left == 0
        for (su, sa), scope in self.scopes.items():
            if su == u and (agent is None or sa == agent):
                self.dead_markers |= scope.markers
                self.dead_events |= set(scope.events)
                self.dead_facts |= set(scope.facts)
                self.dead_tasks |= scope.tasks
                self.dead_long_inputs |= set(scope.long_inputs)
                scope.clear()

    async def _snapshot_outside(self, user: str, agent_id: str | None) -> dict[str, list[str]]:
        """Every row of the database outside the purged scope (all tenants, all tables)."""
        snap = await snapshot_except(self.conn, user)
        if agent_id is not None:  # the user's other agents must survive too
            for table in self.tables:
                recs = await self.conn.fetch(
                    f'SELECT to_jsonb(x)::text AS j FROM "{table}" x WHERE user_id = $1 AND agent_id <> $2 '
                    "ORDER BY 1",
                    user,
                    agent_id,
                )
                snap[f"{table}/same-user"] = [r["j"] for r in recs]
        return snap

    @rule()
    def process_jobs(self) -> None:
        done = self.run(self.engram.process_jobs(batch_size=50))
        self.hits["jobs processed"] += done
        assert done >= 0
        self.resync_facts()

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000))
    def checkpoint(self, s: tuple[int, int], i: int) -> None:
        scope = self.scopes[s]
        task = _pick(scope.tasks, i)
        if task is None:
            return
        cp = self.run(self.engram.checkpoint(task, **scope.kw))
        assert (cp.user_id, cp.agent_id, cp.task_id) == (scope.user_id, scope.agent_id, task)
        assert cp.through_event_id in scope.events
        self.assert_no_foreign(scope, cp.summary, "checkpoint summary")

    # ------------------------------------------------------------------ reads

    @rule(
        s=st.sampled_from(SCOPES),
        source=st.sampled_from([*SCOPES, None]),
        i=st.integers(0, 1_000),
        with_task=st.booleans(),
        traced=st.booleans(),
        w=st.sampled_from(WORDS),
    )
    def recall(
        self,
        s: tuple[int, int],
        source: tuple[int, int] | None,
        i: int,
        with_task: bool,
        traced: bool,
        w: str,
    ) -> None:
        """Recall in one scope, often with another scope's marker as the query."""
        scope = self.scopes[s]
        marker = _pick(self.scopes[source].markers | self.dead_markers, i) if source else None
        query = f"what about {w} {marker or ''}".strip()
        task = _pick(scope.tasks, i) if with_task else None
        call = self.engram.trace_recall if traced else self.engram.recall
        result = self.run(call(query, task_id=task, **scope.kw))
        self.hits["recall"] += 1
        self.hits["recall items"] += len(result.items)
        self.assert_no_foreign(scope, result.context, "recall context")
        if traced:
            assert (result.user_id, result.agent_id, result.task_id) == (  # type: ignore[attr-defined]
                scope.user_id,
                scope.agent_id,
                task,
            )
        chunks = scope.chunks
        for item in result.items:
            self.assert_no_foreign(scope, item.text, "recall item")
            ids = item.ids
            if "fact_id" in ids:
                assert ids["fact_id"] in scope.facts, (
                    f"recall returned fact {ids['fact_id']} of another scope"
                )
            for eid in ids.get("event_ids", ()):
                assert eid in scope.events, f"recall returned event {eid} of another scope"
            if "task_id" in ids:
                assert ids["task_id"] in scope.tasks
            if "chunk_id" in ids:
                assert ids["chunk_id"] in chunks and ids["long_input_id"] in scope.long_inputs
            if "checkpoint_id" in ids:
                owner = self.run(
                    self.conn.fetchrow(
                        "SELECT user_id, agent_id FROM checkpoints WHERE checkpoint_id = $1",
                        ids["checkpoint_id"],
                    )
                )
                assert owner is not None and tuple(owner) == (scope.user_id, scope.agent_id)

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000), after=st.booleans())
    def get_task_events(self, s: tuple[int, int], i: int, after: bool) -> None:
        scope = self.scopes[s]
        task = _pick(scope.tasks, i)
        if task is None:
            return
        expected = sorted(eid for eid, e in scope.events.items() if e.task_id == task)
        after_id = expected[0] if after else 0
        events = self.run(self.engram.get_task_events(task, after_event_id=after_id, **scope.kw))
        assert [e.event_id for e in events] == [eid for eid in expected if eid > after_id]
        for event in events:
            self.check_event(scope, event)

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000))
    def get_event(self, s: tuple[int, int], i: int) -> None:
        scope = self.scopes[s]
        eid = _pick(scope.events, i)
        if eid is not None:
            self.check_event(scope, self.run(self.engram.get_event(eid, **scope.kw)))

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000), lineage=st.booleans())
    def get_fact(self, s: tuple[int, int], i: int, lineage: bool) -> None:
        scope = self.scopes[s]
        fid = _pick(scope.facts, i)
        if fid is None:
            return
        self.check_fact(scope, self.run(self.engram.get_fact(fid, **scope.kw)))
        if lineage:
            result = self.run(self.engram.lineage(fid, **scope.kw))
            assert fid in {n.fact.fact_id for n in result.nodes}
            for node in result.nodes:
                self.check_fact(scope, node.fact)

    @rule(s=st.sampled_from(SCOPES), status=st.sampled_from([None, "active", "superseded", "retracted"]))
    def list_facts(self, s: tuple[int, int], status: str | None) -> None:
        scope = self.scopes[s]
        facts = self.run(self.engram.list_facts(status=status, limit=10_000, **scope.kw))
        expected = {fid for fid, f in scope.facts.items() if status is None or f.status == status}
        assert {f.fact_id for f in facts} == expected
        for fact in facts:
            assert (fact.user_id, fact.agent_id) == (scope.user_id, scope.agent_id)

    @rule(s=st.sampled_from(SCOPES))
    def list_tasks(self, s: tuple[int, int]) -> None:
        scope = self.scopes[s]
        tasks = self.run(self.engram.list_tasks(limit=10_000, **scope.kw))
        assert {t.task_id for t in tasks} == scope.tasks
        for task in tasks:
            assert (task.user_id, task.agent_id) == (scope.user_id, scope.agent_id)

    @rule(s=st.sampled_from(SCOPES), i=st.integers(0, 1_000))
    def latest_checkpoint(self, s: tuple[int, int], i: int) -> None:
        scope = self.scopes[s]
        task = _pick(scope.tasks, i)
        if task is None:
            return
        cp = self.run(self.engram.latest_checkpoint(task, **scope.kw))
        if cp is not None:
            assert (cp.user_id, cp.agent_id, cp.task_id) == (scope.user_id, scope.agent_id, task)

    @rule(s=st.sampled_from(SCOPES))
    def list_jobs_and_stats(self, s: tuple[int, int]) -> None:
        scope = self.scopes[s]
        jobs = self.run(self.engram.list_jobs(limit=10_000, **scope.kw))
        for job in jobs:
            assert (job.user_id, job.agent_id) == (scope.user_id, scope.agent_id)
            assert job.task_id is None or job.task_id in scope.tasks
        scope.jobs |= {j.job_id for j in jobs}
        stats = self.run(self.engram.job_stats(**scope.kw))
        total = stats.queued + stats.running + stats.succeeded + stats.failed + stats.cancelled
        assert total == len(jobs)

    @rule(
        s=st.sampled_from(SCOPES),
        source=st.sampled_from(SCOPES),
        i=st.integers(0, 1_000),
        narrow=st.sampled_from(["none", "task", "long_input"]),
    )
    def long_input_reads(self, s: tuple[int, int], source: tuple[int, int], i: int, narrow: str) -> None:
        scope = self.scopes[s]
        marker = _pick(self.scopes[source].markers, i) or "contract"
        li = _pick(scope.long_inputs, i)
        task = _pick(scope.tasks, i)
        kwargs: dict[str, Any] = {}
        if narrow == "task" and task is not None:
            kwargs["task_id"] = task
        if narrow == "long_input" and li is not None:
            kwargs["long_input_id"] = li
        ctx = self.run(self.engram.build_long_input_context(f"party {marker}", **kwargs, **scope.kw))
        self.assert_no_foreign(scope, ctx.context, "long-input context")
        chunks = scope.chunks
        for chunk in ctx.chunks:
            assert chunk.chunk_id in chunks and chunk.long_input_id in scope.long_inputs
        listed = self.run(self.engram.list_long_inputs(limit=10_000, **scope.kw))
        assert {d.long_input_id for d in listed} == set(scope.long_inputs)
        if li is not None:
            doc = self.run(self.engram.get_long_input(li, include_chunks=True, **scope.kw))
            assert (doc.user_id, doc.agent_id) == (scope.user_id, scope.agent_id)
            assert {c.chunk_id for c in doc.chunks} == scope.long_inputs[li]
            chunk_id = _pick(scope.long_inputs[li], i)
            check = self.run(self.engram.verify_citation(chunk_id=chunk_id, quote="contract", **scope.kw))
            assert check.chunk_id == chunk_id and check.long_input_id == li

    # ------------------------------------------------------------------ attacks

    def attack(self, s: tuple[int, int], v: tuple[int, int], i: int, call: str) -> None:
        """A call from scope ``s`` naming an id owned by another scope (``v``, or the next
        scope that has such an id) is refused and changes nothing."""
        me = self.scopes[s]
        e, kw = self.engram, me.kw
        kind = ATTACK_KINDS[call]
        order = SCOPES[SCOPES.index(v) :] + SCOPES[: SCOPES.index(v)]
        victims = [self.scopes[o] for o in order if o != s and getattr(self.scopes[o], kind)]
        if not victims:
            return
        if kind == "tasks":
            # A task id the caller uses too names the caller's own task: not an attack.
            victims = [v for v in victims if v.tasks - me.tasks]
            if not victims:
                return
            target = _pick(victims[0].tasks - me.tasks, i)
        else:
            target = _pick(getattr(victims[0], kind), i)
        event = fact = job = target
        task = li = chunk = target
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get_event": lambda: e.get_event(event, **kw),
            "redact_event": lambda: e.redact_event(event, reason="attack", **kw),
            "get_fact": lambda: e.get_fact(fact, **kw),
            "retract_fact": lambda: e.retract_fact(fact, **kw),
            "supersede_fact": lambda: e.supersede_fact(fact, "hijacked", **kw),
            "lineage": lambda: e.lineage(fact, **kw),
            "get_task_events": lambda: e.get_task_events(task, **kw),
            "recall": lambda: e.recall("anything", task_id=task, **kw),
            "trace_recall": lambda: e.trace_recall("anything", task_id=task, **kw),
            "checkpoint": lambda: e.checkpoint(task, **kw),
            "latest_checkpoint": lambda: e.latest_checkpoint(task, **kw),
            "list_long_inputs": lambda: e.list_long_inputs(task_id=task, **kw),
            "build_context_task": lambda: e.build_long_input_context("party", task_id=task, **kw),
            "build_context_long_input": lambda: e.build_long_input_context("party", long_input_id=li, **kw),
            "get_long_input": lambda: e.get_long_input(li, include_text=True, **kw),
            "embed_pending_chunks": lambda: e.embed_pending_chunks(long_input_id=li, **kw),
            "verify_citation": lambda: e.verify_citation(chunk_id=chunk, quote="contract", **kw),
            "get_job": lambda: e.get_job(job, **kw),
            "cancel_job": lambda: e.cancel_job(job, **kw),
        }
        if kind == "tasks":
            self.expect_unseen(me, victims[0], f"{call}({target!r}) from {kw}", calls[call])
        else:
            self.expect_refused(f"{call}({target!r}) from {kw}", calls[call])

    @rule(**ATTACK_ARGS, call=st.sampled_from(sorted(c for c, k in ATTACK_KINDS.items() if k == "events")))
    def attack_event(self, s: tuple[int, int], v: tuple[int, int], i: int, call: str) -> None:
        self.attack(s, v, i, call)

    @rule(**ATTACK_ARGS, call=st.sampled_from(sorted(c for c, k in ATTACK_KINDS.items() if k == "facts")))
    def attack_fact(self, s: tuple[int, int], v: tuple[int, int], i: int, call: str) -> None:
        self.attack(s, v, i, call)

    @rule(**ATTACK_ARGS, call=st.sampled_from(sorted(c for c, k in ATTACK_KINDS.items() if k == "tasks")))
    def attack_task(self, s: tuple[int, int], v: tuple[int, int], i: int, call: str) -> None:
        self.attack(s, v, i, call)

    @rule(
        **ATTACK_ARGS,
        call=st.sampled_from(
            sorted(c for c, k in ATTACK_KINDS.items() if k in ("long_inputs", "chunks", "jobs"))
        ),
    )
    def attack_document_or_job(self, s: tuple[int, int], v: tuple[int, int], i: int, call: str) -> None:
        self.attack(s, v, i, call)

    @precondition(lambda self: bool(self.dead_events))
    @rule(
        s=st.sampled_from(SCOPES),
        i=st.integers(0, 1_000),
        kind=st.sampled_from(["event", "fact", "task", "long_input"]),
    )
    def purged_ids_are_gone(self, s: tuple[int, int], i: int, kind: str) -> None:
        """Ids of a purged scope are not found from any scope, and reveal nothing."""
        scope = self.scopes[s]
        e, kw = self.engram, scope.kw
        if kind == "event" and (eid := _pick(self.dead_events, i)) is not None:
            self.expect_refused("get_event(purged)", lambda: e.get_event(eid, **kw))
        elif kind == "fact" and (fid := _pick(self.dead_facts, i)) is not None:
            self.expect_refused("get_fact(purged)", lambda: e.get_fact(fid, **kw))
        elif kind == "task" and (task := _pick(self.dead_tasks - scope.tasks, i)) is not None:
            # Nobody owns a purged task id any more: reading it is an empty ledger.
            assert self.run(e.get_task_events(task, **kw)) == []
        elif kind == "long_input" and (li := _pick(self.dead_long_inputs, i)) is not None:
            self.expect_refused("get_long_input(purged)", lambda: e.get_long_input(li, **kw))


# The long profile runs far past the suite's 10-minute per-test timeout (pyproject.toml);
# it is a deliberate, long run, so it gets no timeout at all.
LONG_RUN = os.environ.get("HYPOTHESIS_PROFILE") == "long"


@pytest.mark.timeout(0 if LONG_RUN else 600)
def test_tenant_isolation_state_machine(database_url: str) -> None:
    """Random sequences of every public call never return or change another scope's data."""
    IsolationMachine.dsn = database_url
    current = settings()
    started = time.perf_counter()
    IsolationMachine.hits.clear()
    run_state_machine_as_test(IsolationMachine, settings=settings(current))
    elapsed = time.perf_counter() - started
    print(f"\nisolation state machine: {current.max_examples} examples in {elapsed:.1f}s")
    print(", ".join(f"{k}={v}" for k, v in sorted(IsolationMachine.hits.items())))
