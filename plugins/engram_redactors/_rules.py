"""The detection rules of the ``secrets_and_pii`` redactor.

Each :class:`Rule` is one precompiled regex plus an optional check that accepts,
rejects or narrows a match.

Speed comes from two habits.  Every pattern starts with a literal or a narrow
character class (``sk-``, ``@``, ``+``, a digit), so the regex engine skips
through ordinary text quickly instead of trying the whole pattern at every
position; "not in the middle of a token" guards are lookbehinds placed *after*
that first character.  Rules keyed on a case-insensitive label (``password=``,
``Bearer``, ``Phone:``) first find the label with a lower-case locator regex over
the lower-cased text, then match the full pattern only there.  Runs are bounded
or possessive, so no position is retried more than a bounded number of times
and a scan stays linear in the length of the text.

Ranks settle overlaps: when two rules claim overlapping text, the higher rank
(the more specific rule) wins, then the longer span.  Provider-specific token
formats outrank generic ``password=`` assignments, which outrank numbers that
are only recognised by shape (IBANs, cards, phone numbers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ._checks import iban_length_for, is_iban, is_jwt_header, is_placeholder, looks_like_date, luhn_ok

__all__ = ["KINDS", "RULES", "Rule"]

Span = tuple[int, int]
Check = Callable[[re.Match[str]], Span | None]

_FLAGS = re.ASCII


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    rank: int
    #: Group whose span is reported when there is no ``check``.
    group: str | int = 0
    #: Accepts a match and returns the span to report, or ``None`` to reject it.
    check: Check | None = None
    #: Cheap pre-filter: the rule only runs when one of these substrings occurs.
    hints: tuple[str, ...] = ()
    #: Whether ``hints`` are matched against the lower-cased text.
    hints_casefold: bool = False
    #: Lower-case regex run over the lower-cased text to find where ``pattern``
    #: can start; ``pattern`` is then only tried at those positions.
    locator: re.Pattern[str] | None = None

    def scan(self, text: str, lowered: str | None = None) -> Iterator[Span]:
        """Yield the spans this rule accepts, left to right.

        ``lowered`` is ``text.lower()``; the locator is only usable when it has
        the same length (a few characters, such as U+0130, lower-case to two),
        otherwise the full pattern is searched directly.
        """
        if self.locator is not None and lowered is not None and len(lowered) == len(text):
            locate = self.locator.search
            anchored = self.pattern.match
            pos = 0
            while True:
                found = locate(lowered, pos)
                if found is None:
                    return
                pos = found.start() + 1
                match = anchored(text, found.start())
                if match is not None:
                    span = self._accept(match)
                    if span is not None:
                        yield span
                        pos = max(pos, span[1])
        search = self.pattern.search
        pos = 0
        while True:
            match = search(text, pos)
            if match is None:
                return
            span = self._accept(match)
            if span is None:
                # A rejected candidate may hide a valid one that starts inside
                # it (e.g. a too-long digit run), so resume just after its start.
                pos = match.start() + 1
                continue
            yield span
            # A check may narrow the match (an IBAN followed by more text);
            # resume at the reported end so a neighbour is still seen.
            pos = max(span[1], match.start() + 1)

    def _accept(self, match: re.Match[str]) -> Span | None:
        span = self.check(match) if self.check is not None else match.span(self.group)
        if span is None or span[1] <= span[0]:
            return None
        return span


def _compile(pattern: str) -> re.Pattern[str]:
    # ASCII: offsets and classes mean the same thing for every input, and
    # \d, \w and \b never match other scripts' digits or letters.
    return re.compile(pattern, _FLAGS)


def _lower(pattern: str) -> re.Pattern[str]:
    """A locator, written in lower case and run over ``text.lower()``.

    Deliberately case-sensitive: with IGNORECASE the engine can no longer skip
    ahead to plausible first characters and the scan is several times slower.
    """
    return re.compile(pattern, _FLAGS)


# Characters that make up API tokens; used as "not part of the same token" guards.
_TOK = r"A-Za-z0-9_\-"
_END = rf"(?![{_TOK}])"


def _after(prefix_length: int, forbidden: str = _TOK) -> str:
    """A guard placed after a literal prefix of ``prefix_length`` characters:
    the character before the prefix must not be one of ``forbidden``."""
    return rf"(?<![{forbidden}].{{{prefix_length}}})"


# --------------------------------------------------------------------------- provider tokens


def _has_letter_and_digit(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


_OPENAI_PREFIXES = ("proj-", "svcacct-", "admin-")


def _check_openai(match: re.Match[str]) -> Span | None:
    body = match.group("body")
    # A bare "sk-" prefix also starts ordinary words and package names
    # ("sk-learn-style-pipeline"); real keys are random, so they mix letters
    # and digits.  The project/service-account prefixes are distinctive enough.
    if body.startswith(_OPENAI_PREFIXES) or _has_letter_and_digit(body):
        return match.span()
    return None


def _check_slack(match: re.Match[str]) -> Span | None:
    start, end = match.span()
    value = match.group()
    # The token alphabet allows "-", so a trailing hyphen is punctuation.
    while end > start and value[end - start - 1] == "-":
        end -= 1
    return (start, end) if any(c.isdigit() for c in match.group("body")) else None


# --------------------------------------------------------------------------- JWT and PEM


def _check_jwt(match: re.Match[str]) -> Span | None:
    return match.span() if is_jwt_header(match.group("header")) else None


_PEM_LABEL = r"(?P<label>(?:[A-Z0-9]+ ){0,4}PRIVATE KEY(?: BLOCK)?)"
# Everything up to the next run of five dashes; cannot run past another
# BEGIN/END line, so each block is scanned once.
_PEM_BODY = r"(?:[^-]|-(?!----))*?"
# For a block whose END line is missing (truncated paste): armour headers and
# base64 lines separated by whitespace or by escaped newlines, as in JSON.
_PEM_LINES = (
    r"(?:(?:\s|\\r|\\n)+"
    r"(?:(?:Proc-Type|DEK-Info|Version|Comment|Hash):[^\r\n\\]*|[A-Za-z0-9+/]{16,}={0,2}|=[A-Za-z0-9+/]{4}))+"
)


# --------------------------------------------------------------------------- credentials in text


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _check_url_password(match: re.Match[str]) -> Span | None:
    # The pattern starts at "://" (a fast literal); the scheme before it is
    # checked here: 1-32 scheme characters starting with a letter.
    text = match.string
    start = match.start()
    floor = max(0, start - 33)
    while start > floor and text[start - 1] in _SCHEME_CHARS:
        start -= 1
    scheme = text[start : match.start()]
    if not scheme or len(scheme) > 32 or not scheme[0].isalpha():
        return None
    return None if is_placeholder(match.group("value")) else match.span("value")


_EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-_")


def _check_email(match: re.Match[str]) -> Span | None:
    # The pattern starts at "@" (a fast literal) and covers the domain; the
    # local part is read backwards from there, at most 64 characters (RFC 5321).
    text = match.string
    at = match.start()
    start = at
    floor = max(0, at - 65)
    while start > floor and text[start - 1] in _EMAIL_LOCAL_CHARS:
        start -= 1
    if at - start > 64:
        return None
    # Leading dots or dashes are punctuation around the address, not part of it.
    while start < at and not text[start].isalnum():
        start += 1
    return (start, match.end()) if start < at else None


_TRAILING_PUNCT = ".,!?:"


def _password_like(value: str) -> bool:
    """Whether a bare word after ``password:`` / ``password is`` is plausibly the secret.

    In prose those forms are often followed by an ordinary word ("password:
    required", "the password is wrong"); a real password usually has a digit, a
    symbol or inner capitals, or is long.
    """
    if len(value) >= 16:
        return True
    return any(not c.isalpha() for c in value) or any(c.isupper() for c in value[1:])


# ``password=getpass()``, ``password=os.environ["PW"]``: code that fetches the
# secret, not the secret.
_CODE_EXPRESSION = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*[(\[]")
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _trim_bare(value: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from a bare value.

    ``connect(password=hunter2)`` and "my password is hunter2." should report
    ``hunter2``; ``pa(ss)`` keeps its brackets because they are balanced.
    """
    while value:
        last = value[-1]
        unbalanced = last in _CLOSERS and value.count(last) > value.count(_CLOSERS[last])
        if last not in _TRAILING_PUNCT and not unbalanced:
            break
        value = value[:-1]
    return value


def _check_assignment(match: re.Match[str]) -> Span | None:
    for group in ("dq", "sq", "bq"):
        if match.group(group) is not None:
            return None if is_placeholder(match.group(group)) else match.span(group)
    start = match.start("bare")
    trimmed = _trim_bare(match.group("bare"))
    if not trimmed or is_placeholder(trimmed) or _CODE_EXPRESSION.match(trimmed):
        return None
    loose = match.group("word") is not None or match.group("sep") == ":"
    if loose and not _password_like(trimmed):
        return None
    return start, start + len(trimmed)


def _check_bearer(match: re.Match[str]) -> Span | None:
    start = match.start("value")
    value = match.group("value").rstrip(".")
    if len(value) < 16 or is_placeholder(value) or not _has_letter_and_digit(value):
        return None
    return start, start + len(value)


def _check_basic(match: re.Match[str]) -> Span | None:
    value = match.group("value")
    return None if is_placeholder(value) else match.span("value")


_ASSIGNMENT_LABEL = (
    r"(?i:pass(?:word|wd|phrase)|client[_\-]?secret|secret[_\-]?key|secret"
    r"|api[_\-]?key|apikey|(?:access|auth|refresh|api|bearer)[_\-]?token|private[_\-]?key)"
)
_ASSIGNMENT = (
    _ASSIGNMENT_LABEL + r"[\"']?"
    r"(?:[ \t]*(?P<sep>:=|=>|={1,3}|:)|[ \t]+(?P<word>(?i:is|was))[ \t])[ \t]*"
    r"(?:\"(?P<dq>(?:[^\"\\\r\n]|\\.){1,256})\""
    r"|'(?P<sq>(?:[^'\\\r\n]|\\.){1,256})'"
    r"|`(?P<bq>[^`\r\n]{1,256})`"
    # "&" ends the value only where a query-string parameter follows
    # ("?api_key=abc&page=2"); inside a password it is just a symbol.
    r"|(?P<bare>(?:[^\s\"'`,;&<>]|&(?![A-Za-z_][A-Za-z0-9_.\-]*=)){1,256}+))"
)

# The labels above in lower case, to locate candidates in lower-cased text.
# Factored by first letter: the engine then tries one branch per position
# instead of all of them, which more than halves the scan time.
_ASSIGNMENT_LOCATOR = (
    r"a(?:pi(?:[_\-]?(?:key|token)|key)|ccess[_\-]?token|uth[_\-]?token)"
    r"|pass(?:word|wd|phrase)|private[_\-]?key|secret|client[_\-]?secret"
    r"|refresh[_\-]?token|bearer[_\-]?token"
)

_AWS_SECRET = (
    r"(?i:aws[_\-. ]?secret(?:[_\-. ]?access)?[_\-. ]?key|secret[_\-. ]?access[_\-. ]?key)"
    r"[\"']?[ \t]*(?::=|=>|=|:)[ \t]*[\"']?"
    r"(?P<value>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)


# --------------------------------------------------------------------------- numbers


def _check_card(match: re.Match[str]) -> Span | None:
    raw = match.group()
    digits = "".join(c for c in raw if c.isdigit())
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return None
    separators = {c for c in raw if not c.isdigit()}
    if separators:
        if len(separators) > 1:
            return None
        groups = raw.split(separators.pop())
        # Printed card numbers are grouped from a first group of four
        # (4-4-4-4, 4-6-5, 4-4-4-4-3); anything else is some other identifier.
        if len(groups[0]) != 4 or any(not 3 <= len(g) <= 6 for g in groups[1:-1]):
            return None
        if not 1 <= len(groups[-1]) <= 6:
            return None
    return match.span()


def _check_iban(match: re.Match[str]) -> Span | None:
    raw = match.group()
    expected = iban_length_for(raw[:2])
    if expected is None:
        # Not an IBAN country; mod-97 alone would pass one random string in 97.
        return None
    # Walk the candidate and stop after exactly the country's IBAN length, so
    # trailing uppercase words or a second IBAN are not swallowed.
    compact: list[str] = []
    end_offset = 0
    for offset, char in enumerate(raw):
        if char != " ":
            compact.append(char)
            if len(compact) == expected:
                end_offset = offset + 1
                break
    else:
        return None
    start = match.start()
    end = start + end_offset
    text = match.string
    if end < len(text) and text[end].isascii() and text[end].isalnum():
        return None  # the IBAN-length prefix of a longer token
    return (start, end) if is_iban("".join(compact)) else None


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def _phone_common(match: re.Match[str], group: str | int, low: int, high: int) -> Span | None:
    value = match.group(group)
    if looks_like_date(value.lstrip("+(")):
        return None
    if not low <= len(_digits(value)) <= high:
        return None
    return match.span(group)


def _check_phone_international(match: re.Match[str]) -> Span | None:
    # E.164 allows at most 15 digits; fewer than 8 is an arithmetic "+123".
    return _phone_common(match, 0, 8, 15)


def _check_phone_national(match: re.Match[str]) -> Span | None:
    value = match.group()
    # One kind of punctuation ("030/123 4567" is fine, "01.02-2024 10" is not).
    if len({c for c in value if c in "-./"}) > 1:
        return None
    high = 15 if value.startswith("00") else 12
    return _phone_common(match, 0, 9, high)


def _check_phone_north_american(match: re.Match[str]) -> Span | None:
    # A leading "1-" / "1 " country code sits before the match (the guard lets
    # a lone "1" through); include it so it is redacted with the number.
    start, end = match.span()
    text = match.string
    if (
        start >= 2
        and text[start - 2] == "1"
        and text[start - 1] in " -."
        and (start == 2 or not (text[start - 3].isalnum() or text[start - 3] in "_+"))
    ):
        start -= 2
    return start, end


def _check_phone_labelled(match: re.Match[str]) -> Span | None:
    return _phone_common(match, "value", 7, 15)


# --------------------------------------------------------------------------- the rules

# "Not preceded by a digit and a separator": keeps the number rules from
# starting in the middle of a grouped digit sequence ("2024 01 15").
_NOT_MID_NUMBER = r"(?<![0-9][\-./ ].)"

# Guard after the first character of a North American number: not inside a
# word or digit group, except that a lone "1" country code may precede it.
_NA_GUARD = r"(?<![A-Za-z0-9_+].)(?<![02-9][\-./ ].)(?<![A-Za-z0-9_+(]1[\-./ ].)"

RULES: tuple[Rule, ...] = (
    # PEM private keys: the whole block, BEGIN and END lines included.
    Rule(
        "private_key",
        _compile(rf"-----BEGIN {_PEM_LABEL}-----{_PEM_BODY}-----END (?P=label)-----"),
        rank=100,
        hints=("PRIVATE KEY",),
    ),
    Rule(
        "private_key",
        _compile(rf"-----BEGIN {_PEM_LABEL}-----{_PEM_LINES}"),
        rank=100,
        hints=("PRIVATE KEY",),
    ),
    Rule(
        "anthropic_api_key",
        _compile(rf"sk-ant-{_after(7)}[{_TOK}]{{20,400}}{_END}"),
        rank=95,
        hints=("sk-ant-",),
    ),
    Rule(
        "openai_api_key",
        _compile(rf"sk-{_after(3)}(?!ant-)(?P<body>[{_TOK}]{{20,400}}){_END}"),
        rank=90,
        check=_check_openai,
        hints=("sk-",),
    ),
    Rule(
        "aws_access_key_id",
        _compile(rf"A[KS]IA{_after(4, 'A-Za-z0-9')}[A-Z0-9]{{16}}(?![A-Za-z0-9])"),
        rank=90,
        hints=("AKIA", "ASIA"),
    ),
    Rule(
        "github_token",
        _compile(
            rf"g(?:h[pousr]_{_after(4, 'A-Za-z0-9_')}[A-Za-z0-9]{{30,255}}"
            rf"|ithub_pat_{_after(11, 'A-Za-z0-9_')}[A-Za-z0-9_]{{22,255}})(?![A-Za-z0-9_])"
        ),
        rank=90,
        hints=("gh", "github_pat_"),
    ),
    Rule(
        "slack_token",
        _compile(rf"x(?:ox[abposr]|app)-{_after(5)}(?P<body>[A-Za-z0-9\-]{{10,250}}){_END}"),
        rank=90,
        check=_check_slack,
        hints=("xox", "xapp-"),
    ),
    Rule(
        "slack_webhook_url",
        _compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]{20,300}"),
        rank=90,
        hints=("hooks.slack.com",),
    ),
    Rule(
        "google_api_key",
        _compile(rf"AIza{_after(4)}[{_TOK}]{{35}}{_END}"),
        rank=90,
        hints=("AIza",),
    ),
    # A JWT header is base64url JSON, so it starts with "ey" ({" or { ) or
    # "ew" ({ and a newline).  The header is decoded and must name an "alg".
    Rule(
        "jwt",
        _compile(
            rf"(?P<header>e[wy]{_after(2, _TOK + '.')}[{_TOK}]{{8,4094}})"
            rf"\.[{_TOK}]{{2,}}\.[{_TOK}]*{_END}"
        ),
        rank=85,
        check=_check_jwt,
        hints=(".",),
    ),
    Rule(
        "aws_secret_access_key",
        _compile(_AWS_SECRET),
        rank=80,
        group="value",
        hints=("secret",),
        hints_casefold=True,
        locator=_lower(r"aws|secret"),
    ),
    # scheme://user:password@host, reporting only the password.  The password
    # class admits "@", and backtracking then stops at the last "@" before the
    # host, which is how URL parsers read an unescaped "@" in a password.
    Rule(
        "url_password",
        _compile(r"://[^\s:/?#@\[\]\"'<>]{0,256}:(?P<value>[^\s/?#\"'<>]{1,256})@(?=[A-Za-z0-9\[])"),
        rank=70,
        check=_check_url_password,
        hints=("://",),
    ),
    Rule(
        "bearer_token",
        _compile(r"(?i:\bbearer)[ \t]+(?P<value>[A-Za-z0-9\-._~+/]{16,4096}=*)(?![A-Za-z0-9\-._~+/=])"),
        rank=60,
        check=_check_bearer,
        hints=("bearer",),
        hints_casefold=True,
        locator=_lower(r"bearer"),
    ),
    Rule(
        "basic_auth",
        _compile(
            r"(?i:\bauthorization)[\"']?[ \t]*[:=][ \t]*[\"']?(?i:basic)[ \t]+"
            r"(?P<value>[A-Za-z0-9+/]{6,4096}={0,2})(?![A-Za-z0-9+/=])"
        ),
        rank=60,
        check=_check_basic,
        hints=("basic",),
        hints_casefold=True,
        locator=_lower(r"authorization"),
    ),
    Rule(
        "password",
        _compile(_ASSIGNMENT),
        rank=50,
        check=_check_assignment,
        hints=("pass", "secret", "key", "token"),
        hints_casefold=True,
        locator=_lower(_ASSIGNMENT_LOCATOR),
    ),
    Rule(
        "iban",
        _compile(r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?: ?[A-Z0-9]){11,32}"),
        rank=45,
        check=_check_iban,
    ),
    # 13-19 digits, optionally grouped by one kind of separator.  The issuer
    # digit (2-6) covers Visa, Mastercard, Amex, Discover, JCB, Diners and
    # UnionPay and keeps timestamps and zero-padded ids out.
    Rule(
        "payment_card",
        _compile(r"[2-6](?<![A-Za-z0-9].)(?<![0-9][ \-].)(?:[ \-]?[0-9]){12,18}(?![0-9]|[ \-][0-9])"),
        rank=40,
        check=_check_card,
    ),
    Rule(
        "email",
        _compile(
            r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
        ),
        rank=30,
        check=_check_email,
        hints=("@",),
    ),
    # +CC then groups separated by one space, dash, dot or slash, with an
    # optional "(0)" or "(555)" group.
    Rule(
        "phone_number",
        _compile(
            # The lookahead demands eight digits up front, so a stray "+1" is
            # rejected by the engine rather than by a Python-level check.
            r"\+(?<![A-Za-z0-9_+].)(?=(?:[ \-./()]{0,3}[0-9]){8})[0-9]{1,15}"
            r"(?:(?:[ \-./]|[ \-.]?\([0-9]{1,5}\)[ \-.]?)[0-9]{1,12})*+(?![0-9])"
        ),
        rank=20,
        check=_check_phone_international,
        hints=("+",),
    ),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567,
    # optionally after "1-".  The same separator must be used twice, and area
    # code and exchange cannot start with 0 or 1 (NANP rules).  A lone "1" and
    # a separator may precede the number (the country code; see the check).
    Rule(
        "phone_number",
        _compile(
            rf"(?:\({_NA_GUARD}[2-9]|[2-9]{_NA_GUARD}(?=[0-9]{{2}}(?P<sep>[\-. ])))"
            r"(?:[0-9]{2}\)[ ]?|[0-9]{2}(?P=sep))"
            r"[2-9][0-9]{2}(?(sep)(?P=sep)|[\-. ])[0-9]{4}(?![A-Za-z0-9_]|[\-.][0-9])"
        ),
        rank=20,
        check=_check_phone_north_american,
    ),
    # European national formats start with the trunk prefix 0 (or 00 for an
    # international call): 030 12345678, 06 12 34 56 78, 020 7946 0958.
    # At least one separator is required, so bare zero-padded ids are left alone.
    Rule(
        "phone_number",
        _compile(
            rf"0(?<![A-Za-z0-9_+].){_NOT_MID_NUMBER}[0-9]{{1,4}}(?:[ \-./][0-9]{{1,8}}){{1,5}}+"
            r"(?![A-Za-z0-9_]|[\-./][0-9])"
        ),
        rank=20,
        check=_check_phone_national,
        hints=("0",),
    ),
    # Any digits written right after a phone label, including unformatted ones.
    Rule(
        "phone_number",
        _compile(
            r"(?i:\b(?:phone|telephone|tel|mobile|cell|fax|whatsapp)\b)"
            r"(?:[ \t]*(?i:number|no\.?|nr\.?|#))?[ \t]*[:.=\-]?[ \t]*"
            r"(?P<value>\+?\(?[0-9][0-9 \-./()]{5,22}[0-9])(?![0-9])"
        ),
        rank=20,
        check=_check_phone_labelled,
        hints=("phone", "tel", "mobile", "cell", "fax", "whatsapp"),
        hints_casefold=True,
        locator=_lower(r"phone|telephone|tel|mobile|cell|fax|whatsapp"),
    ),
)

#: Every kind this redactor can report.
KINDS: tuple[str, ...] = tuple(dict.fromkeys(rule.kind for rule in RULES))
