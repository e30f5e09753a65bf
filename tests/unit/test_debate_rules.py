"""Debate rounds (policy [debate], docs/debate.md): the pure round rules and the tally's use."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError, PolicyError
from ratifier.core.models import (
    Candidate,
    DeadLetterReason,
    EscalationPacket,
    FailureReason,
    PassDecision,
    Reason,
    RetryRequest,
    Severity,
    Verdict,
    Vote,
)
from ratifier.core.policy import Debate, Policy
from ratifier.schemas import codec
from ratifier.streams.rules.debate import NextStep, RoundTally, after_round, peers_of
from ratifier.streams.rules.limits import MAX_VERDICT_BYTES, SizeLimits
from ratifier.streams.rules.state import CaseState, CaseStatus, decode_state, encode_state
from ratifier.streams.rules.tally import (
    SourceRef,
    Step,
    TallySettings,
    decision_id,
    on_candidate,
    on_tick,
    on_verdict,
    round_request_id,
)

T0 = 1_700_000_000_000
CASE = "case-1"
SETTINGS = TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=120_000)
FIVE = ("v1", "v2", "v3", "v4", "v5")
SOURCE = SourceRef("verdicts", 0, 0)


def debate_policy(
    min_rounds: int = 2,
    max_rounds: int = 4,
    supermajority: float = 0.75,
    red_team: tuple[str, ...] = (),
    max_attempts: int = 2,
    **extra: Any,
) -> Policy:
    validators: list[dict[str, Any]] = [{"id": v} for v in FIVE]
    validators += [{"id": v, "role": "red-team"} for v in red_team]
    data: dict[str, Any] = {
        "name": "p",
        "version": "d1",
        "max_attempts": max_attempts,
        "window_seconds": 30,
        "threshold": {"accepts": 3},
        "debate": {
            "min_rounds": min_rounds,
            "max_rounds": max_rounds,
            "supermajority": supermajority,
        },
        "validators": validators,
        **extra,
    }
    return Policy.from_mapping(data, "test")


def candidate(attempt: int = 1) -> Candidate:
    return Candidate(CASE, attempt, f"cand-{attempt}", "p", "general", "q?", "a.", "gen", T0)


def verdict(
    validator: str, vote: Vote, round_: int | None, attempt: int = 1, **extra: Any
) -> Verdict:
    return Verdict(
        CASE,
        attempt,
        f"cand-{attempt}",
        validator,
        "1",
        vote,
        0.9,
        extra.pop("severity", Severity.MAJOR if vote is Vote.REJECT else None),
        (Reason("r", f"{validator} says {vote.value} in round {round_}"),),
        5,
        T0,
        round=round_,
        **extra,
    )


class Run:
    """Drives one case through the rules, keeping every step's outputs."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.state: CaseState | None = None
        self.steps: list[Step] = []
        self.now = T0

    def step(self, step: Step) -> Step:
        self.steps.append(step)
        self.state = step.state
        if self.state is not None:  # every state survives the changelog's bytes
            assert decode_state(encode_state(self.state)) == self.state
        return step

    def candidate(self, attempt: int = 1) -> Step:
        return self.step(
            on_candidate(self.state, candidate(attempt), self.policy, self.now, SETTINGS)
        )

    def round(self, votes: str, round_: int | None, attempt: int = 1) -> list[Step]:
        """One token per validator, in FIVE order: A(ccept), R(eject), X (abstain), - (silent)."""
        out = []
        for validator, token in zip(FIVE, votes, strict=True):
            if token == "-":
                continue
            vote = {"A": Vote.ACCEPT, "R": Vote.REJECT, "X": Vote.ABSTAIN}[token]
            out.append(self.verdict(verdict(validator, vote, round_, attempt)))
        return out

    def verdict(self, v: Verdict) -> Step:
        return self.step(on_verdict(self.state, v, SOURCE, {"p": self.policy}, self.now, SETTINGS))

    def tick(self, at_ms: int) -> Step:
        self.now = at_ms
        return self.step(on_tick(self.state, {"p": self.policy}, self.now, SETTINGS))

    @property
    def decisions(self) -> list[Any]:
        return [d for s in self.steps for d in s.decisions]

    @property
    def requests(self) -> list[Any]:
        return [r for s in self.steps for r in s.rounds]


# --- the pure rule -----------------------------------------------------------------------------


