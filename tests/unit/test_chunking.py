"""The pure chunking / quote core: no database, fast."""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engram.errors import InvalidInputError
from engram.longinput.chunking import (
    MAX_DOCUMENT_CHARS,
    ChunkSpan,
    _sentences,
    chunk_document,
    document_sha256,
    estimate_tokens,
    find_quote,
    normalize_for_quote,
    normalize_with_map,
    quote_hash,
    stable_chunk_id,
    validate_document_text,
)

PROSE = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
    "of foolishness, it was the epoch of belief, it was the epoch of incredulity. There were a king "
    "with a large jaw and a queen with a plain face, on the throne of England; there were a king with "
    "a large jaw and a queen with a fair face, on the throne of France. For legal, compliance, or "
    "financial applications, vector similarity is not enough. You must be able to cite the exact "
    "source document. Treat this data as highly sensitive. Be extremely careful about which provider "
    "you use for background derivation."
)

_WORD_TEXT = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there would their we him been has when who will more no if "
    "out so said what up its about into than them can only other new some could time these two may "
    "then do first any my now such like our over man me even most made after also did many before "
    "must through back years where much your way well down should because each just those people "
    "Mr. Dr. e.g. U.S. 3.14 international organisation contract clause liability indemnity"
)
_WORDS = _WORD_TEXT.split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 28))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".....?!")


def _document(rng: random.Random, paragraphs: int) -> str:
    return "\n\n".join(" ".join(_sentence(rng) for _ in range(rng.randint(1, 8))) for _ in range(paragraphs))


def check_chunks(text: str, chunks: list[ChunkSpan], max_tokens: int) -> None:
    """The invariants every chunking must satisfy."""
    covered = bytearray(len(text))
    for expected_ordinal, c in enumerate(chunks):
        assert c.ordinal == expected_ordinal
        assert text[c.start : c.end] == c.text
        assert c.text, "empty chunk"
        assert not c.text[0].isspace() and not c.text[-1].isspace()
        assert c.token_count == estimate_tokens(c.text)
        assert 1 <= c.token_count <= max_tokens
        assert c.quote_hash == quote_hash(c.text)
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start and a.end < b.end, "chunks must move forward"
    uncovered = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert uncovered == [], f"non-blank characters outside every chunk: {uncovered[:10]}"


# --------------------------------------------------------------------------- tokens


def test_estimate_tokens_basics() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("   \n\t ") == 0
    assert estimate_tokens("hello") == 1
    assert estimate_tokens("international") == 2  # long words cost more
    assert estimate_tokens("hello, world.") == 4
    assert estimate_tokens("123456") == 2
    assert estimate_tokens("我们是") == 3  # CJK: about one token per character
    assert estimate_tokens("x") == 1 and estimate_tokens("!") == 1


def test_estimate_tokens_matches_the_english_rule_of_thumb() -> None:
    words = len(PROSE.split())
    ratio = words / estimate_tokens(PROSE)
    assert 0.6 <= ratio <= 0.95, ratio


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8))
def test_estimate_tokens_is_additive_over_whitespace_and_bounded(parts: list[str]) -> None:
    joined = " ".join(parts)
    assert estimate_tokens(joined) == sum(estimate_tokens(p) for p in parts)
    assert estimate_tokens(joined) <= len(joined)
    if joined.strip():
        assert estimate_tokens(joined) >= 1


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello \n\n  World\t", "hello world"),
        ("\u201cQuoted\u201d \u2018text\u2019 isn\u2019t", "\"quoted\" 'text' isn't"),
        ("pages 3\u20135 \u2014 and \u2212 more", "pages 3-5 - and - more"),
        ("non\u00a0breaking\u2003space", "non breaking space"),
        ("\ufb01ne \uff21\uff22\uff23", "fine abc"),  # ligature, fullwidth letters
        ("Stra\u00dfe", "strasse"),  # casefold, not lower
        ("cafe\u0301", "caf\u00e9"),  # NFKC composes
        ("", ""),
    ],
)
def test_normalize_for_quote(raw: str, expected: str) -> None:
    assert normalize_for_quote(raw) == expected


