"""``recall`` and ``trace_recall``: route, run strategies, fuse, pack, trace."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import plugins
from ..errors import InvalidInputError
from ..facts import FactsAPI
from ..interfaces import RecallCandidate
from ..ledger import check_task_owner
from ..policy import BUILTIN_STRATEGIES, MemoryPolicy
from ..validation import MAX_QUERY_CHARS, check_id, check_positive_int, check_scope, check_text
from .context import RecallContext
from .fusion import fuse, pack
from .models import RecallResult, RecallTrace, StrategyRun
from .router import INTENT_BOOSTS, DefaultRouter, Router
from .terms import identifier_terms, missing_terms, salient_terms

log = logging.getLogger("engram.recall")

MAX_LIMIT = 200
MAX_EXPECTED_TERMS = 50
QUERY_CACHE_SIZE = 2048
VECTOR_STRATEGIES = frozenset({"facts_vector", "ledger_vector", "ledger_hybrid", "long_input"})


def _check_expected_terms(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInputError("expected_terms must be a list of str")
    if len(value) > MAX_EXPECTED_TERMS:
        raise InvalidInputError(f"expected_terms has {len(value)} entries; the limit is {MAX_EXPECTED_TERMS}")
    return [check_text(t, "expected_terms entry", max_chars=200) for t in value]


#: Scopes with more facts, events or chunks than this get plans made for their size.
LARGE_SCOPE_ROWS = 1_000


async def choose_plan_mode(conn: Any, user_id: str, agent_id: str) -> bool:
    """Pick how this recall's statements are planned, in the round trip that a
    plain ``SET LOCAL`` would cost anyway.

    A generic plan of a prepared statement assumes an average tenant: right for
    the many small scopes, where it also saves planning the larger statements
    again on every recall (about a millisecond each); wrong for a huge tenant,
    whose statements must be planned for their actual parameters.  The setting
    is transaction-local (PgBouncer-safe) and never touches the write path.
    Returns whether the scope is large.
    """
    mode: str = await conn.fetchval(
        f"""SELECT set_config('plan_cache_mode', CASE
                WHEN (SELECT count(*) FROM (SELECT 1 FROM facts WHERE user_id = $1 AND agent_id = $2
                                            LIMIT {LARGE_SCOPE_ROWS + 1}) f) > {LARGE_SCOPE_ROWS}
                  OR (SELECT count(*) FROM (SELECT 1 FROM events WHERE user_id = $1 AND agent_id = $2
                                            LIMIT {LARGE_SCOPE_ROWS + 1}) e) > {LARGE_SCOPE_ROWS}
                  OR (SELECT count(*) FROM (SELECT 1 FROM long_input_chunks
                                            WHERE user_id = $1 AND agent_id = $2
                                            LIMIT {LARGE_SCOPE_ROWS + 1}) c) > {LARGE_SCOPE_ROWS}
                THEN 'force_custom_plan' ELSE 'force_generic_plan' END, true)""",
        user_id,
        agent_id,
    )
    return mode == "force_custom_plan"


class RecallAPI(FactsAPI):
    """The read path run on every turn."""

    router: Router = DefaultRouter()
    _query_cache: OrderedDict[tuple[str, str], list[float]] | None = None

    async def _embed_query(self, query: str) -> list[float]:
        """Query embeddings through a small LRU cache (agents repeat themselves)."""
        if self._query_cache is None:
            self._query_cache = OrderedDict()
        embedder = self.get_embedder()
        key = (embedder.name, query)
        cached = self._query_cache.get(key)
        if cached is not None:
            self._query_cache.move_to_end(key)
            return cached
        vector = await embedder.embed_query(query)
        self._query_cache[key] = vector
        if len(self._query_cache) > QUERY_CACHE_SIZE:
            self._query_cache.popitem(last=False)
        return vector

    async def recall(
        self,
        query: str,
        *,
        agent_id: str,
        user_id: str,
        task_id: str | None = None,
        limit: int | None = None,
        expected_terms: Sequence[str] | None = None,
        memory_policy: str | Path | MemoryPolicy | None = None,
    ) -> RecallResult:
        """Build the prompt-ready memory block for ``query``.

        The same selection as :meth:`trace_recall`, without the diagnostics.
        """
        trace = await self.trace_recall(
            query,
            agent_id=agent_id,
            user_id=user_id,
            task_id=task_id,
            limit=limit,
            expected_terms=expected_terms,
            memory_policy=memory_policy,
        )
        return RecallResult(
            query=trace.query, context=trace.context, items=trace.items, token_count=trace.token_count
        )

    async def trace_recall(
        self,
        query: str,
        *,
        agent_id: str,
        user_id: str,
        task_id: str | None = None,
        limit: int | None = None,
        expected_terms: Sequence[str] | None = None,
        memory_policy: str | Path | MemoryPolicy | None = None,
    ) -> RecallTrace:
        """Recall with a trace: routed intent, per-strategy counts and timings, and
        ``missing_expected_terms`` (salient query terms and ``expected_terms`` that
        appear nowhere in the context)."""
        started = time.perf_counter()
        user_id, agent_id = check_scope(user_id, agent_id)
        query = check_text(query, "query", max_chars=MAX_QUERY_CHARS)
        if task_id is not None:
            task_id = check_id(task_id, "task_id")
        policy = self._policy_for(memory_policy)
        limit = (
            policy.recall.default_limit
            if limit is None
            else check_positive_int(limit, "limit", maximum=MAX_LIMIT)
        )
        expected = _check_expected_terms(expected_terms)
        strategies = plugins.recall_strategies()

        intent = self.router.route(query, task_id=task_id, policy=policy)
        terms = salient_terms(query)
        boosts = INTENT_BOOSTS.get(intent, {})
        weights = {
            name: w * boosts.get(name, 1.0)
            for name, w in policy.recall.weights.items()
            if w > 0 and name in strategies
        }
        if "critical_slots" in strategies and policy.critical_slots:
            weights.setdefault("critical_slots", 1.0)
        await self._get_pool()
        embedding_task: asyncio.Task[list[float]] | None = None
        embed_timing = {"ms": 0.0}

        async def timed_embedding() -> list[float]:
            t0 = time.perf_counter()
            vector = await self._embed_query(query)
            embed_timing["ms"] = (time.perf_counter() - t0) * 1000
            return vector

        if VECTOR_STRATEGIES & set(weights):
            # Started now, awaited by the first vector strategy: keyword and ledger
            # strategies run while the model works.
            embedding_task = asyncio.create_task(timed_embedding())
        runs: list[StrategyRun] = []
        ranked: dict[str, list[RecallCandidate]] = {}
        try:
            async with self._connection() as conn, conn.transaction(readonly=True):
                large_scope = await choose_plan_mode(conn, user_id, agent_id)
                if task_id is not None:
                    await check_task_owner(conn, task_id, user_id, agent_id)
                ctx = RecallContext(
                    client=self,
                    conn=conn,
                    query=query,
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    policy=policy,
                    intent=intent,
                    limit=limit,
                    candidates=max(10, limit * 2),
                    terms=terms,
                    identifiers=identifier_terms(query),
                    large_scope=large_scope,
                    space=self.embedding_space,
                    _embedding=embedding_task,
                )
                order = sorted(weights, key=lambda n: (getattr(strategies[n], "order", 50), n))
                for name in order:
                    t0 = time.perf_counter()
                    error = None
                    try:
                        if name in BUILTIN_STRATEGIES:
                            found = list(await strategies[name].run(ctx))
                        else:
                            # A plugin's SQL error must not abort the shared transaction
                            # for the strategies after it: give it a savepoint.
                            async with conn.transaction():
                                found = list(await strategies[name].run(ctx))
                    except Exception as exc:  # one broken strategy must not sink recall
                        log.exception("recall strategy %s failed", name)
                        found, error = [], f"{type(exc).__name__}: {exc}"
                    ranked[name] = found
                    runs.append(
                        StrategyRun(
                            name=name,
                            weight=round(weights[name], 4),
                            candidates=len(found),
                            ms=round((time.perf_counter() - t0) * 1000, 3),
                            error=error,
                        )
                    )
        finally:
            if embedding_task is not None and not embedding_task.done():
                embedding_task.cancel()
        embedding_ms = embed_timing["ms"]

        fused = fuse(
            ranked,
            weights,
            rrf_k=policy.recall.rrf_k,
            half_life_days=policy.recall.recency_half_life_days,
        )
        chosen, context, tokens = pack(fused, limit=limit, token_budget=policy.recall.token_budget)
        selected: dict[str, int] = {}
        for item in chosen:
            for s in item.strategies:
                selected[s] = selected.get(s, 0) + 1
        runs = [r.model_copy(update={"selected": selected.get(r.name, 0)}) for r in runs]
        wanted = list(dict.fromkeys([*terms, *expected]))
        trace = RecallTrace(
            query=query,
            context=context,
            items=tuple(chosen),
            token_count=tokens,
            user_id=user_id,
            agent_id=agent_id,
            task_id=task_id,
            intent=intent,
            policy=policy.name,
            strategies=tuple(runs),
            token_budget=policy.recall.token_budget,
            embedding_ms=round(embedding_ms, 3),
            total_ms=round((time.perf_counter() - started) * 1000, 3),
            missing_expected_terms=tuple(missing_terms(wanted, context)),
        )
        plugins.notify("recall_traced", trace=trace)
        return trace