def test_before_min_rounds_even_unanimity_opens_another_round() -> None:
    debate = Debate(min_rounds=2, max_rounds=4, supermajority=0.75)
    tally = RoundTally(1, 5.0, 0.0, 5.0, True, True)
    assert after_round(debate, tally) == (NextStep.NEXT_ROUND, None)
    assert after_round(debate, replace(tally, round=2)) == (NextStep.PASS, None)


def test_a_rejecting_supermajority_fails_and_the_last_round_fails_without_one() -> None:
    debate = Debate(min_rounds=1, max_rounds=3, supermajority=0.75)
    rejecting = RoundTally(1, 1.0, 4.0, 5.0, False, True)
    assert after_round(debate, rejecting) == (NextStep.FAIL, FailureReason.THRESHOLD_UNREACHABLE)
    split = RoundTally(1, 3.0, 2.0, 5.0, True, True)
    assert after_round(debate, split) == (NextStep.NEXT_ROUND, None)
    assert after_round(debate, replace(split, round=3)) == (
        NextStep.FAIL,
        FailureReason.NO_SUPERMAJORITY,
    )


def test_a_pass_also_needs_the_threshold_and_the_red_team() -> None:
    debate = Debate(min_rounds=1, max_rounds=1, supermajority=0.75)
    tally = RoundTally(1, 4.0, 0.0, 5.0, True, True)
    assert after_round(debate, tally)[0] is NextStep.PASS
    assert after_round(debate, replace(tally, threshold_met=False))[0] is NextStep.FAIL
    assert after_round(debate, replace(tally, red_team_heard=False))[0] is NextStep.FAIL


@st.composite
def round_tallies(draw: st.DrawFn) -> tuple[Debate, RoundTally]:
    max_rounds = draw(st.integers(1, 10))
    min_rounds = draw(st.integers(1, max_rounds))
    debate = Debate(min_rounds, max_rounds, draw(st.floats(0.51, 1.0)), True)
    total = draw(st.integers(1, 9))
    accepting = draw(st.integers(0, total))
    rejecting = draw(st.integers(0, total - accepting))
    tally = RoundTally(
        draw(st.integers(1, max_rounds)),
        float(accepting),
        float(rejecting),
        float(total),
        draw(st.booleans()),
        draw(st.booleans()),
    )
    return debate, tally


@given(round_tallies())
def test_property_rounds_stay_within_bounds(case: tuple[Debate, RoundTally]) -> None:
    debate, tally = case
    step, failure = after_round(debate, tally)
    if tally.round < debate.min_rounds:
        assert step is NextStep.NEXT_ROUND  # never decided before min_rounds
    if tally.round == debate.max_rounds:
        assert step is not NextStep.NEXT_ROUND  # always decided at max_rounds
    assert (failure is not None) == (step is NextStep.FAIL)
    if step is NextStep.PASS:
        assert tally.accepting >= debate.supermajority * tally.total - 1e-9 * tally.total


@given(round_tallies())
def test_property_one_more_accepting_voter_never_turns_a_pass_into_anything_else(
    case: tuple[Debate, RoundTally],
) -> None:
    debate, tally = case
    if after_round(debate, tally)[0] is NextStep.PASS and tally.rejecting >= 1:
        more = replace(tally, accepting=tally.accepting + 1, rejecting=tally.rejecting - 1)
        assert after_round(debate, more)[0] is NextStep.PASS


def test_peers_are_sorted_by_validator_with_their_reasons() -> None:
    peers = peers_of([verdict("v2", Vote.REJECT, 1), verdict("v1", Vote.ACCEPT, 1)])
    assert [p.peer for p in peers] == ["v1", "v2"]
    assert peers[1].reasons[0].message == "v2 says REJECT in round 1"


# --- the policy table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"min_rounds": 3, "max_rounds": 2}, "min_rounds <= max_rounds"),
        ({"min_rounds": 0}, "1 <= min_rounds"),
        ({"supermajority": 0.5}, r"debate.supermajority must be in \(0.5, 1\]"),
        ({"max_rounds": 11}, "at most 10"),
        ({"rounds": 2}, "unknown key"),
    ],
)
def test_bad_debate_tables_are_refused(table: dict[str, Any], problem: str) -> None:
    data = {"name": "p", "version": "1", "threshold": {"accepts": 1}, "validators": [{"id": "a"}]}
    with pytest.raises(PolicyError, match=problem):
        Policy.from_mapping({**data, "debate": table}, "t")


def test_debate_and_the_attempt_supermajority_cannot_be_combined() -> None:
    data = {"name": "p", "version": "1", "threshold": {"accepts": 1}, "validators": [{"id": "a"}]}
    data |= {"debate": {}, "supermajority": {"ratio": 0.8, "min_rounds": 1}}
    with pytest.raises(PolicyError, match="cannot be combined"):
        Policy.from_mapping(data, "t")