def test_normalize_with_map_points_at_original_characters() -> None:
    text = "  A\u00a0 b\n\nC\u2019d  "
    normalised, offsets = normalize_with_map(text)
    assert normalised == "a b c'd"
    assert offsets == [2, 3, 5, 6, 8, 9, 10]
    # Every normalised letter comes from the same letter in the original.
    for ch, off in zip(normalised, offsets, strict=True):
        if ch.isalpha():
            assert text[off].casefold() == ch


def test_normalize_with_map_expansions_and_compositions() -> None:
    text = "Stra\u00dfe cafe\u0301 \ufb01n"
    normalised, offsets = normalize_with_map(text)
    assert normalised == "strasse caf\u00e9 fin"
    assert offsets[4:6] == [4, 4]  # both "s" of "ß"
    assert offsets[normalised.index("\u00e9")] == text.index("e\u0301")
    lig = text.index("\ufb01")
    assert offsets[normalised.index("fi") : normalised.index("fi") + 2] == [lig, lig]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_normalize_with_map_agrees_with_normalize_for_quote(text: str) -> None:
    normalised, offsets = normalize_with_map(text)
    assert normalised == normalize_for_quote(text)
    assert len(offsets) == len(normalised)
    assert offsets == sorted(offsets)
    assert all(0 <= o < len(text) for o in offsets)


def test_normalize_with_map_handles_hangul_jamo_and_halfwidth_marks() -> None:
    # Both compose across what looks like a character boundary.
    for text in ["\u1100\u1161\u11a8 x", "\uff76\uff9e \uff8a\uff9f", "\u0b47\u0b3e ok"]:
        normalised, offsets = normalize_with_map(text)
        assert normalised == normalize_for_quote(text)
        assert len(offsets) == len(normalised)
        assert unicodedata.normalize("NFKC", text).casefold() == normalised


# --------------------------------------------------------------------------- quote_hash


def test_quote_hash_format_and_pinned_value() -> None:
    h = quote_hash("  Hello\n   WORLD ")
    # sha256(b"hello world"): pinned so that any change to normalisation is noticed.
    assert h == "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", quote_hash("anything"))
    assert quote_hash("x") == "sha256:" + hashlib.sha256(b"x").hexdigest()


def test_quote_hash_invariant_under_formatting_changes() -> None:
    base = quote_hash('The tenant\'s deposit \u2014 "two months" \u2014 is refundable.')
    variants = [
        "The tenant\u2019s deposit \u2013 \u201ctwo months\u201d - is refundable.",
        '  the TENANT\'S   deposit -\n"two  months"\t-  IS refundable. ',
        "The\u00a0tenant's deposit \u2014 \uff02two months\uff02 \u2014 is refundable.",
    ]
    for variant in variants:
        assert quote_hash(variant) == base, variant


def test_quote_hash_sensitive_to_word_changes() -> None:
    base = quote_hash("The deposit is refundable within 30 days.")
    for changed in [
        "The deposit is not refundable within 30 days.",
        "The deposit is refundable within 31 days.",
        "The deposit is refundable within 30 days",
        "The deposit is refundable within30 days.",
        "Thedeposit is refundable within 30 days.",
    ]:
        assert quote_hash(changed) != base, changed


# --------------------------------------------------------------------------- find_quote


def test_find_quote_maps_back_to_original_offsets() -> None:
    haystack = "Intro.\n\nThe  Licensee\n   shall \u201cpromptly\u201d\tnotify the Licensor."
    span = find_quote(haystack, 'the licensee shall "promptly" notify')
    assert span is not None
    start, end = span
    assert haystack[start:end] == "The  Licensee\n   shall \u201cpromptly\u201d\tnotify"


