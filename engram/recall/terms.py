"""Salient-term extraction, shared by the router, trigram search and missing-term checks."""

from __future__ import annotations

import re

# A compact English stop list: words that carry no retrieval signal on their own.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "can't",
        "cannot",
        "could",
        "couldn't",
        "did",
        "didn't",
        "do",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn't",
        "has",
        "hasn't",
        "have",
        "haven't",
        "having",
        "he",
        "he'd",
        "he'll",
        "he's",
        "her",
        "here",
        "here's",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "how's",
        "i",
        "i'd",
        "i'll",
        "i'm",
        "i've",
        "if",
        "in",
        "into",
        "is",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "let's",
        "me",
        "more",
        "most",
        "mustn't",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "shan't",
        "she",
        "she'd",
        "she'll",
        "she's",
        "should",
        "shouldn't",
        "so",
        "some",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "they'd",
        "they'll",
        "they're",
        "they've",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn't",
        "we",
        "we'd",
        "we'll",
        "we're",
        "we've",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "when's",
        "where",
        "where's",
        "which",
        "while",
        "who",
        "who's",
        "whom",
        "why",
        "why's",
        "with",
        "won't",
        "would",
        "wouldn't",
        "you",
        "you'd",
        "you'll",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "just",
        "tell",
        "know",
        "please",
        "remember",
        "recall",
        "did",
        "does",
        "done",
        "ever",
        "anything",
        "something",
        "thing",
        "things",
        "like",
        "get",
        "got",
        "use",
        "used",
        "using",
        "want",
        "wants",
        "need",
        "needs",
        "make",
        "made",
        "go",
        "going",
        "say",
        "said",
        "one",
        "two",
        "many",
        "much",
        "well",
        "really",
        "still",
        "yet",
        "again",
        "now",
    ]
)

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/+#']*[A-Za-z0-9+#]|[A-Za-z0-9]")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def salient_terms(text: str) -> list[str]:
    """Distinct non-stopword tokens (length ≥ 3, or containing a digit), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for tok in tokens(text):
        low = tok.lower().strip("'")
        if low.endswith("'s"):
            low = low[:-2]
        if low in STOPWORDS or (len(low) < 3 and not any(c.isdigit() for c in low)):
            continue
        if low not in seen:
            seen.add(low)
            out.append(low)
    return out


def identifier_terms(text: str) -> list[str]:
    """Tokens that look like names or identifiers: trigram search's job, not full text's."""
    out: list[str] = []
    for tok in tokens(text):
        if tok.lower() in STOPWORDS or len(tok) < 3:
            continue
        if tok.isdigit():
            # Full text matches numbers exactly; fuzzily, 2018 "matches" 2019, and
            # digit trigrams are in so many rows that the lookup is the slow part.
            continue
        if any(c.isdigit() for c in tok) or any(c in "_.-/#+" for c in tok) or tok[0].isupper():
            out.append(tok)
    return out[:8]


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
