"""The input checks of engram.validation, and the masking helpers of engram.settings (issue 14).

No database: these are the functions every public call runs before any SQL.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from id_chars import REFUSED_ID_CHARS

from engram.errors import ConfigurationError, InvalidInputError
from engram.ledger.models import Event
from engram.policy import MemoryPolicy, load_policy_file, policy_from_mapping
from engram.settings import EngramSettings, redact_dsn, scrub_secrets
from engram.validation import (
    MAX_METADATA_DEPTH,
    REFUSED_ID_CATEGORIES,
    check_flag,
    check_id,
    check_metadata,
)

# --------------------------------------------------------------------------- identifiers

ACCEPTED_IDS = [
    "alice",
    "user-42_x.y@example.com",
    "Zoë",
    "e\u0301",  # a combining mark (Mn) is a visible part of a letter
    "ユーザー",
    "用户",
    "اسم",
    "🙂",
    "emoji 🙂 with spaces inside",
    "a\u00a0b",  # a no-break space inside is still a visible gap
    "'; DROP TABLE events; --",
    "x" * 255,
]


def test_the_table_covers_every_refused_category() -> None:
    categories = {unicodedata.category(ch) for ch, _ in REFUSED_ID_CHARS}
    assert categories == REFUSED_ID_CATEGORIES


@pytest.mark.parametrize(("ch", "why"), REFUSED_ID_CHARS, ids=[w for _, w in REFUSED_ID_CHARS])
@pytest.mark.parametrize("where", ["start", "middle", "end", "alone"])
def test_check_id_refuses_invisible_and_control_characters(ch: str, why: str, where: str) -> None:
    value = {"start": ch + "abc", "middle": "ab" + ch + "c", "end": "abc" + ch, "alone": ch}[where]
    with pytest.raises(InvalidInputError) as err:
        check_id(value, "user_id")
    message = str(err.value)
    assert "user_id" in message
    # The refused character is named by its code point, never printed raw.
    assert ch not in message


@pytest.mark.parametrize("value", [" alice", "alice ", "\u00a0alice", "alice\u3000", "\talice"])
def test_check_id_refuses_leading_and_trailing_whitespace(value: str) -> None:
    with pytest.raises(InvalidInputError):
        check_id(value, "agent_id")


@pytest.mark.parametrize("value", ACCEPTED_IDS)
def test_check_id_keeps_accepting_visible_ids(value: str) -> None:
    assert check_id(value, "task_id") == value


@pytest.mark.parametrize("value", ["", "   ", "x" * 256, 7, None, b"alice", ["a"]])
def test_check_id_still_refuses_what_it_refused_before(value: Any) -> None:
    with pytest.raises(InvalidInputError):
        check_id(value, "task_id")


def test_unassigned_follows_the_running_pythons_unicode_database() -> None:
    # Documented: "unassigned" is judged by unicodedata of the running Python.
    assert unicodedata.unidata_version
    assert sys.version_info >= (3, 11)
    with pytest.raises(InvalidInputError, match="U\\+0378"):
        check_id("a\u0378", "slot")


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize("value", [True, False])
def test_check_flag_accepts_bools(value: bool) -> None:
    assert check_flag(value, "include_text") is value


@pytest.mark.parametrize("value", ["yes", "false", "", 1, 0, 1.0, [], [0], None, {}, object()])
def test_check_flag_refuses_everything_else(value: Any) -> None:
    with pytest.raises(InvalidInputError, match="include_text must be a bool"):
        check_flag(value, "include_text")


# --------------------------------------------------------------------------- metadata

BAD_METADATA: list[Any] = [
    {1: "a"},
    {1.5: "a"},
    {True: "a"},
    {None: "a"},
    {(1, 2): "a"},
    {"a": {1: "nested int key"}},
    {"a": [{"b": {2: "deeper"}}]},
    {"a": {1, 2}},
    {"a": b"bytes"},
    {"a": object()},
    {"a": float("nan")},
    {"a": [float("inf")]},
    {"a": "\x00"},
    {"\x00": 1},
    {"a": "\ud800"},
    {"a": "x" * 70_000},
    {"a": 10**5000},
]


@pytest.mark.parametrize("value", BAD_METADATA, ids=range(len(BAD_METADATA)))
def test_check_metadata_refuses_what_jsonb_or_the_models_would_not_keep(value: Any) -> None:
    with pytest.raises(InvalidInputError):
        check_metadata(value)


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(depth - 1):
        out = {"k": out}
    return out


def test_check_metadata_bounds_nesting_without_recursion_errors() -> None:
    assert check_metadata(_nested(MAX_METADATA_DEPTH)) == _nested(MAX_METADATA_DEPTH)
    for depth in (MAX_METADATA_DEPTH + 1, 5_000):
        with pytest.raises(InvalidInputError, match="nested"):
            check_metadata(_nested(depth))


def test_check_metadata_returns_what_will_be_stored() -> None:
    given = {"tags": ("a", "b"), "n": 1, "ok": True, "none": None, "x": 1.5, "deep": {"l": [1, {"m": "n"}]}}
    stored = check_metadata(given)
    assert stored == {
        "tags": ["a", "b"],
        "n": 1,
        "ok": True,
        "none": None,
        "x": 1.5,
        "deep": {"l": [1, {"m": "n"}]},
    }
    given["n"] = 2  # the caller changing its dict afterwards changes nothing
    assert stored["n"] == 1


@pytest.mark.parametrize("value", [{"a": 1}, {"a": {"b": [1, "x", None, 2.5, True]}}, {}, None])
def test_accepted_metadata_always_builds_the_public_models(value: Any) -> None:
    """Whatever check_metadata accepts, the Event model (built after the commit) accepts."""
    from datetime import UTC, datetime

    meta = check_metadata(value)
    Event(
        event_id=1,
        user_id="u",
        agent_id="a",
        task_id="t",
        role="user",
        content="c",
        metadata=meta,
        created_at=datetime.now(UTC),
    )


# --------------------------------------------------------------------------- secrets in reprs


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://u:s3cret@127.0.0.1:5432/x", "s3cret"),
        ("postgres://u:p%40ss@h/db", "p%40ss"),
        ("postgresql://u:has@at/and/slash@h/db", "has@at/and/slash"),
        ("postgresql://u@h/db?sslmode=require&password=qs3cret", "qs3cret"),
        ("postgresql://u@h/db?sslpassword=keypass", "keypass"),
        ("host=h user=u password=kv3cret dbname=x", "kv3cret"),
        ("host=h password='quoted secret' dbname=x", "quoted secret"),
        ("u:bare3cret@h/db", "bare3cret"),
    ],
)
def test_redact_dsn_masks_every_form_of_password(dsn: str, secret: str) -> None:
    masked = redact_dsn(dsn)
    assert secret not in masked and "***" in masked
    if "://" in dsn or "=" in dsn:
        # Inside free text too (a scheme-less DSN only at the start of a text,
        # so that "note: a@b" in a log line is left alone).
        assert redact_dsn(f"error: cannot reach {dsn} now") == f"error: cannot reach {masked} now"


def test_redact_dsn_keeps_what_identifies_the_server() -> None:
    assert (
        redact_dsn("postgresql://app:pw@db.internal:6432/engram")
        == "postgresql://app:***@db.internal:6432/engram"
    )
    assert redact_dsn("postgresql://app@db/engram") == "postgresql://app@db/engram"
    assert redact_dsn("password authentication failed for user app") == (
        "password authentication failed for user app"
    )


def test_scrub_secrets_masks_a_quoted_fragment_of_the_dsn() -> None:
    # asyncpg's "invalid port" error quotes part of the netloc, not the whole DSN.
    dsn = "postgresql://u:s3cret:more@h:1/x"
    assert "s3cret" not in scrub_secrets("invalid literal for int(): 's3cret:more@h:1'", dsn)


def test_settings_repr_and_str_mask_the_password_but_values_stay_real() -> None:
    dsn = "postgresql://u:s3cret@127.0.0.1:1/x"
    settings = EngramSettings(database_url=dsn)
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert "s3cret" not in text and "u:***@127.0.0.1:1/x" in text
    # Programmatic use needs the real DSN: attributes and model_dump keep it.
    assert settings.database_url == dsn
    assert settings.model_dump()["database_url"] == dsn


def test_settings_validation_errors_do_not_quote_the_dsn() -> None:
    with pytest.raises(ValueError) as err:
        EngramSettings(database_url="postgresql://u:pw12@h/d", min_pool_size=5, max_pool_size=2)
    assert "pw12" not in str(err.value)


# --------------------------------------------------------------------------- policy files

SECRET_TOML = """\
[database]
password = "hunter2-value"
aws_secret_access_key = "AKIA-SECRET"

