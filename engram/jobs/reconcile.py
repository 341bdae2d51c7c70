"""Reconciliation: decide what a candidate fact does to the scope's existing facts.

Four outcomes, and never a delete or an in-place edit:

``add``
    Nothing similar is known: insert the fact.
``supersede``
    The candidate replaces a current fact: the same critical slot with a
    different value, or (without a slot) a very similar fact about the same
    subject that says something different ("My editor is vim" then "My editor
    is helix").  The old fact becomes ``superseded`` with ``valid_to`` set and
    ``superseded_by`` pointing at the new one.
``duplicate``
    The same fact is already active (near-identical normalised text, and for
    vector matches a cosine of at least ``duplicate_similarity``): nothing is written.
``stale``
    The candidate would replace a fact that was observed *later* (jobs of one
    task can finish out of order across workers): the newer fact stands.

Callers hold the scope's advisory lock (see :func:`lock_scope`) so two workers
cannot both add the same fact, and slot writes are additionally guarded by the
``facts_one_active_slot`` unique index.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from ..embeddings.space import EmbeddingSpace
from ..facts.models import Fact, FactSource
from ..facts.store import (
    active_slot_fact,
    fetch_facts,
    insert_fact,
    nearest_facts,
    observed_at,
    retire,
    supersede,
)

Action = Literal["add", "supersede", "duplicate", "stale"]

_WORD = re.compile(r"\w+", re.UNICODE)

#: Verbs that end a fact's subject: "the user's editor IS", "user PREFERS".
#: Deliberately small: a wrong subject match would supersede an unrelated fact,
#: while a missed one only leaves two facts active (recall still ranks both).
_PREDICATES = frozenset(
    [
        "is",
        "are",
        "am",
        "was",
        "were",
        "be",
        "prefers",
        "prefer",
        "uses",
        "use",
        "likes",
        "like",
        "loves",
        "love",
        "hates",
        "hate",
        "wants",
        "want",
        "needs",
        "need",
        "lives",
        "live",
        "works",
        "work",
        "has",
        "have",
        "owns",
        "own",
        "speaks",
        "speak",
        "drives",
        "drive",
        "runs",
        "run",
        "deploys",
        "deploy",
        "chose",
        "choose",
        "decided",
        "decide",
    ]
)


@dataclass(frozen=True)
class Thresholds:
    """Similarity cut-offs (cosine, in the configured embedding space)."""

    duplicate_similarity: float = 0.92
    #: With a matching subject, a fact at least this similar is an update of it.
    supersede_similarity: float = 0.80
    neighbours: int = 5


@dataclass(frozen=True)
class PreparedFact:
    """A validated candidate with its embedding and lineage, ready to reconcile."""

    content: str
    embedding: Sequence[float]
    sources: tuple[FactSource, ...]
    slot: str | None = None
    category: str | None = None
    confidence: float = 0.7
    #: Creation time of the newest event it came from (orders late-arriving jobs).
    observed_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    action: Action
    fact: Fact | None = None  # the new fact (add / supersede)
    existing_id: int | None = None  # the fact matched (supersede / duplicate / stale)


def normalise(text: str) -> str:
    """Case-, width- and punctuation-insensitive form used for duplicate checks."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_WORD.findall(folded))


#: Words whose presence or absence does not change what a fact says.
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "that",
        "this",
        "to",
        "of",
        "and",
        "or",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "as",
        "so",
        "now",
        "currently",
        "really",
        "very",
        "also",
        "just",
        "still",
        "user",
        "user",
        "s",
        "s",
        "i",
        "my",
        "me",
        "i",
        "m",
    ]
)


def _stem(word: str) -> str:
    # Crude, but enough to equate "prefer"/"prefers"/"preferred"; numbers stay exact.
    return word if word.isdigit() or len(word) < 5 else word[:5]


def near_identical(a: str, b: str) -> bool:
    """Same words apart from filler and inflection.

    Word-level, not a character ratio: "ticket 1041" and "ticket 1042" are 95%
    alike as strings and yet two different facts.
    """
    na, nb = normalise(a), normalise(b)
    if na == nb:
        return True
    wa, wb = set(na.split()), set(nb.split())
    only_a = {_stem(w) for w in wa - wb if w not in _FILLER}
    only_b = {_stem(w) for w in wb - wa if w not in _FILLER}
    return only_a == only_b


def subject_key(text: str) -> str | None:
    """The words before (and including) the first predicate verb, if it comes early.

    "User's preferred editor is vim" -> "user s preferred editor is".  None when
    no predicate appears in the first seven words: then the fact has no subject
    we can trust, and it is never superseded by similarity alone.
    """
    words = normalise(text).split()
    for i, word in enumerate(words[:7]):
        if word in _PREDICATES:
            return " ".join(words[: i + 1]) if i >= 1 else None
    return None


