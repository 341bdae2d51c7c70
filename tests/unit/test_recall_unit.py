"""recall / trace_recall: strategies, routing, pinned slots, budgets, traces, bad input."""

from __future__ import annotations

import pytest

from engram import (
    ConfigurationError,
    Engram,
    MemoryPolicy,
)
from engram.policy import RecallSettings


def test_weights_for_unknown_strategies_are_refused() -> None:
    policy = MemoryPolicy(name="typo", recall=RecallSettings(weights={"facts_vectr": 1.0}))
    with pytest.raises(ConfigurationError, match="facts_vectr"):
        Engram("postgresql://unused", memory_policy=policy)


# -- per-query bounds (issue 14, defect 4) ------------------------------------------


def test_a_short_query_is_searched_as_written() -> None:
    from engram.recall.terms import bounded_query_terms, bounded_query_text, salient_terms

    query = "What test command does the acme-api repo use with pytest -q?"
    assert bounded_query_text(query) == query
    assert bounded_query_terms(query) == salient_terms(query)


def test_a_long_query_keeps_its_longest_words_in_query_order() -> None:
    from engram.recall.terms import MAX_SEARCH_TERMS, STOPWORDS, bounded_query_terms, bounded_query_text

    words = [f"w{i:03d}" for i in range(600)]  # 4 characters each
    long_ones = ["photosynthesis", "interferometer", "chromatography"]
    query = " ".join([*words[:300], long_ones[2], *words[300:], long_ones[0], "the", "because", long_ones[1]])
    terms = bounded_query_terms(query)
    assert len(terms) == MAX_SEARCH_TERMS
    assert [t for t in terms if len(t) > 4] == [long_ones[2], long_ones[0], long_ones[1]]
    assert not set(terms) & STOPWORDS
    assert terms == sorted(terms, key=query.index)  # query order
    assert bounded_query_text(query).split() == terms


def test_the_bound_counts_words_of_any_script_and_short_words() -> None:
    from engram.recall.terms import MAX_SEARCH_TERMS, bounded_query_text

    cyrillic = " ".join(f"слово{chr(0x430 + i % 32)}{chr(0x430 + i // 32)}" for i in range(900))
    two_letters = " ".join(f"{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(676))
    compounds = " ".join(f"a{i}-b{i}" for i in range(200))
    for text in (cyrillic, two_letters, compounds):
        assert len(bounded_query_text(text).split()) <= MAX_SEARCH_TERMS


def test_identifier_terms_are_bounded_and_prefer_real_identifiers() -> None:
    from engram.recall.terms import MAX_IDENTIFIER_TERMS, MAX_TERM_CHARS, identifier_terms

    names = " ".join(f"Name{chr(97 + i % 26)}{chr(97 + i // 26)}x" for i in range(100))
    query = f"{names} ERR-4412 build_{'x' * MAX_TERM_CHARS} v2.3.1 Name{'a' * 20}"
    found = identifier_terms(query)
    assert len(found) == MAX_IDENTIFIER_TERMS
    assert {"ERR-4412", "v2.3.1"} <= set(found)  # identifier-like before capitalised words
    assert all(len(t) <= MAX_TERM_CHARS for t in found)
    assert f"Name{'a' * 20}" in found  # the longest capitalised word beats the short ones
    assert identifier_terms("Deploy api-v2 to Kubernetes") == ["Deploy", "api-v2", "Kubernetes"]
