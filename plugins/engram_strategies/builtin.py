"""The built-in strategies.  ``order`` decides when each runs within one recall:
cheap, embedding-free ones first, so the query embedding computes meanwhile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from engram import facts as facts_sql
from engram import ledger as ledger_sql
from engram.interfaces import RecallCandidate
from engram.models import Event, Fact
from engram.recall.context import RecallContext


def _fact_candidate(
    fact: Fact, score: float, section: str = "Relevant facts", pinned: bool = False
) -> RecallCandidate:
    return RecallCandidate(
        key=f"fact:{fact.fact_id}",
        source="slot" if pinned else "fact",
        section=section,
        text=fact.content,
        score=score,
        ids={"fact_id": fact.fact_id, **({"slot": fact.slot} if fact.slot else {})},
        created_at=fact.created_at,
        pinned=pinned,
    )


def _event_text(event: Event, *, with_task: bool) -> str:
    when = event.created_at.strftime("%Y-%m-%d")
    label = f"{when}, task {event.task_id}" if with_task else when
    speaker = event.metadata.get("speaker") if isinstance(event.metadata, dict) else None
    who = f"{event.role} ({speaker})" if speaker else event.role
    return f"[{label}] {who}: {event.content}"


def _event_candidate(event: Event, score: float, section: str, *, with_task: bool) -> RecallCandidate:
    return RecallCandidate(
        key=f"event:{event.event_id}",
        source="event",
        section=section,
        text=_event_text(event, with_task=with_task),
        score=score,
        ids={"event_ids": [event.event_id], "task_id": event.task_id},
        created_at=event.created_at,
    )


async def _facts_by_ids(ctx: RecallContext, hits: list[tuple[int, float]]) -> list[tuple[Fact, float]]:
    if not hits:
        return []
    found = await facts_sql.fetch_facts(
        ctx.conn,
        user_id=ctx.user_id,
        agent_id=ctx.agent_id,
        fact_ids=[h[0] for h in hits],
        with_sources=False,
    )
    by_id = {f.fact_id: f for f in found}
    return [(by_id[i], s) for i, s in hits if i in by_id]


class CriticalSlots:
    """Pinned: the current value of every critical slot the policy names.  No vectors."""

    name = "critical_slots"
    order = 10

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        wanted = {s.name for s in ctx.policy.critical_slots}
        if not wanted:
            return []
        slots = await facts_sql.current_slots(ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id)
        order = [s.name for s in ctx.policy.critical_slots]
        return [
            _fact_candidate(slots[name], 1.0, section="Pinned facts", pinned=True)
            for name in order
            if name in slots
        ]


class Checkpoint:
    """The current task's latest checkpoint summary."""

    name = "checkpoint"
    order = 20

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        if ctx.task_id is None:
            return []
        from engram.jobs.derive import latest_checkpoint_row

        row = await latest_checkpoint_row(
            ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id, task_id=ctx.task_id
        )
        if row is None:
            return []
        return [
            RecallCandidate(
                key=f"checkpoint:{row['checkpoint_id']}",
                source="checkpoint",
                section="Task checkpoint",
                text=row["summary"],
                score=1.0,
                ids={"checkpoint_id": row["checkpoint_id"], "through_event_id": row["through_event_id"]},
                created_at=row["created_at"],
            )
        ]


class RecentLedger:
    """The current task's last events, most recent ranked first."""

    name = "recent_ledger"
    order = 30

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        n = ctx.policy.recall.recent_turns
        if ctx.task_id is None or n == 0:
            return []
        events = await ledger_sql.recent_task_events(
            ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id, task_id=ctx.task_id, limit=n
        )
        return [
            _event_candidate(e, 1.0, "Recent conversation", with_task=False)
            for e in reversed(events)
            if not e.redacted
        ]