def test_find_quote_first_occurrence_absent_and_blank() -> None:
    haystack = "alpha beta. Alpha  Beta."
    assert find_quote(haystack, "ALPHA beta") == (0, 10)
    assert find_quote(haystack, "gamma") is None
    assert find_quote(haystack, "   \n") is None
    assert find_quote("", "x") is None


def test_find_quote_through_unicode_changes() -> None:
    haystack = "Der Stra\u00dfenname: cafe\u0301 \ufb01nal."
    span = find_quote(haystack, "STRASSENNAME: Caf\u00e9 final")
    assert span is not None
    assert haystack[span[0] : span[1]] == "Stra\u00dfenname: cafe\u0301 \ufb01nal"
    # A match starting inside an expansion widens to the whole original character.
    span = find_quote(haystack, "inal")
    assert span is not None and haystack[span[0] : span[1]] == "\ufb01nal"


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from("ab \n\t\u2019'\u00a0C\u00df.\ufb01"), max_size=40), st.data())
def test_find_quote_result_normalises_to_the_quote(haystack: str, data: st.DataObject) -> None:
    if not haystack:
        return
    i = data.draw(st.integers(0, len(haystack) - 1))
    j = data.draw(st.integers(i + 1, len(haystack)))
    quote = haystack[i:j]
    span = find_quote(haystack, quote)
    if not normalize_for_quote(quote):
        assert span is None
        return
    assert span is not None
    # The original span contains the quote (it may be wider only by whole expanded chars).
    assert normalize_for_quote(quote) in normalize_for_quote(haystack[span[0] : span[1]])
    assert span[0] <= i + len(quote) and span[1] >= span[0]


# --------------------------------------------------------------------------- sentences


def _split(text: str) -> list[str]:
    return [text[s:e] for s, e in _sentences(text, 0, len(text))]


def test_sentence_boundaries_respect_abbreviations_and_numbers() -> None:
    text = (
        "Mr. Smith paid $3.14 to Dr. Jones, e.g. for tea. The U.S. Army agreed. "
        "See Fig. 3 and No. 12 for details! Was it approx. five? "
        '"Yes." She nodded. Then J. R. R. Tolkien arrived at 5 p.m. sharp. Visit example.com today.'
    )
    assert _split(text) == [
        "Mr. Smith paid $3.14 to Dr. Jones, e.g. for tea.",
        "The U.S. Army agreed.",
        "See Fig. 3 and No. 12 for details!",
        "Was it approx. five?",
        '"Yes."',
        "She nodded.",
        "Then J. R. R. Tolkien arrived at 5 p.m. sharp.",
        "Visit example.com today.",
    ]


def test_sentence_boundaries_quotes_ellipsis_and_cjk() -> None:
    assert _split('"Why?" she asked. (It was late.) Wait... Next one.') == [
        '"Why?" she asked.',
        "(It was late.)",
        "Wait...",
        "Next one.",
    ]
    assert _split("今天天气很好。我们去公园吧！好吗？") == ["今天天气很好。", "我们去公园吧！", "好吗？"]


def test_chunks_end_at_sentence_ends_not_abbreviations() -> None:
    sentence = "Mr. Brown of the U.S. office paid 3.14 dollars, e.g. for coffee, on Jan. 5 each day."
    text = " ".join([sentence] * 40)
    chunks = chunk_document(text, max_tokens=60, overlap_tokens=0)
    assert len(chunks) > 5
    check_chunks(text, chunks, 60)
    for c in chunks:
        assert c.text.startswith("Mr. Brown") and c.text.endswith("each day."), c.text


# --------------------------------------------------------------------------- chunking


def test_small_document_is_one_chunk() -> None:
    text = "  \n Just one short paragraph. Two sentences.\n\n"
    chunks = chunk_document(text, max_tokens=100, overlap_tokens=10)
    assert len(chunks) == 1
    assert chunks[0].text == "Just one short paragraph. Two sentences."
    assert (chunks[0].start, chunks[0].end) == (4, 44)
    assert chunks[0].heading is None


