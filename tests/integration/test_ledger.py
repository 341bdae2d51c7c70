"""The append-only ledger: record_turn, record_event, ordering, scope, and the trigger."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from conftest import count_rows

from engram import Engram, InvalidInputError, NotFoundError


async def test_record_turn_writes_both_events_in_order(engram: Engram, scope: dict[str, str]) -> None:
    first = await engram.record_turn(
        f"{scope['user_id']}:task-a",
        user_message="I use Python 3.12",
        assistant_response="Noted.",
        enqueue_processing=False,
        **scope,
    )
    second = await engram.record_turn(
        f"{scope['user_id']}:task-a",
        user_message="Run tests with pytest -q",
        assistant_response="OK",
        enqueue_processing=False,
        **scope,
    )
    assert first.user_event_id < first.assistant_event_id < second.user_event_id < second.assistant_event_id
    assert (first.turn_count, second.turn_count) == (1, 2)
    events = await engram.get_task_events(f"{scope['user_id']}:task-a", **scope)
    assert [(e.role, e.content) for e in events] == [
        ("user", "I use Python 3.12"),
        ("assistant", "Noted."),
        ("user", "Run tests with pytest -q"),
        ("assistant", "OK"),
    ]
    assert all(e.user_id == scope["user_id"] and e.task_id == f"{scope['user_id']}:task-a" for e in events)
    tail = await engram.get_task_events(
        f"{scope['user_id']}:task-a", after_event_id=first.assistant_event_id, **scope
    )
    assert [e.event_id for e in tail] == list(second.event_ids)


async def test_record_event_roles_and_metadata(engram: Engram, scope: dict[str, str]) -> None:
    event = await engram.record_event(
        f"{scope['user_id']}:task-tools",
        role="tool",
        content='{"exit": 0}',
        metadata={"tool": "pytest", "n": 3},
        **scope,
    )
    assert event.role == "tool" and event.metadata == {"tool": "pytest", "n": 3}
    fetched = await engram.get_event(event.event_id, **scope)
    assert fetched.content == '{"exit": 0}' and fetched.metadata == {"tool": "pytest", "n": 3}
    tasks = await engram.list_tasks(**scope)
    # a tool event is not a user turn
    assert [(t.task_id, t.turn_count) for t in tasks] == [(f"{scope['user_id']}:task-tools", 0)]


async def test_the_same_task_id_in_another_scope_is_another_task(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    """Task ids are per (user_id, agent_id): another user, or another agent of the same
    user, writing to the same id gets a task of its own, and neither sees the other's."""
    task = "shared-task"
    await engram.record_turn(task, user_message="mine", assistant_response="hello", **scope)
    before = await count_rows(raw_conn, scope["user_id"])
    intruder = {"user_id": scope["user_id"] + "-other", "agent_id": scope["agent_id"]}
    other_agent = {"user_id": scope["user_id"], "agent_id": "another-agent"}
    try:
        for other in (intruder, other_agent):
            # Reading first: the id is unknown in this scope, so the task is empty.
            assert await engram.get_task_events(task, **other) == []
            turn = await engram.record_turn(task, user_message="theirs", assistant_response="y", **other)
            assert turn.turn_count == 1  # a new task, not a second turn of ours
            event = await engram.record_event(task, role="tool", content="their tool", **other)
            assert (event.user_id, event.agent_id, event.task_id) == (
                other["user_id"],
                other["agent_id"],
                task,
            )
            theirs = await engram.get_task_events(task, **other)
            assert [e.content for e in theirs] == ["theirs", "y", "their tool"]
            assert {(e.user_id, e.agent_id) for e in theirs} == {(other["user_id"], other["agent_id"])}
            (their_task,) = await engram.list_tasks(**other)
            assert (their_task.task_id, their_task.turn_count) == (task, 1)
            # Our task is exactly as it was.
            assert [e.content for e in await engram.get_task_events(task, **scope)] == ["mine", "hello"]
            (ours,) = await engram.list_tasks(**scope)
            assert (ours.task_id, ours.turn_count) == (task, 1)
            # Event ids stay scoped: neither reads the other's by id.
            with pytest.raises(NotFoundError):
                await engram.get_event(theirs[0].event_id, **scope)
        counts = await count_rows(raw_conn, scope["user_id"])
        # The other agent of our user added one task of its own and its three events.
        assert counts["tasks"] == before["tasks"] + 1
        assert counts["events"] == before["events"] + 3
    finally:
        await engram.purge(user_id=intruder["user_id"])


