"""Long-document chunking and quote normalisation, with no database involved.

This module is the pure core behind ``record_long_input``, ``build_long_input_context``
and citation checks.  Everything here is deterministic: the same input gives the same
chunks, offsets, hashes and ids in every process and on every platform, because the
stored ``chunk_id`` and ``quote_hash`` values must still verify years later.

The rules are written out for users in ``docs/citations.md``; keep the two in step.

Only the standard library and pydantic are imported (besides Engram's error and model
bases), so ``import engram`` stays cheap.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from ..errors import InvalidInputError
from ..models import EngramModel
from ..tokens import estimate_tokens

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "ChunkSpan",
    "chunk_document",
    "chunk_embedding_text",
    "document_sha256",
    "estimate_tokens",
    "find_quote",
    "normalize_for_quote",
    "normalize_with_map",
    "quote_hash",
    "stable_chunk_id",
    "validate_document_text",
]

#: The largest document ``validate_document_text`` accepts by default (characters).
MAX_DOCUMENT_CHARS = 5_000_000

# ---------------------------------------------------------------------------
# Quote normalisation
# ---------------------------------------------------------------------------

# Typographic quotes, primes and dashes that an LLM (or a word processor) may
# substitute for the ASCII characters, or the other way round.  Applied after NFKC, so
# compatibility forms (fullwidth quotes, the non-breaking hyphen, ...) are already gone.
_QUOTE_TABLE = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark / typographic apostrophe
        "\u201a": "'",  # single low-9 quotation mark
        "\u201b": "'",  # single high-reversed-9 quotation mark
        "\u2032": "'",  # prime
        "\u2035": "'",  # reversed prime
        "\u02bc": "'",  # modifier letter apostrophe
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\u201e": '"',  # double low-9 quotation mark
        "\u201f": '"',  # double high-reversed-9 quotation mark
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2015": "-",  # horizontal bar
        "\u2212": "-",  # minus sign
    }
)

_WS_RUN = re.compile(r"\s+")
_NON_WS_RUN = re.compile(r"\S+")


def normalize_for_quote(text: str) -> str:
    """The canonical form in which quotes are compared and hashed.

    Steps, in this order:

    1. Unicode NFKC (compatibility forms such as ligatures, fullwidth letters and
       non-breaking spaces become their plain equivalents);
    2. typographic single quotes, apostrophes and primes become ``'``, double quotes
       become ``"``, and hyphen/dash/minus variants become ``-``;
    3. every run of whitespace (anything ``str.isspace`` accepts) becomes one space;
    4. leading and trailing whitespace is removed;
    5. ``str.casefold``.
    """
    collapsed = _WS_RUN.sub(" ", unicodedata.normalize("NFKC", text).translate(_QUOTE_TABLE))
    return collapsed.strip().casefold()


def _nfkc_boundary_is_safe(cp: int) -> bool:
    """Whether NFKC can never join a character with ``cp`` to whatever precedes it.

    True only for blocks where no character with combining class 0 is the second half
    of a canonical composition and none decomposes into a leading combining mark
    (Latin, Greek, Cyrillic, punctuation and symbols, CJK, kana, Hangul syllables).
    Everything else is checked directly, which is slower but always right.
    """
    return (
        0x00A0 <= cp <= 0x052F
        or 0x2000 <= cp <= 0x2BFF
        or 0x3000 <= cp <= 0x30FF
        or 0x3400 <= cp <= 0x9FFF
        or 0xAC00 <= cp <= 0xD7A3
        or 0xF900 <= cp <= 0xFAFF
    )


def _nfkc_with_spans(text: str) -> tuple[str, list[int] | None, list[int] | None]:
    """NFKC + quote unification, with the original [start, end) of every output char.

    ``None`` maps mean the identity (output char ``i`` is input char ``i``), which is
    the case for ASCII and already-NFKC text, i.e. nearly every real document.
    """
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        # The quote table maps one character to one character, so offsets are unchanged.
        return text.translate(_QUOTE_TABLE), None, None

    # Cut the text into segments that NFKC treats independently (a base character with
    # its combining marks, a Hangul jamo sequence, ...).  Normalising each segment and
    # concatenating then equals normalising the whole, and every output character can
    # be attributed to the segment it came from.
    nfkc = unicodedata.normalize
    combining = unicodedata.combining
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []

    def emit(seg_start: int, seg_end: int, normalised: str) -> None:
        out = normalised.translate(_QUOTE_TABLE)
        parts.append(out)
        starts.extend([seg_start] * len(out))
        ends.extend([seg_end] * len(out))

    seg_start = 0
    for i in range(1, len(text)):
        ch = text[i]
        cp = ord(ch)
        if cp < 0x80:
            boundary = True
        elif combining(ch) != 0:
            boundary = False  # a combining mark always belongs to the segment before it
        elif _nfkc_boundary_is_safe(cp):
            boundary = True
        else:
            # A starter outside the known-safe blocks (Hangul jamo, some Indic vowel
            # signs, halfwidth voiced marks, ...): split only where NFKC agrees.
            segment = text[seg_start:i]
            boundary = nfkc("NFKC", segment + ch) == nfkc("NFKC", segment) + nfkc("NFKC", ch)
        if boundary:
            emit(seg_start, i, nfkc("NFKC", text[seg_start:i]))
            seg_start = i
    if text:
        emit(seg_start, len(text), nfkc("NFKC", text[seg_start:]))
    return "".join(parts), starts, ends


def _normalize_spans(text: str) -> tuple[str, list[int], list[int]]:
    """``normalize_for_quote(text)`` plus, per output character, its original [start, end)."""
    mid, mid_starts, mid_ends = _nfkc_with_spans(text)

    # Collapse whitespace and strip: keep the non-blank runs, join them with one space.
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    prev_end: int | None = None
    for m in _NON_WS_RUN.finditer(mid):
        a, b = m.span()
        if prev_end is not None:
            # The space stands for the whole original whitespace run it replaced.
            pieces.append(" ")
            if mid_starts is None or mid_ends is None:
                starts.append(prev_end)
                ends.append(a)
            else:
                starts.append(mid_starts[prev_end])
                ends.append(mid_ends[a - 1])
        pieces.append(m.group())
        if mid_starts is None or mid_ends is None:
            starts.extend(range(a, b))
            ends.extend(range(a + 1, b + 1))
        else:
            starts.extend(mid_starts[a:b])
            ends.extend(mid_ends[a:b])
        prev_end = b
    collapsed = "".join(pieces)

    if collapsed.isascii():
        return collapsed.lower(), starts, ends
    folded = collapsed.casefold()
    if len(folded) == len(collapsed):
        # casefold never shortens a character, so equal length means one-to-one.
        return folded, starts, ends
    # Some characters expand (ß -> ss): every piece inherits its source character's span.
    out_starts: list[int] = []
    out_ends: list[int] = []
    out_parts: list[str] = []
    for ch, s, e in zip(collapsed, starts, ends, strict=True):
        f = ch.casefold()
        out_parts.append(f)
        out_starts.extend([s] * len(f))
        out_ends.extend([e] * len(f))
    return "".join(out_parts), out_starts, out_ends


def normalize_with_map(text: str) -> tuple[str, list[int]]:
    """``normalize_for_quote(text)`` and, for each of its characters, where it came from.

    Returns ``(normalised, offsets)`` with ``len(offsets) == len(normalised)``;
    ``offsets[i]`` is the offset in ``text`` of the original character that produced
    normalised character ``i`` (for a collapsed whitespace run, its first character;
    for a character NFKC composed from several, the first of them).  Offsets never
    decrease.  To turn a whole match back into an original ``[start, end)`` use
    :func:`find_quote`, which also knows where each source character ends.
    """
    normalised, starts, _ends = _normalize_spans(text)
    return normalised, starts


def quote_hash(text: str) -> str:
    """``"sha256:"`` + the lowercase hex SHA-256 of ``normalize_for_quote(text)`` in UTF-8.

    Two quotes that differ only in whitespace, letter case, typographic quotes or
    dashes, or Unicode compatibility forms get the same hash; any change to a word
    changes it.  The value depends on nothing but the text (no salt, no process state).
    """
    digest = hashlib.sha256(normalize_for_quote(text).encode("utf-8")).hexdigest()
    return "sha256:" + digest


def find_quote(haystack: str, quote: str) -> tuple[int, int] | None:
    """Where ``quote`` occurs in ``haystack``, compared in normalised form.

    Returns the ``[start, end)`` offsets in the *original* ``haystack`` of the first
    occurrence, widened to whole original characters (a match that begins inside the
    expansion of a ligature starts at the ligature), or ``None`` when there is no
    occurrence or the quote is blank after normalisation.  This is a substring match:
    it does not require word boundaries.
    """
    needle = normalize_for_quote(quote)
    if not needle:
        return None
    normalised, starts, ends = _normalize_spans(haystack)
    at = normalised.find(needle)
    if at < 0:
        return None
    return starts[at], ends[at + len(needle) - 1]


# ---------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------


def document_sha256(text: str) -> str:
    """Lowercase hex SHA-256 of the document's exact UTF-8 bytes (not normalised)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_chunk_id(document_sha256: str, ordinal: int, start: int, end: int) -> str:
    """A short, URL-safe, deterministic id for one chunk of one document.

    ``"ch_"`` followed by the first 20 lowercase hex digits (80 bits) of the SHA-256 of
    the ASCII string ``f"{document_sha256}:{ordinal}:{start}:{end}"``.  The same
    document chunked with the same settings always yields the same ids; a different
    document, or different boundaries, yields different ones.
    """
    if not isinstance(document_sha256, str) or not document_sha256:
        raise InvalidInputError("document_sha256 must be a non-empty str")
    for name, value in (("ordinal", ordinal), ("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{name} must be a non-negative int, not {value!r}")
    if end < start:
        raise InvalidInputError(f"end ({end}) must not be before start ({start})")
    key = f"{document_sha256}:{ordinal}:{start}:{end}"
    return "ch_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


# ---------------------------------------------------------------------------
# Document validation
# ---------------------------------------------------------------------------

# Control characters that do not belong in text, plus U+FFFD, which is what a binary
# file turns into when it is decoded with errors="replace".  Tab, LF, CR and FF are
# normal in documents; NEL (U+0085) is a line break in some encodings.
_BINARY_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\x80-\x84\x86-\x9f\ufffd]")
_BINARY_RATIO = 0.10