def test_blank_document_gives_no_chunks() -> None:
    assert chunk_document(" \n\t ", max_tokens=50, overlap_tokens=0) == []
    assert chunk_document("", max_tokens=50, overlap_tokens=0) == []


def test_paragraph_boundaries_are_preferred() -> None:
    # Paragraphs of seven 8-token sentences (56 tokens).  With a budget of 100, a
    # sentence-greedy packer would fill each chunk with one paragraph plus five
    # sentences of the next; the paragraph rule ends every chunk at a paragraph break.
    sentence = "Alpha beta gamma delta epsilon zeta eta."
    assert estimate_tokens(sentence) == 8
    paras = [" ".join([sentence.replace("Alpha", f"P{i}")] * 7) for i in range(6)]
    text = "\n\n".join(paras)
    chunks = chunk_document(text, max_tokens=100, overlap_tokens=0)
    check_chunks(text, chunks, 100)
    assert [c.text for c in chunks] == paras


def test_paragraph_is_split_when_the_chunk_would_be_too_empty() -> None:
    # A 16-token paragraph then a long one: ending after the short paragraph would
    # leave the chunk under half full, so the chunk continues into the long one.
    sentence = "Alpha beta gamma delta epsilon zeta eta."
    text = f"{sentence} {sentence}\n\n" + " ".join([sentence] * 30)
    chunks = chunk_document(text, max_tokens=100, overlap_tokens=0)
    check_chunks(text, chunks, 100)
    assert "\n\n" in chunks[0].text
    assert chunks[0].token_count > 80


def test_overlap_never_repeats_a_whole_chunk() -> None:
    # The first chunk ends at the paragraph break (56 tokens); a 60-token overlap
    # budget could hold all of it, but the next chunk must not repeat it entirely.
    sentence = "Alpha beta gamma delta epsilon zeta eta."
    first = " ".join([sentence] * 7)
    text = first + "\n\n" + " ".join([sentence] * 6)
    chunks = chunk_document(text, max_tokens=100, overlap_tokens=60)
    check_chunks(text, chunks, 100)
    assert chunks[0].text == first
    assert len(chunks) == 2
    assert chunks[1].start == len(sentence) + 1  # all but the first sentence overlap
    assert estimate_tokens(text[chunks[1].start : chunks[0].end]) == 48


def test_overlap_is_whole_trailing_sentences_within_budget() -> None:
    rng = random.Random(3)
    text = " ".join(_sentence(rng) for _ in range(300))
    sentence_starts = {s for s, _ in _sentences(text, 0, len(text))}
    sentence_ends = {e for _, e in _sentences(text, 0, len(text))}
    max_tokens, overlap = 120, 30
    chunks = chunk_document(text, max_tokens=max_tokens, overlap_tokens=overlap)
    check_chunks(text, chunks, max_tokens)
    overlapping = 0
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.start in sentence_starts
        assert prev.end in sentence_ends
        if nxt.start < prev.end:
            overlapping += 1
            shared = text[nxt.start : prev.end]
            assert estimate_tokens(shared) <= overlap
            assert nxt.start > prev.start  # never the whole previous chunk
            assert prev.text.endswith(shared) and nxt.text.startswith(shared)
        else:
            # No overlap only when the last sentence alone was over the overlap budget.
            last = max(s for s in sentence_starts if s < prev.end)
            assert estimate_tokens(text[last : prev.end]) > overlap or last <= prev.start
    assert overlapping > len(chunks) // 2


def test_zero_overlap_gives_disjoint_chunks() -> None:
    text = _document(random.Random(11), 40)
    chunks = chunk_document(text, max_tokens=80, overlap_tokens=0)
    check_chunks(text, chunks, 80)
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.start > prev.end