def test_defaults() -> None:
    policy = Policy.from_mapping(
        {
            "name": "p",
            "version": "1",
            "threshold": {"accepts": 1},
            "validators": [{"id": "a"}],
            "debate": {},
        },
        "t",
    )
    assert policy.debate == Debate(min_rounds=2, max_rounds=4, supermajority=0.75, anonymise=True)


# --- through the tally -------------------------------------------------------------------------


def test_min_rounds_run_even_when_round_one_is_unanimous_then_a_supermajority_passes() -> None:
    run = Run(debate_policy(min_rounds=2))
    run.candidate()
    steps = run.round("AAAAA", None)  # round 1: verdicts from before debates read as round 1
    assert not run.decisions
    (request,) = steps[-1].rounds
    assert (request.round, request.attempt, request.candidate_id) == (2, 1, "cand-1")
    assert request.request_id == round_request_id(CASE, 1, 2)
    assert [p.peer for p in request.peers] == list(FIVE)
    assert request.peers[0].reasons[0].message == "v1 says ACCEPT in round None"
    assert request.anonymise is True
    assert request.closes_at_ms == T0 + 30_000
    run.round("AAAAR", 2)  # 4/5 = 0.8 >= 0.75
    (decision,) = run.decisions
    assert isinstance(decision, PassDecision)
    assert decision.decision_id == decision_id(CASE, 1)
    assert [r.round for r in decision.rounds] == [1]
    assert len(decision.rounds[0].verdicts) == 5
    assert [v.round for v in decision.votes] == [2] * 5
    assert decision.accept_share == pytest.approx(0.8)
    assert run.state is not None
    assert run.state.status is CaseStatus.PASSED


def test_no_supermajority_by_max_rounds_fails_the_attempt_then_escalates() -> None:
    run = Run(debate_policy(min_rounds=1, max_rounds=3, max_attempts=2))
    run.candidate()
    for round_ in (1, 2, 3):
        run.round("AAARR", round_)  # 0.6 either way: never 0.75
    assert [r.round for r in run.requests] == [2, 3]
    (retry,) = run.decisions
    assert isinstance(retry, RetryRequest)
    assert retry.reason is FailureReason.NO_SUPERMAJORITY
    assert [r.round for r in retry.rounds] == [1, 2]
    run.candidate(2)
    for round_ in (1, 2, 3):
        run.round("ARRRR"[:5], round_, attempt=2)
        if len(run.decisions) > 1:
            break
    packet = run.decisions[-1]
    assert isinstance(packet, EscalationPacket)  # 4/5 rejecting in round 1 of the last attempt
    assert packet.attempts[0].failure is FailureReason.NO_SUPERMAJORITY
    assert [r.round for r in packet.attempts[0].rounds] == [1, 2]
    assert packet.attempts[1].failure is FailureReason.THRESHOLD_UNREACHABLE
    assert packet.attempts[1].rounds == ()


def test_a_round_window_closing_ends_the_round_with_whoever_answered() -> None:
    run = Run(debate_policy(min_rounds=2, max_rounds=2))
    run.candidate()
    run.round("AAAA-", 1)
    assert not run.requests  # v5 not heard yet: the round stays open
    step = run.tick(T0 + 30_000)
    (request,) = step.rounds
    assert [p.peer for p in request.peers] == ["v1", "v2", "v3", "v4"]
    run.round("AAAA-", 2)
    assert not run.decisions
    run.tick(T0 + 60_000)
    (decision,) = run.decisions
    assert isinstance(decision, PassDecision)  # 4/5 of the weight, v5 silent, counts in W


def test_a_round_nobody_answered_times_out() -> None:
    run = Run(debate_policy(max_attempts=1))
    run.candidate()
    run.tick(T0 + 30_000)
    (packet,) = run.decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.attempts[0].failure is FailureReason.WINDOW_TIMEOUT


