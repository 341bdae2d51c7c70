"""Input checks shared by every public call.  They run before any SQL is sent."""

from __future__ import annotations

import json
import math
import unicodedata
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


#: Unicode general categories refused in identifiers.  An id names a tenant, a
#: task or a slot, and people compare ids by looking at them (in logs, dashboards,
#: support tickets), so an id must not hold characters that print as nothing or
#: reorder what is around them: two ids that look the same must be the same id.
#:
#: - ``Cc`` control characters (C0, DEL, C1 such as U+0085 NEXT LINE);
#: - ``Cf`` format characters: zero-width space/joiners (U+200B-U+200D), bidi
#:   overrides and isolates (U+202A-U+202E, U+2066-U+2069), soft hyphen, BOM;
#: - ``Zl`` / ``Zp`` the line and paragraph separators U+2028 / U+2029, which
#:   break log lines like a newline does;
#: - ``Cn`` unassigned code points (and the noncharacters U+FFFE, U+FFFF ...):
#:   no font draws them, and a later Unicode version may give them a meaning;
#: - ``Co`` private use: their glyph is whatever a font decides, so they cannot
#:   be told apart reliably;
#: - ``Cs`` surrogates: not characters at all; PostgreSQL cannot store a lone one
#:   in UTF-8 text (refused with its own message before this check).
REFUSED_ID_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"})


def check_id(value: Any, what: str) -> str:
    """An identifier: a non-empty str of at most 255 characters.

    Refused: NUL and lone surrogates (PostgreSQL cannot store them), characters of
    :data:`REFUSED_ID_CATEGORIES`, and leading or trailing whitespace (an id that
    differs from another only by an invisible trailing space).  Spaces inside an
    id, letters of any script, marks and emoji are accepted.  Ids are compared
    code point by code point: Engram does not normalise them.
    """
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInputError(f"{what} is {len(value)} characters; the limit is {MAX_ID_CHARS}")
    _check_text_chars(value, what)
    for position, ch in enumerate(value):
        category = unicodedata.category(ch)
        if category in REFUSED_ID_CATEGORIES:
            # The code point, not the character: printing it would defeat the point.
            raise InvalidInputError(
                f"{what} contains U+{ord(ch):04X} (Unicode category {category}) at position "
                f"{position}; ids must not contain control characters, nor format, separator, "
                "unassigned, private-use or surrogate code points"
            )
    if value != value.strip():
        raise InvalidInputError(f"{what} must not start or end with whitespace")
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


#: Deepest nesting of dicts and lists accepted in metadata.
MAX_METADATA_DEPTH = 64
#: Largest metadata accepted, in characters of its JSON text.
MAX_METADATA_CHARS = 65_536


def _check_json_value(value: Any, what: str, path: str, depth: int) -> None:
    # Walk the value ourselves rather than trusting json.dumps: json.dumps turns
    # int, float, bool and None keys into strings (so {1: "a"} would be stored as
    # {"1": "a"} while the returned model refuses the int key), and it recurses
    # until Python's own limit.  Every value here is one that jsonb stores and
    # gives back unchanged (tuples come back as lists).
    if depth > MAX_METADATA_DEPTH:
        raise InvalidInputError(f"{what} is nested more than {MAX_METADATA_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{what}{path} is {value}, which is not JSON-serialisable (JSON has no NaN or infinity)"
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"{what}{path} has a {type(key).__name__} key; JSON object keys must be str"
                )
            _check_json_value(item, what, f"{path}[{key[:40]!r}]", depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_value(item, what, f"{path}[{index}]", depth + 1)
        return
    raise InvalidInputError(
        f"{what}{path} is of type {type(value).__name__}, which is not JSON-serialisable "
        "(use str, int, float, bool, None, list or dict)"
    )


def check_metadata(value: Any, what: str = "metadata") -> dict[str, Any]:
    """JSON-object metadata: str keys at every level, JSON values, no NUL anywhere.

    Returns the value as it will be stored and read back (a JSON round trip: plain
    dicts, lists, str, int, float, bool and None), so the model a call returns
    holds exactly what a later read returns, and the caller mutating its dict
    afterwards changes nothing.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a dict, not {type(value).__name__}")
    _check_json_value(value, what, "", 1)
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:  # e.g. an int too long to print
        raise InvalidInputError(f"{what} must be JSON-serialisable: {exc}") from None
    if "\\u0000" in encoded:
        raise InvalidInputError(f"{what} contains a NUL character, which PostgreSQL jsonb cannot store")
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} contains a lone surrogate") from None
    if len(encoded) > MAX_METADATA_CHARS:
        raise InvalidInputError(
            f"{what} is {len(encoded)} characters as JSON; the limit is {MAX_METADATA_CHARS}"
        )
    normalised: dict[str, Any] = json.loads(encoded)
    return normalised


def check_flag(value: Any, what: str) -> bool:
    """A boolean flag: exactly ``True`` or ``False``.

    Truthiness is not enough: ``"no"``, ``"false"`` and ``[0]`` are truthy, so a
    flag read from a form field or a query string would silently mean the opposite.
    """
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be a bool (True or False), not {type(value).__name__}")
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
