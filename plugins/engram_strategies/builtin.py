"""The built-in strategies.  They use only public kernel API: the scoped readers
of :class:`engram.recall.context.RecallContext`.

Each declares what the kernel needs to know about it: ``order`` (when it runs
within one recall: cheap, embedding-free ones first, so the query embedding
computes meanwhile), ``uses_embedding`` (whether the recall must compute the
query embedding for it) and ``intent_boosts`` (multipliers on its policy weight
for the intents the router assigns).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from engram import Event, Fact, RecallCandidate, RecallContext

from .hybrid import Neighbourhood, blend, spread


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
    found = await ctx.facts.by_ids([h[0] for h in hits])
    by_id = {f.fact_id: f for f in found}
    return [(by_id[i], s) for i, s in hits if i in by_id]


class CriticalSlots:
    """Pinned: the current value of every critical slot the policy names.  No vectors."""

    name = "critical_slots"
    order = 10
    uses_embedding = False
    intent_boosts: Mapping[str, float] = {}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        wanted = {s.name for s in ctx.policy.critical_slots}
        if not wanted:
            return []
        slots = await ctx.facts.current_slots()
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
    uses_embedding = False
    intent_boosts: Mapping[str, float] = {"task": 2.0}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        latest = await ctx.checkpoints.latest()
        if latest is None:
            return []
        return [
            RecallCandidate(
                key=f"checkpoint:{latest.checkpoint_id}",
                source="checkpoint",
                section="Task checkpoint",
                text=latest.summary,
                score=1.0,
                ids={"checkpoint_id": latest.checkpoint_id, "through_event_id": latest.through_event_id},
                created_at=latest.created_at,
            )
        ]


class RecentLedger:
    """The current task's last events, most recent ranked first."""

    name = "recent_ledger"
    order = 30
    uses_embedding = False
    intent_boosts: Mapping[str, float] = {"task": 2.0, "facts": 0.6}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        events = await ctx.ledger.recent(ctx.policy.recall.recent_turns)
        return [
            _event_candidate(e, 1.0, "Recent conversation", with_task=False)
            for e in reversed(events)
            if not e.redacted
        ]


class FactsKeyword:
    """Facts by full text (OR semantics), plus trigram matches for names and identifiers."""

    name = "facts_keyword"
    order = 40
    uses_embedding = False
    intent_boosts: Mapping[str, float] = {"facts": 1.4}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        hits = await ctx.facts.keyword(ctx.candidates)
        seen = {h[0] for h in hits}
        # Trigrams are the fallback for misspelt names and identifiers.  A large
        # scope whose full-text search already filled the list gains little from
        # them, and there the trigram index is the costliest lookup of a recall.
        if ctx.identifiers and not (ctx.large_scope and len(hits) >= ctx.candidates):
            trigram = await ctx.facts.trigram(ctx.identifiers, ctx.candidates)
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
        ctx.cache["facts_keyword"] = [h[0] for h in hits]
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
    return await _shared_hits(ctx, "ledger_keyword", k, ctx.ledger.keyword)


async def _ledger_vector_hits(ctx: RecallContext, k: int) -> list[tuple[int, float]]:
    """Nearest event vectors of the scope."""
    return await _shared_hits(ctx, "ledger_vector", k, ctx.ledger.nearest)


async def _event_candidates(ctx: RecallContext, hits: list[tuple[int, float]]) -> list[RecallCandidate]:
    if not hits:
        return []
    events = await ctx.ledger.by_ids([h[0] for h in hits])
    by_id = {e.event_id: e for e in events if not e.redacted}
    return [
        _event_candidate(by_id[i], s, "Related conversation", with_task=True) for i, s in hits if i in by_id
    ]


class LedgerSearch:
    """Events anywhere in the scope's ledger that match the query."""

    name = "ledger_search"
    order = 50
    uses_embedding = False
    intent_boosts: Mapping[str, float] = {"quote": 1.3, "task": 1.2}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        return await _event_candidates(ctx, await _ledger_keyword_hits(ctx, ctx.candidates))


class LedgerVector:
    """Events of the scope's ledger by meaning (vectors written by memory workers)."""

    name = "ledger_vector"
    order = 65
    uses_embedding = True
    intent_boosts: Mapping[str, float] = {}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        return await _event_candidates(ctx, await _ledger_vector_hits(ctx, ctx.candidates))


class LedgerHybrid:
    """Events by words and meaning together, each also scored by the turns around
    it and by its task (see :mod:`engram_strategies.hybrid`).  Runs before the
    single-signal ledger strategies, which then reuse its searches."""

    name = "ledger_hybrid"
    order = 48
    uses_embedding = True
    intent_boosts: Mapping[str, float] = {}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        tuning = ctx.policy.recall.hybrid
        pool = max(tuning.pool, ctx.candidates)
        keyword = dict(await _ledger_keyword_hits(ctx, pool))
        similarity = dict(await _ledger_vector_hits(ctx, pool))
        around = await ctx.ledger.neighbourhoods(list(keyword | similarity))
        places = dict(around)
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
            similarity.update(await ctx.ledger.similarities(missing))
        scores = blend(keyword, similarity, keyword_share=tuning.keyword_share)
        ranked = spread(
            scores, places, neighbour_weight=tuning.neighbour_weight, task_weight=tuning.task_weight
        )
        return await _event_candidates(ctx, ranked[: ctx.candidates])


class FactsVector:
    """Facts by cosine similarity of their embeddings (exact or filtered HNSW)."""

    name = "facts_vector"
    order = 60
    uses_embedding = True
    intent_boosts: Mapping[str, float] = {"quote": 0.7, "facts": 1.4}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        hits = await ctx.facts.nearest(ctx.candidates)
        ctx.cache["facts_vector"] = [h[0] for h in hits]
        return [_fact_candidate(f, s) for f, s in await _facts_by_ids(ctx, hits)]


class LongInput:
    """Long-document chunks, labelled with chunk ids and quote hashes."""

    name = "long_input"
    order = 70
    uses_embedding = True
    intent_boosts: Mapping[str, float] = {"quote": 2.5}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        return await ctx.documents.excerpts(ctx.candidates)


class Lineage:
    """The source quotes behind the facts other strategies found best."""

    name = "lineage"
    order = 90
    uses_embedding = False
    intent_boosts: Mapping[str, float] = {"quote": 1.8, "facts": 0.8}

    async def run(self, ctx: RecallContext) -> list[RecallCandidate]:
        fact_ids: list[int] = []
        for key in ("facts_vector", "facts_keyword"):
            for fid in ctx.cache.get(key, [])[:3]:
                if fid not in fact_ids:
                    fact_ids.append(fid)
        if not fact_ids:
            return []
        quotes = await ctx.facts.source_quotes(fact_ids)
        return [
            RecallCandidate(
                key=f"quote:{q.fact_id}:{q.event_id}",
                source="lineage",
                section="Sources",
                text=f'"{q.quote}" (event {q.event_id}, task {q.task_id}, source of fact {q.fact_id})',
                score=1.0 / (i + 1),
                ids={"fact_id": q.fact_id, "event_ids": [q.event_id], "task_id": q.task_id},
                created_at=q.created_at,
            )
            for i, q in enumerate(quotes)
        ]


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