def test_giant_single_sentence_is_split_at_whitespace() -> None:
    rng = random.Random(5)
    text = " ".join(rng.choice(["alpha", "beta,", "gamma", "delta", "x1"]) for _ in range(6000))
    chunks = chunk_document(text, max_tokens=100, overlap_tokens=20)
    check_chunks(text, chunks, 100)
    assert len(chunks) > 20
    for c in chunks:
        # Cut only between words.
        assert c.start == 0 or text[c.start - 1].isspace()
        assert c.end == len(text) or text[c.end].isspace()
    assert all(c.token_count >= 50 for c in chunks[:-1])  # filled, not shredded


def test_giant_unbroken_run_is_cut_anywhere_but_within_budget() -> None:
    text = "prefix " + "aB3+/" * 20_000 + " suffix."
    chunks = chunk_document(text, max_tokens=64, overlap_tokens=8)
    check_chunks(text, chunks, 64)
    assert sum(len(c.text) for c in chunks) >= len(text.replace(" ", ""))


def test_long_table_lines_prefer_line_breaks() -> None:
    rows = "\n".join(f"| row {i} | value {i * 7} | note |" for i in range(400))
    chunks = chunk_document(rows, max_tokens=120, overlap_tokens=0)
    check_chunks(rows, chunks, 120)
    for c in chunks:
        assert c.text.startswith("| row") and c.text.endswith("note |")


def test_determinism() -> None:
    text = _document(random.Random(99), 60)
    a = chunk_document(text, max_tokens=150, overlap_tokens=25)
    b = chunk_document(text, max_tokens=150, overlap_tokens=25)
    assert a == b
    sha = document_sha256(text)
    assert [stable_chunk_id(sha, c.ordinal, c.start, c.end) for c in a] == [
        stable_chunk_id(sha, c.ordinal, c.start, c.end) for c in b
    ]


def test_chunk_document_rejects_bad_settings() -> None:
    with pytest.raises(InvalidInputError, match="overlap_tokens must be smaller"):
        chunk_document("x", max_tokens=10, overlap_tokens=10)
    with pytest.raises(InvalidInputError, match="max_tokens"):
        chunk_document("x", max_tokens=0, overlap_tokens=0)
    with pytest.raises(InvalidInputError, match="overlap_tokens"):
        chunk_document("x", max_tokens=10, overlap_tokens=-1)
    with pytest.raises(InvalidInputError, match="fmt"):
        chunk_document("x", max_tokens=10, overlap_tokens=0, fmt="html")  # type: ignore[arg-type]


def test_chunk_span_is_frozen() -> None:
    chunk = chunk_document("Hello there.", max_tokens=10, overlap_tokens=0)[0]
    with pytest.raises(ValueError):
        chunk.start = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- markdown

MARKDOWN = """# Lease Agreement

Preamble sentence one. Preamble sentence two.

## Payment

Rent is due monthly. Late fees apply after five days.

```python
# not a heading
def late_fee(days):

    return 10 * days
```

### Deposit ###

The deposit is two months of rent.

## Termination

Either party may terminate with notice.
"""


def test_markdown_headings_are_hard_boundaries_with_paths() -> None:
    chunks = chunk_document(MARKDOWN, max_tokens=200, overlap_tokens=20, fmt="markdown")
    check_chunks(MARKDOWN, chunks, 200)
    assert [(c.heading, c.text.splitlines()[0]) for c in chunks] == [
        ("Lease Agreement", "# Lease Agreement"),
        ("Lease Agreement > Payment", "## Payment"),
        ("Lease Agreement > Payment > Deposit", "### Deposit ###"),
        ("Lease Agreement > Termination", "## Termination"),
    ]
    # No overlap across a heading: each section's text appears in exactly one chunk.
    assert sum("Rent is due monthly." in c.text for c in chunks) == 1


def test_markdown_code_fence_stays_whole() -> None:
    chunks = chunk_document(MARKDOWN, max_tokens=200, overlap_tokens=20, fmt="markdown")
    fence = MARKDOWN[MARKDOWN.index("```python") : MARKDOWN.index("```\n", MARKDOWN.index("def")) + 3]
    assert [c for c in chunks if fence in c.text], "the code block was split"
    assert not any(c.heading and "not a heading" in c.heading for c in chunks)