async def test_concurrent_first_turns_of_one_task_both_land(engram: Engram, scope: dict[str, str]) -> None:
    results = await asyncio.gather(
        *(
            engram.record_turn(
                f"{scope['user_id']}:race", user_message=f"m{i}", assistant_response="r", **scope
            )
            for i in range(8)
        )
    )
    assert sorted(r.turn_count for r in results) == list(range(1, 9))
    assert len(await engram.get_task_events(f"{scope['user_id']}:race", **scope)) == 16


async def test_database_refuses_update_delete_truncate(
    engram: Engram, scope: dict[str, str], raw_conn: object
) -> None:
    turn = await engram.record_turn(
        f"{scope['user_id']}:t", user_message="secret plan", assistant_response="ok", **scope
    )
    conn: asyncpg.Connection = raw_conn  # type: ignore[assignment]
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute(
            "UPDATE events SET content = 'rewritten' WHERE user_id = $1 AND event_id = $2",
            scope["user_id"],
            turn.user_event_id,
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("DELETE FROM events WHERE user_id = $1", scope["user_id"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await conn.execute("TRUNCATE events CASCADE")
    # Even with the redaction switch on, the row cannot be moved to another task or scope.
    async with conn.transaction():
        await conn.execute("SELECT set_config('engram.ledger_write', 'redact', true)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "UPDATE events SET user_id = 'someone-else' WHERE user_id = $1 AND event_id = $2",
                scope["user_id"],
                turn.user_event_id,
            )
    event = await engram.get_event(turn.user_event_id, **scope)
    assert event.content == "secret plan"


LONG = "x" * 262_145


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_id": ""}, "task_id must not be empty"),
        ({"task_id": "   "}, "task_id must not be empty"),
        ({"task_id": "t" * 256}, "limit is 255"),
        ({"task_id": "a\x00b"}, "NUL"),
        ({"task_id": "a\nb"}, "control characters"),
        ({"task_id": 42}, "must be a str"),
        ({"user_id": ""}, "user_id must not be empty"),
        ({"user_id": None}, "user_id must be a str"),
        ({"agent_id": "x" * 300}, "agent_id is 300 characters"),
        ({"user_message": "hello\x00world"}, "NUL"),
        ({"user_message": "lone \ud800 surrogate"}, "lone surrogate"),
        ({"user_message": b"bytes"}, "must be a str, not bytes"),
        ({"user_message": ""}, "user_message must not be empty"),
        ({"user_message": LONG}, "limit is 262144"),
        ({"assistant_response": ["list"]}, "must be a str"),
        ({"metadata": "not a dict"}, "metadata must be a dict"),
        ({"metadata": {"k": object()}}, "JSON-serialisable"),
        ({"metadata": {"k": "nul\x00"}}, "NUL"),
        ({"metadata": {"k": float("nan")}}, "JSON-serialisable"),
        ({"enqueue_processing": "yes"}, "must be a bool"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_written(
    engram: Engram, scope: dict[str, str], raw_conn: object, kwargs: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {
        "task_id": "bad-input",
        "user_message": "fine",
        "assistant_response": "fine",
        **scope,
    }
    call.update(kwargs)
    watched_user = (
        call["user_id"] if isinstance(call["user_id"], str) and call["user_id"] else scope["user_id"]
    )
    before = await count_rows(raw_conn, watched_user)
    task_id = call.pop("task_id")
    with pytest.raises(InvalidInputError, match=message):
        await engram.record_turn(task_id, **call)  # type: ignore[arg-type]
    assert await count_rows(raw_conn, watched_user) == before
    assert sum(before.values()) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role": "wizard"}, "role must be one of"),
        ({"role": None}, "role must be one of"),
        ({"content": "\x00"}, "NUL"),
        ({"content": 3.14}, "must be a str"),
    ],
)
async def test_record_event_bad_input(
    engram: Engram, scope: dict[str, str], raw_conn: object, kwargs: dict[str, object], message: str
) -> None:
    call: dict[str, object] = {"role": "tool", "content": "ok", **scope}
    call.update(kwargs)
    with pytest.raises(InvalidInputError, match=message):
        await engram.record_event(f"{scope['user_id']}:t", **call)  # type: ignore[arg-type]
    assert sum((await count_rows(raw_conn, scope["user_id"])).values()) == 0


async def test_read_calls_validate(engram: Engram, scope: dict[str, str]) -> None:
    with pytest.raises(InvalidInputError):
        await engram.get_task_events(f"{scope['user_id']}:t", after_event_id=-1, **scope)
    with pytest.raises(InvalidInputError):
        await engram.get_task_events(f"{scope['user_id']}:t", limit=0, **scope)
    with pytest.raises(InvalidInputError):
        await engram.get_event("1", **scope)  # type: ignore[arg-type]
    # an unknown task of nobody reads as empty, not as an error
    assert await engram.get_task_events(f"{scope['user_id']}:never-used-" + scope["user_id"], **scope) == []
