"""The monitor's figures and alarm rules on synthetic decision streams (no broker)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    Reason,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.core.policy import MonitorSettings, Policy, Role, Threshold, ValidatorSpec
from ratifier.features.monitor.core import alarms
from ratifier.features.monitor.core.figures import PolicyFigures, decided_attempt

POLICY = "p"


def _candidate(case: str, attempt: int, category: str = "billing") -> Candidate:
    return Candidate(case, attempt, f"{case}/{attempt}", POLICY, category, "q", "c", "t", 0)


def _verdict(case: str, attempt: int, validator: str, vote: Vote, *, code: str = "") -> Verdict:
    reasons = (Reason(code, "m"),) if code else ()
    return Verdict(case, attempt, f"{case}/{attempt}", validator, "1", vote, 1.0, None, reasons,
                   20, 0)  # fmt: skip


def _pass(case: str, attempt: int, votes: dict[str, Vote], at: int = 0) -> PassDecision:
    return PassDecision(
        f"d-{case}-{attempt}", case, attempt, _candidate(case, attempt), 0.9,
        tuple(_verdict(case, attempt, v, vote) for v, vote in votes.items()), POLICY, "v1",
        OutcomeClass.CONFIRMED if attempt == 1 else OutcomeClass.CORRECTED, at,
    )  # fmt: skip


def _retry(case: str, attempt: int, votes: dict[str, Vote], at: int = 0) -> RetryRequest:
    verdicts = tuple(_verdict(case, attempt, v, vote) for v, vote in votes.items())
    return RetryRequest(
        f"d-{case}-{attempt}", case, attempt, attempt + 1, _candidate(case, attempt),
        FailureReason.THRESHOLD_UNREACHABLE, verdicts, (), verdicts, POLICY, "v1", at,
    )  # fmt: skip


def _escalate(
    case: str, attempts: int, votes: dict[str, Vote], reason: EscalationReason, at: int = 0
) -> EscalationPacket:
    records = tuple(
        AttemptRecord(
            _candidate(case, n),
            tuple(_verdict(case, n, v, vote) for v, vote in votes.items()),
            FailureReason.THRESHOLD_UNREACHABLE,
        )
        for n in range(1, attempts + 1)
    )
    return EscalationPacket(
        f"d-{case}-x", case, records, reason, POLICY, "v1", OutcomeClass.UNRESOLVED, at
    )


A, R, X = Vote.ACCEPT, Vote.REJECT, Vote.ABSTAIN


def test_decided_attempt_takes_each_attempts_votes_once() -> None:
    passed = decided_attempt(_pass("c1", 2, {"a": A, "b": A}))
    assert (passed.kind, passed.attempt, passed.attempts_made, passed.final) == ("pass", 2, 2, True)
    assert [v.validator for v in passed.votes] == ["a", "b"]
    assert passed.category == "billing"
    retry = decided_attempt(_retry("c1", 1, {"a": R}))
    assert (retry.kind, retry.final, retry.failed) == ("retry", False, True)
    exhausted = decided_attempt(
        _escalate("c2", 3, {"a": R, "b": R}, EscalationReason.MAX_ATTEMPTS_EXHAUSTED)
    )
    assert (exhausted.attempt, exhausted.attempts_made, len(exhausted.votes)) == (3, 3, 2)
    # No next attempt came: the last attempt's votes came with its retry decision already.
    timeout = decided_attempt(_escalate("c3", 2, {"a": R}, EscalationReason.RETRY_TIMEOUT))
    assert (timeout.attempt, timeout.votes, timeout.failed) == (3, (), False)


def test_timeouts_and_errors_are_told_apart() -> None:
    decision = _pass("c", 1, {"a": A})
    votes = (
        _verdict("c", 1, "slow", X, code="validator.timeout"),
        _verdict("c", 1, "buggy", X, code="validator.error"),
        _verdict("c", 1, "unsure", X, code="llm.unsure"),
    )
    attempt = decided_attempt(dataclasses.replace(decision, votes=votes))
    assert [v.problem for v in attempt.votes] == ["timeout", "error", None]


def test_rates_on_a_synthetic_stream() -> None:
    # 10 cases: 6 pass on attempt 1, 2 pass on attempt 2, 2 escalate after 3 attempts.
    figures = PolicyFigures(POLICY, span_ms=3_600_000, max_items=10_000, drift_window=500)
    at = 0
    for i in range(6):
        figures.add(decided_attempt(_pass(f"p{i}", 1, {"a": A, "b": A}, at := at + 1)))
    for i in range(2):
        figures.add(decided_attempt(_retry(f"r{i}", 1, {"a": R, "b": R}, at := at + 1)))
        figures.add(decided_attempt(_pass(f"r{i}", 2, {"a": A, "b": A}, at := at + 1)))
    for i in range(2):
        for n in (1, 2):
            figures.add(decided_attempt(_retry(f"e{i}", n, {"a": R, "b": A}, at := at + 1)))
        packet = _escalate(f"e{i}", 3, {"a": R, "b": A}, EscalationReason.REJECTED, at := at + 1)
        figures.add(decided_attempt(packet))
    f = figures.figures()
    assert f.final_outcomes == 10
    assert f.first_attempt_consensus_ratio == pytest.approx(0.6)
    assert f.mean_attempts == pytest.approx((6 * 1 + 2 * 2 + 2 * 3) / 10)
    assert f.escalation_ratio == pytest.approx(0.2)
    # Decided attempts: 6 + 2*2 + 2*3 = 16, of which retries 2 + 4 = 6.
    assert f.retry_ratio == pytest.approx(6 / 16)
    # Counted verdicts: 2 per attempt, 16 attempts, over 10 final outcomes.
    assert f.verdicts_per_outcome == pytest.approx(32 / 10)
    assert f.escalations_last_hour == 2
    assert f.latency_p50_ms == 20
    by_validator = {v.validator: v for v in f.validators}
    assert by_validator["a"].counts == {"ACCEPT": 8, "REJECT": 8, "ABSTAIN": 0}
    assert by_validator["a"].rejection_ratio == pytest.approx(0.5)


def test_windows_forget_by_count_and_time() -> None:
    figures = PolicyFigures(POLICY, span_ms=1_000, max_items=3, drift_window=500)
    for i in range(5):
        figures.add(decided_attempt(_pass(f"c{i}", 1, {"a": A}, at=i)))
    assert figures.figures().final_outcomes == 3
    figures.add(decided_attempt(_pass("late", 2, {"a": A}, at=5_000)))
    f = figures.figures()
    assert f.final_outcomes == 1
    assert f.first_attempt_consensus_ratio == 0.0
    assert math.isnan(PolicyFigures(POLICY, 1_000, 3, 500).figures().escalation_ratio)


def _policy(**monitor: float) -> Policy:
    return Policy(
        POLICY,
        "v1",
        (
            ValidatorSpec("yes"),
            ValidatorSpec("twin-a"),
            ValidatorSpec("twin-b"),
            ValidatorSpec("other"),
            ValidatorSpec("red", role=Role.RED_TEAM),
        ),
        Threshold(accepts=4),
        monitor=MonitorSettings(**monitor),  # type: ignore[arg-type]
    )


def _failed_stream(figures: PolicyFigures, n: int) -> None:
    # "yes" accepts everything; the twins vote alike (alternating); "other" disagrees with them
    # every third time; "red" never rejects (red team: exempt from vote inflation).
    for i in range(n):
        twin = R if i % 2 else A
        other = (A if twin is R else R) if i % 3 == 0 else twin
        votes = {"yes": A, "twin-a": twin, "twin-b": twin, "other": other, "red": A}
        figures.add(decided_attempt(_retry(f"c{i}", 1, votes, at=i)))


def test_vote_inflation_and_correlated_validators_alarms() -> None:
    policy = _policy(inflation_min_verdicts=40, correlation_min_attempts=40)
    figures = PolicyFigures(POLICY, 3_600_000, 10_000, 500)
    _failed_stream(figures, 39)
    assert alarms.evaluate(policy, figures.figures()) == {}  # not enough evidence yet
    _failed_stream(figures, 60)
    holding = alarms.evaluate(policy, figures.figures())
    inflation = holding["VOTE_INFLATION|p|yes/billing"]
    assert (inflation.value, inflation.sample_size) == (0.0, 99)
    correlated = holding["CORRELATED_VALIDATORS|p|twin-a+twin-b"]
    assert correlated.value == pytest.approx(1.0)
    # Nothing else: "other" disagrees often enough, the red team is exempt, kappa with the
    # constant "yes" is undefined (no evidence), and no review capacity is configured.
    assert set(holding) == {inflation.key, correlated.key}


def test_correlation_limit_is_the_policys() -> None:
    figures = PolicyFigures(POLICY, 3_600_000, 10_000, 500)
    _failed_stream(figures, 100)
    kappa = figures.figures().pair_kappas[("other", "twin-a")][0]
    assert 0 < kappa < 1
    lenient = _policy(correlation_max_kappa=kappa - 0.01, correlation_min_attempts=10)
    assert "CORRELATED_VALIDATORS|p|other+twin-a" in alarms.evaluate(lenient, figures.figures())


def test_drift_alarm_compares_a_validator_with_its_own_baseline() -> None:
    policy = _policy(drift_window=100, drift_max_z=4.0, inflation_min_verdicts=10_000)
    figures = PolicyFigures(POLICY, 3_600_000, 10_000, drift_window=100)
    for i in range(100):  # baseline: rejects 10%
        figures.add(decided_attempt(_retry(f"b{i}", 1, {"other": R if i % 10 == 0 else A}, at=i)))
    for i in range(100):  # now: rejects 60%
        vote = R if i % 10 < 6 else A
        figures.add(decided_attempt(_retry(f"n{i}", 1, {"other": vote}, at=100 + i)))
    drift = alarms.evaluate(policy, figures.figures())["DRIFT|p|other"]
    # p1 = 0.1, p2 = 0.6, pooled 0.35: z = 0.5 / sqrt(0.35*0.65*0.02) = 7.41
    assert drift.value == pytest.approx(7.412, abs=1e-3)
    assert drift.sample_size == 200


def test_escalation_capacity_alarm() -> None:
    figures = PolicyFigures(POLICY, 3_600_000, 10_000, 500)
    for i in range(6):
        packet = _escalate(f"e{i}", 1, {"other": R}, EscalationReason.REJECTED, at=i * 1000)
        figures.add(decided_attempt(packet))
    assert alarms.evaluate(_policy(), figures.figures()) == {}  # capacity 0: no alarm
    holding = alarms.evaluate(_policy(review_capacity_per_hour=5), figures.figures())
    assert holding["ESCALATION_CAPACITY|p|p"].value == 6
    assert alarms.evaluate(_policy(review_capacity_per_hour=6), figures.figures()) == {}


def test_changes_raise_new_alarms_and_clear_old_ones() -> None:
    a = alarms.Alarm("DRIFT", "p", "x", 5.0, 4.0, 200, "m")
    b = alarms.Alarm("DRIFT", "p", "y", 5.0, 4.0, 200, "m")
    assert alarms.changes({}, {a.key: a}) == [("RAISED", a)]
    assert alarms.changes({a.key: a}, {a.key: a}) == []
    assert alarms.changes({a.key: a}, {b.key: b}) == [("RAISED", b), ("CLEARED", a)]
    alert = alarms.alert_for(a, "RAISED", monitor="m1", at_ms=7)
    assert alert.alert_id == alarms.alert_for(a, "RAISED", monitor="m2", at_ms=7).alert_id
    assert (alert.kind, alert.state, alert.changed_at_ms) == ("DRIFT", "RAISED", 7)


def test_time_to_decision_quantiles_per_outcome_and_the_slo_alarm() -> None:
    # Candidates are produced at 0; case i is decided at 10 * i ms (passes), retries at 5 ms.
    figures = PolicyFigures(POLICY, 3_600_000, 10_000, 500)
    for i in range(1, 101):
        figures.add(decided_attempt(_pass(f"c{i}", 1, {"other": A}, at=10 * i)))
    figures.add(decided_attempt(_retry("r", 1, {"other": R}, at=5)))
    f = figures.figures()
    assert f.decisions_timed == 101
    assert f.time_to_decision_ms["pass"] == pytest.approx((505.0, 950.5, 990.1))
    assert f.time_to_decision_ms["retry"] == (5.0, 5.0, 5.0)
    assert math.isnan(f.time_to_decision_ms["escalate"][0])
    assert f.time_to_decision_ms["all"][1] == pytest.approx(950.0)
    assert alarms.evaluate(_policy(), f) == {}  # no SLO set
    slow = alarms.evaluate(_policy(time_to_decision_p95_max_seconds=0.9), f)
    alarm = slow["TIME_TO_DECISION|p|p"]
    assert (alarm.value, alarm.threshold, alarm.sample_size) == (0.95, 0.9, 101)
    assert alarms.evaluate(_policy(time_to_decision_p95_max_seconds=1.0), f) == {}
    few = _policy(time_to_decision_p95_max_seconds=0.9, time_to_decision_min_decisions=102)
    assert alarms.evaluate(few, f) == {}
