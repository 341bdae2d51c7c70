"""Query terms for search: tokens, salient terms, identifiers, and the bound on
how many of them one search may use.

The searches' cost grows with the number of distinct terms in the query (each
lexeme is weighed over the scope, and cover-density ranking walks every one of
them for every candidate row).  A query may be as long as ``MAX_QUERY_CHARS``
(8,192 characters, about 1,300 distinct words), so every search path takes its
terms from here, already bounded:

- a query with at most :data:`MAX_SEARCH_TERMS` distinct words is searched as
  written (PostgreSQL's own parser and stop list, exactly as before);
- a longer one is cut down to its :data:`MAX_SEARCH_TERMS` most informative
  words (:func:`bounded_query_terms`);
- at most :data:`MAX_IDENTIFIER_TERMS` identifier-like tokens, none longer than
  :data:`MAX_TERM_CHARS`, go to trigram matching;
- :func:`engram.search.keyword.keyword_search` also caps the lexemes it uses at
  :data:`MAX_SEARCH_LEXEMES`, whatever text it is given.

This module lives under ``engram.search`` (not ``engram.recall``) because the
stores import it, and they sit below recall.
"""

from __future__ import annotations

import re

#: Distinct words a search uses at most.  A question rarely has more than 20;
#: 32 keeps a pasted paragraph's topic words.
MAX_SEARCH_TERMS = 32
#: Lexemes keyword search uses at most, whatever text it is given.  Twice
#: :data:`MAX_SEARCH_TERMS`: a verbatim query's compound words ("node-js") give
#: PostgreSQL's parser the whole compound and its parts.
MAX_SEARCH_LEXEMES = 2 * MAX_SEARCH_TERMS
#: Identifier-like tokens sent to trigram matching at most.
MAX_IDENTIFIER_TERMS = 8
#: A longer "word" is not one (a hash, a base64 blob); fuzzy-matching it or
#: searching it costs more than it can find.
MAX_TERM_CHARS = 64

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
    """Tokens that look like names or identifiers: trigram search's job, not full text's.

    At most :data:`MAX_IDENTIFIER_TERMS`, distinct, none longer than
    :data:`MAX_TERM_CHARS`.  When a query has more, the ones with a digit or an
    identifier character (``_ . - / # +``) are kept before capitalised words (in a
    long text most of those start a sentence), longer before shorter; the kept
    ones stay in query order.
    """
    found: dict[str, bool] = {}  # token -> has a digit or identifier character (query order)
    for tok in tokens(text):
        if tok in found or len(tok) < 3 or len(tok) > MAX_TERM_CHARS or tok.lower() in STOPWORDS:
            continue
        if tok.isdigit():
            # Full text matches numbers exactly; fuzzily, 2018 "matches" 2019, and
            # digit trigrams are in so many rows that the lookup is the slow part.
            continue
        marked = _MARKED.search(tok) is not None
        if marked or tok[0].isupper():
            found[tok] = marked
    if len(found) <= MAX_IDENTIFIER_TERMS:
        return list(found)
    position = {tok: i for i, tok in enumerate(found)}
    kept = sorted(found, key=lambda t: (not found[t], -len(t), position[t]))[:MAX_IDENTIFIER_TERMS]
    return sorted(kept, key=position.__getitem__)


_MARKED = re.compile(r"[0-9_.\-/#+]")


# Words as PostgreSQL's parser sees them, in any script: runs of letters and
# digits.  Counting these (not our ASCII tokens) is what bounds the lexemes a
# verbatim query can produce.
_WORD = re.compile(r"[^\W_]+")


def _is_short(text: str) -> bool:
    """Few enough distinct words and space-separated chunks to search as written.

    PostgreSQL makes at most one lexeme per word plus the compounds within a
    chunk ("node-js" gives "node-js", "node", "js"), so both counts bound it."""
    words = {w.casefold() for w in _WORD.findall(text)}
    if len(words) > MAX_SEARCH_TERMS:
        return False
    return len(set(text.split())) <= MAX_SEARCH_TERMS


def bounded_query_terms(text: str, limit: int = MAX_SEARCH_TERMS) -> list[str]:
    """The query's salient terms, at most ``limit`` of them: the terms searched.

    A short query (see :func:`bounded_query_text`) keeps its salient terms as
    :func:`salient_terms` finds them.  A longer one keeps its ``limit`` most
    informative words: longest first (in any language long words are the rare
    ones, and rarity is what IDF ranking rewards; the scope's own frequencies
    are not known before searching), earlier first among equals.  Stop words,
    words shorter than 3 characters without a digit, and "words" longer than
    :data:`MAX_TERM_CHARS` are never chosen.  The result keeps query order.
    """
    if _is_short(text):
        return salient_terms(text)[:limit]
    position: dict[str, int] = {}
    for word in _WORD.findall(text):
        low = word.casefold()
        if low in position or low in STOPWORDS or len(low) > MAX_TERM_CHARS:
            continue
        if len(low) < 3 and not any(c.isdigit() for c in low):
            continue
        position[low] = len(position)
    kept = sorted(position, key=lambda w: (-len(w), position[w]))[:limit]
    return sorted(kept, key=position.__getitem__)


def bounded_query_text(text: str) -> str:
    """What a keyword search receives for ``text``: the text itself when it has at
    most :data:`MAX_SEARCH_TERMS` distinct words (and as many space-separated
    chunks), else its :func:`bounded_query_terms` joined by spaces.

    Short queries are thus searched exactly as written; a long one gives the
    searches at most :data:`MAX_SEARCH_TERMS` words of one run of letters and
    digits each, so at most that many lexemes.
    """
    if _is_short(text):
        return text
    return " ".join(bounded_query_terms(text))