def test_a_verdict_counts_once_per_validator_and_round_and_late_for_a_closed_round() -> None:
    run = Run(debate_policy(min_rounds=2, max_rounds=3))
    run.candidate()
    run.round("RRAAA", 1)
    again = run.verdict(verdict("v1", Vote.ACCEPT, 1))  # round 1 closed, v1 counted in it
    assert not again.changed
    assert not again.late
    run.round("AAAA-", 2)
    assert run.state is not None
    assert run.state.latest is not None
    assert run.state.latest.votes["v1"].vote is Vote.ACCEPT
    twice = run.verdict(verdict("v1", Vote.REJECT, 2))  # a second answer in round 2: ignored
    assert not twice.changed
    run.tick(T0 + 30_000)  # round 2 closes without v5; 4/5 accept: pass
    late = run.verdict(verdict("v5", Vote.REJECT, 2))
    assert late.late
    assert not late.rejected


def test_a_verdict_for_a_round_never_opened_is_dead_lettered() -> None:
    run = Run(debate_policy())
    run.candidate()
    step = run.verdict(verdict("v1", Vote.ACCEPT, 3))
    (rejection,) = step.rejected
    assert rejection.reason is DeadLetterReason.UNKNOWN_ATTEMPT
    assert "round 3 of attempt 1 was never opened" in rejection.detail


def test_a_red_team_veto_keeps_its_meaning_in_any_round() -> None:
    run = Run(
        debate_policy(min_rounds=2, red_team=("rt",), max_attempts=1, veto={"action": "escalate"})
    )
    run.candidate()
    run.round("AAAAA", 1)
    run.verdict(verdict("rt", Vote.ACCEPT, 1))
    assert [r.round for r in run.requests] == [2]
    run.round("AAAAA", 2)
    assert not run.decisions  # a pass waits for the red team
    run.verdict(verdict("rt", Vote.REJECT, 2, severity=Severity.CRITICAL))
    (packet,) = run.decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.attempts[0].failure is FailureReason.VETO


def test_a_policy_without_debate_refuses_round_two_verdicts() -> None:
    policy = Policy.from_mapping(
        {
            "name": "p",
            "version": "1",
            "threshold": {"accepts": 3},
            "validators": [{"id": v} for v in FIVE],
        },
        "t",
    )
    run = Run(policy)
    run.candidate()
    step = run.verdict(verdict("v1", Vote.ACCEPT, 2))
    assert step.rejected[0].reason is DeadLetterReason.UNKNOWN_ATTEMPT
    run.round("AAA--", 1)
    assert isinstance(run.decisions[0], PassDecision)
    assert run.decisions[0].rounds == ()


# --- record size: a 5-validator 4-round debate fits (docs/debate.md, "Record size") -------------


@pytest.mark.parametrize(
    ("attempts", "earlier"), [(1, "full"), (2, "referenced")], ids=["one-attempt", "referenced"]
)
def test_a_five_validator_four_round_debate_fits_a_record(attempts: int, earlier: str) -> None:
    limits = SizeLimits.from_settings(Settings())  # 200 000 B candidates, 1 048 576 B records
    rules = debate_policy(4, 4, max_attempts=attempts, earlier_attempts=earlier)
    limits.check_policy(rules)
    bound = limits.worst_case_bytes(rules)
    assert bound <= limits.max_record_bytes
    with pytest.raises(ConfigError, match="more than RATIFIER_MAX_RECORD_BYTES"):
        limits.check_policy(debate_policy(4, 4, max_attempts=2))  # two attempts in full: no
    content = "x" * (limits.max_candidate_bytes - 1_000)
    reasons = tuple(Reason(f"r{i}", "m" * ((MAX_VERDICT_BYTES - 600) // 4)) for i in range(4))
    state: CaseState | None = None
    largest_state = largest_output = 0
    decisions: list[Any] = []
    for attempt in range(1, attempts + 1):
        cand = replace(candidate(attempt), content=content)
        assert len(codec.encode(cand)) <= limits.max_candidate_bytes
        step = on_candidate(state, cand, rules, T0, SETTINGS)
        state = step.state
        for round_ in range(1, 5):
            for v in FIVE:
                big = replace(verdict(v, Vote.REJECT, round_, attempt), reasons=reasons)
                assert len(codec.encode(big)) <= MAX_VERDICT_BYTES
                step = on_verdict(state, big, SOURCE, {"p": rules}, T0, SETTINGS)
                state = step.state
                assert state is not None
                largest_state = max(largest_state, len(encode_state(state)))
                for record in (*step.decisions, *step.rounds):
                    largest_output = max(largest_output, len(codec.encode(record)))
                decisions += step.decisions
    packet = decisions[-1]
    assert isinstance(packet, EscalationPacket)
    assert [r.round for r in packet.attempts[-1].rounds] == [1, 2, 3]
    assert largest_state <= bound
    assert largest_output <= bound
    assert largest_output > 500_000  # the records really were near the bound
