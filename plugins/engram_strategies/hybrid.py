"""Conversation-aware ranking of ledger events: words and meaning together,
spread to neighbouring turns and to the task around them.

A turn rarely stands alone.  "Yes, last Tuesday!" answers the question asked
just before it, and a question about a trip is best answered from the session
where the trip was discussed.  So the score of an event mixes its keyword and
vector evidence, then borrows from its neighbours in the same task and from the
best event of its task.  Everything here is pure arithmetic over the candidates
the searches found; the ``ledger_hybrid`` strategy does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from engram.recall.context import Neighbourhood  # public: what the ledger reader returns

__all__ = ["Neighbourhood", "blend", "spread"]


def blend(
    keyword: Mapping[int, float], similarity: Mapping[int, float], *, keyword_share: float
) -> dict[int, float]:
    """Mix keyword scores and cosine similarities into one score in [0, 1].

    Keyword scores are divided by the best one; similarities are clipped at 0
    (a negative cosine means unrelated, not "a bit less related") and divided by
    the best one, so neither scale dominates whatever the embedder or corpus.
    """
    best_kw = max(keyword.values(), default=0.0)
    best_sim = max(similarity.values(), default=0.0)
    scores: dict[int, float] = {}
    for event_id in keyword.keys() | similarity.keys():
        kw = keyword.get(event_id, 0.0) / best_kw if best_kw > 0 else 0.0
        sim = max(similarity.get(event_id, 0.0), 0.0) / best_sim if best_sim > 0 else 0.0
        scores[event_id] = keyword_share * kw + (1.0 - keyword_share) * sim
    return scores


def spread(
    scores: Mapping[int, float],
    places: Mapping[int, Neighbourhood],
    *,
    neighbour_weight: float,
    task_weight: float,
) -> list[tuple[int, float]]:
    """Add ``neighbour_weight`` times the neighbours' scores, then ``task_weight``
    times the best score in the event's task; best first (newer first on ties).

    Events without a known place (e.g. redacted since) are dropped.
    """
    smoothed: dict[int, float] = {}
    for event_id, place in places.items():
        own = scores.get(event_id, 0.0)
        around = sum(scores.get(n, 0.0) for n in (place.prev_id, place.next_id) if n is not None)
        smoothed[event_id] = own + neighbour_weight * around
    best_in_task: dict[str, float] = {}
    for event_id, value in smoothed.items():
        task = places[event_id].task_id
        best_in_task[task] = max(best_in_task.get(task, 0.0), value)
    final = {
        event_id: value + task_weight * best_in_task[places[event_id].task_id]
        for event_id, value in smoothed.items()
    }
    return sorted(((i, s) for i, s in final.items() if s > 0), key=lambda t: (-t[1], -t[0]))
