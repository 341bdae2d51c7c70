"""Proofs for purge and redact_event: catalog-driven scans, not spot checks."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from conftest import count_rows
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


# --------------------------------------------------------------------------- Engram's own copies (issue 14, 2)

_FILLER = "The garden needs watering on Tuesdays and the shed key hangs by the door. " * 120


async def test_redacting_a_secret_removes_it_from_every_copy_of_a_long_input(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    secret = f"codeword ZEBRA-{uuid.uuid4().hex[:12]}"
    task = f"{scope['user_id']}:doc"
    doc = f"Project notes. The {secret} opens the vault.\n\n{_FILLER}"
    record = await engram.record_long_input(task, doc, title="notes", embed_inline=True, **scope)
    said = f"please forget {secret} now"
    event = await engram.record_event(task, role="user", content=said, **scope)
    # The document, its chunks and the artifact event's preview all hold it now.
    assert len(await find_everywhere(raw_conn, secret)) >= 3
    start = said.index(secret)
    report = await engram.redact_event(
        event.event_id, reason="secret", spans=[(start, start + len(secret))], **scope
    )
    assert await find_everywhere(raw_conn, secret) == []
    assert secret not in report.model_dump_json() and report.rows_scrubbed.get("events") == 1
    artifact = await engram.get_event(record.event_id, **scope)
    assert artifact.redacted and "[REDACTED]" in artifact.content and record.long_input_id in artifact.content
    assert secret not in (await engram.trace_recall(secret, **scope)).context
    assert secret not in (await engram.build_long_input_context(secret, **scope)).context
    assert secret not in (await engram.build_long_input_context(secret, task_id=task, **scope)).context
    stored = await engram.get_long_input(record.long_input_id, include_text=True, **scope)
    assert stored.text is not None and "[REDACTED] opens the vault" in stored.text


async def test_redacting_an_artifact_event_removes_its_preview_from_the_document(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    secret = f"codeword QUILL-{uuid.uuid4().hex[:12]}"
    task = f"{scope['user_id']}:doc"
    record = await engram.record_long_input(task, f"The {secret} opens the vault. {_FILLER}", **scope)
    await engram.redact_event(record.event_id, reason="the document had a codeword", **scope)
    assert await find_everywhere(raw_conn, secret) == []
    assert secret not in (await engram.build_long_input_context(secret, **scope)).context


# --------------------------------------------------------------------------- identifiers (issue 14, 13)


async def test_redaction_refuses_short_spans_and_never_rewrites_identifiers(
    database_url: str, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    base = Engram(database_url, memory_policy="default", embedder="hashing")
    policy = base.policy.model_copy(update={"checkpoint_every_turns": 1})
    async with Engram(database_url, memory_policy=policy, embedder="hashing") as e:
        task = f"{scope['user_id']}:zq-4-p"
        await e.record_turn(task, user_message="plan the release", assistant_response="ok", **scope)
        record = await e.record_long_input(task, f"A short document. {_FILLER}", **scope)
        li = record.long_input_id
        content = f"see {li} then checkpoint queued embed_chunks derive succeeded {task} zq 4 p"
        event = await e.record_event(task, role="user", content=content, **scope)
        kinds = sorted(j.kind for j in await e.list_jobs(**scope))
        assert kinds == ["checkpoint", "derive", "embed_chunks"]

        async def identifiers() -> list[tuple[object, ...]]:
            jobs = await raw_conn.fetch(
                """SELECT job_id, kind, state, task_id, dedupe_key, payload::text FROM memory_jobs
                   WHERE user_id = $1 ORDER BY job_id""",
                scope["user_id"],
            )
            docs = await raw_conn.fetch(
                """SELECT long_input_id, task_id, sha256, format FROM long_inputs WHERE user_id = $1
                   UNION ALL SELECT chunk_id, long_input_id, quote_hash, '' FROM long_input_chunks
                   WHERE user_id = $1 ORDER BY 1""",
                scope["user_id"],
            )
            return [tuple(r) for r in jobs] + [tuple(r) for r in docs]

        before, rows = await identifiers(), await count_rows(raw_conn, scope["user_id"])
        # Spans shorter than four characters (whitespace aside) are refused, untouched.
        for short in (" zq ", " 4 ", " p"):
            start = content.rindex(short)
            with pytest.raises(InvalidInputError, match="fewer than 4"):
                await e.redact_event(event.event_id, reason="r", spans=[(start, start + len(short))], **scope)
        assert await count_rows(raw_conn, scope["user_id"]) == rows
        # Longer spans equal to identifiers, kinds and states: only content changes.
        words = (li, "checkpoint", "queued", "embed_chunks", "derive", "succeeded", task)
        spans = sorted((content.index(w), content.index(w) + len(w)) for w in words)
        report = await e.redact_event(event.event_id, reason="r", spans=spans, **scope)
        assert report.jobs_requeued == 1
        after = await identifiers()
        assert [r for r in before if r not in after] == []  # no identifier, kind or state changed
        # At most one new row: the re-queued derivation (deduplicated if still queued).
        assert [r[1] for r in after if r not in before] in ([], ["derive"])
        # Everything still works: every job runs and completes.
        for _ in range(20):
            await e.process_jobs(50)
            if (await e.job_stats(**scope)).due == 0:
                break
        jobs = await e.list_jobs(**scope)
        assert {j.state for j in jobs} == {"succeeded"}, [(j.kind, j.state, j.last_error) for j in jobs]
        assert (await e.get_long_input(li, **scope)).pending_chunks == 0
