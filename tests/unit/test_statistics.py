"""The monitor's statistics against statsmodels (a reference implementation) and hand tables."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportions_ztest

from ratifier.features.monitor.core.agreement import (
    cohens_kappa,
    fleiss_kappa,
    fleiss_table,
    pairwise_labels,
)
from ratifier.features.monitor.core.windows import (
    SlidingWindow,
    quantile,
    ratio,
    two_proportion_z_test,
)

LABELS = ("ACCEPT", "REJECT", "ABSTAIN")


def _contingency(pairs: list[tuple[str, str]]) -> np.ndarray:
    table = np.zeros((len(LABELS), len(LABELS)))
    for a, b in pairs:
        table[LABELS.index(a), LABELS.index(b)] += 1
    return table


# --- Cohen's kappa ---------------------------------------------------------------------------


def test_cohens_kappa_hand_table() -> None:
    # The textbook 2x2 table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no (50 items).
    # po = 35/50 = 0.7; pe = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohens_kappa(pairs) == pytest.approx(0.4)


def test_cohens_kappa_perfect_independent_and_opposed() -> None:
    assert cohens_kappa([("a", "a"), ("b", "b"), ("a", "a")]) == pytest.approx(1.0)
    # Independent by construction: every combination equally often.
    assert cohens_kappa([("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")]) == pytest.approx(0.0)
    assert cohens_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)


def test_cohens_kappa_is_undefined_without_variation_or_items() -> None:
    assert math.isnan(cohens_kappa([]))
    assert math.isnan(cohens_kappa([("REJECT", "REJECT")] * 10))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), min_size=1))
def test_cohens_kappa_matches_statsmodels(pairs: list[tuple[str, str]]) -> None:
    ours = cohens_kappa(pairs)
    with np.errstate(all="ignore"):
        reference = float(sm_cohens_kappa(_contingency(pairs), return_results=False))
    if math.isnan(ours):
        assert math.isnan(reference) or math.isinf(reference)
    else:
        assert ours == pytest.approx(reference, abs=1e-9)


# --- Fleiss' kappa ---------------------------------------------------------------------------

# Fleiss (1971) / Wikipedia's worked example: 10 items, 14 raters, 5 categories: kappa 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(sm_fleiss_kappa(np.array(FLEISS_EXAMPLE)))


@settings(max_examples=200, deadline=None)
@given(
    raters=st.integers(2, 6),
    data=st.data(),
)
def test_fleiss_kappa_matches_statsmodels(raters: int, data: st.DataObject) -> None:
    items = data.draw(
        st.lists(st.lists(st.sampled_from(LABELS), min_size=raters, max_size=raters), min_size=1)
    )
    table = [[votes.count(label) for label in LABELS] for votes in items]
    ours = fleiss_kappa(table)
    with np.errstate(all="ignore"):
        reference = float(sm_fleiss_kappa(np.array(table)))
    if math.isnan(ours):
        assert not math.isfinite(reference)
    else:
        assert ours == pytest.approx(reference, abs=1e-9)


def test_fleiss_kappa_rejects_uneven_rows_and_is_undefined_when_empty() -> None:
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[1, 1], [2, 1]])
    assert math.isnan(fleiss_kappa([]))
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))


def test_tables_from_votes_keep_only_items_every_rater_judged() -> None:
    items = [
        {"a": "ACCEPT", "b": "ACCEPT", "c": "REJECT"},
        {"a": "REJECT", "b": "REJECT"},  # c missing: not in the Fleiss table
        {"a": "ABSTAIN", "b": "REJECT", "c": "REJECT"},
    ]
    assert fleiss_table(items, ["a", "b", "c"], LABELS) == [[2, 1, 0], [0, 2, 1]]
    assert pairwise_labels(items, "a", "c") == [("ACCEPT", "REJECT"), ("ABSTAIN", "REJECT")]
    assert len(pairwise_labels(items, "a", "b")) == 3


# --- windows ---------------------------------------------------------------------------------


def test_window_by_time_drops_items_older_than_its_span() -> None:
    window: SlidingWindow[str] = SlidingWindow(span_ms=1_000)
    window.add(0, "a")
    window.add(500, "b")
    window.add(1_000, "c")  # "a" is now 1 000 ms old: out
    assert list(window) == ["b", "c"]
    window.advance(2_000)
    assert list(window) == []


def test_window_by_count_keeps_the_newest() -> None:
    window: SlidingWindow[int] = SlidingWindow(max_items=3)
    for i in range(5):
        window.add(i, i)
    assert list(window) == [2, 3, 4]


def test_window_by_time_and_count_applies_the_stricter() -> None:
    window: SlidingWindow[int] = SlidingWindow(span_ms=10, max_items=2)
    window.add(0, 0)
    window.add(1, 1)
    window.add(2, 2)
    assert list(window) == [1, 2]
    window.add(20, 3)
    assert list(window) == [3]


def test_window_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="needs span_ms"):
        SlidingWindow()
    with pytest.raises(ValueError, match="max_items must be > 0"):
        SlidingWindow(max_items=0)


def test_rates_over_a_synthetic_stream() -> None:
    # 1 000 outcomes, 30% escalated by construction: the window of the last 500 sees its share.
    rng = random.Random(7)
    outcomes = ["escalate" if i % 10 < 3 else "pass" for i in range(1_000)]
    rng.shuffle(outcomes)
    window: SlidingWindow[str] = SlidingWindow(max_items=500)
    for i, outcome in enumerate(outcomes):
        window.add(i, outcome)
    expected = outcomes[-500:].count("escalate") / 500
    assert ratio(sum(o == "escalate" for o in window), len(window)) == pytest.approx(expected)
    assert math.isnan(ratio(0, 0))


# --- drift: two-proportion z-test --------------------------------------------------------------


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(40, 200, 10, 200), (5, 100, 6, 100), (0, 50, 25, 50), (300, 1000, 320, 1000)],
)
def test_two_proportion_z_matches_statsmodels(x1: int, n1: int, x2: int, n2: int) -> None:
    test = two_proportion_z_test(x1, n1, x2, n2)
    z, p = proportions_ztest([x2, x1], [n2, n1])  # statsmodels: first minus second
    assert test.z == pytest.approx(z)
    assert test.p_value == pytest.approx(p)
    assert (test.first, test.second) == (x1 / n1, x2 / n2)


def test_two_proportion_hand_value_and_degenerate_cases() -> None:
    # p1 = 0.2, p2 = 0.05, pooled 0.125: z = -0.15 / sqrt(0.125*0.875*0.01) = -4.5356
    assert two_proportion_z_test(40, 200, 10, 200).z == pytest.approx(-4.53557, abs=1e-4)
    same = two_proportion_z_test(0, 10, 0, 20)
    assert (same.z, same.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="at least one trial"):
        two_proportion_z_test(0, 0, 1, 1)


# --- latency quantiles -------------------------------------------------------------------------


def test_quantiles_match_numpy() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(1 / 40) for _ in range(999)]
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)))
    assert quantile([10, 20, 30, 40], 0.5) == 25
    assert math.isnan(quantile([], 0.5))
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\]"):
        quantile([1.0], 1.5)
