"""Weighted reciprocal-rank fusion, recency, de-duplication and packing.

The context block has stable sections in a fixed order, so prompts built on it
are predictable and diffable:

    ## Pinned facts            critical-slot values, always first
    ## Task checkpoint         the task's latest summary
    ## Relevant facts          semantic memory
    ## Recent conversation     the current task's last turns, oldest first
    ## Related conversation    other ledger events that match the query
    ## Document excerpts       long-input chunks, labelled with chunk_id and quote_hash
    ## Sources                 lineage quotes behind recalled facts

Empty sections are omitted.  Each section's lines are ordered by fused score,
except the recent conversation, which keeps ledger order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..chunking import estimate_tokens
from ..interfaces import RecallCandidate
from .models import RecallItem

SECTION_ORDER = (
    "Pinned facts",
    "Task checkpoint",
    "Relevant facts",
    "Recent conversation",
    "Related conversation",
    "Document excerpts",
    "Sources",
)
CHRONOLOGICAL_SECTIONS = frozenset({"Recent conversation"})
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


@dataclass
class _Entry:
    cand: RecallCandidate
    best: tuple[float, str]
    score: float = 0.0
    strategies: list[str] = field(default_factory=list)
    #: Position in the pinning strategy's list: pinned items keep the policy's slot order.
    pin_rank: int = 0


def fuse(
    ranked: Mapping[str, Sequence[RecallCandidate]],
    weights: Mapping[str, float],
    *,
    rrf_k: int,
    half_life_days: float,
    now: datetime | None = None,
) -> list[RecallItem]:
    """Fuse strategies' ranked lists into one list, best first.

    score = Σ_strategies weight / (rrf_k + rank), times a gentle recency factor
    (between 0.85 and 1.0, halving its boost every ``half_life_days``).  Items with
    the same key, or the same normalised text, are merged.
    """
    now = now or datetime.now(UTC)
    merged: dict[str, _Entry] = {}
    by_text: dict[str, str] = {}
    for strategy, candidates in ranked.items():
        weight = weights.get(strategy, 0.0)
        for rank, cand in enumerate(candidates, start=1):
            contribution = weight / (rrf_k + rank)
            norm = _norm(cand.text)
            key = by_text.setdefault(norm, cand.key)
            entry = merged.get(key)
            if entry is None:
                entry = merged[key] = _Entry(cand=cand, best=(contribution, strategy))
            entry.score += contribution
            if strategy not in entry.strategies:
                entry.strategies.append(strategy)
            if contribution > entry.best[0]:
                entry.best = (contribution, strategy)
            if cand.pinned and not entry.cand.pinned:
                entry.cand = cand
            if cand.pinned:
                entry.pin_rank = rank
    items: list[RecallItem] = []
    pin_order: dict[str, int] = {}
    for key, entry in merged.items():
        if entry.cand.pinned:
            pin_order[key] = entry.pin_rank
        cand, score = entry.cand, entry.score
        if cand.created_at is not None:
            age_days = max(0.0, (now - cand.created_at).total_seconds() / 86400)
            score *= 0.85 + 0.15 * math.pow(0.5, age_days / half_life_days)
        items.append(
            RecallItem(
                key=key,
                source=cand.source,
                section=cand.section,
                text=cand.text,
                score=round(score, 6),
                strategy=entry.best[1],
                strategies=tuple(entry.strategies),
                ids=dict(cand.ids),
                created_at=cand.created_at,
                pinned=cand.pinned,
            )
        )
    items.sort(key=lambda i: (not i.pinned, pin_order.get(i.key, 0), -i.score, i.key))
    return items


def _line(item: RecallItem) -> str:
    return item.text if item.section in ("Task checkpoint",) else f"- {item.text}"


def render(items: Sequence[RecallItem]) -> str:
    """The context block for already-selected items."""
    sections: dict[str, list[RecallItem]] = {}
    for item in items:
        sections.setdefault(item.section, []).append(item)
    blocks: list[str] = []
    for name in [*SECTION_ORDER, *sorted(set(sections) - set(SECTION_ORDER))]:
        members = sections.get(name)
        if not members:
            continue
        if name in CHRONOLOGICAL_SECTIONS:
            members = sorted(members, key=lambda i: (i.created_at or datetime.min.replace(tzinfo=UTC), i.key))
        blocks.append(f"## {name}\n" + "\n".join(_line(i) for i in members))
    return "\n\n".join(blocks)


def pack(items: Sequence[RecallItem], *, limit: int, token_budget: int) -> tuple[list[RecallItem], str, int]:
    """Choose items for the block and render it: (items, context, token count).

    Pinned first, then by score, within budget and limit.

    Pinned items are not counted against ``limit``; if pinned items alone would
    overflow the budget, the lowest-scored of them are the ones left out, and an
    item that does not fit is skipped while smaller ones may still fit.
    """
    chosen: list[RecallItem] = []
    used = 0
    unpinned = 0
    for item in items:
        if not item.pinned and unpinned >= limit:
            continue
        cost = estimate_tokens(_line(item)) + 2  # bullet and newline
        if used + cost > token_budget:
            continue
        chosen.append(item)
        used += cost
        if not item.pinned:
            unpinned += 1
    rendered = render(chosen)
    return chosen, rendered, estimate_tokens(rendered)
