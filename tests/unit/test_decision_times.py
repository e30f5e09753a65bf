"""The tally's time-to-decision histogram (streams/decision_times.py) and its measure."""

from __future__ import annotations

import dataclasses

import pytest

from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    RetryRequest,
)
from ratifier.core.time_to_decision import outcome_of, seconds_to_decision
from ratifier.streams.rules.decision_times import BUCKETS_S, DecisionTimes

T0 = 1_700_000_000_000


def _candidate(attempt: int = 1, produced: int = T0) -> Candidate:
    return Candidate("c", attempt, f"c/{attempt}", "p", "general", "q", "a", "gen", produced)


def _pass(decided: int, policy: str = "p") -> PassDecision:
    return PassDecision(
        "d", "c", 1, _candidate(), 0.9, (), policy, "1", OutcomeClass.CONFIRMED, decided
    )


def test_the_span_runs_from_the_decided_attempts_candidate() -> None:
    assert seconds_to_decision(_pass(T0 + 1_234)) == 1.234
    retry = RetryRequest("d", "c", 1, 2, _candidate(), FailureReason.VETO, (), (), (), "p", "1",
                         T0 + 30_000)  # fmt: skip
    assert (outcome_of(retry), seconds_to_decision(retry)) == ("retry", 30.0)
    attempts = tuple(
        AttemptRecord(_candidate(n, T0 + 40_000 * (n - 1)), (), FailureReason.WINDOW_TIMEOUT)
        for n in (1, 2)
    )
    packet = EscalationPacket("d", "c", attempts, EscalationReason.WINDOW_TIMEOUT, "p", "1",
                              OutcomeClass.UNRESOLVED, T0 + 70_000)  # fmt: skip
    assert (outcome_of(packet), seconds_to_decision(packet)) == ("escalate", 30.0)  # attempt 2's
    assert seconds_to_decision(dataclasses.replace(packet, attempts=())) is None
    assert seconds_to_decision(_pass(T0 - 5)) == 0.0  # a producer clock ahead of the tally's


def test_histogram_counts_per_policy_and_outcome_with_prometheus_buckets() -> None:
    times = DecisionTimes()
    for ms in (3, 5, 7, 40, 2_000, 900_000):
        times.observe(_pass(T0 + ms))
    times.observe(_pass(T0 + 1, policy="other"))
    series = dict(times)
    assert list(series) == [("other", "pass"), ("p", "pass")]
    buckets = dict(series[("p", "pass")].cumulative())
    assert list(buckets) == [*map(str, BUCKETS_S), "+Inf"]
    # le is inclusive: 5 ms is in the 0.005 bucket; 900 s is past every bound.
    assert (buckets["0.005"], buckets["0.01"], buckets["0.05"], buckets["2.5"]) == (2, 3, 4, 5)
    assert (buckets["600"], buckets["+Inf"]) == (5, 6)
    assert series[("p", "pass")].total == pytest.approx(902.055)