def validate_document_text(text: object, *, max_chars: int = MAX_DOCUMENT_CHARS) -> str:
    """Return ``text`` unchanged if it is a document we can store; else raise.

    Raises :class:`engram.errors.InvalidInputError` when ``text`` is not a ``str``, is
    empty or only whitespace, is longer than ``max_chars`` characters, contains a NUL
    (PostgreSQL ``text`` cannot hold it), contains a lone surrogate (it cannot be
    encoded as UTF-8), or looks binary: more than 10% of its characters are control
    characters other than tab, LF, CR and FF, or U+FFFD replacement characters.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"document text must be a str, not {type(text).__name__}")
    if not text or text.isspace():
        raise InvalidInputError("document text must not be empty or only whitespace")
    if len(text) > max_chars:
        raise InvalidInputError(f"document text is {len(text)} characters; the limit is {max_chars}")
    nul = text.find("\x00")
    if nul >= 0:
        raise InvalidInputError(
            f"document text contains a NUL character at position {nul}, which PostgreSQL cannot store"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"document text contains a lone surrogate at position {exc.start}; it is not valid Unicode text"
        ) from None
    suspicious = len(_BINARY_CHARS.findall(text))
    if suspicious and suspicious > _BINARY_RATIO * len(text):
        raise InvalidInputError(
            f"document text looks binary: {suspicious} of {len(text)} characters are control "
            "or replacement characters; decode the file to text before recording it"
        )
    return text


# ---------------------------------------------------------------------------
# Chunking
# ---------------------------------------------------------------------------


class ChunkSpan(EngramModel):
    """One chunk of a document: ``document[start:end] == text``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ordinal: int = Field(ge=0, description="Position of the chunk in the document, from 0.")
    start: int = Field(ge=0, description="Offset of the chunk's first character in the document.")
    end: int = Field(ge=0, description="Offset just past the chunk's last character.")
    text: str = Field(description="Exactly document[start:end]; never starts or ends with whitespace.")
    token_count: int = Field(ge=1, description="estimate_tokens(text).")
    quote_hash: str = Field(description="quote_hash(text).")
    heading: str | None = Field(
        default=None, description="Markdown heading path in effect, e.g. 'Terms > Payment'."
    )

    @model_validator(mode="after")
    def _span_matches_text(self) -> ChunkSpan:
        # Offsets are the citation contract; refuse a span that cannot be exact.
        if self.end - self.start != len(self.text):
            raise ValueError("end - start must equal len(text)")
        return self


