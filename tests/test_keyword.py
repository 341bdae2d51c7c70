"""IDF-weighted keyword search: rare terms outweigh words that are everywhere in the scope."""

from __future__ import annotations

import pytest

from engram import Engram
from engram.keyword import keyword_search


async def test_rare_terms_outrank_a_name_in_every_turn(engram: Engram, scope: dict[str, str]) -> None:
    task = f"{scope['user_id']}:chat"
    chatter = [
        "Caroline: Hey Mel, how have you been? Caroline here with news",
        "Caroline: Caroline went hiking with Caroline's friends, Caroline loved it",
        "Caroline: I painted all weekend, Caroline says hi",
        "Caroline: Caroline is thinking about adopting a dog",
        "Caroline: yesterday I went to the LGBTQ support group and it was powerful",
        "Melanie: that sounds great, Caroline!",
    ]
    ids = [(await engram.record_event(task, role="user", content=c, **scope)).event_id for c in chatter]
    async with engram._connection() as conn:
        hits = await keyword_search(
            conn,
            table="events",
            id_column="event_id",
            user_id=scope["user_id"],
            agent_id=scope["agent_id"],
            query="When did Caroline go to the LGBTQ support group?",
            k=3,
        )
    assert hits[0][0] == ids[4]
    assert hits[0][1] > hits[1][1]
    # Terms in no row, or a query of stop words only, find nothing (and do not fail).
    async with engram._connection() as conn:
        for query in ("zeppelin quasar", "the and of"):
            assert (
                await keyword_search(
                    conn,
                    table="events",
                    id_column="event_id",
                    user_id=scope["user_id"],
                    agent_id=scope["agent_id"],
                    query=query,
                    k=3,
                )
                == []
            )


async def test_keyword_search_is_scoped_and_quotes_odd_lexemes(engram: Engram, scope: dict[str, str]) -> None:
    other = {"user_id": scope["user_id"] + "-o", "agent_id": scope["agent_id"]}
    await engram.add("O'Brien's build uses C++ and back\\slash 'quotes'", **scope)
    await engram.add("O'Brien's build uses C++ too", **other)
    async with engram._connection() as conn:
        hits = await keyword_search(
            conn,
            table="facts",
            id_column="fact_id",
            user_id=scope["user_id"],
            agent_id=scope["agent_id"],
            query="O'Brien C++ back\\slash 'quotes' ; DROP TABLE facts",
            k=5,
        )
    facts = await engram.list_facts(**scope)
    assert [h[0] for h in hits] == [facts[0].fact_id]


async def test_unknown_table_is_refused(engram: Engram, scope: dict[str, str]) -> None:
    async with engram._connection() as conn:
        with pytest.raises(ValueError):
            await keyword_search(
                conn, table="pg_user", id_column="usename", user_id="u", agent_id="a", query="x", k=1
            )