class FactsKeyword:
    """Facts by full text (OR semantics), plus trigram matches for names and identifiers."""

    name = "facts_keyword"
    order = 40

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        hits = await facts_sql.keyword_facts(
            ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id, query=ctx.query, k=ctx.candidates
        )
        seen = {h[0] for h in hits}
        # Trigrams are the fallback for misspelt names and identifiers.  A large
        # scope whose full-text search already filled the list gains little from
        # them, and there the trigram index is the costliest lookup of a recall.
        if ctx.identifiers and not (ctx.large_scope and len(hits) >= ctx.candidates):
            trigram = await facts_sql.trigram_facts(
                ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id, terms=ctx.identifiers, k=ctx.candidates
            )
            # Interleave so a strong fuzzy identifier match is not buried under
            # many weak full-text matches.
            merged: list[tuple[int, float]] = []
            extra = [t for t in trigram if t[0] not in seen]
            for i in range(max(len(hits), len(extra))):
                if i < len(hits):
                    merged.append(hits[i])
                if i < len(extra):
                    merged.append(extra[i])
            hits = merged[: ctx.candidates]
        ctx_cache(ctx)["facts_keyword"] = [h[0] for h in hits]
        return [_fact_candidate(f, s) for f, s in await _facts_by_ids(ctx, hits)]


async def _shared_hits(
    ctx: RecallContext, key: str, k: int, search: Callable[[int], Awaitable[list[tuple[int, float]]]]
) -> list[tuple[int, float]]:
    """One search per recall, shared by the strategies that need it: a later
    caller wanting no more than was fetched pays nothing."""
    cached = ctx.cache.get(key)
    if cached is not None and cached[0] >= k:
        return list(cached[1][:k])
    found = await search(k)
    ctx.cache[key] = (k, found)
    return found


async def _ledger_keyword_hits(ctx: RecallContext, k: int) -> list[tuple[int, float]]:
    """Keyword hits over the scope's ledger (not redacted)."""
    from engram.keyword import keyword_search

    async def search(n: int) -> list[tuple[int, float]]:
        hits = await keyword_search(
            ctx.conn,
            table="events",
            id_column="event_id",
            user_id=ctx.user_id,
            agent_id=ctx.agent_id,
            query=ctx.query,
            k=n,
            extra_filter="redacted_at IS NULL",
        )
        return [(int(i), s) for i, s in hits]

    return await _shared_hits(ctx, "ledger_keyword", k, search)


async def _ledger_vector_hits(ctx: RecallContext, k: int) -> list[tuple[int, float]]:
    """Nearest event vectors of the scope."""
    from engram.vectors import nearest

    async def search(n: int) -> list[tuple[int, float]]:
        return await nearest(
            ctx.conn,
            table="event_vectors",
            id_column="event_id",
            user_id=ctx.user_id,
            agent_id=ctx.agent_id,
            space=ctx.space,
            embedding=await ctx.query_embedding(),
            k=n,
        )

    return await _shared_hits(ctx, "ledger_vector", k, search)


async def _event_candidates(ctx: RecallContext, hits: list[tuple[int, float]]) -> list[RecallCandidate]:
    if not hits:
        return []
    events = await ledger_sql.events_by_ids(
        ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id, event_ids=[h[0] for h in hits]
    )
    by_id = {e.event_id: e for e in events if not e.redacted}
    return [
        _event_candidate(by_id[i], s, "Related conversation", with_task=True) for i, s in hits if i in by_id
    ]


class LedgerSearch:
    """Events anywhere in the scope's ledger that match the query."""

    name = "ledger_search"
    order = 50

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        return await _event_candidates(ctx, await _ledger_keyword_hits(ctx, ctx.candidates))


class LedgerVector:
    """Events of the scope's ledger by meaning (vectors written by memory workers)."""

    name = "ledger_vector"
    order = 65

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        return await _event_candidates(ctx, await _ledger_vector_hits(ctx, ctx.candidates))


