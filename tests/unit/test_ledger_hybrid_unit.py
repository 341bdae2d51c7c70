"""ledger_hybrid: words and meaning together, spread to neighbouring turns and tasks."""

from __future__ import annotations

import pytest
from engram_strategies.hybrid import Neighbourhood, blend, spread

# -- the arithmetic -------------------------------------------------------------


def test_blend_puts_both_signals_on_one_scale() -> None:
    scores = blend({1: 8.0, 2: 2.0}, {2: 0.5, 3: 0.25, 4: -0.3}, keyword_share=0.5)
    assert scores[1] == pytest.approx(0.5)  # best keyword, no vector
    assert scores[2] == pytest.approx(0.5 * 0.25 + 0.5 * 1.0)  # weak keyword, best vector
    assert scores[3] == pytest.approx(0.25)
    assert scores[4] == 0.0  # a negative cosine is "unrelated", not a penalty
    # Multiplying one signal's raw scores by a constant changes nothing.
    assert blend({1: 80.0, 2: 20.0}, {2: 0.5, 3: 0.25}, keyword_share=0.5) == pytest.approx(
        blend({1: 8.0, 2: 2.0}, {2: 0.5, 3: 0.25}, keyword_share=0.5)
    )


def test_blend_with_one_signal_missing() -> None:
    assert blend({}, {}, keyword_share=0.6) == {}
    assert blend({7: 3.0}, {}, keyword_share=0.6) == {7: pytest.approx(0.6)}
    assert blend({}, {7: 0.4}, keyword_share=0.6) == {7: pytest.approx(0.4)}


def test_spread_lifts_the_turn_after_a_match_and_the_matching_task() -> None:
    # Task a: 1 (question, matches) -> 2 (answer, matches nothing) -> 3.
    # Task b: 10 and 11 match a little.
    places = {
        1: Neighbourhood("a", None, 2),
        2: Neighbourhood("a", 1, 3),
        3: Neighbourhood("a", 2, None),
        10: Neighbourhood("b", None, 11),
        11: Neighbourhood("b", 10, None),
    }
    scores = {1: 1.0, 10: 0.3, 11: 0.25}
    flat = spread(scores, places, neighbour_weight=0.0, task_weight=0.0)
    assert [i for i, _ in flat] == [1, 10, 11]  # zero scores are dropped
    ranked = spread(scores, places, neighbour_weight=0.3, task_weight=0.6)
    order = [i for i, _ in ranked]
    assert order[:2] == [1, 2]  # the answer follows its question
    assert order.index(3) > order.index(2)
    # Task b's own best turn keeps its place above its weaker neighbour.
    assert order.index(10) < order.index(11)
    assert dict(ranked)[2] == pytest.approx(0.3 * 1.0 + 0.6 * 1.0)


def test_spread_drops_events_without_a_place_and_breaks_ties_newest_first() -> None:
    places = {5: Neighbourhood("a", None, None), 6: Neighbourhood("b", None, None)}
    ranked = spread({5: 0.5, 6: 0.5, 99: 1.0}, places, neighbour_weight=0.3, task_weight=0.0)
    assert [i for i, _ in ranked] == [6, 5]


# -- against the database ------------------------------------------------------------
