"""``FactsService``: semantic memory written and read directly by the application.

``add`` is the one write path that embeds inline (by design: the caller wants
the fact recallable at once).  Facts derived by workers go through
:mod:`engram.jobs.reconcile`, which uses the same store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import plugins
from ..errors import InvalidInputError, NotFoundError
from ..policy import CriticalSlot
from ..validation import check_id, check_metadata, check_positive_int, check_row_id, check_scope, check_text
from . import store
from .models import MAX_FACT_CHARS, Fact, Lineage, LineageNode

if TYPE_CHECKING:
    from ..runtime import Runtime

FACT_STATUSES = ("active", "superseded", "retracted")


def _check_fact_id(value: Any) -> int:
    return check_row_id(value, "fact_id")


def _check_slot(value: Any) -> str | None:
    if value is None:
        return None
    check_id(value, "slot")
    try:
        CriticalSlot(name=value)
    except ValueError:
        raise InvalidInputError(f"slot {value!r} must be lower_snake_case, 1-63 characters") from None
    return str(value)


class FactsService:
    """Direct fact calls: add, read, list, retract, supersede, and lineage."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def add(
        self,
        content: str,
        *,
        agent_id: str,
        user_id: str,
        slot: str | None = None,
        category: str | None = None,
        metadata: dict[str, Any] | None = None,
        confidence: float = 1.0,
    ) -> Fact:
        """Store a fact directly, embedding it now (the one write path that embeds inline).

        With ``slot``, the fact becomes that slot's current value and the previous
        value is superseded (kept, with ``superseded_by`` pointing here).  Adding
        the same text to the same slot again is a no-op that returns the existing fact.
        """
        user_id, agent_id = check_scope(user_id, agent_id)
        content = check_text(content, "content", max_chars=MAX_FACT_CHARS).strip()
        slot = _check_slot(slot)
        if category is not None:
            check_id(category, "category")
        meta = check_metadata(metadata)
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, int | float)
            or not 0 <= confidence <= 1
        ):
            raise InvalidInputError("confidence must be a number between 0 and 1")
        await self._rt.ready()
        (vector,) = await self._rt.embedder().embed([content])
        space = self._rt.embedding_space
        async with self._rt.transaction() as conn:
            previous = None
            if slot is not None:
                previous = await store.active_slot_fact(conn, user_id=user_id, agent_id=agent_id, slot=slot)
                if previous is not None and previous.content.casefold() == content.casefold():
                    return previous
                if previous is not None:
                    await store.retire(conn, user_id=user_id, agent_id=agent_id, fact_id=previous.fact_id)
            fact = await store.insert_fact(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                content=content,
                embedding=vector,
                space=space,
                slot=slot,
                category=category,
                confidence=float(confidence),
                metadata=meta,
            )
            if previous is not None:
                await store.supersede(
                    conn, user_id=user_id, agent_id=agent_id, old_id=previous.fact_id, new_id=fact.fact_id
                )
        plugins.notify("fact_derived", fact=fact)
        return fact

    async def get_fact(self, fact_id: int, *, agent_id: str, user_id: str) -> Fact:
        """One fact with its lineage sources; ``NotFoundError`` outside the caller's scope."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        async with self._rt.connection() as conn:
            found = await store.fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id])
        if not found:
            raise NotFoundError(f"no fact {fact_id} in this scope")
        return found[0]

    async def list_facts(
        self,
        *,
        agent_id: str,
        user_id: str,
        status: str | None = "active",
        slot: str | None = None,
        limit: int = 100,
    ) -> list[Fact]:
        """The scope's facts, newest first.  ``status=None`` lists every status."""
        user_id, agent_id = check_scope(user_id, agent_id)
        if status is not None and status not in FACT_STATUSES:
            raise InvalidInputError(f"status must be one of {FACT_STATUSES} or None")
        slot = _check_slot(slot)
        limit = check_positive_int(limit, "limit", maximum=10_000)
        async with self._rt.connection() as conn:
            return await store.list_facts(
                conn, user_id=user_id, agent_id=agent_id, status=status, slot=slot, limit=limit
            )

    async def retract_fact(self, fact_id: int, *, agent_id: str, user_id: str) -> Fact:
        """Stop a fact from being recalled.  It is kept (status ``retracted``) for lineage."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        async with self._rt.transaction() as conn:
            existing = await store.fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id])
            if not existing:
                raise NotFoundError(f"no fact {fact_id} in this scope")
            await store.retire(conn, user_id=user_id, agent_id=agent_id, fact_id=fact_id, status="retracted")
            (fact,) = await store.fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id])
        return fact

    async def supersede_fact(
        self,
        fact_id: int,
        content: str,
        *,
        agent_id: str,
        user_id: str,
        metadata: dict[str, Any] | None = None,
    ) -> Fact:
        """Replace an active fact with a corrected one; the old one is kept as ``superseded``."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        content = check_text(content, "content", max_chars=MAX_FACT_CHARS).strip()
        meta = check_metadata(metadata)
        (vector,) = await self._rt.embedder().embed([content])
        async with self._rt.transaction() as conn:
            found = await store.fetch_facts(
                conn, user_id=user_id, agent_id=agent_id, fact_ids=[fact_id], with_sources=True
            )
            if not found:
                raise NotFoundError(f"no fact {fact_id} in this scope")
            old = found[0]
            if old.status != "active":
                raise InvalidInputError(
                    f"fact {fact_id} is {old.status}; only active facts can be superseded"
                )
            await store.retire(conn, user_id=user_id, agent_id=agent_id, fact_id=fact_id)
            new = await store.insert_fact(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                content=content,
                embedding=vector,
                space=self._rt.embedding_space,
                slot=old.slot,
                category=old.category,
                confidence=old.confidence,
                task_id=old.task_id,
                metadata=meta or old.metadata,
                sources=old.sources,
            )
            await store.supersede(
                conn, user_id=user_id, agent_id=agent_id, old_id=fact_id, new_id=new.fact_id
            )
        return new

    async def lineage(self, fact_id: int, *, agent_id: str, user_id: str) -> Lineage:
        """A fact's versions (oldest first) and the events and spans each came from."""
        user_id, agent_id = check_scope(user_id, agent_id)
        fact_id = _check_fact_id(fact_id)
        async with self._rt.connection() as conn:
            depth = await store.supersession_chain(conn, user_id=user_id, agent_id=agent_id, fact_id=fact_id)
            if not depth:
                raise NotFoundError(f"no fact {fact_id} in this scope")
            facts = await store.fetch_facts(conn, user_id=user_id, agent_id=agent_id, fact_ids=list(depth))
        nodes = sorted(
            (LineageNode(fact=f, depth=depth[f.fact_id], sources=f.sources) for f in facts),
            key=lambda n: n.depth,
        )
        return Lineage(fact_id=fact_id, nodes=tuple(nodes))