def test_markdown_code_fence_moves_to_next_chunk_rather_than_split() -> None:
    prose = " ".join(f"Sentence number {i} is here." for i in range(12))
    code = "```\n" + "\n".join(f"x{i} = compute({i})" for i in range(8)) + "\n```"
    text = f"{prose}\n\n{code}\n\nAfter the code."
    chunks = chunk_document(text, max_tokens=90, overlap_tokens=0, fmt="markdown")
    check_chunks(text, chunks, 90)
    assert estimate_tokens(code) <= 90
    assert sum(code in c.text for c in chunks) == 1


def test_markdown_oversized_code_fence_is_split_at_lines() -> None:
    code = "```\n" + "\n".join(f"    value_{i} = compute({i}, {i + 1})" for i in range(200)) + "\n```"
    chunks = chunk_document(code, max_tokens=100, overlap_tokens=10, fmt="markdown")
    check_chunks(code, chunks, 100)
    assert len(chunks) > 3
    for c in chunks:
        assert c.end == len(code) or code[c.end] == "\n"


def test_markdown_unclosed_fence_and_text_mode_headings() -> None:
    text = "# Title\n\n```\ncode here\n# still code\n"
    chunks = chunk_document(text, max_tokens=100, overlap_tokens=0, fmt="markdown")
    check_chunks(text, chunks, 100)
    assert chunks[-1].heading == "Title"
    # In text mode "#" lines are ordinary text and there is no heading path.
    plain = chunk_document(MARKDOWN, max_tokens=200, overlap_tokens=0, fmt="text")
    check_chunks(MARKDOWN, plain, 200)
    assert all(c.heading is None for c in plain)


# --------------------------------------------------------------------------- citations


def test_quote_spanning_two_chunks_is_found_only_in_the_document() -> None:
    text = _document(random.Random(21), 30)
    chunks = chunk_document(text, max_tokens=80, overlap_tokens=0)
    first, second = chunks[0], chunks[1]
    # Last words of one chunk plus first words of the next, re-typed by a "model".
    quote = " ".join(first.text.split()[-3:] + second.text.split()[:3]).upper().replace(" ", "  ")
    span = find_quote(text, quote)
    assert span is not None
    assert first.start < span[0] < first.end < second.start < span[1] <= second.end
    assert find_quote(first.text, quote) is None
    assert find_quote(second.text, quote) is None


def test_chunk_text_is_found_at_its_own_offsets() -> None:
    text = "Preface.\n\n" + _document(random.Random(8), 20)
    for c in chunk_document(text, max_tokens=90, overlap_tokens=15):
        span = find_quote(text, c.text)
        assert span is not None
        # The first occurrence is at the chunk or earlier (repeated text), and exact.
        assert span[0] <= c.start
        assert quote_hash(text[span[0] : span[1]]) == c.quote_hash


# --------------------------------------------------------------------------- ids


def test_stable_chunk_id() -> None:
    sha = document_sha256("doc")
    assert sha == hashlib.sha256(b"doc").hexdigest()
    cid = stable_chunk_id(sha, 0, 0, 10)
    assert re.fullmatch(r"ch_[0-9a-f]{20}", cid)
    expected = "ch_" + hashlib.sha256(f"{sha}:0:0:10".encode()).hexdigest()[:20]
    assert cid == expected
    assert stable_chunk_id(sha, 0, 0, 10) == cid
    assert len({cid, stable_chunk_id(sha, 1, 0, 10), stable_chunk_id(sha, 0, 1, 10)}) == 3
    assert stable_chunk_id(document_sha256("other"), 0, 0, 10) != cid
    with pytest.raises(InvalidInputError):
        stable_chunk_id("", 0, 0, 1)
    with pytest.raises(InvalidInputError):
        stable_chunk_id(sha, -1, 0, 1)
    with pytest.raises(InvalidInputError):
        stable_chunk_id(sha, 0, 5, 1)


