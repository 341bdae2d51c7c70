"""Input checks shared by every public call.  They run before any SQL is sent."""

from __future__ import annotations

from typing import Any

from .errors import InvalidInputError

MAX_ID_CHARS = 255
MAX_QUERY_CHARS = 8_192
ROLES = frozenset({"user", "assistant", "system", "tool", "observation", "artifact"})


def _check_text_chars(value: str, what: str) -> None:
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL byte, which PostgreSQL text cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} contains a lone surrogate at position {exc.start}") from None


def check_id(value: Any, what: str) -> str:
    """An identifier: a non-empty str of at most 255 characters, no NUL or control chars."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(f"{what} is {len(value)} characters; the limit is {MAX_ID_CHARS}")
    _check_text_chars(value, what)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInputError(f"{what} must not contain control characters")
    return value


def check_scope(user_id: Any, agent_id: Any) -> tuple[str, str]:
    return check_id(user_id, "user_id"), check_id(agent_id, "agent_id")


def check_text(value: Any, what: str, *, max_chars: int, allow_empty: bool = False) -> str:
    """Free text (event content, fact text, queries)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > max_chars:
        raise InvalidInputError(f"{what} is {len(value)} characters; the limit is {max_chars}")
    _check_text_chars(value, what)
    return value


def check_role(value: Any) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise InvalidInputError(f"role must be one of {sorted(ROLES)}, not {value!r}")
    return value


def check_metadata(value: Any, what: str = "metadata") -> dict[str, Any]:
    """JSON-object metadata: str keys, JSON-serialisable values, no NUL anywhere."""
    import json

    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a dict, not {type(value).__name__}")
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be JSON-serialisable: {exc}") from None
    except RecursionError:
        raise InvalidInputError(f"{what} is nested too deeply") from None
    if "\\u0000" in encoded:
        raise InvalidInputError(f"{what} contains a NUL character, which PostgreSQL jsonb cannot store")
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} contains a lone surrogate") from None
    if len(encoded) > 65_536:
        raise InvalidInputError(f"{what} is {len(encoded)} bytes as JSON; the limit is 65536")
    return value


#: Row ids are PostgreSQL bigints.
MAX_ROW_ID = 2**63 - 1


def check_row_id(value: Any, what: str, *, allow_zero: bool = False) -> int:
    """A bigint row id: an int (not a bool) between 1 (or 0) and 2**63 - 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an int, not {type(value).__name__}")
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_ROW_ID:
        kind = "a non-negative" if allow_zero else "a positive"
        raise InvalidInputError(f"{what} must be {kind} int no larger than {MAX_ROW_ID}, not {value}")
    return value


def check_positive_int(value: Any, what: str, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{what} must be an int, not {type(value).__name__}")
    if value <= 0 or value > maximum:
        raise InvalidInputError(f"{what} must be between 1 and {maximum}, not {value}")
    return value
