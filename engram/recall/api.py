"""``recall`` and ``trace_recall``: route, run strategies, fuse, pack, trace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from .. import plugins
from ..errors import InvalidInputError
from ..facts import store as facts_store
from ..interfaces import RecallCandidate, RecallStrategy
from ..ledger import store as ledger_store
from ..longinput import store as longinput_store
from ..policy import MemoryPolicy
from ..validation import MAX_QUERY_CHARS, check_id, check_positive_int, check_scope, check_text
from .context import RecallContext
from .fusion import fuse, pack
from .models import RecallResult, RecallTrace, StrategyRun
from .router import DefaultRouter, Router
from .terms import bounded_query_terms, bounded_query_text, identifier_terms, missing_terms

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger("engram.recall")

MAX_LIMIT = 200
MAX_EXPECTED_TERMS = 50


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


async def choose_plan_mode(conn: asyncpg.Connection, user_id: str, agent_id: str) -> bool:
    """Pick how this recall's statements are planned, in the round trip that a
    plain ``SET LOCAL`` would cost anyway.

    A generic plan of a prepared statement assumes an average tenant: right for
    the many small scopes, where it also saves planning the larger statements
    again on every recall (about a millisecond each); wrong for a huge tenant,
    whose statements must be planned for their actual parameters.  The setting
    is transaction-local (PgBouncer-safe) and never touches the write path.
    Returns whether the scope is large.
    """
    over = LARGE_SCOPE_ROWS + 1
    probes = [
        facts_store.scope_size_sql(over),
        ledger_store.scope_size_sql(over),
        longinput_store.scope_size_sql(over),
    ]
    large = " OR ".join(f"{probe} > {LARGE_SCOPE_ROWS}" for probe in probes)
    mode: str = await conn.fetchval(
        f"""SELECT set_config('plan_cache_mode',
                CASE WHEN {large} THEN 'force_custom_plan' ELSE 'force_generic_plan' END, true)""",
        user_id,
        agent_id,
    )
    return mode == "force_custom_plan"


def strategy_order(strategy: RecallStrategy) -> int:
    """When a strategy runs within a recall (lower first; default 50)."""
    order = getattr(strategy, "order", 50)
    return order if isinstance(order, int) else 50


def strategy_uses_embedding(strategy: RecallStrategy) -> bool:
    """Whether a strategy needs the query embedding.  A strategy that does not say
    gets one (the safe default: only the cost of an embedding it may not use)."""
    return bool(getattr(strategy, "uses_embedding", True))


def strategy_boost(strategy: RecallStrategy, intent: str) -> float:
    """The strategy's multiplier on its policy weight for ``intent`` (default 1)."""
    boosts = getattr(strategy, "intent_boosts", None) or {}
    value = boosts.get(intent, 1.0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 1.0


class RecallService:
    """The read path run on every turn."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        #: Any object with ``route(query, *, task_id, policy) -> str``.
        self.router: Router = DefaultRouter()

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
        policy = self._rt.policy_for(memory_policy)
        limit = (
            policy.recall.default_limit
            if limit is None
            else check_positive_int(limit, "limit", maximum=MAX_LIMIT)
        )
        expected = _check_expected_terms(expected_terms)
        strategies = plugins.recall_strategies()

        intent = self.router.route(query, task_id=task_id, policy=policy)
        # Bounded: a query of the allowed maximum size (about 1,300 distinct words)
        # must cost a small multiple of a normal one, so searches and the
        # missing-term check get at most MAX_SEARCH_TERMS of its words.
        terms = bounded_query_terms(query)
        weights = {
            name: w * strategy_boost(strategies[name], intent)
            for name, w in policy.recall.weights.items()
            if w > 0 and name in strategies
        }
        if "critical_slots" in strategies and policy.critical_slots:
            weights.setdefault("critical_slots", 1.0)
        await self._rt.ready()
        embedding_task: asyncio.Task[list[float]] | None = None
        embed_timing = {"ms": 0.0}

        async def timed_embedding() -> list[float]:
            t0 = time.perf_counter()
            vector = await self._rt.embed_query(query)
            embed_timing["ms"] = (time.perf_counter() - t0) * 1000
            return vector

        if any(strategy_uses_embedding(strategies[name]) for name in weights):
            # Started now, awaited by the first vector strategy: keyword and ledger
            # strategies run while the model works.
            embedding_task = asyncio.create_task(timed_embedding())
        ranked: dict[str, list[RecallCandidate]] = {}
        try:
            async with self._rt.connection() as conn:
                runs = await self._run_strategies(
                    conn,
                    strategies,
                    weights,
                    query=query,
                    user_id=user_id,
                    agent_id=agent_id,
                    task_id=task_id,
                    policy=policy,
                    intent=intent,
                    limit=limit,
                    terms=terms,
                    embedding=embedding_task,
                    ranked=ranked,
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

    async def _run_strategies(
        self,
        conn: asyncpg.Connection,
        strategies: dict[str, RecallStrategy],
        weights: dict[str, float],
        *,
        query: str,
        user_id: str,
        agent_id: str,
        task_id: str | None,
        policy: MemoryPolicy,
        intent: str,
        limit: int,
        terms: list[str],
        embedding: asyncio.Task[list[float]] | None,
        ranked: dict[str, list[RecallCandidate]],
    ) -> list[StrategyRun]:
        """Run the weighted strategies in order on one read-only transaction.

        Every strategy is treated alike: there is no savepoint per strategy (two
        extra round trips each on every recall); instead, when one fails, the
        transaction is rolled back and a fresh one is opened for the strategies
        after it, so a failed SQL statement never poisons the rest of the recall.
        """
        runs: list[StrategyRun] = []
        tx = conn.transaction(readonly=True)
        await tx.start()
        try:
            large_scope = await choose_plan_mode(conn, user_id, agent_id)
            ctx = RecallContext(
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
                search_query=bounded_query_text(query),
                large_scope=large_scope,
                space=self._rt.embedding_space,
                _embedding=embedding,
            )
            for name in sorted(weights, key=lambda n: (strategy_order(strategies[n]), n)):
                t0 = time.perf_counter()
                error = None
                try:
                    found = list(await strategies[name].run(ctx))
                except Exception as exc:  # one broken strategy must not sink recall
                    log.exception("recall strategy %s failed", name)
                    found, error = [], f"{type(exc).__name__}: {exc}"
                    await tx.rollback()
                    tx = conn.transaction(readonly=True)
                    await tx.start()
                    await choose_plan_mode(conn, user_id, agent_id)
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
        except BaseException:
            # The transaction may already be gone with its connection; the error
            # that got us here is the one worth reporting.
            with contextlib.suppress(Exception):
                await tx.rollback()
            raise
        await tx.commit()
        return runs
