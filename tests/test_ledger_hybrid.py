"""ledger_hybrid: words and meaning together, spread to neighbouring turns and tasks."""

from __future__ import annotations

import pytest

from engram import Engram, MemoryPolicy
from engram.policy import HybridSettings, RecallSettings
from engram.recall.hybrid import Neighbourhood, blend, spread


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


def test_blend_puts_both_signals_on_one_scale() -> None:
    scores = blend({1: 8.0, 2: 2.0}, {2: 0.5, 3: 0.25, 4: -0.3}, keyword_share=0.5)
    assert scores[1] == pytest.approx(0.5)  # best keyword, no vector
    assert scores[2] == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)  # weak keyword, best vector
    assert scores[3] == pytest.approx(0.25)
    assert scores[4] == 0.0  # a negative cosine is "unrelated", not a penalty
    # Multiplying one signal's raw scores by a constant changes nothing.
    assert blend({1: 80.0, 2: 20.0}, {2: 0.5, 3: 0.25}, keyword_share=0.5) == pytest.approx(
        blend({1: 8.0, 2: 2.0}, {2: 0.5, 3: 0.25}, keyword_share=0.5)
    )


def test_blend_with_one_signal_missing() -> None:
    assert blend({}, {}, keyword_share=0.6) == {}
    assert blend({7: 3.0}, {}, keyword_share=0.6) == {7: pytest.approx(0.6)}
    assert blend({}, {7: 0.4}, keyword_share=0.6) == {7: pytest.approx(0.4)}


def test_spread_lifts_the_turn_after_a_match_and_the_matching_task() -> None:
    # Task a: 1 (question, matches) -> 2 (answer, matches nothing) -> 3.
    # Task b: 10 and 11 match a little.
    places = {
        1: Neighbourhood("a", None, 2),
        2: Neighbourhood("a", 1, 3),
        3: Neighbourhood("a", 2, None),
        10: Neighbourhood("b", None, 11),
        11: Neighbourhood("b", 10, None),
    }
    scores = {1: 1.0, 10: 0.3, 11: 0.25}
    flat = spread(scores, places, neighbour_weight=0.0, task_weight=0.0)
    assert [i for i, _ in flat] == [1, 10, 11]  # zero scores are dropped
    ranked = spread(scores, places, neighbour_weight=0.3, task_weight=0.6)
    order = [i for i, _ in ranked]
    assert order[:2] == [1, 2]  # the answer follows its question
    assert order.index(3) > order.index(2)
    # Task b's own best turn keeps its place above its weaker neighbour.
    assert order.index(10) < order.index(11)
    assert dict(ranked)[2] == pytest.approx(0.3 * 1.0 + 0.6 * 1.0)


def test_spread_drops_events_without_a_place_and_breaks_ties_newest_first() -> None:
    places = {5: Neighbourhood("a", None, None), 6: Neighbourhood("b", None, None)}
    ranked = spread({5: 0.5, 6: 0.5, 99: 1.0}, places, neighbour_weight=0.3, task_weight=0.0)
    assert [i for i, _ in ranked] == [6, 5]


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