[deploy]
token = "tok-123"
"""


def test_a_non_policy_toml_is_refused_without_echoing_keys_or_values(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    path.write_text(SECRET_TOML)
    with pytest.raises(ConfigurationError) as err:
        load_policy_file(path)
    message = str(err.value)
    assert str(path) in message
    for leaked in ("database", "password", "hunter2", "aws_secret", "AKIA", "deploy", "token", "tok-123"):
        assert leaked not in message, message
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize(
    "toml",
    [
        # tomllib's own messages quote keys ("Cannot declare ('password',) twice").
        'password = "a"\npassword = "b"\n',
        'name = "x"\n[recall]\nweights = { facts_vector = 1.0, hunter2 = 2.0 }\n',
        'name = "x"\n[recall]\nweights = { hunter2 = "x" }\n',
        'name = "x"\n[recall]\nweights = { hunter2 = -1.0 }\n',
        'name = "x"\n[[critical_slots]]\nname = "ok"\npatterns = ["(hunter2"]\n',
        'name = "x"\n[[recall.router_rules]]\npattern = "(hunter2"\nintent = "task"\n',
        'name = "x"\n[recall.hunter2]\nx = 1\n',
    ],
)
def test_policy_file_errors_never_quote_the_files_own_names(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(toml)
    with pytest.raises(ConfigurationError) as err:
        load_policy_file(path)
    assert "hunter2" not in str(err.value) and "password" not in str(err.value)


def test_policy_mappings_from_code_still_name_the_typo() -> None:
    data = MemoryPolicy(name="x").model_dump()
    data["recall"]["weights"]["recent_ledgr"] = 1.0
    with pytest.raises(ConfigurationError, match="recent_ledgr"):
        policy_from_mapping(data)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_a_policy_path_that_is_not_a_regular_file_is_not_read(path: str) -> None:
    if not Path(path).exists():
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_policy_file(path)


def test_a_huge_policy_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text('name = "x"\n' + "# padding\n" * 120_000)
    with pytest.raises(ConfigurationError, match="larger than"):
        load_policy_file(path)
