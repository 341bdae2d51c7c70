"""Proofs for purge and redact_event: catalog-driven scans, not spot checks."""

from __future__ import annotations

import asyncpg
import pytest
from privacy_helpers import find_everywhere, rows_of_user, snapshot_except

from engram import Engram, InvalidInputError, NotFoundError

SECRET = "sk-proj-Zq8xT4vL2mN9pR7sK3wY6bH1"


async def _populate(engram: Engram, scope: dict[str, str], tag: str) -> None:
    tag = f"{scope['user_id']}:{tag}"  # task ids are global: keep them unique per test
    await engram.record_turn(
        f"{tag}-t1", user_message=f"I live in Porto ({tag})", assistant_response="ok", **scope
    )
    await engram.record_event(f"{tag}-t1", role="tool", content=f"tool output {tag}", **scope)
    await engram.add(f"The user likes green tea ({tag})", **scope)
    await engram.add(f"repo {tag}", slot="repository", **scope)


async def test_purge_removes_every_row_and_nothing_else(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    neighbour = {"user_id": scope["user_id"] + "-n", "agent_id": scope["agent_id"]}
    await _populate(engram, scope, "victim")
    await engram.record_turn(
        f"{scope['user_id']}:victim-t2", user_message="second task", assistant_response="ok", **scope
    )
    await engram.add("other agent fact", user_id=scope["user_id"], agent_id="second-agent")
    await _populate(engram, neighbour, "neighbour")
    before_others = await snapshot_except(raw_conn, scope["user_id"])
    before_counts = await rows_of_user(raw_conn, scope["user_id"])
    assert before_counts["events"] == 5 and before_counts["facts"] == 3

    report = await engram.purge(user_id=scope["user_id"])

    assert report.total == sum(before_counts.values())
    assert {t: n for t, n in report.counts.items() if n} == {t: n for t, n in before_counts.items() if n}
    assert set((await rows_of_user(raw_conn, scope["user_id"])).values()) == {0}
    assert await snapshot_except(raw_conn, scope["user_id"]) == before_others
    # The user's task ids are free again, and the user can start over.
    await engram.record_turn(
        f"{scope['user_id']}:victim-t1", user_message="fresh start", assistant_response="ok", **scope
    )


async def test_purge_of_one_agent_keeps_the_users_other_agents(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    other_agent = {"user_id": scope["user_id"], "agent_id": "agent-two"}
    await _populate(engram, scope, "one")
    await _populate(engram, other_agent, "two")
    report = await engram.purge(user_id=scope["user_id"], agent_id=scope["agent_id"])
    assert report.counts["events"] == 3
    assert await engram.list_facts(**scope) == []
    assert len(await engram.list_facts(**other_agent)) == 2
    assert len(await engram.get_task_events(f"{scope['user_id']}:two-t1", **other_agent)) == 3


async def test_purge_bad_input(engram: Engram) -> None:
    for bad in ("", None, "x\x00", 5):
        with pytest.raises(InvalidInputError):
            await engram.purge(user_id=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await engram.purge(user_id="u", agent_id="")


async def test_redact_whole_event_leaves_the_secret_nowhere(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    turn = await engram.record_turn(
        f"{scope['user_id']}:leak",
        user_message=f"my key is {SECRET} please keep it",
        assistant_response="I will not repeat it.",
        **scope,
    )
    assert await find_everywhere(raw_conn, SECRET)
    report = await engram.redact_event(turn.user_event_id, reason="user pasted a key", **scope)
    assert report.event_id == turn.user_event_id and report.spans == (
        (0, len(f"my key is {SECRET} please keep it")),
    )
    assert SECRET not in report.model_dump_json()
    assert await find_everywhere(raw_conn, SECRET) == []
    assert await find_everywhere(raw_conn, "Zq8xT4vL2mN9pR7sK3wY6bH1") == []
    event = await engram.get_event(turn.user_event_id, **scope)
    assert event.redacted and event.content == "[REDACTED]"
    trace = await engram.trace_recall(SECRET, **scope)
    assert SECRET not in trace.context


async def test_redact_spans_keeps_the_rest(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    text = f"deploy with key {SECRET} to prod tonight"
    event = await engram.record_event(f"{scope['user_id']}:spans", role="user", content=text, **scope)
    start = text.index(SECRET)
    report = await engram.redact_event(
        event.event_id, reason="secret", spans=[(start, start + len(SECRET))], **scope
    )
    assert report.spans == ((start, start + len(SECRET)),)
    stored = await engram.get_event(event.event_id, **scope)
    assert stored.content == "deploy with key [REDACTED] to prod tonight"
    assert await find_everywhere(raw_conn, SECRET) == []
    # the record says why and where, never what
    record = await raw_conn.fetchval(
        "SELECT redaction::text FROM events WHERE user_id = $1 AND event_id = $2",
        scope["user_id"],
        event.event_id,
    )
    assert "secret" in record and SECRET not in record


async def test_redact_event_bad_input_changes_nothing(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    event = await engram.record_event(f"{scope['user_id']}:bad", role="user", content="0123456789", **scope)
    other = {"user_id": scope["user_id"] + "-x", "agent_id": scope["agent_id"]}
    cases: list[tuple[dict[str, object], type[Exception]]] = [
        ({"spans": [(5, 3)]}, InvalidInputError),
        ({"spans": [(0, 11)]}, InvalidInputError),
        ({"spans": [(0, 5), (4, 8)]}, InvalidInputError),
        ({"spans": []}, InvalidInputError),
        ({"spans": "0-5"}, InvalidInputError),
        ({"spans": [(0, "5")]}, InvalidInputError),
        ({"reason": ""}, InvalidInputError),
        ({"reason": "why\x00"}, InvalidInputError),
    ]
    for kwargs, error in cases:
        call: dict[str, object] = {"reason": "r", **scope, **kwargs}
        with pytest.raises(error):
            await engram.redact_event(event.event_id, **call)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        await engram.redact_event(event.event_id, reason="r", **other)
    with pytest.raises(NotFoundError):
        await engram.redact_event(10**15, reason="r", **scope)
    with pytest.raises(InvalidInputError):
        await engram.redact_event("1", reason="r", **scope)  # type: ignore[arg-type]
    stored = await engram.get_event(event.event_id, **scope)
    assert stored.content == "0123456789" and not stored.redacted