async def _is_stale(
    conn: asyncpg.Connection, *, user_id: str, agent_id: str, candidate: PreparedFact, existing: Fact
) -> bool:
    if candidate.observed_at is None:
        return False
    seen = await observed_at(conn, user_id=user_id, agent_id=agent_id, fact=existing)
    return seen is not None and candidate.observed_at < seen


async def _insert(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    candidate: PreparedFact,
    origin: str,
    task_id: str | None,
) -> Fact:
    return await insert_fact(
        conn,
        user_id=user_id,
        agent_id=agent_id,
        content=candidate.content,
        embedding=candidate.embedding,
        space=space,
        slot=candidate.slot,
        category=candidate.category,
        confidence=candidate.confidence,
        origin=origin,
        task_id=task_id,
        metadata=candidate.metadata,
        sources=candidate.sources,
    )


async def _replace(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    candidate: PreparedFact,
    origin: str,
    task_id: str | None,
    old: Fact,
) -> Outcome:
    # Retire first: for a slot the unique index allows one active value only.
    if not await retire(conn, user_id=user_id, agent_id=agent_id, fact_id=old.fact_id):
        # Not active any more (cannot happen under the scope lock, but be safe): plain add.
        fact = await _insert(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            space=space,
            candidate=candidate,
            origin=origin,
            task_id=task_id,
        )
        return Outcome("add", fact)
    fact = await _insert(
        conn,
        user_id=user_id,
        agent_id=agent_id,
        space=space,
        candidate=candidate,
        origin=origin,
        task_id=task_id,
    )
    await supersede(conn, user_id=user_id, agent_id=agent_id, old_id=old.fact_id, new_id=fact.fact_id)
    return Outcome("supersede", fact, old.fact_id)


async def reconcile(
    conn: asyncpg.Connection,
    *,
    user_id: str,
    agent_id: str,
    space: EmbeddingSpace,
    candidate: PreparedFact,
    origin: str,
    task_id: str | None,
    thresholds: Thresholds = Thresholds(),
) -> Outcome:
    """Apply one candidate.  Call inside a transaction holding :func:`lock_scope`."""
    args: dict[str, Any] = {
        "user_id": user_id,
        "agent_id": agent_id,
        "space": space,
        "candidate": candidate,
        "origin": origin,
        "task_id": task_id,
    }
    if candidate.slot is not None:
        # Same path as FactsAPI.add: one active value per (user, agent, slot).
        current = await active_slot_fact(conn, user_id=user_id, agent_id=agent_id, slot=candidate.slot)
        if current is None:
            return Outcome("add", await _insert(conn, **args))
        if normalise(current.content) == normalise(candidate.content):
            return Outcome("duplicate", existing_id=current.fact_id)
        if await _is_stale(conn, user_id=user_id, agent_id=agent_id, candidate=candidate, existing=current):
            return Outcome("stale", existing_id=current.fact_id)
        return await _replace(conn, **args, old=current)

    neighbours = await nearest_facts(
        conn,
        user_id=user_id,
        agent_id=agent_id,
        space=space,
        embedding=candidate.embedding,
        k=thresholds.neighbours,
    )
    close = [(fid, sim) for fid, sim in neighbours if sim >= thresholds.supersede_similarity]
    if not close:
        return Outcome("add", await _insert(conn, **args))
    facts = {
        f.fact_id: f
        for f in await fetch_facts(
            conn, user_id=user_id, agent_id=agent_id, fact_ids=[fid for fid, _ in close], with_sources=False
        )
    }
    for fid, sim in close:
        existing = facts.get(fid)
        if existing is None:
            continue
        if sim >= thresholds.duplicate_similarity and near_identical(existing.content, candidate.content):
            return Outcome("duplicate", existing_id=fid)
    subject = subject_key(candidate.content)
    if subject is not None:
        for fid, _sim in close:
            existing = facts.get(fid)
            if existing is None or existing.slot is not None:
                continue  # slot facts change only through their slot
            if candidate.category and existing.category and candidate.category != existing.category:
                continue
            if subject_key(existing.content) != subject:
                continue
            if near_identical(existing.content, candidate.content):
                return Outcome("duplicate", existing_id=fid)
            if await _is_stale(
                conn, user_id=user_id, agent_id=agent_id, candidate=candidate, existing=existing
            ):
                return Outcome("stale", existing_id=fid)
            return await _replace(conn, **args, old=existing)
    return Outcome("add", await _insert(conn, **args))