# --------------------------------------------------------------------------- validation


def test_validate_document_text_accepts_and_returns_text() -> None:
    text = "Title\n\n\tBody with tabs,\r\nCRLF and a form feed\f and caf\u00e9."
    assert validate_document_text(text, max_chars=1000) is text
    assert MAX_DOCUMENT_CHARS == 5_000_000
    assert validate_document_text("a" * 10) == "a" * 10


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"bytes", "must be a str, not bytes"),
        (None, "must be a str, not NoneType"),
        ("", "must not be empty"),
        ("  \n\t ", "must not be empty"),
        ("x" * 101, "is 101 characters; the limit is 100"),
        ("ab\x00cd", "NUL character at position 2"),
        ("ok \ud800 bad", "lone surrogate at position 3"),
        ("\x01\x02\x03 binary \x7f\x1b\x1b junk", "looks binary"),
        ("text " + "\ufffd" * 10, "looks binary"),
    ],
)
def test_validate_document_text_errors(value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        validate_document_text(value, max_chars=100)


def test_validate_document_text_tolerates_a_few_control_characters() -> None:
    text = "log line \x1b[31mred\x1b[0m and more ordinary text here " * 3
    assert validate_document_text(text, max_chars=10_000) == text


# --------------------------------------------------------------------------- properties


# Fragments chosen to hit every rule: sentence ends, abbreviations, headings, fences,
# blank lines, non-ASCII letters, CJK punctuation.
_FRAGMENTS = [*"abcXYZ019", " ", "  ", "\n", "\n\n", "\t", ".", "?", "!", ",", '"', "\u201d", "'"]
_FRAGMENTS += ["Mr.", "e.g.", "3.14", "# ", "## ", "```", "~~~", "\u00e9", "\u00df", "\u3002", "\u6211", "-"]
_ALPHABET = st.sampled_from(_FRAGMENTS)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_ALPHABET, max_size=300).map("".join),
    st.integers(min_value=1, max_value=40),
    st.data(),
    st.sampled_from(["text", "markdown"]),
)
def test_property_chunks_are_exact_and_cover(
    text: str, max_tokens: int, data: st.DataObject, fmt: str
) -> None:
    overlap = data.draw(st.integers(min_value=0, max_value=max_tokens - 1))
    chunks = chunk_document(text, max_tokens=max_tokens, overlap_tokens=overlap, fmt=fmt)  # type: ignore[arg-type]
    check_chunks(text, chunks, max_tokens)
    assert chunks == chunk_document(text, max_tokens=max_tokens, overlap_tokens=overlap, fmt=fmt)  # type: ignore[arg-type]


def test_fifty_page_document() -> None:
    rng = random.Random(50)
    sections = []
    for page in range(50):
        sections.append(f"## Page {page + 1}\n\n" + _document(rng, 6))
    text = "# Contract\n\n" + "\n\n".join(sections)
    assert len(text) > 100_000
    chunks = chunk_document(text, max_tokens=220, overlap_tokens=30, fmt="markdown")
    check_chunks(text, chunks, 220)
    assert len(chunks) >= 100
    assert {c.heading for c in chunks} == {f"Contract > Page {i + 1}" for i in range(50)}
    sha = document_sha256(text)
    ids = [stable_chunk_id(sha, c.ordinal, c.start, c.end) for c in chunks]
    assert len(set(ids)) == len(ids)
    plain = chunk_document(text, max_tokens=220, overlap_tokens=30)
    check_chunks(text, plain, 220)
    # Chunks are reasonably full: the packer does not shred text into tiny pieces.
    assert sum(c.token_count for c in plain) / len(plain) > 110


def test_chunk_span_refuses_inconsistent_offsets() -> None:
    with pytest.raises(ValueError, match="end - start"):
        ChunkSpan(ordinal=0, start=0, end=5, text="abc", token_count=1, quote_hash=quote_hash("abc"))
