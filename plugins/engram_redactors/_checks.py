"""Checksum and structure tests that turn regex candidates into detections.

A regex alone finds things that merely *look* like a card number or an IBAN;
these checks are what keep order numbers, tracking codes and random digit runs
out of the redacted output.  Every function here is total: it returns a
boolean (or ``None``) for any input and never raises, because a redactor that
raises on odd text would block the write or the model call it protects.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

__all__ = [
    "IBAN_LENGTHS",
    "iban_length_for",
    "is_iban",
    "is_jwt_header",
    "is_placeholder",
    "looks_like_date",
    "luhn_ok",
]


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by every major card scheme."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    # Walk from the rightmost digit; every second one is doubled, and a doubled
    # value above 9 contributes its digit sum (which is value - 9).
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


#: Total IBAN length per country (ISO 13616 registry).  A candidate is cut to
#: exactly this many characters, so an IBAN followed by more uppercase text or
#: digits is still found, and one that is too short is not.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_length_for(country: str) -> int | None:
    return IBAN_LENGTHS.get(country)


def is_iban(compact: str) -> bool:
    """``compact`` is an IBAN without spaces; true when its mod-97 check holds."""
    if not 15 <= len(compact) <= 34 or not compact.isascii() or not compact.isalnum():
        return False
    if not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    # 00, 01 and 99 can never be produced by the check-digit algorithm.
    if not 2 <= int(compact[2:4]) <= 98:
        return False
    rearranged = compact[4:] + compact[:4]
    # Letters become two-digit numbers (A=10 ... Z=35); int(c, 36) does exactly that.
    numeric = "".join(str(int(char, 36)) for char in rearranged.upper())
    return int(numeric) % 97 == 1


def is_jwt_header(segment: str) -> bool:
    """True when a base64url segment decodes to a JSON object naming an ``alg``."""
    if not segment or len(segment) > 4096 or len(segment) % 4 == 1:
        # Length 1 mod 4 is impossible for base64; very long headers are not JWTs
        # and are not worth decoding.
        return False
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError.
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


_MARKER = re.compile(r"\[REDACTED:[A-Za-z0-9_.\-]*\]")
_TEMPLATE = re.compile(
    r"""
    \$\{?[A-Za-z_][A-Za-z0-9_]*\}?      # $VAR or ${VAR}
    | \{\{.*\}\}                         # {{ template }}
    | \{[A-Za-z_][A-Za-z0-9_]*\}          # {name}
    | %\(?[A-Za-z_]*\)?s                 # %s / %(name)s
    | <[^<>]*>                           # <your-password>
    """,
    re.VERBOSE,
)
_NON_SECRETS = frozenset(
    {"none", "null", "nil", "true", "false", "undefined", "empty", "redacted", "hidden", "n/a", "..."}
)
_CODE_REFERENCE = re.compile(
    r"(?:self|cls|os|settings|config|conf|cfg|env|args|kwargs|options|opts|params|process\.env)"
    r"\.[A-Za-z_][A-Za-z0-9_.]*"
)


def is_placeholder(value: str) -> bool:
    """Values that stand in for a secret rather than being one.

    Redacting them would hide nothing and would make already-redacted text
    change again on a second pass (``password=[REDACTED:password]``).
    """
    stripped = value.strip()
    if not stripped:
        return True
    if stripped.lower() in _NON_SECRETS:
        return True
    # A mask such as "****" or "xxxxxx" (three or more of the same mask char).
    if len(stripped) >= 3 and set(stripped) <= set("*xX•#.-_"):
        return True
    return bool(
        _MARKER.fullmatch(stripped) or _TEMPLATE.fullmatch(stripped) or _CODE_REFERENCE.fullmatch(stripped)
    )


# Day-month-year or year-month-day with one repeated separator.  Digit runs in
# this shape are far more often dates than phone numbers.
_DATE_DMY = re.compile(r"[0-9]{1,2}([./\-])[0-9]{1,2}\1[0-9]{2,4}(?![0-9])")
_DATE_YMD = re.compile(r"(?:1[6-9]|2[0-9])[0-9]{2}([./\- ])[0-9]{1,2}\1[0-9]{1,2}(?![0-9])")


def looks_like_date(candidate: str) -> bool:
    """True when ``candidate`` starts with something shaped like a calendar date."""
    return bool(_DATE_DMY.match(candidate) or _DATE_YMD.match(candidate))