class LedgerHybrid:
    """Events by words and meaning together, each also scored by the turns around
    it and by its task (see :mod:`engram.recall.hybrid`).  Runs before the
    single-signal ledger strategies, which then reuse its searches."""

    name = "ledger_hybrid"
    order = 48

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        from engram.recall.hybrid import Neighbourhood, blend, spread
        from engram.vectors import similarities

        tuning = ctx.policy.recall.hybrid
        pool = max(tuning.pool, ctx.candidates)
        keyword = dict(await _ledger_keyword_hits(ctx, pool))
        similarity = dict(await _ledger_vector_hits(ctx, pool))
        around = await ledger_sql.event_neighbours(
            ctx.conn, user_id=ctx.user_id, agent_id=ctx.agent_id, event_ids=list(keyword | similarity)
        )
        places = {i: Neighbourhood(task, prev, nxt) for i, (task, prev, nxt) in around.items()}
        # Neighbours found only through an anchor sit in the anchor's task, next
        # to it (the answer after a matching question borrows from the question);
        # their similarity is looked up exactly below.
        for anchor, place in list(places.items()):
            if place.prev_id is not None and place.prev_id not in around:
                known = places.get(place.prev_id, Neighbourhood(place.task_id, None, None))
                places[place.prev_id] = Neighbourhood(place.task_id, known.prev_id, anchor)
            if place.next_id is not None and place.next_id not in around:
                known = places.get(place.next_id, Neighbourhood(place.task_id, None, None))
                places[place.next_id] = Neighbourhood(place.task_id, anchor, known.next_id)
        missing = [i for i in places if i not in similarity]
        if missing:
            similarity.update(
                await similarities(
                    ctx.conn,
                    table="event_vectors",
                    id_column="event_id",
                    user_id=ctx.user_id,
                    agent_id=ctx.agent_id,
                    space=ctx.space,
                    embedding=await ctx.query_embedding(),
                    ids=missing,
                )
            )
        scores = blend(keyword, similarity, keyword_share=tuning.keyword_share)
        ranked = spread(
            scores, places, neighbour_weight=tuning.neighbour_weight, task_weight=tuning.task_weight
        )
        return await _event_candidates(ctx, ranked[: ctx.candidates])


class FactsVector:
    """Facts by cosine similarity of their embeddings (exact or filtered HNSW)."""

    name = "facts_vector"
    order = 60

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        vector = await ctx.query_embedding()
        hits = await facts_sql.nearest_facts(
            ctx.conn,
            user_id=ctx.user_id,
            agent_id=ctx.agent_id,
            space=ctx.space,
            embedding=vector,
            k=ctx.candidates,
        )
        ctx_cache(ctx)["facts_vector"] = [h[0] for h in hits]
        return [_fact_candidate(f, s) for f, s in await _facts_by_ids(ctx, hits)]


class LongInput:
    """Long-document chunks; filled in by the long-input capability when installed."""

    name = "long_input"
    order = 70

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        search = getattr(ctx.client, "_long_input_candidates", None)
        if search is None:
            return []
        found: list[RecallCandidate] = await search(ctx)
        return found


class Lineage:
    """The source quotes behind the facts other strategies found best."""

    name = "lineage"
    order = 90

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        cache = ctx_cache(ctx)
        fact_ids: list[int] = []
        for key in ("facts_vector", "facts_keyword"):
            for fid in cache.get(key, [])[:3]:
                if fid not in fact_ids:
                    fact_ids.append(fid)
        if not fact_ids:
            return []
        rows = await ctx.conn.fetch(
            """SELECT s.fact_id, s.event_id, s.quote, e.task_id, e.created_at
               FROM fact_sources s JOIN events e ON e.user_id = s.user_id AND e.event_id = s.event_id
               WHERE s.user_id = $1 AND s.agent_id = $2 AND s.fact_id = ANY($3::bigint[])
                 AND s.quote <> '' AND e.redacted_at IS NULL
               ORDER BY array_position($3::bigint[], s.fact_id), s.event_id""",
            ctx.user_id,
            ctx.agent_id,
            fact_ids,
        )
        return [
            RecallCandidate(
                key=f"quote:{r['fact_id']}:{r['event_id']}",
                source="lineage",
                section="Sources",
                text=f'"{r["quote"]}" (event {r["event_id"]}, task {r["task_id"]}, source of fact {r["fact_id"]})',
                score=1.0 / (i + 1),
                ids={"fact_id": r["fact_id"], "event_ids": [r["event_id"]], "task_id": r["task_id"]},
                created_at=r["created_at"],
            )
            for i, r in enumerate(rows)
        ]


def ctx_cache(ctx: RecallContext) -> dict[str, Any]:
    return ctx.cache


BUILTIN_STRATEGIES = (
    CriticalSlots(),
    Checkpoint(),
    RecentLedger(),
    FactsKeyword(),
    LedgerSearch(),
    FactsVector(),
    LedgerVector(),
    LedgerHybrid(),
    LongInput(),
    Lineage(),
)
