"""Salient-term extraction, shared by the router, trigram search and missing-term checks.

Tokenising and the per-query bounds live in :mod:`engram.search.terms` (the
stores use them too); this module re-exports them for recall and adds the
missing-term check.
"""

from __future__ import annotations

import re

from ..search.terms import (
    MAX_IDENTIFIER_TERMS,
    MAX_SEARCH_LEXEMES,
    MAX_SEARCH_TERMS,
    MAX_TERM_CHARS,
    STOPWORDS,
    bounded_query_terms,
    bounded_query_text,
    identifier_terms,
    salient_terms,
    tokens,
)

__all__ = [
    "MAX_IDENTIFIER_TERMS",
    "MAX_SEARCH_LEXEMES",
    "MAX_SEARCH_TERMS",
    "MAX_TERM_CHARS",
    "STOPWORDS",
    "bounded_query_terms",
    "bounded_query_text",
    "identifier_terms",
    "missing_terms",
    "salient_terms",
    "tokens",
]


def _stem(word: str) -> str:
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def missing_terms(terms: list[str], context: str) -> list[str]:
    """Terms whose word (or its crude stem) occurs nowhere in ``context``."""
    haystack = context.casefold()
    words = {_stem(w) for w in re.findall(r"[a-z0-9]+", haystack)}
    missing: list[str] = []
    for term in terms:
        low = term.casefold().strip()
        if not low:
            continue
        if low in haystack:
            continue
        parts = re.findall(r"[a-z0-9]+", low)
        if parts and all(_stem(p) in words for p in parts):
            continue
        missing.append(term)
    return missing
