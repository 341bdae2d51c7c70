"""Characters refused in identifiers, one or more per Unicode category (issue 14, defect 7).

Shared by the unit tests of ``check_id`` and the public-API tests.
"""

from __future__ import annotations

#: One or more characters of every refused category, each with the reason it is a risk.
REFUSED_ID_CHARS: list[tuple[str, str]] = [
    ("\x01", "Cc: C0 control"),
    ("\x1b", "Cc: escape, starts terminal sequences"),
    ("\x7f", "Cc: DEL"),
    ("\x85", "Cc: NEXT LINE, a newline to some log readers"),
    ("\x9b", "Cc: C1 control sequence introducer"),
    ("\u200b", "Cf: zero-width space"),
    ("\u200c", "Cf: zero-width non-joiner"),
    ("\u200d", "Cf: zero-width joiner"),
    ("\u2060", "Cf: word joiner"),
    ("\u202e", "Cf: right-to-left override"),
    ("\u2066", "Cf: left-to-right isolate"),
    ("\u00ad", "Cf: soft hyphen, invisible"),
    ("\ufeff", "Cf: byte order mark"),
    ("\U000e0041", "Cf: tag character"),
    ("\u2028", "Zl: line separator"),
    ("\u2029", "Zp: paragraph separator"),
    ("\u0378", "Cn: unassigned"),
    ("\uffff", "Cn: noncharacter"),
    ("\U0010fffe", "Cn: noncharacter in the last plane"),
    ("\ue000", "Co: private use"),
    ("\U000f0000", "Co: supplementary private use"),
    ("\ud800", "Cs: lone high surrogate"),
    ("\udfff", "Cs: lone low surrogate"),
]
