"""Recall's work per query is bounded: a query of the allowed maximum size searches
at most MAX_SEARCH_TERMS words, MAX_SEARCH_LEXEMES lexemes and MAX_IDENTIFIER_TERMS
identifiers, and still finds what it should.  (Speed itself is measured by
benchmarks/recall_query_size.py, not asserted here.)"""

from __future__ import annotations

import random
import string
from typing import Any

import asyncpg

from engram import Engram, MemoryPolicy, plugins
from engram.hookspecs import hookimpl
from engram.ledger import store as ledger_store
from engram.longinput import store as longinput_store
from engram.policy import RecallSettings
from engram.recall.terms import (
    MAX_IDENTIFIER_TERMS,
    MAX_SEARCH_LEXEMES,
    MAX_SEARCH_TERMS,
    bounded_query_text,
)
from engram.search.keyword import keyword_search
from engram.validation import MAX_QUERY_CHARS

NEEDLE = "Thermoluminescence"  # longer than any filler word: the one a bounded query keeps


def _filler_words(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct made-up lowercase words of 4 to 8 letters (no stop words)."""
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 8))))
    return sorted(out)


def _max_query(words: list[str], *extra: str) -> str:
    """Words joined by spaces, as many as fit in MAX_QUERY_CHARS, ``extra`` in the middle."""
    out: list[str] = []
    size = sum(len(w) + 1 for w in extra)
    for word in words:
        if size + len(word) + 1 > MAX_QUERY_CHARS:
            break
        out.append(word)
        size += len(word) + 1
    middle = len(out) // 2
    return " ".join([*out[:middle], *extra, *out[middle:]])


class _Probe:
    """A plugin strategy that records what a recall gives its strategies to search with."""

    name = "bounds_probe"
    order = 1
    uses_embedding = False

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def run(self, ctx: Any) -> list[Any]:
        self.seen.append(
            {
                # getattr: before the bound existed a context had no search_query (the query was searched)
                "search_query": getattr(ctx, "search_query", ctx.query),
                "terms": list(ctx.terms),
                "identifiers": list(ctx.identifiers),
            }
        )
        return []


async def _lexemes(conn: asyncpg.Connection, text: str) -> list[str]:
    rows = await conn.fetch("SELECT unnest(tsvector_to_array(to_tsvector('english', $1))) AS lex", text)
    return [r["lex"] for r in rows]


async def test_a_maximum_size_query_searches_a_bounded_set_of_terms_and_still_recalls(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    rng = random.Random(4)
    await engram.record_event(
        f"{scope['user_id']}:t1",
        role="user",
        content=f"The lab measured {NEEDLE} in the sample.",
        user_id=scope["user_id"],
        agent_id=scope["agent_id"],
    )
    await engram.record_event(
        f"{scope['user_id']}:t1",
        role="user",
        content="Lunch was soup.",
        user_id=scope["user_id"],
        agent_id=scope["agent_id"],
    )
    await engram.add(
        f"{NEEDLE} dating is the user's thesis topic", user_id=scope["user_id"], agent_id=scope["agent_id"]
    )
    # Capitalised and identifier-like words too, so trigram matching has many candidates.
    words = [w.capitalize() if i % 3 == 0 else w for i, w in enumerate(_filler_words(1_800, rng))]
    words += [f"build-{i}" for i in range(40)]
    rng.shuffle(words)
    query = _max_query(words, NEEDLE)
    assert len(query) <= MAX_QUERY_CHARS and len(set(query.split())) > 1_000

    probe = _Probe()

    class Plugin:
        @hookimpl
        def register_recall_strategies(self, register: Any) -> None:
            register(probe)

    pm = plugins.get_plugin_manager()
    pm.register(Plugin(), name="bounds-probe")
    try:
        weights = {**RecallSettings().weights, "bounds_probe": 1.0}
        policy = MemoryPolicy(name="with-probe", recall=RecallSettings(weights=weights))
        trace = await engram.trace_recall(
            query, memory_policy=policy, user_id=scope["user_id"], agent_id=scope["agent_id"]
        )
    finally:
        pm.unregister(name="bounds-probe")

    assert not [r for r in trace.strategies if r.error], trace.strategies
    (seen,) = probe.seen
    assert len(seen["terms"]) <= MAX_SEARCH_TERMS
    assert len(set(seen["search_query"].split())) <= MAX_SEARCH_TERMS
    assert len(await _lexemes(raw_conn, seen["search_query"])) <= MAX_SEARCH_LEXEMES
    assert len(seen["identifiers"]) <= MAX_IDENTIFIER_TERMS
    assert NEEDLE.lower() in seen["terms"]
    # The most informative word was kept, so both its event and its fact are recalled.
    assert f"measured {NEEDLE}" in trace.context
    assert f"{NEEDLE} dating" in trace.context
    assert len(trace.missing_expected_terms) <= MAX_SEARCH_TERMS


async def test_keyword_search_given_1300_terms_uses_at_most_the_bound(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    """Each of 200 events holds one distinct word of a 1,300-word query, so the number
    of events found is the number of query words the search really used."""
    rng = random.Random(13)
    words = [f"q{i:03x}" for i in range(1_300)]  # one lexeme each, none a stop word
    stored = rng.sample(words, 200)
    task = f"{scope['user_id']}:bulk"
    for word in stored:
        await engram.record_event(
            task, role="user", content=f"note {word}", user_id=scope["user_id"], agent_id=scope["agent_id"]
        )
    query = " ".join(words)
    assert len(query) <= MAX_QUERY_CHARS

    hits = await keyword_search(
        raw_conn,
        table="events",
        id_column="event_id",
        user_id=scope["user_id"],
        agent_id=scope["agent_id"],
        query=query,
        k=1_000,
    )
    assert 0 < len(hits) <= MAX_SEARCH_TERMS
    # The store functions every keyword path goes through are bounded the same way.
    events = await ledger_store.keyword_events(
        raw_conn, user_id=scope["user_id"], agent_id=scope["agent_id"], query=query, k=1_000
    )
    assert 0 < len(events) <= MAX_SEARCH_TERMS


async def test_keyword_search_caps_lexemes_even_for_text_it_searches_verbatim(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    """Text short enough to be searched as written can still expand into many lexemes
    (``a-b.c-d`` gives the words and two compounds); the statement caps them."""
    parts = [f"p{i:03d}" for i in range(MAX_SEARCH_TERMS)]

    def part(i: int) -> str:
        return parts[i % len(parts)]

    # 32 distinct words in 32 distinct chunks: searched as written...
    chunks = [f"{part(i)}-{part(i + 1)}.{part(i + 5)}-{part(i + 17)}" for i in range(len(parts))]
    text = " ".join(chunks)
    assert bounded_query_text(text) == text
    lexemes = await _lexemes(raw_conn, text)
    assert len(lexemes) > MAX_SEARCH_LEXEMES  # ...yet PostgreSQL makes more lexemes of it
    task = f"{scope['user_id']}:compound"
    for lex in lexemes:
        await engram.record_event(
            task, role="user", content=f"item {lex}", user_id=scope["user_id"], agent_id=scope["agent_id"]
        )
    hits = await keyword_search(
        raw_conn,
        table="events",
        id_column="event_id",
        user_id=scope["user_id"],
        agent_id=scope["agent_id"],
        query=text,
        k=1_000,
    )
    assert 0 < len(hits) < len(lexemes)


async def test_long_input_keyword_search_is_bounded(
    engram: Engram, scope: dict[str, str], raw_conn: asyncpg.Connection
) -> None:
    rng = random.Random(7)
    words = _filler_words(1_500, rng)
    # Paragraphs each built around a few of the query's words.
    paragraphs = [" ".join(words[i : i + 5]) + "." for i in range(0, 600, 5)]
    await engram.record_long_input(
        f"{scope['user_id']}:doc",
        "\n\n".join(paragraphs),
        title="Glossary",
        user_id=scope["user_id"],
        agent_id=scope["agent_id"],
    )
    query = _max_query(words)
    found = await longinput_store.keyword_chunks(
        raw_conn, user_id=scope["user_id"], agent_id=scope["agent_id"], query=query, k=1_000
    )
    assert found
    context = await engram.build_long_input_context(
        query, user_id=scope["user_id"], agent_id=scope["agent_id"]
    )
    assert context.chunks
    # Every chunk found holds one of the bounded words.
    kept = set(bounded_query_text(query).split())
    assert len(kept) <= MAX_SEARCH_TERMS
    texts = await raw_conn.fetch(
        "SELECT text FROM long_input_chunks WHERE user_id = $1 AND chunk_id = ANY($2::text[])",
        scope["user_id"],
        [cid for cid, _ in found],
    )
    assert all(kept & set(r["text"].replace(".", " ").split()) for r in texts)


async def test_a_maximum_size_query_without_a_searchable_word_still_recalls(
    engram: Engram, scope: dict[str, str]
) -> None:
    """Two-letter words only: nothing is left to search by words, and recall still
    runs every strategy (vectors and recent turns still answer)."""
    task = f"{scope['user_id']}:t"
    await engram.record_event(task, role="user", content="We moved the standup to 9:30.", **_kw(scope))
    pairs = [f"{a}{b}" for a in string.ascii_lowercase for b in string.ascii_lowercase]
    query = " ".join(pairs * 5)[:MAX_QUERY_CHARS].rstrip()
    assert bounded_query_text(query) == ""
    trace = await engram.trace_recall(query, task_id=task, **_kw(scope))
    assert not [r for r in trace.strategies if r.error]
    assert "standup" in trace.context


def _kw(scope: dict[str, str]) -> dict[str, Any]:
    return {"user_id": scope["user_id"], "agent_id": scope["agent_id"]}
