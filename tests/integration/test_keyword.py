"""IDF-weighted keyword search: rare terms outweigh words that are everywhere in the scope."""

from __future__ import annotations

import pytest

from engram import Engram
from engram.search.keyword import keyword_search


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
    async with engram._rt.connection() as conn:
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
    async with engram._rt.connection() as conn:
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
    async with engram._rt.connection() as conn:
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
    async with engram._rt.connection() as conn:
        with pytest.raises(ValueError):
            await keyword_search(
                conn, table="pg_user", id_column="usename", user_id="u", agent_id="a", query="x", k=1
            )


async def test_large_scopes_bound_the_work_and_keep_rare_terms_exact(
    engram: Engram, scope: dict[str, str]
) -> None:
    task = f"{scope['user_id']}:log"
    old = await engram.record_event(task, role="tool", content="zebra crossing noted", **scope)
    for i in range(30):
        await engram.record_event(task, role="tool", content=f"deploy finished step {i}", **scope)
    rare = await engram.record_event(task, role="tool", content="deploy failed: zebra timeout", **scope)

    async def search(**bounds: int) -> list[tuple[int, float]]:
        async with engram._rt.connection() as conn:
            return await keyword_search(
                conn,
                table="events",
                id_column="event_id",
                user_id=scope["user_id"],
                agent_id=scope["agent_id"],
                query="deploy zebra",
                k=40,
                **bounds,
            )

    complete = await search()  # 32 rows: the sample is the whole scope
    assert [h[0] for h in complete[:2]] == [rare.event_id, old.event_id]
    assert len(complete) == 32

    # A 10-row sample: "deploy" is in all of it, so it counts as common and is not
    # looked up (its frequency is estimated); "zebra" is rare and looked up in
    # full, including the oldest row, far outside the sample.
    bounded = await search(sample_rows=10, per_term=5)
    assert [h[0] for h in bounded[:2]] == [rare.event_id, old.event_id]
    assert bounded[0][1] == pytest.approx(complete[0][1], rel=0.05)
    # Candidates: the sample's 11 rows plus the zebra rows; older rows matching
    # only the common word are not ranked at all.
    assert len(bounded) == 12


@pytest.mark.parametrize("scan_rows", [1_000, 1], ids=["row-by-row", "trigram-index"])
async def test_trigram_search_finds_misspelt_identifiers_both_ways(
    engram: Engram, scope: dict[str, str], scan_rows: int
) -> None:
    from engram.facts.store import trigram_facts

    other = {"user_id": scope["user_id"] + "-o", "agent_id": scope["agent_id"]}
    wanted = await engram.add("The cluster runs Kubernetes 1.31 on Hetzner", **scope)
    await engram.add("The user prefers tabs over spaces", **scope)
    await engram.add("The cluster runs Kubernetes on Hetzner too", **other)
    async with engram._rt.connection() as conn:
        hits = await trigram_facts(
            conn,
            user_id=scope["user_id"],
            agent_id=scope["agent_id"],
            terms=["Kubernets", "Hetzner"],
            k=5,
            scan_rows=scan_rows,
        )
    assert [h[0] for h in hits] == [wanted.fact_id]
    assert hits[0][1] == pytest.approx(1.0)  # "Hetzner" matches exactly
