"""recall / trace_recall: strategies, routing, pinned slots, budgets, traces, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from engram import (
    ConfigurationError,
    CriticalSlot,
    Engram,
    InvalidInputError,
    MemoryPolicy,
    hookimpl,
    plugins,
)
from engram.policy import RecallSettings, RouterRule

SLOT_POLICY = MemoryPolicy(
    name="test-slots",
    critical_slots=(
        CriticalSlot(name="repository", description="repo"),
        CriticalSlot(name="test_command", description="how to run tests"),
    ),
)


async def _seed(engram: Engram, scope: dict[str, str]) -> None:
    for text in (
        "The user prefers tabs over spaces",
        "The user's dog is called Rex",
        "The user lives in Lisbon",
        "The project deploys to Fly.io every Friday",
        "The user is allergic to peanuts",
    ):
        await engram.add(text, **scope)


async def test_recall_finds_facts_by_keyword_and_vector(engram: Engram, scope: dict[str, str]) -> None:
    await _seed(engram, scope)
    trace = await engram.trace_recall("Which city does the user live in? Lisbon?", **scope)
    assert "The user lives in Lisbon" in trace.context
    top = trace.items[0]
    assert top.text == "The user lives in Lisbon" and top.source == "fact"
    assert {"facts_keyword", "facts_vector"} <= set(top.strategies)
    assert top.ids["fact_id"] > 0
    runs = {r.name: r for r in trace.strategies}
    assert runs["facts_keyword"].candidates >= 1 and runs["facts_vector"].candidates >= 1
    assert all(r.ms >= 0 and r.error is None for r in trace.strategies)
    assert trace.total_ms > 0 and trace.token_count > 0
    plain = await engram.recall("Which city does the user live in? Lisbon?", **scope)
    assert plain.context == trace.context and [i.key for i in plain.items] == [i.key for i in trace.items]


async def test_pinned_slots_come_first_whatever_the_query(engram: Engram, scope: dict[str, str]) -> None:
    await _seed(engram, scope)
    await engram.add("Repository: github.com/acme/widgets", slot="repository", **scope)
    await engram.add("Test command: pytest -q", slot="test_command", **scope)
    await engram.add("Test command: nox -s tests", slot="test_command", **scope)  # supersedes
    trace = await engram.trace_recall("peanuts", memory_policy=SLOT_POLICY, **scope)
    assert trace.context.startswith(
        "## Pinned facts\n- Repository: github.com/acme/widgets\n- Test command: nox -s tests"
    )
    assert "pytest -q" not in trace.context
    pinned = [i for i in trace.items if i.pinned]
    assert [i.ids["slot"] for i in pinned] == ["repository", "test_command"]
    assert all(i.strategy == "critical_slots" for i in pinned)
    # A tiny budget still keeps the pinned values and drops the rest.
    tiny = SLOT_POLICY.model_copy(update={"recall": RecallSettings(token_budget=64)})
    small = await engram.trace_recall("peanuts allergy", memory_policy=tiny, **scope)
    assert "Test command: nox -s tests" in small.context
    assert small.token_count <= 64


async def test_task_recall_uses_recent_ledger_in_order(engram: Engram, scope: dict[str, str]) -> None:
    await engram.record_turn(
        f"{scope['user_id']}:t1",
        user_message="Fix the flaky lease test",
        assistant_response="Looking at worker.py",
        **scope,
    )
    await engram.record_turn(
        f"{scope['user_id']}:t1",
        user_message="Now bump the version",
        assistant_response="Bumped to 0.2.0",
        **scope,
    )
    trace = await engram.trace_recall("where were we?", task_id=f"{scope['user_id']}:t1", **scope)
    assert trace.intent == "task"
    section = trace.context.split("## Recent conversation\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split("] ", 1)[1] for line in section] == [
        "user: Fix the flaky lease test",
        "assistant: Looking at worker.py",
        "user: Now bump the version",
        "assistant: Bumped to 0.2.0",
    ]


@pytest.mark.parametrize(
    ("query", "task", "intent"),
    [
        ("Quote the exact wording of clause 4", None, "quote"),
        ("what did we just do?", "t", "task"),
        ("what did we just do?", None, "general"),
        ("What is my favourite colour?", None, "facts"),
        ("tell me about kubernetes", None, "general"),
    ],
)
async def test_router_intents(
    engram: Engram, scope: dict[str, str], query: str, task: str | None, intent: str
) -> None:
    if task:
        await engram.record_turn(task, user_message="hello", assistant_response="hi", **scope)
    trace = await engram.trace_recall(query, task_id=task, **scope)
    assert trace.intent == intent


async def test_policy_router_rules_win(engram: Engram, scope: dict[str, str]) -> None:
    policy = MemoryPolicy(
        name="routed",
        recall=RecallSettings(router_rules=(RouterRule(pattern=r"kubernetes", intent="quote"),)),
    )
    trace = await engram.trace_recall("tell me about kubernetes", memory_policy=policy, **scope)
    assert trace.intent == "quote" and trace.policy == "routed"


async def test_missing_expected_terms(engram: Engram, scope: dict[str, str]) -> None:
    await _seed(engram, scope)
    trace = await engram.trace_recall(
        "Is the user allergic to shellfish?", expected_terms=["peanuts", "EpiPen"], **scope
    )
    assert "The user is allergic to peanuts" in trace.context
    assert "shellfish" in trace.missing_expected_terms
    assert "EpiPen" in trace.missing_expected_terms
    assert "peanuts" not in trace.missing_expected_terms
    assert "allergic" not in trace.missing_expected_terms


async def test_empty_scope_gives_empty_well_formed_trace(engram: Engram, scope: dict[str, str]) -> None:
    trace = await engram.trace_recall("anything at all about rockets", **scope)
    assert trace.context == "" and trace.items == () and trace.token_count == 0
    assert set(trace.missing_expected_terms) == {"rockets"}
    assert trace.user_id == scope["user_id"] and trace.strategies


async def test_other_scopes_are_never_recalled(engram: Engram, scope: dict[str, str]) -> None:
    other = {"user_id": scope["user_id"] + "-b", "agent_id": scope["agent_id"]}
    other_agent = {"user_id": scope["user_id"], "agent_id": "other-agent"}
    await engram.add("The secret launch code is 0000-TANGO", **other)
    await engram.add("The secret launch code is 1111-ALPHA", **other_agent)
    await engram.record_turn(
        f"{scope['user_id']}:ot", user_message="launch code TANGO", assistant_response="ok", **other
    )
    trace = await engram.trace_recall("secret launch code TANGO ALPHA", **scope)
    assert trace.items == () and "TANGO" not in trace.context and "ALPHA" not in trace.context
    # Naming another scope's task id reads a task of our own (empty here), never theirs.
    trace = await engram.trace_recall("launch code TANGO", task_id=f"{scope['user_id']}:ot", **scope)
    assert trace.items == () and "TANGO" not in trace.context


async def test_recall_traced_hook_sees_every_trace(engram: Engram, scope: dict[str, str]) -> None:
    seen: list[Any] = []

    class Observer:
        @hookimpl
        def recall_traced(self, trace: Any) -> None:
            seen.append(trace)

    pm = plugins.get_plugin_manager()
    pm.register(Observer(), name="observer")
    try:
        await engram.recall("hello there", **scope)
    finally:
        pm.unregister(name="observer")
    assert len(seen) == 1 and seen[0].query == "hello there" and seen[0].user_id == scope["user_id"]


async def test_a_failing_strategy_is_reported_not_fatal(engram: Engram, scope: dict[str, str]) -> None:
    class Broken:
        name = "broken"

        async def run(self, ctx: Any) -> list[Any]:
            raise RuntimeError("boom")

    class BadSql:
        name = "bad_sql"
        order = 5  # runs first: later strategies must still work after its SQL error

        async def run(self, ctx: Any) -> list[Any]:
            await ctx.conn.fetch("SELECT no_such_column FROM facts WHERE user_id = $1", ctx.user_id)
            return []

    class Plugin:
        @hookimpl
        def register_recall_strategies(self, register: Any) -> None:
            register(Broken())
            register(BadSql())

    pm = plugins.get_plugin_manager()
    pm.register(Plugin(), name="broken-strategy")
    try:
        policy = MemoryPolicy(
            name="with-broken",
            recall=RecallSettings(weights={"broken": 1.0, "bad_sql": 1.0, "facts_keyword": 1.0}),
        )
        await engram.add("Rex is a dog", **scope)
        trace = await engram.trace_recall("Rex", memory_policy=policy, **scope)
    finally:
        pm.unregister(name="broken-strategy")
    runs = {r.name: r for r in trace.strategies}
    assert runs["broken"].error == "RuntimeError: boom"
    assert runs["bad_sql"].error is not None and "no_such_column" in runs["bad_sql"].error
    assert "Rex is a dog" in trace.context


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"query": ""}, InvalidInputError, "query must not be empty"),
        ({"query": "q" * 8193}, InvalidInputError, "limit is 8192"),
        ({"query": None}, InvalidInputError, "must be a str"),
        ({"limit": 0}, InvalidInputError, "between 1 and 200"),
        ({"limit": -3}, InvalidInputError, "between 1 and 200"),
        ({"limit": 10_000}, InvalidInputError, "between 1 and 200"),
        ({"limit": True}, InvalidInputError, "must be an int"),
        ({"expected_terms": "peanuts"}, InvalidInputError, "list of str"),
        ({"expected_terms": [1]}, InvalidInputError, "must be a str"),
        ({"task_id": ""}, InvalidInputError, "task_id"),
        ({"memory_policy": "no-such-policy"}, ConfigurationError, "available policies"),
        ({"user_id": "a\x00"}, InvalidInputError, "NUL"),
    ],
)
async def test_bad_input(
    engram: Engram, scope: dict[str, str], kwargs: dict[str, Any], error: type, message: str
) -> None:
    call: dict[str, Any] = {"query": "hello", **scope, **kwargs}
    with pytest.raises(error, match=message):
        await engram.trace_recall(**call)


async def test_plans_follow_the_scope_size_and_stay_transaction_local(
    engram: Engram, scope: dict[str, str]
) -> None:
    from engram.recall.api import LARGE_SCOPE_ROWS, choose_plan_mode

    async def mode() -> tuple[bool, str]:
        async with engram._rt.connection() as conn, conn.transaction(readonly=True):
            large = await choose_plan_mode(conn, scope["user_id"], scope["agent_id"])
            return large, await conn.fetchval("SHOW plan_cache_mode")

    assert await mode() == (False, "force_generic_plan")
    task = f"{scope['user_id']}:bulk"
    for i in range(LARGE_SCOPE_ROWS + 1):
        await engram.record_event(task, role="tool", content=f"step {i}", **scope)
    assert await mode() == (True, "force_custom_plan")
    async with engram._rt.connection() as conn:  # the pool's sessions keep their default
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
    trace = await engram.trace_recall("step 7", **scope)  # and recall works at that size
    assert trace.items
