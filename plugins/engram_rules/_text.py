"""Text plumbing for the rules extractor: prose segmentation, value trimming, person rewriting.

Everything here works on character offsets into the *original* event content, so
a fact's span can always be checked with ``content[start:end] == quote``.  Offsets
are Python string indices (Unicode code points), the same unit ``SourceSpan`` uses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

#: Only this much of an event is examined.  Real chat turns that state a fact are
#: short; a 2 MB paste is a document (use ``record_long_input``), and scanning it
#: line by line with many regexes would stall a worker.
MAX_EVENT_CHARS = 20_000
#: Longer "sentences" are almost always pasted prose or minified data, not a
#: statement about the user, and user-supplied slot regexes should only ever see
#: bounded input.
MAX_SENTENCE_CHARS = 600


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True, slots=True)
class Sentence:
    """One prose sentence: ``text == content[start:end]``."""

    start: int
    end: int
    text: str


# ----------------------------------------------------------------------------- code and logs

_FENCE = re.compile(r"^\s*(```|~~~)")
# Keywords count only in their code shapes ("def f(", "let x =", "from a import b"):
# "Let's use Postgres", "Import the CSV" and "From now on" are prose.  Case matters
# here on purpose, since SQL is recognised by its upper-case keywords.
_CODE_START = re.compile(
    r"""^\s*(?:
        \$\s|>>>\s|\#!|//|/\*|\*/|<[!/?a-z][\w-]*[\s>/]|\#include\b|
        def\s+\w+\s*\(|class\s+\w+\s*[(:{]|(?:let|const|var|val)\s+\w+\s*[:=]|
        import\s+[\w.]+(?:\s+as\s+\w+)?\s*;?\s*$|from\s+[\w.]+\s+import\s|
        (?:function|fn|func)\s+\w*\s*\(|return\s.*;\s*$|package\s+[\w.]+;?\s*$|
        (?:pub|public|private|protected|static)\s+(?:fn|class|void|int|static|final|async|def|struct)\b|
        (?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH)\s+(?:[A-Z*]|\w+\s*\()
    )""",
    re.VERBOSE,
)
_LOG_LINE = re.compile(
    r"""^\s*(?:
        \[?\d{4}-\d{2}-\d{2}[T\s]\d{2}:\d{2}|          # ISO timestamp
        \[?\d{2}:\d{2}:\d{2}|                          # time-of-day stamp
        \[?(?:ERROR|WARN|WARNING|INFO|DEBUG|TRACE|FATAL|CRITICAL)\b[\]:]? |
        Traceback\s\(most\srecent|File\s"[^"]+",\sline\s\d+|at\s[\w.$]+\(|
        [\w.]+(?:Error|Exception):
    )""",
    re.VERBOSE,
)
_CODE_TOKENS = re.compile(r"=>|==|!=|&&|\|\||::|->|\+=|;\s*$|\{\s*$|^\s*[}\])]|\w\([^)]*\)\s*[;{:]?\s*$")
_SYMBOLS = frozenset("{}[]()<>=;$#|\\&*^~")


def looks_like_code(line: str) -> bool:
    """Heuristic: is this line source code, a shell session, or log output?

    False positives only cost a missed fact; false negatives would turn a string
    literal such as ``print("I love cats")`` into a claim about the user.
    """
    stripped = line.strip()
    if not stripped:
        return False
    if line.startswith(("    ", "\t")):  # indented block in Markdown or a paste
        return True
    if _CODE_START.match(line) or _LOG_LINE.match(line) or _CODE_TOKENS.search(line):
        return True
    symbols = sum(1 for c in stripped if c in _SYMBOLS)
    return len(stripped) >= 8 and symbols / len(stripped) > 0.12


# ----------------------------------------------------------------------------- segmentation

_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_ABBREVIATIONS = _words(
    "mr mrs ms dr prof st vs v inc ltd co corp jr sr e.g i.e etc no nos approx u.s u.k fig sec art "
    "para cf al dept est ca resp"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _split_line(content: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Split ``content[start:end]`` (one line) into sentence offsets."""
    text = content[start:end]
    # Inline code may contain dots ("run `make test.unit`"); never split inside it.
    code_spans = [(m.start(), m.end()) for m in re.finditer(r"`[^`]*`", text)]
    pos = 0
    for match in _SENTENCE_END.finditer(text):
        if any(a <= match.start() < b for a, b in code_spans):
            continue
        if match.group().startswith("."):
            word = re.search(r"([\w.]+)$", text[: match.start()])
            if word and (word.group(1).lower() in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", word.group(1))):
                continue  # "Acme v. Beta", "e.g. Python", "J. Smith"
        yield start + pos, start + match.end()
        pos = match.end()
    if pos < len(text):
        yield start + pos, end


def _strip(content: str, start: int, end: int) -> tuple[int, int]:
    while start < end and content[start].isspace():
        start += 1
    while end > start and content[end - 1].isspace():
        end -= 1
    return start, end


def sentences(content: str) -> Iterator[Sentence]:
    """Prose sentences of ``content`` (capped), skipping code blocks, code/log lines and quotes."""
    limit = min(len(content), MAX_EVENT_CHARS)
    in_fence = False
    line_start = 0
    while line_start < limit:
        newline = content.find("\n", line_start, limit)
        line_end = limit if newline == -1 else newline
        line = content[line_start:line_end]
        next_start = line_end + 1
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and not looks_like_code(line) and not line.lstrip().startswith(">"):
            # ">" marks quoted text, i.e. someone else's words.
            bullet = _BULLET.match(line)
            offset = line_start + (bullet.end() if bullet else 0)
            # Control characters (NUL included) are hard boundaries: a fact must
            # never carry one into PostgreSQL text.
            pieces = _CONTROL.split(content[offset:line_end])
            for piece in pieces:
                piece_end = offset + len(piece)
                for s, e in _split_line(content, offset, piece_end):
                    s, e = _strip(content, s, e)
                    if e > s and e - s <= MAX_SENTENCE_CHARS:
                        yield Sentence(s, e, content[s:e])
                offset = piece_end + 1
        line_start = next_start


# ----------------------------------------------------------------------------- values

_QUOTES = {"`": "`", '"': '"', "“": "”", "'": "'", "‘": "’"}
# A value ends where a new clause with its own subject begins ("Ana and I live in
# Lisbon", "tabs, but my team uses spaces"); lists ("cats, dogs and birds") stay whole.
_VALUE_CUT = re.compile(
    r"\s*;|\s+[—–]\s+|\s+-\s+|\s+but\s+|"
    r",?\s+(?:and|so|because|since|while|although|though|whereas)\s+"
    r"(?=(?:i|i'm|i've|i'd|i'll|i’m|my|we|we're|you|it|it's|he|she|they|that|this|there)\b)|"
    r",\s+(?=(?:i|i'm|i've|i'd|i'll|i’m|my|we|we're|you|he|she|they|and|but|so)\b)",
    re.IGNORECASE,
)
_TRAILING = set(".,;:!?…~")


def _is_trailing_junk(char: str) -> bool:
    # Emoji, variation selectors and zero-width joiners are decoration, not value.
    return char.isspace() or char in _TRAILING or unicodedata.category(char) in {"So", "Sk", "Mn", "Cf"}


def trim_value(text: str, start: int, end: int) -> tuple[int, int, int] | None:
    """Bound a value inside ``text[start:end]``.

    Returns ``(value_start, value_end, quote_end)``: the value's offsets and where
    the supporting quote should stop (past a closing backtick or quote mark).
    """
    start, end = _strip(text, start, end)
    if start >= end:
        return None
    if start > 0 and end < len(text) and text[start - 1] in _QUOTES and text[end] == _QUOTES[text[start - 1]]:
        # Already delimited ("run `go test ./...`"): the delimiters say where it ends,
        # and trailing dots or commas inside are part of the value.
        return start, end, end + 1
    opener = text[start]
    if opener in _QUOTES:
        close = text.find(_QUOTES[opener], start + 1, end)
        if close > start + 1:
            return start + 1, close, close + 1
    cut = _VALUE_CUT.search(text, start, end)
    if cut is not None:
        end = cut.start()
    while end > start and _is_trailing_junk(text[end - 1]):
        end -= 1
    # A closing bracket is only kept when it closes something inside the value.
    while end > start and text[end - 1] in ")]" and text.count("(", start, end) < text.count(")", start, end):
        end -= 1
    if end <= start:
        return None
    return start, end, end


def meaningful(value: str, *, min_length: int = 2) -> bool:
    """Refuse values that carry no information on their own ("it", "that", "?")."""
    stripped = value.strip()
    if len(stripped) < min_length or not any(c.isalnum() for c in stripped):
        return False
    words = stripped.lower().split()
    if words[0] in _PRONOUNS and len(words) <= 3:
        return False  # "it here", "that one": needs coreference we do not have
    return stripped.lower() not in _EMPTY_VALUES


_PRONOUNS = _words("it that this them these those")


_EMPTY_VALUES = _words(
    "it that this them these those so too one you yes no ok okay sure thing things stuff there here "
    "him her something anything everything nothing what which"
)


# ----------------------------------------------------------------------------- person rewriting

_ADVERBS = (
    r"(?:no\s+longer|kind\s+of|sort\s+of|really|also|still|just|only|actually|definitely|strongly|"
    r"absolutely|generally|usually|mostly|mainly|normally|typically|truly|totally|currently|now|"
    r"always|never|often|sometimes|rarely|seldom|much|even|already|personally|honestly)"
)
_NO_CONJUGATION = _words("can could will would shall should may might must did was were had ought used")
_IRREGULAR_PAST = _words(
    "went saw made got took gave found thought told became left felt brought began kept held wrote "
    "stood heard let meant set met ran paid sat spoke lay led read grew lost fell sent built understood "
    "drew broke spent cut rose drove bought wore chose sold fought taught caught ate drank slept been "
    "done gone seen known"
)
# Words that can follow "I" without being its verb ("than I and", "I also").
_NOT_VERBS = _words(
    "and or but so the a an to in on at for with too as than if when of from by up out also still just "
    "only really actually always never often sometimes usually now personally honestly myself"
)
_IRREGULAR_PRESENT = {"be": "is", "am": "is", "have": "has", "do": "does", "go": "goes"}

_APOS = "['’]"
_PERSON = re.compile(
    rf"""
    (?P<got>\bI(?:{_APOS}ve|\s+have)\s+got\b)
  | (?P<am>\bI(?:{_APOS}m|\s+am)\b)
  | (?P<ve>\bI{_APOS}ve\b)
  | (?P<d>\bI{_APOS}d\b)
  | (?P<ll>\bI{_APOS}ll\b)
  | (?P<dont>\bI\s+(?:don{_APOS}t|do\s+not)\b)
  | (?P<didnt>\bI\s+(?:didn{_APOS}t|did\s+not)\b)
  | (?P<cant>\bI\s+(?:can{_APOS}t|cannot|can\s+not)\b)
  | (?P<wont>\bI\s+(?:won{_APOS}t|will\s+not)\b)
  | (?P<havent>\bI\s+(?:haven{_APOS}t|have\s+not)\b)
  | (?P<wasnt>\bI\s+(?:wasn{_APOS}t|was\s+not)\b)
  | (?P<verb>\bI\s+(?P<adv>(?:{_ADVERBS}\s+){{0,2}})(?P<v>[a-z]+)\b)
  | (?P<i>(?<![\w.])I(?![\w.'’]))
  | (?P<myself>\bmyself\b)
  | (?P<mine>\bmine\b)
  | (?P<my>\bmy\b)
  | (?P<me>\bme\b)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_FIXED = {
    "got": "the user has",
    "am": "the user is",
    "ve": "the user has",
    "d": "the user would",
    "ll": "the user will",
    "dont": "the user does not",
    "didnt": "the user did not",
    "cant": "the user cannot",
    "wont": "the user will not",
    "havent": "the user has not",
    "wasnt": "the user was not",
    "i": "the user",
    "myself": "the user",
    "mine": "the user's",
    "my": "the user's",
    "me": "the user",
}


def third_person(verb: str) -> str:
    """``prefer`` -> ``prefers``; leaves modals and past forms alone."""
    lower = verb.lower()
    past_form = lower.endswith("ed") and not lower.endswith("eed")  # "need", "proceed" are present
    if lower in _NO_CONJUGATION or lower in _IRREGULAR_PAST or past_form or lower.endswith("ing"):
        return verb
    if lower in _IRREGULAR_PRESENT:
        return _IRREGULAR_PRESENT[lower]
    if lower.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(lower) > 1 and lower.endswith("y") and lower[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "verb" or match.group("verb"):
        adverbs = re.sub(r"\s+", " ", match.group("adv") or "")
        word = match.group("v")
        if word.lower() in _NOT_VERBS:
            return f"the user {adverbs}{word}"
        return f"the user {adverbs}{third_person(word)}"
    assert kind is not None
    return _FIXED[kind]


def to_third_person(text: str) -> str:
    """Rewrite a first-person statement about the speaker into one about "the user".

    Only the speaker's own pronouns change; everything else keeps the user's wording.
    """
    out = _PERSON.sub(_replace, text)
    out = re.sub(r"\s+", " ", out).strip()
    if out.startswith("the user"):
        out = "T" + out[1:]
    return out
