"""ledger_hybrid: words and meaning together, spread to neighbouring turns and tasks."""

from __future__ import annotations

from engram import Engram, MemoryPolicy
from engram.policy import HybridSettings, RecallSettings


def _policy(name: str, weights: dict[str, float], **hybrid: float) -> MemoryPolicy:
    return MemoryPolicy(
        name=name,
        recall=RecallSettings(
            weights=weights, recent_turns=0, default_limit=10, hybrid=HybridSettings(**hybrid)
        ),
    )


HYBRID = _policy("test-hybrid", {"ledger_hybrid": 1.0})
NO_CONTEXT = _policy("test-hybrid-flat", {"ledger_hybrid": 1.0}, neighbour_weight=0.0, task_weight=0.0)
KEYWORD = _policy("test-keyword", {"ledger_search": 1.0})


# -- the arithmetic -------------------------------------------------------------


# -- against the database ------------------------------------------------------------


async def _conversation(engram: Engram, scope: dict[str, str]) -> dict[str, int]:
    """A question, its keyword-free answer, and unrelated chatter in other tasks."""
    ids: dict[str, int] = {}
    u = scope["user_id"]
    lines = [
        (f"{u}:chat-1", "user", "q", "Did you ever finish the city marathon?"),
        (f"{u}:chat-1", "assistant", "a", "Yes! I ran it in Rotterdam, freezing but worth it."),
        (f"{u}:chat-1", "user", "after", "Nice. Shall we look at dinner recipes?"),
        (f"{u}:chat-2", "user", "x1", "What will happen with the council budget?"),
        (f"{u}:chat-2", "assistant", "x2", "Good news for your commute to the office."),
        (f"{u}:chat-3", "user", "x3", "My sister is visiting next weekend."),
        (f"{u}:chat-3", "assistant", "x4", "Would you like a list of museums to visit?"),
    ]
    for task, role, key, text in lines:
        event = await engram.record_event(task, role=role, content=text, enqueue_processing=True, **scope)
        ids[key] = event.event_id
    return ids


def _event_ids(trace: object) -> list[int]:
    return [i for item in trace.items for i in item.ids.get("event_ids", [])]  # type: ignore[attr-defined]


async def test_the_answer_turn_is_found_through_its_question(engram: Engram, scope: dict[str, str]) -> None:
    ids = await _conversation(engram, scope)
    await engram.process_jobs(batch_size=50)
    query = "Which city did the marathon happen in?"

    keyword = _event_ids(await engram.trace_recall(query, memory_policy=KEYWORD, **scope))
    assert ids["a"] not in keyword  # the answer shares no word with the question

    trace = await engram.trace_recall(query, memory_policy=HYBRID, **scope)
    found = _event_ids(trace)
    assert found[:2] == [ids["q"], ids["a"]]
    assert "Rotterdam" in trace.context
    assert [s.name for s in trace.strategies] == ["ledger_hybrid"]

    flat = _event_ids(await engram.trace_recall(query, memory_policy=NO_CONTEXT, **scope))
    assert flat[0] == ids["q"]
    assert flat.index(ids["a"]) > 1  # without neighbours the answer sinks


async def test_works_before_workers_write_vectors(engram: Engram, scope: dict[str, str]) -> None:
    ids = await _conversation(engram, scope)  # no worker: keyword evidence only
    found = _event_ids(await engram.trace_recall("city marathon", memory_policy=HYBRID, **scope))
    assert found[:2] == [ids["q"], ids["a"]]


async def test_redacted_turns_are_neither_results_nor_neighbours(
    engram: Engram, scope: dict[str, str]
) -> None:
    ids = await _conversation(engram, scope)
    await engram.process_jobs(batch_size=50)
    await engram.redact_event(ids["a"], reason="test", **scope)
    trace = await engram.trace_recall("Which city did the marathon happen in?", memory_policy=HYBRID, **scope)
    found = _event_ids(trace)
    assert ids["a"] not in found
    assert "Rotterdam" not in trace.context
    assert found[0] == ids["q"]
    # With the answer gone, the question's next neighbour is the turn after it.
    assert found[1] == ids["after"]


async def test_other_tenants_turns_never_appear(engram: Engram, scope: dict[str, str]) -> None:
    other = {"user_id": scope["user_id"] + "-other", "agent_id": scope["agent_id"]}
    theirs = await _conversation(engram, other)
    mine = await engram.record_event(
        f"{scope['user_id']}:solo", role="user", content="marathon shoes are worn out", **scope
    )
    await engram.process_jobs(batch_size=50)
    found = _event_ids(
        await engram.trace_recall("Which city did the marathon happen in?", memory_policy=HYBRID, **scope)
    )
    assert found == [mine.event_id]
    assert not set(found) & set(theirs.values())