_KIND_HEADING = 0
_KIND_SENTENCE = 1  # a whole sentence (or whole short paragraph)
_KIND_CODE = 2  # a whole fenced code block
_KIND_PIECE = 3  # part of a sentence or code block too big for one chunk


@dataclass(slots=True)
class _Unit:
    """The smallest span the packer moves around; chunks are runs of units."""

    start: int
    end: int
    tokens: int
    kind: int
    para_before: bool  # first unit of a paragraph/block: a preferred place to cut
    hard_before: bool  # a heading: a chunk must not run across it
    heading: str | None


# A run of sentence-ending punctuation, optionally followed by closing quotes/brackets.
_SENTENCE_END = re.compile(r"(?:[.!?…]+|[。！？]+)[\"'”’»)\]]*")
_CJK_TERMINATORS = frozenset("。！？")
_OPENERS = "\"'“‘«([{"
# Words that end in a period without ending the sentence (compared casefolded, without
# the final period).  "etc." and "Inc." are left out on purpose: they end sentences
# often enough that splitting after them is the better guess.
_ABBREVIATION_WORDS = """
mr mrs ms mx dr prof sr jr st mt rev fr gen col maj capt cpt lt sgt cmdr adm gov sen rep
pres hon messrs mme mlle cf vs viz al fig figs eq eqs no nos vol vols pp ch chap sec art
para paras approx ca dept est ed eds esp ref refs resp tel jan feb mar apr jun jul aug
sep sept oct nov dec
"""
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
# Initialisms and initials: "U.S.", "e.g.", "i.e.", "J." (letters each followed by ".").
_INITIALISM = re.compile(r"(?:[^\W\d_]\.)+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_HEADING_LINE = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so that it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_sentence_end(text: str, block_start: int, m: re.Match[str], next_start: int) -> bool:
    """Decide whether the punctuation run ``m`` ends a sentence.

    ``next_start`` is where the following sentence would begin (after whitespace).
    """
    punct = m.group()
    # What the next sentence starts with, looking past opening quotes and brackets.
    j = next_start
    while j < len(text) and text[j] in _OPENERS:
        j += 1
    if j < len(text) and text[j].islower():
        # "e.g. the", "approx. five", '"Why?" she asked': a lower-case continuation.
        return False
    if punct[0] == "." and not punct.startswith(".."):
        # A single period: is the word before it an abbreviation or an initialism?
        w = m.start()
        stop = max(block_start, w - 40)
        while w > stop and not text[w - 1].isspace():
            w -= 1
        word = text[w : m.start() + 1].lstrip(_OPENERS)
        if word[:-1].casefold() in _ABBREVIATIONS or _INITIALISM.fullmatch(word):
            return False
    return True


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split the trimmed block [start, end) into trimmed sentence spans."""
    out: list[tuple[int, int]] = []
    sent_start = start
    for m in _SENTENCE_END.finditer(text, start, end):
        after = m.end()
        if after >= end:
            break
        if text[after].isspace():
            nxt = after + 1
            while nxt < end and text[nxt].isspace():
                nxt += 1
        elif m.group()[-1] in _CJK_TERMINATORS:
            # Chinese and Japanese put no space after a full stop.
            nxt = after
        else:
            continue  # "3.14", "example.com", "v1.2": no break inside a word
        if _is_sentence_end(text, start, m, nxt):
            out.append((sent_start, after))
            sent_start = nxt
    out.append((sent_start, end))
    return out


def _hard_split(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut a whitespace-free run into the longest pieces of at most ``max_tokens`` each."""
    out: list[tuple[int, int]] = []
    s = start
    while s < end:
        # No string longer than 7 * max_tokens fits (see estimate_tokens), so binary
        # search the longest fitting prefix below that bound; one character always fits.
        lo, hi = s + 1, min(end, s + 7 * max_tokens)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if estimate_tokens(text[s:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append((s, lo))
        s = lo
    return out


def _split_long(
    text: str, start: int, end: int, max_tokens: int, newline_fraction: float
) -> list[tuple[int, int]]:
    """Cut an over-long sentence or code block at whitespace into pieces that fit.

    A line break is preferred over a space when the piece before it would hold at least
    ``newline_fraction`` of the budget (tables, lists and code read better cut at lines).
    """
    out: list[tuple[int, int]] = []
    piece_start = -1
    piece_end = -1
    piece_tokens = 0
    last_newline_cut = -1  # end of the last word followed by a line break in this piece
    last_newline_tokens = 0
    for m in _NON_WS_RUN.finditer(text, start, end):
        ws, we = m.span()
        tokens = estimate_tokens(m.group())
        if tokens > max_tokens:
            if piece_start >= 0:
                out.append((piece_start, piece_end))
                piece_start = -1
            last_newline_cut = -1
            out.extend(_hard_split(text, ws, we, max_tokens))
            continue
        if piece_start >= 0 and piece_tokens + tokens > max_tokens:
            if last_newline_cut >= 0 and last_newline_tokens >= newline_fraction * max_tokens:
                out.append((piece_start, last_newline_cut))
                # Words after the line break carry over into the next piece...
                piece_start, _ = _trim(text, last_newline_cut, piece_end)
                piece_tokens -= last_newline_tokens
                if piece_tokens + tokens > max_tokens:
                    # ...unless they still leave no room for this word.
                    out.append((piece_start, piece_end))
                    piece_start = -1
            else:
                out.append((piece_start, piece_end))
                piece_start = -1
            last_newline_cut = -1
        if piece_start < 0:
            piece_start, piece_tokens = ws, 0
        elif "\n" in text[piece_end:ws]:
            last_newline_cut, last_newline_tokens = piece_end, piece_tokens
        piece_end = we
        piece_tokens += tokens
    if piece_start >= 0:
        out.append((piece_start, piece_end))
    return out


@dataclass(slots=True)
class _Block:
    start: int
    end: int
    kind: int  # _KIND_HEADING, _KIND_SENTENCE (a paragraph) or _KIND_CODE
    heading: str | None  # heading path in effect for the block (including itself)


def _text_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        s, e = _trim(text, pos, m.start())
        if s < e:
            blocks.append(_Block(s, e, _KIND_SENTENCE, None))
        pos = m.end()
    s, e = _trim(text, pos, len(text))
    if s < e:
        blocks.append(_Block(s, e, _KIND_SENTENCE, None))
    return blocks


def _markdown_blocks(text: str) -> list[_Block]:
    """ATX headings, fenced code blocks and blank-line separated paragraphs."""
    blocks: list[_Block] = []
    stack: list[tuple[int, str]] = []  # (level, title) of the enclosing headings
    path: str | None = None
    para_start = -1
    para_end = -1
    fence: str | None = None  # the opening fence while inside a code block
    fence_start = 0
    pos = 0
    n = len(text)

    def flush_paragraph() -> None:
        nonlocal para_start
        if para_start >= 0:
            s, e = _trim(text, para_start, para_end)
            if s < e:
                blocks.append(_Block(s, e, _KIND_SENTENCE, path))
            para_start = -1

    while pos < n:
        nl = text.find("\n", pos)
        line_end = n if nl < 0 else nl
        line = text[pos:line_end].rstrip()
        if fence is not None:
            stripped = line.lstrip(" ")
            if len(line) - len(stripped) <= 3 and stripped.startswith(fence) and not stripped.strip(fence[0]):
                blocks.append(_Block(fence_start, pos + len(line), _KIND_CODE, path))
                fence = None
        elif not line.strip():
            flush_paragraph()
        elif heading := _HEADING_LINE.fullmatch(line):
            flush_paragraph()
            level = len(heading.group(1))
            title = (heading.group(2) or "").strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            if title:
                stack.append((level, title))
            path = " > ".join(t for _, t in stack) or None
            s, e = _trim(text, pos, pos + len(line))
            blocks.append(_Block(s, e, _KIND_HEADING, path))
        elif opening := _FENCE_OPEN.match(line):
            flush_paragraph()
            fence = opening.group(1)
            fence_start = pos + opening.start(1)
        else:
            if para_start < 0:
                para_start = pos
            para_end = pos + len(line)
        pos = line_end + 1
    if fence is not None:
        # An unclosed fence runs to the end of the document, as in CommonMark.
        s, e = _trim(text, fence_start, n)
        if s < e:
            blocks.append(_Block(s, e, _KIND_CODE, path))
    flush_paragraph()
    return blocks


def _units(text: str, blocks: list[_Block], max_tokens: int) -> list[_Unit]:
    units: list[_Unit] = []
    for block in blocks:
        if block.kind == _KIND_SENTENCE:
            spans = _sentences(text, block.start, block.end)
        else:
            spans = [(block.start, block.end)]
        first = True
        for s, e in spans:
            tokens = estimate_tokens(text[s:e])
            if tokens <= max_tokens:
                pieces = [(s, e, tokens, block.kind)]
            else:
                # Prose prefers a line break only if it is not too early; code always does.
                fraction = 0.0 if block.kind == _KIND_CODE else 0.5
                pieces = [
                    (ps, pe, estimate_tokens(text[ps:pe]), _KIND_PIECE)
                    for ps, pe in _split_long(text, s, e, max_tokens, fraction)
                ]
            for ps, pe, pt, kind in pieces:
                hard = block.kind == _KIND_HEADING and first
                units.append(_Unit(ps, pe, pt, kind, first, hard, block.heading))
                first = False
    return units


def _pack(units: list[_Unit], max_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Group units into chunks; returns [first, last) unit index ranges."""
    n = len(units)
    prefix = [0] * (n + 1)
    for idx, u in enumerate(units):
        prefix[idx + 1] = prefix[idx] + u.tokens

    chunks: list[tuple[int, int]] = []
    i = 0  # first unit not yet in any chunk
    while i < n:
        first = i
        if chunks and overlap_tokens > 0 and not units[i].hard_before:
            prev_first = chunks[-1][0]
            tot = 0
            # Whole trailing sentences (or code blocks) of the previous chunk, never its
            # first unit, so a chunk never repeats all of its predecessor.
            while (
                first - 1 > prev_first
                and units[first - 1].kind in (_KIND_SENTENCE, _KIND_CODE)
                and tot + units[first - 1].tokens <= overlap_tokens
                and tot + units[first - 1].tokens + units[i].tokens <= max_tokens
            ):
                first -= 1
                tot += units[first].tokens
        only_headings = True
        k = i
        while k < n:
            u = units[k]
            if k > i and u.hard_before and not only_headings:
                break  # a heading starts a new chunk unless this one holds only headings
            if prefix[k + 1] - prefix[first] > max_tokens and k > i:
                break
            only_headings = only_headings and u.kind == _KIND_HEADING
            k += 1
        if k < n and not units[k].para_before and not units[k].hard_before:
            # Cut mid-paragraph only when the chunk would otherwise be less than half full.
            for p in range(k - 1, i, -1):
                if units[p].para_before:
                    if prefix[p] - prefix[first] >= max_tokens / 2:
                        k = p
                    break
        chunks.append((first, k))
        i = k
    return chunks


def chunk_document(
    text: str,
    *,
    max_tokens: int,
    overlap_tokens: int,
    fmt: Literal["text", "markdown"] = "text",
) -> list[ChunkSpan]:
    """Split ``text`` into overlapping chunks whose offsets point into ``text`` exactly.

    Boundaries, from most to least preferred: Markdown headings (a heading always
    starts a new chunk), paragraphs (blank lines; in Markdown also fenced code blocks),
    sentences, line breaks and finally spaces inside a sentence that alone exceeds
    ``max_tokens``; a run with no whitespace at all longer than that is cut wherever
    the budget ends.  A chunk is cut mid-paragraph only when ending at the previous
    paragraph break would leave it less than half full.

    Every chunk holds at most ``max_tokens`` estimated tokens, and ``text[start:end]``
    is exactly its text, which never starts or ends with whitespace.  Every non-blank
    character of ``text`` lies in at least one chunk.  Each chunk after the first begins
    with the longest run of whole trailing sentences (or code blocks) of the previous
    chunk that totals at most ``overlap_tokens`` and leaves room for new text; there is
    no overlap across a Markdown heading.  Blank text gives an empty list.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, not {type(text).__name__}")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInputError(f"max_tokens must be a positive int, not {max_tokens!r}")
    if isinstance(overlap_tokens, bool) or not isinstance(overlap_tokens, int) or overlap_tokens < 0:
        raise InvalidInputError(f"overlap_tokens must be a non-negative int, not {overlap_tokens!r}")
    if overlap_tokens >= max_tokens:
        raise InvalidInputError("overlap_tokens must be smaller than max_tokens")
    if fmt == "text":
        blocks = _text_blocks(text)
    elif fmt == "markdown":
        blocks = _markdown_blocks(text)
    else:
        raise InvalidInputError(f"fmt must be 'text' or 'markdown', not {fmt!r}")

    units = _units(text, blocks, max_tokens)
    chunks: list[ChunkSpan] = []
    for ordinal, (first, last) in enumerate(_pack(units, max_tokens, overlap_tokens)):
        start, end = units[first].start, units[last - 1].end
        body = text[start:end]
        chunks.append(
            ChunkSpan(
                ordinal=ordinal,
                start=start,
                end=end,
                text=body,
                token_count=estimate_tokens(body),
                quote_hash=quote_hash(body),
                heading=units[last - 1].heading,
            )
        )
    return chunks


def chunk_embedding_text(heading: str | None, text: str) -> str:
    """What is embedded for a chunk, by the worker and by ``engram reembed`` alike.

    The heading path says what a chunk is about even when its text does not
    repeat it (a clause under "Termination" rarely says "termination").
    """
    return f"{heading}\n{text}" if heading else text
