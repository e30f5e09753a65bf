"""Properties of the tally for random policies and random deliveries.

What holds for every delivery order (and what does not):

* one decision per (case, attempt), with id ``decision_id(case, attempt)``, whatever the order
  and however often verdicts are redelivered;
* pass or fail is decided by the *set* of verdicts, never by their order, and agrees with an
  exact-arithmetic oracle;
* exact redeliveries change no decision at all;
* every case ends in exactly one final outcome (a pass or an escalation), whatever the votes
  and whether and when the generator answers each retry, and is then forgotten;
* a decision is a function of the set of verdicts counted when it was made: shuffle everything
  that arrived before the deciding verdict, and everything after it, and the decision is
  identical (kind, reason, confidence, counted votes, id).

What a decision *contains* can depend on order, by design: the tally decides as soon as the
outcome is certain, so an early pass counts only the votes in by then (its confidence and votes
differ from a pass reached after more votes), and which failure reason is seen first (veto,
threshold or supermajority unreachable) depends on which votes came first.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ratifier.core.models import (
    Candidate,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    EscalationReason,
    PassDecision,
    RetryRequest,
    Severity,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy, Role, Threshold
from ratifier.streams.rules.state import CaseState, decode_state, encode_state
from ratifier.streams.rules.tally import (
    Rejection,
    SourceRef,
    Step,
    TallySettings,
    decision_id,
    on_candidate,
    on_tick,
    on_verdict,
)

T0 = 1_700_000_000_000
CASE = "case-p"
TALLY = TallySettings(hold_ms=10_000, retention_ms=60_000, retry_wait_ms=60_000)
SOURCE = SourceRef("ratifier.verdicts", 0, 0)
DYADIC = st.sampled_from((0.25, 0.5, 1.0, 1.5, 2.0, 3.0))  # sums are exact in binary floats


# --- strategies --------------------------------------------------------------------------------


ANY_WEIGHT = st.floats(min_value=0.01, max_value=10.0)  # float sums then depend on order


@st.composite
def policies(draw: st.DrawFn, weights: st.SearchStrategy[float]) -> Policy:
    n_validators = draw(st.integers(3, 7))
    n_red_team = draw(st.integers(0, min(2, n_validators - 1)))
    n_voters = n_validators - n_red_team
    validators: list[dict[str, Any]] = [
        {"id": f"v{i}", "weight": draw(weights)} for i in range(n_voters)
    ]
    validators += [{"id": f"red{i}", "role": "red-team"} for i in range(n_red_team)]
    max_attempts = draw(st.integers(1, 3))
    threshold = draw(
        st.one_of(
            st.builds(lambda m: {"accepts": m}, st.integers(1, n_voters)),
            st.builds(lambda k: {"ratio": k / 20}, st.integers(1, 20)),
        )
    )
    data: dict[str, Any] = {
        "name": "prop",
        "version": "1",
        "max_attempts": max_attempts,
        "window_seconds": 30,
        "threshold": threshold,
        "veto": {"action": draw(st.sampled_from(["retry", "escalate"]))},
        "validators": validators,
        "complete_packets": draw(st.booleans()),
    }
    if draw(st.booleans()):
        data["supermajority"] = {
            "ratio": draw(st.integers(1, 20)) / 20,
            "min_rounds": draw(st.integers(1, max_attempts)),
        }
    return Policy.from_mapping(data, "hypothesis")


def make_candidate(attempt: int) -> Candidate:
    return Candidate(
        case_id=CASE,
        attempt=attempt,
        candidate_id=f"cand-{attempt}",
        policy="prop",
        category="general",
        query="q",
        content="c",
        producer="gen",
        produced_at_ms=T0,
    )


def make_verdict(
    validator_id: str, attempt: int, vote: Vote, severity: Severity | None = None
) -> Verdict:
    return Verdict(
        case_id=CASE,
        attempt=attempt,
        candidate_id=f"cand-{attempt}",
        validator_id=validator_id,
        validator_version="1",
        vote=vote,
        confidence=0.5,
        severity=severity,
        reasons=(),
        latency_ms=1,
        produced_at_ms=T0,
    )


VOTES = st.sampled_from(
    [
        (Vote.ACCEPT, None),
        (Vote.ACCEPT, None),
        (Vote.ACCEPT, None),
        (Vote.REJECT, Severity.MINOR),
        (Vote.REJECT, Severity.CRITICAL),
        (Vote.ABSTAIN, None),
    ]
)


@dataclass(frozen=True)
class Scenario:
    policy: Policy
    attempt: int
    verdicts: tuple[Verdict, ...]  # at most one per validator, in a random order
    delivery: tuple[Verdict | Candidate, ...]  # the verdicts with duplicates, and the candidate


@st.composite
def scenarios(draw: st.DrawFn, weights: st.SearchStrategy[float] = DYADIC) -> Scenario:
    policy = draw(policies(weights))
    attempt = draw(st.integers(1, policy.max_attempts))
    rule = policy.supermajority
    if rule is not None and rule.min_rounds > 1 and draw(st.booleans()):
        attempt = draw(st.integers(1, rule.min_rounds - 1))  # a round where it applies
    verdicts: list[Verdict] = []
    for spec in policy.validators:
        if draw(st.integers(0, 4)) == 0:
            continue  # this validator never answers
        vote, severity = draw(VOTES)
        verdicts.append(make_verdict(spec.id, attempt, vote, severity))
    ordered = draw(st.permutations(verdicts))
    delivery: list[Verdict | Candidate] = list(ordered)
    if ordered:
        for _ in range(draw(st.integers(0, 4))):  # exact redeliveries, anywhere after the first
            original = draw(st.integers(0, len(ordered) - 1))
            position = draw(st.integers(original + 1, len(delivery)))
            delivery.insert(position, ordered[original])
    # The candidate may arrive after some of its verdicts (they are held until it does).
    delivery.insert(draw(st.integers(0, len(delivery))), make_candidate(attempt))
    return Scenario(policy, attempt, tuple(ordered), tuple(delivery))


# --- running a delivery ------------------------------------------------------------------------


def earlier_attempts(policy: Policy, attempt: int) -> tuple[CaseState | None, int]:
    """A case whose earlier attempts timed out, and the time at which ``attempt`` opens."""
    state: CaseState | None = None
    now = T0
    for number in range(1, attempt):
        state = on_candidate(state, make_candidate(number), policy, now, TALLY).state
        now += policy.window_ms
        step = on_tick(state, {policy.name: policy}, now, TALLY)
        assert isinstance(step.decisions[0], RetryRequest)
        state = step.state
    return state, now


@dataclass
class Outcome:
    decisions: list[Decision]  # for the scenario's attempt
    at_deadline: bool  # decided by the deadline tick, not by an arriving record


def deliver(scenario: Scenario, delivery: tuple[Verdict | Candidate, ...]) -> Outcome:
    policy = scenario.policy
    policies_ = {policy.name: policy}
    state, now = earlier_attempts(policy, scenario.attempt)
    decisions: list[Decision] = []
    for record in delivery:
        if isinstance(record, Candidate):
            step = on_candidate(state, record, policy, now, TALLY)
        else:
            step = on_verdict(state, record, SOURCE, policies_, now, TALLY)
        decisions += step.decisions
        state = step.state
        assert_round_trip(state)
    decided_by_records = bool(decisions)
    step = on_tick(state, policies_, now + policy.window_ms, TALLY)
    decisions += step.decisions
    assert_round_trip(step.state)
    return Outcome(decisions, at_deadline=not decided_by_records)


def assert_round_trip(state: CaseState | None) -> None:
    if state is not None:
        encoded = encode_state(state)
        assert decode_state(encoded) == state
        assert encode_state(decode_state(encoded)) == encoded


def counted_votes(decision: Decision) -> tuple[Verdict, ...]:
    if isinstance(decision, EscalationPacket):
        return decision.attempts[-1].verdicts
    return decision.votes


def essence(decision: Decision) -> tuple[Any, ...]:
    """What must not depend on delivery order once the counted set is fixed."""
    if isinstance(decision, PassDecision):
        return ("pass", decision.decision_id, decision.confidence, decision.votes)
    if isinstance(decision, RetryRequest):
        return ("retry", decision.decision_id, decision.reason, decision.votes, decision.dissent)
    return ("escalate", decision.decision_id, decision.reason, decision.attempts)


def oracle_passes(policy: Policy, attempt: int, verdicts: tuple[Verdict, ...]) -> bool:
    """Pass or fail for the complete set of verdicts, in exact arithmetic."""
    by_id = {v.validator_id: v for v in verdicts}
    for red in policy.red_team:
        verdict = by_id.get(red.id)
        if verdict is None or (
            verdict.vote is Vote.REJECT and verdict.severity is Severity.CRITICAL
        ):
            return False  # a silent red team times the window out; a CRITICAL one vetoes
    accepting = [s for s in policy.voters if s.id in by_id and by_id[s.id].vote is Vote.ACCEPT]
    total = sum(Fraction(s.weight) for s in policy.voters)
    share = sum(Fraction(s.weight) for s in accepting) / total
    threshold = policy.threshold
    if threshold.accepts is not None:
        met = len(accepting) >= threshold.accepts
    else:
        met = share >= Fraction(str(threshold.ratio))
    rule = policy.supermajority
    if rule is not None and attempt < rule.min_rounds:
        met = met and share >= Fraction(str(rule.ratio))
    return met


def first_occurrences(delivery: tuple[Verdict | Candidate, ...]) -> list[Verdict]:
    seen: list[Verdict] = []
    for record in delivery:
        if isinstance(record, Verdict) and record not in seen:
            seen.append(record)
    return seen


# --- properties --------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


@PROPERTY_SETTINGS
@given(scenarios())
def test_exactly_one_decision_and_pass_or_fail_follows_the_set(scenario: Scenario) -> None:
    outcome = deliver(scenario, scenario.delivery)
    [decision] = outcome.decisions
    event(f"{type(decision).__name__} {'at deadline' if outcome.at_deadline else 'early'}")
    assert decision.decision_id == decision_id(CASE, scenario.attempt)
    passed = isinstance(decision, PassDecision)
    assert passed == oracle_passes(scenario.policy, scenario.attempt, scenario.verdicts)
    votes = counted_votes(decision)
    assert [v.validator_id for v in votes] == sorted({v.validator_id for v in votes})
    assert set(votes) <= set(scenario.verdicts)
    if passed:
        assert isinstance(decision, PassDecision)
        weights = {s.id: Fraction(s.weight) for s in scenario.policy.voters}
        accepting = sum(weights.get(v.validator_id, 0) for v in votes if v.vote is Vote.ACCEPT)
        assert decision.accept_share == float(Fraction(accepting) / sum(weights.values()))
        assert 0.0 <= decision.confidence <= 1.0


@PROPERTY_SETTINGS
@given(st.one_of(scenarios(), scenarios(ANY_WEIGHT)))
def test_redeliveries_change_no_decision(scenario: Scenario) -> None:
    with_duplicates = deliver(scenario, scenario.delivery)
    deduplicated: list[Verdict | Candidate] = []
    for record in scenario.delivery:  # first occurrences, in order
        if record not in deduplicated:
            deduplicated.append(record)
    assert deliver(scenario, tuple(deduplicated)).decisions == with_duplicates.decisions


@PROPERTY_SETTINGS
@given(st.one_of(scenarios(), scenarios(ANY_WEIGHT)), st.randoms(use_true_random=False))
def test_decision_depends_on_the_counted_set_not_its_order(
    scenario: Scenario, rng: random.Random
) -> None:
    outcome = deliver(scenario, scenario.delivery)
    [decision] = outcome.decisions
    arrived = first_occurrences(scenario.delivery)
    if outcome.at_deadline:
        # Undecided until the deadline: every order leaves every vote counted, then times out.
        before: list[Verdict] = arrived
        deciding: list[Verdict] = []
        after: list[Verdict] = []
    else:
        counted = set(counted_votes(decision))
        trigger = max(counted, key=arrived.index)
        before = [v for v in arrived if v in counted and v != trigger]
        deciding = [trigger]
        after = [v for v in arrived if v not in counted]
    rng.shuffle(before)
    rng.shuffle(after)
    reordered: list[Verdict | Candidate] = [*before, *deciding, *after]
    # The candidate may come anywhere before the deciding verdict (earlier ones are held).
    reordered.insert(rng.randint(0, len(before)), make_candidate(scenario.attempt))
    [again] = deliver(scenario, tuple(reordered)).decisions
    assert essence(again) == essence(decision)
    assert again == decision


@PROPERTY_SETTINGS
@given(st.one_of(scenarios(), scenarios(ANY_WEIGHT)), st.randoms(use_true_random=False))
def test_any_order_gives_the_same_kind_of_decision_for_the_attempt(
    scenario: Scenario, rng: random.Random
) -> None:
    shuffled = list(scenario.delivery)
    rng.shuffle(shuffled)
    first = deliver(scenario, scenario.delivery).decisions
    second = deliver(scenario, tuple(shuffled)).decisions
    assert len(first) == len(second) == 1
    assert first[0].decision_id == second[0].decision_id
    assert isinstance(first[0], PassDecision) == isinstance(second[0], PassDecision)


@PROPERTY_SETTINGS
@given(policies(ANY_WEIGHT), st.randoms(use_true_random=False))
def test_unanimous_acceptance_has_share_one_in_any_order(
    policy: Policy, rng: random.Random
) -> None:
    # Whatever the weights, summing them must not leave a unanimous pass at 0.9999999999999999.
    unanimous = Policy(
        name=policy.name,
        version=policy.version,
        validators=policy.validators,
        threshold=Threshold(accepts=len(policy.voters)),
        max_attempts=policy.max_attempts,
        window_ms=policy.window_ms,
    )
    verdicts: list[Verdict | Candidate] = [
        make_verdict(spec.id, 1, Vote.ACCEPT if spec.role is Role.VOTER else Vote.ABSTAIN)
        for spec in policy.validators
    ]
    rng.shuffle(verdicts)
    scenario = Scenario(unanimous, 1, (), ())
    [decision] = deliver(scenario, (make_candidate(1), *verdicts)).decisions
    assert isinstance(decision, PassDecision)
    assert decision.accept_share == 1.0


# --- whole cases: every case ends in exactly one final outcome ---------------------------------


@dataclass(frozen=True)
class AttemptPlan:
    verdicts: tuple[tuple[Verdict, int], ...]  # each with its delay after the candidate, in ms
    reply_ms: int | None  # when the generator answers this attempt's retry; None: never


@dataclass(frozen=True)
class CaseLife:
    policy: Policy
    plans: tuple[AttemptPlan, ...]  # one per attempt the policy allows


@st.composite
def case_lives(draw: st.DrawFn) -> CaseLife:
    policy = draw(policies(DYADIC))
    window = policy.window_ms
    plans = []
    for attempt in range(1, policy.max_attempts + 1):
        verdicts = []
        for spec in policy.validators:
            if draw(st.integers(0, 4)) == 0:
                continue  # never answers
            vote, severity = draw(VOTES)
            delay = draw(st.integers(0, window + window // 5))  # some after the deadline
            verdicts.append((make_verdict(spec.id, attempt, vote, severity), delay))
        # In time, exactly at the end of the wait, late but retained, after pruning, or never.
        wait = TALLY.retry_wait_ms
        reply = draw(st.none() | st.integers(0, wait + TALLY.retention_ms + window))
        plans.append(AttemptPlan(tuple(verdicts), reply))
    return CaseLife(policy, tuple(plans))


@dataclass
class Life:
    decisions: list[Decision]
    rejected: list[Rejection]
    state: CaseState | None


def live(life: CaseLife) -> Life:
    """Drive the case as the processor does: records in time order, ticks when due."""
    policy, policies_ = life.policy, {life.policy.name: life.policy}
    events: list[tuple[int, int, Candidate | Verdict]] = []
    order = 0

    def submit(attempt: int, at_ms: int) -> None:
        nonlocal order
        # Validators judge every candidate on the topic, also one the tally will refuse.
        records: list[tuple[int, Candidate | Verdict]] = [(at_ms, make_candidate(attempt))]
        records += [(at_ms + delay, v) for v, delay in life.plans[attempt - 1].verdicts]
        for time_ms, record in records:
            order += 1
            heapq.heappush(events, (time_ms, order, record))

    result = Life([], [], None)
    submit(1, T0)
    due: int | None = None
    for _ in range(1_000):  # far more than any case needs: a loop here is a bug
        if not events and due is None:
            return result
        if due is not None and (not events or due <= events[0][0]):
            now = due
            step: Step = on_tick(result.state, policies_, now, TALLY)
        else:
            now, _, record = heapq.heappop(events)
            if isinstance(record, Candidate):
                step = on_candidate(result.state, record, policy, now, TALLY)
            else:
                step = on_verdict(result.state, record, SOURCE, policies_, now, TALLY)
        result.state, due = step.state, step.due_ms
        assert_round_trip(result.state)
        result.decisions += step.decisions
        result.rejected += step.rejected
        for decision in step.decisions:
            if isinstance(decision, RetryRequest):
                reply = life.plans[decision.attempt - 1].reply_ms
                if reply is not None and decision.next_attempt <= len(life.plans):
                    submit(decision.next_attempt, now + reply)
    raise AssertionError("the case never settled")


@settings(max_examples=300, deadline=None)
@given(case_lives())
def test_every_case_ends_in_exactly_one_final_outcome(life: CaseLife) -> None:
    result = live(life)
    decisions = result.decisions
    *earlier, final = decisions
    retries = [d for d in earlier if isinstance(d, RetryRequest)]
    assert retries == earlier
    assert isinstance(final, PassDecision | EscalationPacket)
    event(type(final).__name__ + ("" if isinstance(final, PassDecision) else f" {final.reason}"))
    # One decision per attempt, 1, 2, ..., each with the id of its (case, attempt).
    assert [d.attempt for d in decisions] == list(range(1, len(decisions) + 1))
    assert [d.decision_id for d in decisions] == [decision_id(CASE, d.attempt) for d in decisions]
    last_reply = life.plans[retries[-1].attempt - 1].reply_ms if retries else None
    answered_in_time = last_reply is not None and last_reply < TALLY.retry_wait_ms
    timed_out = isinstance(final, EscalationPacket) and final.reason is RETRY_TIMEOUT
    # Escalated for want of a next attempt exactly when the generator did not answer in time.
    assert timed_out == (bool(retries) and not answered_in_time)
    if isinstance(final, EscalationPacket):
        failed = [r.attempt for r in retries] + ([] if timed_out else [final.attempt])
        assert [a.candidate for a in final.attempts] == [make_candidate(n) for n in failed]
        assert [a.failure for a in final.attempts[: len(retries)]] == [r.reason for r in retries]
    # A candidate the generator sent too late was refused (the case closed, or forgotten and
    # then not an attempt 1), never opened.
    refused = [r for r in result.rejected if isinstance(r.record, Candidate)]
    sent_late = timed_out and last_reply is not None
    assert [r.record.attempt for r in refused] == ([final.attempt] if sent_late else [])
    closed = {DeadLetterReason.CASE_CLOSED, DeadLetterReason.WRONG_ATTEMPT}
    assert all(r.reason in closed for r in refused)
    assert result.state is None  # and then the case is forgotten


RETRY_TIMEOUT = EscalationReason.RETRY_TIMEOUT


@PROPERTY_SETTINGS
@given(scenarios())
def test_complete_packets_carry_every_verdict_of_a_failed_attempt(scenario: Scenario) -> None:
    # With complete_packets a failure waits for every validator (or the deadline): its decision
    # counts every verdict delivered, whatever the order; a pass is never held.
    policy = replace(scenario.policy, complete_packets=True)
    held = Scenario(policy, scenario.attempt, scenario.verdicts, scenario.delivery)
    [decision] = deliver(held, held.delivery).decisions
    if not isinstance(decision, PassDecision):
        assert set(counted_votes(decision)) == set(first_occurrences(held.delivery))
    plain = replace(scenario.policy, complete_packets=False)
    [same] = deliver(replace(held, policy=plain), held.delivery).decisions
    assert isinstance(same, PassDecision) == isinstance(decision, PassDecision)
