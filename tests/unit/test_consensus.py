"""The posterior confidence (streams.rules.consensus): monotone in accepting votes, and values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratifier.streams.rules.consensus import Evidence, log_odds, posterior, vote_log_odds

reliabilities = st.floats(0.51, 0.99)
confidences = st.floats(0.05, 1.0)
signs = st.sampled_from([1, -1, 0])
evidence = st.builds(Evidence, signs, reliabilities, confidences, st.floats(0.1, 5.0))


@settings(max_examples=300, deadline=None)
@given(
    prior=st.floats(0.05, 0.95),
    others=st.lists(evidence, max_size=12),
    reliability=reliabilities,
    confidence=confidences,
    multiplicity=st.floats(0.1, 5.0),
    position=st.integers(0, 12),
)
def test_one_more_accepting_vote_never_lowers_the_posterior(
    prior: float,
    others: list[Evidence],
    reliability: float,
    confidence: float,
    multiplicity: float,
    position: int,
) -> None:
    before = posterior(prior, others)
    for sign_before in (0, -1):  # a new vote, or a rejection / abstention turned into acceptance
        old = Evidence(sign_before, reliability, confidence, multiplicity)
        new = Evidence(1, reliability, confidence, multiplicity)
        base = [*others[:position], old, *others[position:]]
        flipped = [*others[:position], new, *others[position:]]
        assert posterior(prior, flipped) >= posterior(prior, base)
    assert posterior(prior, [*others, Evidence(1, reliability, confidence)]) >= before


@settings(max_examples=200, deadline=None)
@given(
    prior=st.floats(0.05, 0.95),
    voters=st.lists(st.tuples(reliabilities, confidences), min_size=10, max_size=10),
    rejecting=st.sets(st.integers(0, 9), min_size=4, max_size=4),
)
def test_ten_nil_scores_above_six_four(
    prior: float, voters: list[tuple[float, float]], rejecting: set[int]
) -> None:
    # The same ten validators with the same reported confidences: every 6-4 split is below 10-0.
    unanimous = [Evidence(1, r, c) for r, c in voters]
    split = [Evidence(-1 if i in rejecting else 1, r, c) for i, (r, c) in enumerate(voters)]
    assert posterior(prior, unanimous) > posterior(prior, split)


def test_posterior_values() -> None:
    assert posterior(0.5, []) == 0.5
    # One fully confident vote of reliability r moves an even prior to exactly r.
    assert posterior(0.5, [Evidence(1, 0.8, 1.0)]) == pytest.approx(0.8)
    assert posterior(0.5, [Evidence(-1, 0.8, 1.0)]) == pytest.approx(0.2)
    # An abstention, a zero confidence or a NaN confidence carries no evidence.
    assert posterior(0.3, [Evidence(0, 0.9, 1.0), Evidence(1, 0.9, 0.0)]) == pytest.approx(0.3)
    assert vote_log_odds(0.9, math.nan) == 0.0
    # Weight 2 counts as two votes; 3 accepts and 1 reject at r = 0.8 is 2 net votes: 16/17.
    two = [Evidence(1, 0.8, 1.0, 2.0)]
    assert posterior(0.5, two) == pytest.approx(posterior(0.5, [Evidence(1, 0.8, 1.0)] * 2))
    net_two = [Evidence(1, 0.8, 1.0)] * 3 + [Evidence(-1, 0.8, 1.0)]
    assert posterior(0.5, net_two) == pytest.approx(16 / 17)
    # Extreme inputs stay finite.
    assert 0.0 <= posterior(0.5, [Evidence(-1, 1.0, 1.0)] * 500) < 1e-300
    assert math.isfinite(log_odds(0.5, [Evidence(1, 1.0, 1.0)] * 500))
