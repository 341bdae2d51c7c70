"""Input hardening of the public API on a real PostgreSQL (issue 14: defects 3, 7, 8, 9, 10).

3. bad metadata is refused before any write (no half-written call);
7. ids with invisible or control code points are refused on every call;
8. every public bool parameter refuses non-bools (found by introspection);
9. DSN passwords never reach error messages or ``engram doctor``'s output;
10. per-call policy paths can be switched off, and policy file errors quote nothing.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import count_rows
from id_chars import REFUSED_ID_CHARS

from engram import ConfigurationError, Engram, InvalidInputError

# --------------------------------------------------------------------------- 3. metadata

BAD_METADATA: list[Any] = [
    {1: "a"},  # the review's case: wrote the events and the job, then a raw ValidationError
    {"a": {2: "nested int key"}},
    {None: "x"},
    {"a": [1, {3.5: "float key"}]},
    {"a": {1, 2}},
    {"a": b"bytes"},
    {"a": float("inf")},
]


def _metadata_calls(
    engram: Engram, scope: dict[str, str], task: str
) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    return {
        "record_turn": lambda m: engram.record_turn(
            task, user_message="hello", assistant_response="hi", metadata=m, **scope
        ),
        "record_event": lambda m: engram.record_event(
            task, role="tool", content="out", metadata=m, enqueue_processing=True, **scope
        ),
        "add": lambda m: engram.add("The user likes tea.", metadata=m, **scope),
        "record_long_input": lambda m: engram.record_long_input(task, "A document.", metadata=m, **scope),
    }


@pytest.mark.parametrize("meta", BAD_METADATA, ids=[repr(m)[:30] for m in BAD_METADATA])
@pytest.mark.parametrize(
    "call", ["record_turn", "record_event", "add", "record_long_input", "supersede_fact"]
)
async def test_bad_metadata_is_refused_before_anything_is_written(
    engram: Engram, scope: dict[str, str], raw_conn: object, meta: Any, call: str
) -> None:
    task = f"meta-{uuid.uuid4().hex[:8]}"
    fact = await engram.add("The user drinks coffee.", **scope)
    calls = _metadata_calls(engram, scope, task)
    calls["supersede_fact"] = lambda m: engram.supersede_fact(
        fact.fact_id, "The user drinks tea.", metadata=m, **scope
    )
    before = await count_rows(raw_conn, scope["user_id"])
    with pytest.raises(InvalidInputError, match="metadata"):
        await calls[call](meta)
    assert await count_rows(raw_conn, scope["user_id"]) == before


async def test_returned_metadata_is_what_a_later_read_returns(engram: Engram, scope: dict[str, str]) -> None:
    given = {"tags": ("a", "b"), "nested": {"n": 1}}
    event = await engram.record_event("meta-read", role="tool", content="x", metadata=given, **scope)
    again = await engram.get_event(event.event_id, **scope)
    assert event.metadata == again.metadata == {"tags": ["a", "b"], "nested": {"n": 1}}


# --------------------------------------------------------------------------- 7. identifiers


def _id_calls(engram: Engram) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
    return {
        "record_event": lambda k: engram.record_event(k.pop("task_id"), role="user", content="hi", **k),
        "recall": lambda k: engram.recall("hello", **k),
        "purge": lambda k: engram.purge(user_id=k["user_id"], agent_id=k["agent_id"]),
    }


@pytest.mark.parametrize("field", ["user_id", "agent_id", "task_id"])
@pytest.mark.parametrize("call", ["record_event", "recall", "purge"])
async def test_ids_with_invisible_or_control_characters_are_refused(
    engram: Engram, scope: dict[str, str], raw_conn: object, field: str, call: str
) -> None:
    if call == "purge" and field == "task_id":
        pytest.skip("purge takes no task id")
    task = f"ids-{uuid.uuid4().hex[:8]}"
    await engram.record_event(task, role="user", content="seed", **scope)
    before = await count_rows(raw_conn, scope["user_id"])
    for ch, why in REFUSED_ID_CHARS:
        for bad in ("a" + ch + "b", ch + "ab", "ab" + ch):
            kwargs: dict[str, Any] = {**scope, "task_id": task}
            kwargs[field] = kwargs[field] + bad if field != "task_id" else bad
            with pytest.raises(InvalidInputError, match=field):
                await _id_calls(engram)[call](dict(kwargs))
            # A lone surrogate cannot even be sent to PostgreSQL to count its rows.
            if field == "user_id" and not why.startswith("Cs"):
                assert await count_rows(raw_conn, kwargs["user_id"]) == dict.fromkeys(before, 0), why
    assert await count_rows(raw_conn, scope["user_id"]) == before


@pytest.mark.parametrize("value", ["Zoë", "ユーザー 1", "🙂", "e\u0301", "a\u00a0b"])
async def test_visible_unicode_ids_still_work(engram: Engram, value: str) -> None:
    scope = {"user_id": f"{value}-{uuid.uuid4().hex[:8]}", "agent_id": value}
    await engram.record_event(value, role="user", content="hello", **scope)
    assert [t.task_id for t in await engram.list_tasks(**scope)] == [value]
    assert (await engram.purge(**scope)).counts["events"] == 1


# --------------------------------------------------------------------------- 8. flags


def _public_flags() -> set[tuple[str, str]]:
    """Every (method, parameter) of Engram annotated ``bool``, and every bool property setter."""
    found: set[tuple[str, str]] = set()
    for name, member in inspect.getmembers(Engram):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            if member.fset is not None and inspect.signature(member.fget).return_annotation in (bool, "bool"):  # type: ignore[arg-type]
                found.add((name, "<setter>"))
            continue
        if not callable(member):
            continue
        for param in inspect.signature(member).parameters.values():
            if param.annotation in (bool, "bool") or "bool" in str(param.annotation).split(" | "):
                found.add((name, param.name))
    return found


def _flag_calls(
    engram: Engram, scope: dict[str, str], task: str, long_input_id: str
) -> dict[tuple[str, str], Callable[[Any], Awaitable[Any]]]:
    async def set_notify(value: Any) -> None:
        engram.notify_workers = value

    return {
        ("record_turn", "enqueue_processing"): lambda v: engram.record_turn(
            task, user_message="m", assistant_response="r", enqueue_processing=v, **scope
        ),
        ("record_event", "enqueue_processing"): lambda v: engram.record_event(
            task, role="tool", content="c", enqueue_processing=v, **scope
        ),
        ("record_long_input", "embed_inline"): lambda v: engram.record_long_input(
            task, f"Another document {uuid.uuid4().hex}.", embed_inline=v, **scope
        ),
        ("get_long_input", "include_text"): lambda v: engram.get_long_input(
            long_input_id, include_text=v, **scope
        ),
        ("get_long_input", "include_chunks"): lambda v: engram.get_long_input(
            long_input_id, include_chunks=v, **scope
        ),
        ("notify_workers", "<setter>"): set_notify,
    }


def test_the_flag_table_lists_every_public_flag() -> None:
    """A new public bool parameter without an entry (and so without a check) fails here."""
    table = _flag_calls(Engram("postgresql://unused"), {}, "t", "li")
    assert _public_flags() == set(table)


@pytest.mark.parametrize("value", ["yes", "false", 1, 0, [], None, 1.0])
async def test_every_public_flag_refuses_non_bools_and_writes_nothing(
    engram: Engram, scope: dict[str, str], raw_conn: object, value: Any
) -> None:
    task = f"flags-{uuid.uuid4().hex[:8]}"
    doc = await engram.record_long_input(task, "A short document to read back.", **scope)
    before = await count_rows(raw_conn, scope["user_id"])
    notify = engram.notify_workers
    for (method, param), call in _flag_calls(engram, scope, task, doc.long_input_id).items():
        with pytest.raises(InvalidInputError, match=f"{param.strip('<>')}|notify_workers"):
            await call(value)
        assert await count_rows(raw_conn, scope["user_id"]) == before, (method, param)
    assert engram.notify_workers is notify


# --------------------------------------------------------------------------- 9. secrets


async def test_a_failed_connect_does_not_show_the_password() -> None:
    for dsn in (
        "postgresql://u:s3cret-pw@127.0.0.1:1/x",
        "postgresql://u:s3cret-pw@127.0.0.1:notaport/x",  # asyncpg raises a bare ValueError here
        "postgresql://u:s3cret-pw@127.0.0.1:1/x?sslmode=bogus",
    ):
        client = Engram(dsn, embedder="hashing")
        with pytest.raises(ConfigurationError) as err:
            await client.connect()
        text = f"{err.value!s} {err.value!r} {err.value.__cause__!s}"
        assert "s3cret-pw" not in text and "u:***@127.0.0.1" in str(err.value), text
        assert "s3cret-pw" not in repr(client.settings)


def test_doctor_output_never_contains_the_password() -> None:
    from click.testing import CliRunner

    from engram.cli import main

    result = CliRunner().invoke(main, ["doctor", "--dsn", "postgresql://u:s3cret@127.0.0.1:1/x"])
    assert result.exit_code == 3
    assert "connect" in result.output and "s3cret" not in result.output
    assert "u:***@127.0.0.1:1/x" in result.output


def test_logged_dsns_are_masked(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from engram.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for fmt in ("text", "json"):
            monkeypatch.setenv("ENGRAM_LOG_FORMAT", fmt)
            configure_logging(verbose=True)
            log = logging.getLogger("engram.test")
            log.warning(
                "connecting to %s", "postgresql://u:s3cret@h/db", extra={"dsn": "postgresql://u:s3cret@h/db"}
            )
            try:
                raise RuntimeError("failed: postgresql://u:s3cret@h/db")
            except RuntimeError:
                log.exception("boom")
            err = capsys.readouterr().err
            assert "s3cret" not in err and "u:***@h/db" in err, err
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


# --------------------------------------------------------------------------- 10. policy paths

SECRET_TOML = '[database]\npassword = "hunter2"\n\n[api]\nopenai_key = "sk-not-a-policy"\n'


@pytest.fixture
def policy_files(tmp_path: Path) -> dict[str, Path]:
    secret = tmp_path / "secrets.toml"
    secret.write_text(SECRET_TOML)
    good = tmp_path / "good.toml"
    good.write_text('name = "from-file"\n[recall]\ntoken_budget = 900\n')
    return {"secret": secret, "good": good}


async def test_a_secrets_file_as_per_call_policy_echoes_nothing(
    engram: Engram, scope: dict[str, str], policy_files: dict[str, Path]
) -> None:
    with pytest.raises(ConfigurationError) as err:
        await engram.recall("q", memory_policy=str(policy_files["secret"]), **scope)
    message = str(err.value)
    for leaked in ("database", "password", "hunter2", "api", "openai_key", "sk-not"):
        assert leaked not in message.replace(str(policy_files["secret"]), ""), message


async def test_policy_paths_can_be_refused_per_call(
    database_url: str, scope: dict[str, str], policy_files: dict[str, Path]
) -> None:
    # The client's own policy may still be a file: that is operator configuration.
    async with Engram(
        database_url, embedder="hashing", memory_policy=policy_files["good"], allow_policy_paths=False
    ) as client:
        assert client.policy.name == "from-file"
        await client.record_event("p", role="user", content="I like tea", **scope)
        assert (await client.recall("tea", **scope)).query == "tea"
        for spec in (
            str(policy_files["good"]),
            policy_files["good"],
            str(policy_files["secret"]),
            "/etc/passwd.toml",
        ):
            with pytest.raises(ConfigurationError, match="ENGRAM_ALLOW_POLICY_PATHS"):
                await client.recall("tea", memory_policy=spec, **scope)  # type: ignore[arg-type]
        # Registered names and policy objects are code, not files: still accepted.
        assert (await client.trace_recall("tea", memory_policy="legal", **scope)).query == "tea"
        assert (await client.recall("tea", memory_policy=client.policy, **scope)).query == "tea"
    async with Engram(database_url, embedder="hashing") as default_client:
        result = await default_client.recall("tea", memory_policy=str(policy_files["good"]), **scope)
        assert result.query == "tea"


def test_allow_policy_paths_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from engram.settings import EngramSettings

    assert EngramSettings().allow_policy_paths is True
    monkeypatch.setenv("ENGRAM_ALLOW_POLICY_PATHS", "false")
    assert EngramSettings().allow_policy_paths is False
