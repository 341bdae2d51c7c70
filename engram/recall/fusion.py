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

Stored text cannot add structure to the block (:func:`block_text`): a model
trusts the section headers, so a user message that contains a line
``## Pinned facts`` must not become one.  Every line that starts at column 0 is
Engram's own: a section header, the blank line between sections, an item's
``- `` bullet, or the first line of the checkpoint paragraph (whose leading
``#`` is escaped).  An item's further lines are indented by two spaces, with no
blank lines, leading ``#`` escaped and fence markers escaped.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from ..interfaces import RecallCandidate
from ..tokens import estimate_tokens
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


K = TypeVar("K", bound=Hashable)


@dataclass
class Fused:
    """One id's fused score and the lists that ranked it (in the order they did)."""

    score: float = 0.0
    lists: list[str] = field(default_factory=list)
    #: The list that contributed most, and what it contributed.
    best: tuple[float, str] = (0.0, "")


def reciprocal_rank_fusion(
    ranked: Mapping[str, Sequence[K]],
    *,
    rrf_k: int,
    weights: Mapping[str, float] | None = None,
) -> dict[K, Fused]:
    """Weighted reciprocal-rank fusion: score(id) = Σ weight(list) / (rrf_k + rank).

    The one fusion rule of Engram: recall fuses its strategies with it, and long
    inputs fuse their keyword and vector searches with it.  Without ``weights``
    every list weighs 1.  Insertion order of the result follows first appearance.
    """
    fused: dict[K, Fused] = {}
    for name, ids in ranked.items():
        weight = 1.0 if weights is None else weights.get(name, 0.0)
        for rank, key in enumerate(ids, start=1):
            contribution = weight / (rrf_k + rank)
            entry = fused.get(key)
            if entry is None:
                entry = fused[key] = Fused(best=(contribution, name))
            entry.score += contribution
            if name not in entry.lists:
                entry.lists.append(name)
            if contribution > entry.best[0]:
                entry.best = (contribution, name)
    return fused


def fuse(
    ranked: Mapping[str, Sequence[RecallCandidate]],
    weights: Mapping[str, float],
    *,
    rrf_k: int,
    half_life_days: float,
    now: datetime | None = None,
) -> list[RecallItem]:
    """Fuse strategies' ranked lists into one list, best first.

    score = Σ_strategies weight / (rrf_k + rank) (:func:`reciprocal_rank_fusion`),
    times a gentle recency factor (between 0.85 and 1.0, halving its boost every
    ``half_life_days``).  Items with the same key, or the same normalised text,
    are merged.
    """
    now = now or datetime.now(UTC)
    # Candidates merge by key or by normalised text; the first one seen stands
    # for the item unless a later one pins it.
    by_text: dict[str, str] = {}
    chosen: dict[str, RecallCandidate] = {}
    pin_rank: dict[str, int] = {}
    keys: dict[str, list[str]] = {}
    for strategy, candidates in ranked.items():
        keys[strategy] = []
        for rank, cand in enumerate(candidates, start=1):
            key = by_text.setdefault(_norm(cand.text), cand.key)
            keys[strategy].append(key)
            known = chosen.get(key)
            if known is None or (cand.pinned and not known.pinned):
                chosen[key] = cand
            if cand.pinned:
                pin_rank[key] = rank
    merged = reciprocal_rank_fusion(keys, rrf_k=rrf_k, weights=weights)
    items: list[RecallItem] = []
    for key, entry in merged.items():
        cand, score = chosen[key], entry.score
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
                strategies=tuple(entry.lists),
                ids=dict(cand.ids),
                created_at=cand.created_at,
                pinned=cand.pinned,
            )
        )
    items.sort(key=lambda i: (not i.pinned, pin_rank.get(i.key, 0) if i.pinned else 0, -i.score, i.key))
    return items


#: Sections printed as a paragraph rather than as ``- `` bullets.
PARAGRAPH_SECTIONS = frozenset({"Task checkpoint"})
#: Indent of an item's second and later lines: never column 0, where only the
#: block's own structure starts.
CONTINUATION_INDENT = "  "
# Runs of three or more backticks or tildes open and close fenced blocks, wherever
# a reader (or an application wrapping the block in a fence) looks for them.
_FENCE = re.compile(r"`{3,}|~{3,}")
# A line made of one repeated -, =, * or _ is a Markdown rule or setext underline
# (it turns the line above into a heading).
_RULE = re.compile(r"([-=*_])(?:[ \t]*\1){2,}[ \t]*")


def _escape_line(line: str) -> str:
    """One line of stored text with the block's markers made literal (backslash escapes)."""
    line = _FENCE.sub(lambda m: "".join(f"\\{c}" for c in m.group()), line)
    # A heading marker counts even behind blanks or invisible format characters
    # (a zero-width space before "## " still reads as a header to a model).
    lead = 0
    while lead < len(line) and (line[lead].isspace() or unicodedata.category(line[lead]) == "Cf"):
        lead += 1
    if line.startswith("#", lead) or _RULE.fullmatch(line, lead):
        line = f"{line[:lead]}\\{line[lead:]}"
    return line


def block_text(text: str, *, bullet: bool = True) -> str:
    """Stored ``text`` as one item of the context block.

    Every line break Python knows (``\\n``, ``\\r``, ``\\r\\n``, ``\\v``, ``\\f``,
    U+001C-U+001E, U+0085, U+2028, U+2029) ends a line; empty lines are dropped
    (a blank line separates sections); the first line follows the ``- `` bullet
    (or starts the paragraph), later lines are indented by
    :data:`CONTINUATION_INDENT`; in every line a leading ``#``, a rule line and
    any run of three or more backticks or tildes are backslash-escaped.  So no
    stored text can open, close or fake a section.
    """
    lines = [_escape_line(line.rstrip()) for line in text.splitlines() if line.strip()]
    head, rest = (lines[0].strip(), lines[1:]) if lines else ("", [])
    first = f"- {head}" if bullet else head
    return "\n".join([first, *(CONTINUATION_INDENT + line for line in rest)])


def _line(item: RecallItem) -> str:
    return block_text(item.text, bullet=item.section not in PARAGRAPH_SECTIONS)


def _header(name: str) -> str:
    # Section names come from strategies (plugin code), but one that held a line
    # break would still split the header: keep it on its line.
    return "## " + " ".join(name.split())


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
        blocks.append(_header(name) + "\n" + "\n".join(_line(i) for i in members))
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
