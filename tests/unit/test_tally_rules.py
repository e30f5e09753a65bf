"""The tally's decision rules, table by table.

Most tables drive the rules with a small script, one token per input, applied in order:

    C1            candidate for attempt 1 (id cand-1); C2/other: attempt 2 with id "other";
                  C1[medical]: category "medical" (default "general")
    A:v1          ACCEPT from validator v1 for the latest candidate's attempt
    R:v1 X:v1     REJECT (severity MAJOR), ABSTAIN
    V:rt          REJECT with severity CRITICAL (a veto when rt is red-team)
    A:v1@2        ... for attempt 2;  A:v1/other: naming candidate id "other"
    T+30000       a tick 30 s after the start (later inputs happen at that time too)

Decisions are summarised as "@<token number> <kind> #<attempt> <reason or outcome> [share=...]",
where <attempt> is the attempt the decision belongs to (its id is ``decision_id(case, attempt)``).
SETTINGS wait 120 s for a retry's candidate and keep a final case 60 s.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ratifier.core.errors import PolicyError
from ratifier.core.models import (
    TIMEOUT_REASON_CODE,
    Candidate,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    Reason,
    RetryRequest,
    Severity,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy
from ratifier.streams.rules.state import CaseState, CaseStatus, decode_state, encode_state
from ratifier.streams.rules.tally import (
    Rejection,
    SourceRef,
    Step,
    TallySettings,
    decision_id,
    on_candidate,
    on_tick,
    on_verdict,
    retry_similarity,
)

T0 = 1_700_000_000_000
CASE = "case-1"
SETTINGS = TallySettings(hold_ms=5_000, retention_ms=60_000, retry_wait_ms=120_000)
FIVE = ("v1", "v2", "v3", "v4", "v5")


# --- factories ---------------------------------------------------------------------------------


def make_policy(
    *,
    accepts: int | None = 3,
    ratio: float | None = None,
    voters: tuple[str, ...] = FIVE,
    weights: dict[str, float] | None = None,
    category_weights: dict[str, dict[str, float]] | None = None,
    red_team: tuple[str, ...] = (),
    supermajority: tuple[float, int] | None = None,
    veto: str = "retry",
    max_attempts: int = 3,
    name: str = "p",
) -> Policy:
    validators: list[dict[str, Any]] = []
    for validator_id in voters:
        entry: dict[str, Any] = {"id": validator_id, "weight": (weights or {}).get(validator_id, 1)}
        if category_weights and validator_id in category_weights:
            entry["category_weights"] = category_weights[validator_id]
        validators.append(entry)
    validators += [{"id": validator_id, "role": "red-team"} for validator_id in red_team]
    data: dict[str, Any] = {
        "name": name,
        "version": "v7",
        "max_attempts": max_attempts,
        "window_seconds": 30,
        "threshold": {"ratio": ratio} if ratio is not None else {"accepts": accepts},
        "veto": {"action": veto},
        # The tables below read early decisions; complete packets (the default) are _complete's.
        "complete_packets": False,
        "validators": validators,
    }
    if supermajority is not None:
        data["supermajority"] = {"ratio": supermajority[0], "min_rounds": supermajority[1]}
    return Policy.from_mapping(data, "test")


def make_candidate(
    attempt: int = 1, candidate_id: str | None = None, category: str = "general"
) -> Candidate:
    return Candidate(
        case_id=CASE,
        attempt=attempt,
        candidate_id=candidate_id or f"cand-{attempt}",
        policy="p",
        category=category,
        query="What is the boiling point of water at sea level?",
        content=f"Answer number {attempt}.",
        producer="gen-1",
        produced_at_ms=T0,
    )


def make_verdict(
    validator_id: str,
    vote: Vote = Vote.ACCEPT,
    attempt: int = 1,
    candidate_id: str | None = None,
    severity: Severity | None = None,
) -> Verdict:
    reasons = () if vote is Vote.ACCEPT else (Reason("R1", f"{validator_id} objects"),)
    return Verdict(
        case_id=CASE,
        attempt=attempt,
        candidate_id=candidate_id or f"cand-{attempt}",
        validator_id=validator_id,
        validator_version="1.0",
        vote=vote,
        confidence=0.9,
        severity=severity,
        reasons=reasons,
        latency_ms=12,
        produced_at_ms=T0,
    )


# --- the script runner -------------------------------------------------------------------------

_CANDIDATE = re.compile(r"C(\d+)(?:/([\w-]+))?(?:\[(\w+)\])?$")
_VERDICT = re.compile(r"([ARXV]):([\w.-]+)(?:@(\d+))?(?:/([\w-]+))?$")
_VOTES = {
    "A": (Vote.ACCEPT, None),
    "R": (Vote.REJECT, Severity.MAJOR),
    "X": (Vote.ABSTAIN, None),
    "V": (Vote.REJECT, Severity.CRITICAL),
}


@dataclass
class Trace:
    state: CaseState | None = None
    steps: list[Step] = field(default_factory=list)
    decisions: list[tuple[int, Decision]] = field(default_factory=list)
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)
    late: list[tuple[int, Verdict]] = field(default_factory=list)

    @property
    def only_decisions(self) -> list[Decision]:
        return [decision for _, decision in self.decisions]


def run(
    policy: Policy,
    script: str,
    *,
    state: CaseState | None = None,
    policies: dict[str, Policy] | None = None,
    settings: TallySettings = SETTINGS,
) -> Trace:
    trace = Trace(state=state)
    policies = {policy.name: policy} if policies is None else policies
    now, attempt = T0, 1
    for index, token in enumerate(script.split(), start=1):
        before = trace.state
        if token.startswith("T+"):
            now = T0 + int(token[2:])
            step = on_tick(before, policies, now, settings)
        elif match := _CANDIDATE.match(token):
            attempt = int(match[1])
            candidate = make_candidate(attempt, match[2], match[3] or "general")
            step = on_candidate(before, candidate, policy, now, settings)
        elif match := _VERDICT.match(token):
            vote, severity = _VOTES[match[1]]
            verdict = make_verdict(match[2], vote, int(match[3] or attempt), match[4], severity)
            source = SourceRef("ratifier.verdicts", 0, index)
            step = on_verdict(before, verdict, source, policies, now, settings)
        else:
            raise ValueError(f"bad script token {token!r}")
        if not step.changed:
            assert step.state is before, f"{token}: unchanged step must return the input state"
        trace.steps.append(step)
        trace.state = step.state
        trace.decisions += [(index, decision) for decision in step.decisions]
        trace.rejected += [(index, rejection) for rejection in step.rejected]
        trace.late += [(index, verdict) for verdict in step.late]
    ids = [decision.decision_id for decision in trace.only_decisions]
    assert len(ids) == len(set(ids)), "more than one decision for a (case, attempt)"
    return trace


def summary(index: int, decision: Decision) -> str:
    if isinstance(decision, PassDecision):
        assert decision.accept_share is not None
        share = round(decision.accept_share, 4)
        return f"@{index} pass #{decision.attempt} {decision.outcome} share={share}"
    if isinstance(decision, RetryRequest):
        return f"@{index} retry #{decision.attempt} {decision.reason}"
    return f"@{index} escalate #{decision.attempt} {decision.reason}"


def rejection_summary(index: int, rejection: Rejection) -> str:
    record = rejection.record
    label = record.validator_id if isinstance(record, Verdict) else record.candidate_id
    held = " (held)" if rejection.source is not None else ""
    return f"@{index} {rejection.reason} {label}{held}"


# --- decisions, table-driven -------------------------------------------------------------------

P3_OF_5 = make_policy()
WEIGHTED = make_policy(accepts=None, ratio=0.5, weights={"v1": 3})  # W = 7
BY_CATEGORY = make_policy(accepts=None, ratio=0.5, category_weights={"v1": {"medical": 4}})
RATIO_60 = make_policy(accepts=None, ratio=0.6)
ODD_WEIGHTS = make_policy(accepts=None, ratio=0.6, weights=dict.fromkeys(FIVE, 0.7))
SUPER = make_policy(supermajority=(0.75, 3))
RED = make_policy(red_team=("rt",))
RED_ESCALATES = make_policy(red_team=("rt",), veto="escalate")
RED_ONE_ATTEMPT = make_policy(red_team=("rt",), max_attempts=1)

DECISIONS = [
    # M-of-N
    pytest.param(P3_OF_5, "C1 A:v1 A:v2 A:v3", ["@4 pass #1 confirmed share=0.6"], id="3of5-pass"),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 X:v2 A:v3 A:v4 A:v5",
        ["@6 pass #1 confirmed share=0.6"],
        id="3of5-pass-after-dissent",
    ),
    pytest.param(
        P3_OF_5, "C1 A:v1 A:v2 A:v3 A:v4", ["@4 pass #1 confirmed share=0.6"], id="3of5-no-double"
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3",
        ["@4 retry #1 THRESHOLD_UNREACHABLE"],
        id="unreachable-early-before-all-votes",
    ),
    pytest.param(
        P3_OF_5,
        "C1 X:v1 X:v2 R:v3",
        ["@4 retry #1 THRESHOLD_UNREACHABLE"],
        id="abstain-counts-as-not-accept",
    ),
    pytest.param(P3_OF_5, "C1 A:v1 A:v2 R:v3 R:v4", [], id="still-reachable-no-decision-yet"),
    # weights
    pytest.param(WEIGHTED, "C1 A:v1 A:v2", ["@3 pass #1 confirmed share=0.5714"], id="heavy-voter"),
    pytest.param(
        WEIGHTED,
        "C1 R:v1 A:v2 A:v3 A:v4 R:v5",
        ["@6 retry #1 THRESHOLD_UNREACHABLE"],
        id="heavy-reject-needs-all-others",
    ),
    pytest.param(
        BY_CATEGORY, "C1[medical] A:v1", ["@2 pass #1 confirmed share=0.5"], id="category-weight"
    ),
    pytest.param(BY_CATEGORY, "C1 A:v1 A:v2", [], id="category-weight-not-for-others"),
    pytest.param(
        BY_CATEGORY, "C1 A:v1 A:v2 A:v3", ["@4 pass #1 confirmed share=0.6"], id="default-weight"
    ),
    # ratio threshold
    pytest.param(RATIO_60, "C1 A:v1 A:v2 A:v3", ["@4 pass #1 confirmed share=0.6"], id="ratio-met"),
    pytest.param(
        ODD_WEIGHTS,
        "C1 A:v1 A:v2 A:v3",
        ["@4 pass #1 confirmed share=0.6"],
        id="ratio-met-despite-float-rounding",
    ),
    pytest.param(
        RATIO_60, "C1 R:v1 X:v2 R:v3", ["@4 retry #1 THRESHOLD_UNREACHABLE"], id="ratio-unreach"
    ),
    # supermajority with minimum rounds
    pytest.param(
        SUPER, "C1 A:v1 A:v2 A:v3 A:v4", ["@5 pass #1 confirmed share=0.8"], id="super-early-pass"
    ),
    pytest.param(
        SUPER,
        "C1 A:v1 A:v2 A:v3 R:v4 R:v5",
        ["@6 retry #1 SUPERMAJORITY_UNREACHABLE"],
        id="super-3of5-on-attempt-1-retries",
    ),
    pytest.param(
        SUPER,
        "C1 R:v1 R:v2 C2 R:v1 R:v2 C3 A:v1 A:v2 A:v3",
        [
            "@3 retry #1 SUPERMAJORITY_UNREACHABLE",
            "@6 retry #2 SUPERMAJORITY_UNREACHABLE",
            "@10 pass #3 corrected share=0.6",
        ],
        id="super-3of5-on-attempt-3-passes",
    ),
    pytest.param(
        SUPER,
        "C1 R:v1 R:v2 R:v3",
        ["@3 retry #1 SUPERMAJORITY_UNREACHABLE"],
        id="super-fails-when-super-unreachable-first",
    ),
    pytest.param(
        SUPER,
        "C1 R:v1 R:v2 C2 A:v1 A:v2 A:v3 A:v4",
        ["@3 retry #1 SUPERMAJORITY_UNREACHABLE", "@8 pass #2 corrected share=0.8"],
        id="super-pass-on-attempt-2",
    ),
    # red team
    pytest.param(RED, "C1 A:v1 V:rt", ["@3 retry #1 VETO"], id="veto-retries"),
    pytest.param(RED_ESCALATES, "C1 V:rt", ["@2 escalate #1 VETO"], id="veto-escalates"),
    pytest.param(
        RED_ONE_ATTEMPT,
        "C1 V:rt",
        ["@2 escalate #1 VETO"],
        id="veto-on-last-attempt-escalates",
    ),
    pytest.param(
        RED,
        "C1 A:v1 A:v2 A:v3 A:v4 X:rt",
        ["@6 pass #1 confirmed share=0.8"],
        id="red-team-pending-delays-pass",
    ),
    pytest.param(RED, "C1 A:v1 A:v2 A:v3 V:rt", ["@5 retry #1 VETO"], id="veto-after-threshold"),
    pytest.param(
        RED, "C1 A:v1 A:v2 A:v3 R:rt", ["@5 pass #1 confirmed share=0.6"], id="major-is-no-veto"
    ),
    pytest.param(
        RED,
        "C1 A:v1 A:v2 A:v3 T+30000",
        ["@5 retry #1 WINDOW_TIMEOUT"],
        id="silent-red-team-times-out",
    ),
    pytest.param(
        RED,
        "C1 R:v1 R:v2 R:v3",
        ["@4 retry #1 THRESHOLD_UNREACHABLE"],
        id="unreachable-does-not-wait-for-red-team",
    ),
    # timeouts
    pytest.param(
        P3_OF_5,
        "C1 A:v1 R:v2 T+29999 T+30000",
        ["@5 retry #1 WINDOW_TIMEOUT"],
        id="timeout-at-deadline",
    ),
    pytest.param(
        P3_OF_5,
        "C1 T+30000 C2 T+60000 C3 T+90000",
        [
            "@2 retry #1 WINDOW_TIMEOUT",
            "@4 retry #2 WINDOW_TIMEOUT",
            "@6 escalate #3 WINDOW_TIMEOUT",
        ],
        id="timeouts-until-exhausted",
    ),
    # duplicates, held verdicts
    pytest.param(
        P3_OF_5,
        "C1 A:v1 A:v1 A:v1 A:v2 R:v3 R:v4 R:v5",
        ["@8 retry #1 THRESHOLD_UNREACHABLE"],
        id="duplicates-count-once",
    ),
    pytest.param(
        P3_OF_5, "A:v1 A:v2 A:v3 C1", ["@4 pass #1 confirmed share=0.6"], id="held-then-applied"
    ),
    pytest.param(
        P3_OF_5,
        "A:v1 A:v1 R:v2 C1 A:v3 A:v4",
        ["@6 pass #1 confirmed share=0.6"],
        id="held-duplicate-counts-once",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 A:v1@2 A:v2@2 A:v3@2 R:v2 R:v3 C2",
        ["@7 retry #1 THRESHOLD_UNREACHABLE", "@8 pass #2 corrected share=0.6"],
        id="next-attempt-held-while-voting",
    ),
    # attempts
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 C2 R:v1 R:v2 R:v3 C3 R:v1 R:v2 R:v3",
        [
            "@4 retry #1 THRESHOLD_UNREACHABLE",
            "@8 retry #2 THRESHOLD_UNREACHABLE",
            "@12 escalate #3 REJECTED",
        ],
        id="exhausted-escalates",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 C2 A:v1 A:v2 A:v3",
        ["@4 retry #1 THRESHOLD_UNREACHABLE", "@8 pass #2 corrected share=0.6"],
        id="corrected-on-retry",
    ),
    # a retry whose candidate never comes: escalated for the attempt that never came
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+119999 T+120000 T+150000 T+180000",
        ["@4 retry #1 THRESHOLD_UNREACHABLE", "@6 escalate #2 RETRY_TIMEOUT"],
        id="retry-never-sent-escalates-once",
    ),
    pytest.param(
        P3_OF_5,
        "C1 T+30000 T+149999 T+150000",
        ["@2 retry #1 WINDOW_TIMEOUT", "@4 escalate #2 RETRY_TIMEOUT"],
        id="retry-wait-runs-from-the-timeout",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 C2 R:v1 R:v2 R:v3 T+120000",
        [
            "@4 retry #1 THRESHOLD_UNREACHABLE",
            "@8 retry #2 THRESHOLD_UNREACHABLE",
            "@9 escalate #3 RETRY_TIMEOUT",
        ],
        id="second-retry-never-sent",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+119999 C2 A:v1 A:v2 A:v3 T+500000",
        ["@4 retry #1 THRESHOLD_UNREACHABLE", "@9 pass #2 corrected share=0.6"],
        id="retry-in-time-is-not-escalated",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+119999 C2 T+149999",
        ["@4 retry #1 THRESHOLD_UNREACHABLE", "@7 retry #2 WINDOW_TIMEOUT"],
        id="open-window-is-not-escalated-at-the-retry-wait",
    ),
    pytest.param(
        RED,
        "C1 A:v1 V:rt T+120000",
        ["@3 retry #1 VETO", "@4 escalate #2 RETRY_TIMEOUT"],
        id="retry-after-veto-never-sent",
    ),
]


@pytest.mark.parametrize(("policy", "script", "expected"), DECISIONS)
def test_decisions(policy: Policy, script: str, expected: list[str]) -> None:
    trace = run(policy, script)
    assert [summary(index, decision) for index, decision in trace.decisions] == expected


# --- rejections, table-driven ------------------------------------------------------------------

UNKNOWN_VALIDATOR = DeadLetterReason.UNKNOWN_VALIDATOR
REJECTIONS = [
    pytest.param(P3_OF_5, "C1 A:zz", ["@2 UNKNOWN_VALIDATOR zz"], id="unknown-validator"),
    pytest.param(
        P3_OF_5, "A:zz C1", ["@2 UNKNOWN_VALIDATOR zz (held)"], id="unknown-validator-held"
    ),
    pytest.param(
        P3_OF_5,
        "A:zz@2 C1",
        ["@2 UNKNOWN_VALIDATOR zz (held)"],
        id="unknown-validator-held-for-later-attempt",
    ),
    pytest.param(P3_OF_5, "C1 A:v1@0", ["@2 UNKNOWN_ATTEMPT v1"], id="attempt-0"),
    pytest.param(P3_OF_5, "A:v1@0", ["@1 UNKNOWN_ATTEMPT v1"], id="attempt-0-no-state"),
    pytest.param(P3_OF_5, "C1 A:v1@4", ["@2 UNKNOWN_ATTEMPT v1"], id="attempt-above-max"),
    pytest.param(
        P3_OF_5, "A:v1@4 C1", ["@2 UNKNOWN_ATTEMPT v1 (held)"], id="held-attempt-above-max"
    ),
    pytest.param(
        P3_OF_5, "A:v1 T+4999 T+5000", ["@3 UNKNOWN_ATTEMPT v1 (held)"], id="held-then-expired"
    ),
    pytest.param(
        P3_OF_5,
        "C1 A:v1@2 T+5000",
        ["@3 UNKNOWN_ATTEMPT v1 (held)"],
        id="held-for-next-attempt-expired",
    ),
    pytest.param(
        P3_OF_5,
        "C1 A:v1 A:v2 A:v3 A:v1@2",
        ["@5 UNKNOWN_ATTEMPT v1"],
        id="attempt-after-case-closed",
    ),
    pytest.param(P3_OF_5, "C1 A:v1/other", ["@2 WRONG_CANDIDATE v1"], id="wrong-candidate"),
    pytest.param(
        P3_OF_5, "A:v1/other C1", ["@2 WRONG_CANDIDATE v1 (held)"], id="wrong-candidate-held"
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 R:v4/other",
        ["@5 WRONG_CANDIDATE v4"],
        id="wrong-candidate-after-decision",
    ),
    pytest.param(P3_OF_5, "C2", ["@1 WRONG_ATTEMPT cand-2"], id="new-case-not-attempt-1"),
    pytest.param(P3_OF_5, "C1 C2", ["@2 WRONG_ATTEMPT cand-2"], id="attempt-while-voting"),
    pytest.param(
        P3_OF_5, "C1 C1/other", ["@2 WRONG_ATTEMPT other"], id="other-candidate-same-attempt"
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 C3",
        ["@5 WRONG_ATTEMPT cand-3"],
        id="attempt-not-the-one-asked-for",
    ),
    pytest.param(
        P3_OF_5, "C1 A:v1 A:v2 A:v3 C2", ["@5 CASE_CLOSED cand-2"], id="case-closed-passed"
    ),
    pytest.param(
        RED_ESCALATES, "C1 V:rt C2", ["@3 CASE_CLOSED cand-2"], id="case-closed-escalated"
    ),
    pytest.param(P3_OF_5, "C1 A:v1 A:v2 A:v3 C1", [], id="candidate-redelivered-after-close"),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+120000 C2",
        ["@6 CASE_CLOSED cand-2"],
        id="case-closed-after-retry-timeout",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+120000 A:v1@2",
        ["@6 UNKNOWN_ATTEMPT v1"],
        id="verdict-for-the-attempt-that-never-came",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+120000 C1",
        [],
        id="candidate-redelivered-after-retry-timeout",
    ),
    pytest.param(
        P3_OF_5,
        "C1 R:v1 R:v2 R:v3 T+120000 T+180000 C2",
        ["@7 WRONG_ATTEMPT cand-2"],
        id="after-retry-timeout-and-retention-a-new-case-must-start-at-1",
    ),
]


@pytest.mark.parametrize(("policy", "script", "expected"), REJECTIONS)
def test_rejections(policy: Policy, script: str, expected: list[str]) -> None:
    trace = run(policy, script)
    assert [rejection_summary(index, r) for index, r in trace.rejected] == expected


def test_rejection_details_name_what_was_expected() -> None:
    details = {
        script: run(P3_OF_5, script).rejected[0][1].detail
        for script in ("C2", "C1 C2", "C1 C1/other", "C1 R:v1 R:v2 R:v3 C3", "C1 A:zz")
    }
    assert details["C2"] == "expected attempt 1, got attempt 2"
    assert "attempt 1 (candidate cand-1) is still voting" in details["C1 C2"]
    assert "attempt 1 already has candidate cand-1" in details["C1 C1/other"]
    assert details["C1 R:v1 R:v2 R:v3 C3"] == "expected attempt 2, got attempt 3"
    assert details["C1 A:zz"] == "validator 'zz' is not in policy 'p'"


def test_held_rejection_keeps_its_source() -> None:
    trace = run(P3_OF_5, "A:zz C1")
    assert trace.rejected[0][1].source == SourceRef("ratifier.verdicts", 0, 1)


def test_attempt_above_policy_limit_after_policy_reload() -> None:
    trace = run(P3_OF_5, "C1 R:v1 R:v2 R:v3")
    stricter = make_policy(max_attempts=1)
    step = on_candidate(trace.state, make_candidate(2), stricter, T0, SETTINGS)
    assert step.rejected[0].reason is DeadLetterReason.WRONG_ATTEMPT
    assert step.rejected[0].detail == "policy 'p' allows at most 1 attempts"


def test_candidate_under_another_policy_is_rejected() -> None:
    trace = run(P3_OF_5, "C1 R:v1 R:v2 R:v3")
    other = make_policy(name="q")
    candidate = replace(make_candidate(2), policy="q")
    step = on_candidate(trace.state, candidate, other, T0, SETTINGS)
    assert step.rejected[0].reason is DeadLetterReason.UNKNOWN_POLICY
    assert not step.changed


# --- decision contents -------------------------------------------------------------------------


def test_pass_decision_carries_sorted_votes_policy_and_time() -> None:
    trace = run(RED, "C1 A:v3 X:rt A:v1 R:v5 A:v2")
    [(_, decision)] = trace.decisions
    assert isinstance(decision, PassDecision)
    assert [v.validator_id for v in decision.votes] == ["rt", "v1", "v2", "v3", "v5"]
    assert decision.candidate == make_candidate(1)
    assert (decision.policy, decision.policy_version) == ("p", "v7")
    assert decision.decided_at_ms == T0
    assert decision.decision_id == decision_id(CASE, 1)
    assert decision.outcome is OutcomeClass.CONFIRMED


def test_timeout_retry_lists_dissent_and_missing_validators() -> None:
    trace = run(RED, "C1 X:v4 A:v1 R:v2 R:rt T+30000")
    [(_, retry)] = trace.decisions
    assert isinstance(retry, RetryRequest)
    assert retry.reason is FailureReason.WINDOW_TIMEOUT
    assert (retry.attempt, retry.next_attempt) == (1, 2)
    assert retry.candidate == make_candidate(1)
    assert [v.validator_id for v in retry.dissent] == ["rt", "v2", "v4"]
    assert all(v.reasons for v in retry.dissent)
    assert retry.missing_validators == ("v3", "v5")
    assert [v.validator_id for v in retry.votes] == ["rt", "v1", "v2", "v4"]
    assert retry.decided_at_ms == T0 + 30_000
    assert retry.decision_id == decision_id(CASE, 1)
    assert (retry.policy, retry.policy_version) == ("p", "v7")


def test_escalation_packet_holds_every_attempt_with_verdicts_and_reasons() -> None:
    trace = run(RED, "C1 R:v1 R:v2 R:v3 C2 V:rt C3 A:v1 T+30000")
    decision = trace.only_decisions[-1]
    assert isinstance(decision, EscalationPacket)
    assert decision.reason is EscalationReason.WINDOW_TIMEOUT  # the last attempt timed out
    assert decision.outcome is OutcomeClass.UNRESOLVED
    assert decision.decision_id == decision_id(CASE, 3)
    assert [a.candidate.candidate_id for a in decision.attempts] == ["cand-1", "cand-2", "cand-3"]
    assert [a.failure for a in decision.attempts] == [
        FailureReason.THRESHOLD_UNREACHABLE,
        FailureReason.VETO,
        FailureReason.WINDOW_TIMEOUT,
    ]
    assert [[v.validator_id for v in a.verdicts] for a in decision.attempts] == [
        ["v1", "v2", "v3"],
        ["rt"],
        ["v1"],
    ]
    assert decision.attempts[1].verdicts[0].severity is Severity.CRITICAL
    assert trace.state is not None
    assert trace.state.status is CaseStatus.ESCALATED


def test_retry_timeout_packet_holds_every_attempt_like_an_exhausted_one() -> None:
    trace = run(RED, "C1 R:v1 R:v2 R:v3 C2 V:rt X:v4 T+120000")
    retry, packet = trace.only_decisions[1:]
    assert isinstance(retry, RetryRequest)
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.RETRY_TIMEOUT
    assert packet.outcome is OutcomeClass.UNRESOLVED
    # Attempt 2's id went to its retry request; the escalation is attempt 3's decision.
    assert (retry.decision_id, packet.decision_id) == (decision_id(CASE, 2), decision_id(CASE, 3))
    assert packet.attempt == 3
    assert [a.candidate for a in packet.attempts] == [make_candidate(1), make_candidate(2)]
    assert [a.failure for a in packet.attempts] == [
        FailureReason.THRESHOLD_UNREACHABLE,
        FailureReason.VETO,
    ]
    assert [[v.validator_id for v in a.verdicts] for a in packet.attempts] == [
        ["v1", "v2", "v3"],
        ["rt"],  # v4's abstention came after the veto: late, as in any decision
    ]
    assert all(v.reasons for a in packet.attempts for v in a.verdicts)
    assert (packet.policy, packet.policy_version) == ("p", "v7")
    assert packet.decided_at_ms == T0 + SETTINGS.retry_wait_ms
    assert trace.state is not None
    assert trace.state.status is CaseStatus.ESCALATED
    assert trace.state.closed_at_ms == T0 + SETTINGS.retry_wait_ms


def test_retry_timeout_escalates_even_when_the_policy_is_gone() -> None:
    state = run(P3_OF_5, "C1 R:v1 R:v2 R:v3").state
    [packet] = on_tick(state, {}, T0 + SETTINGS.retry_wait_ms, SETTINGS).decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.RETRY_TIMEOUT
    assert (packet.policy, packet.policy_version) == ("p", "v7")  # as recorded in the state


def test_veto_escalation_packet() -> None:
    trace = run(RED_ESCALATES, "C1 A:v1 A:v2 V:rt")
    [(_, decision)] = trace.decisions
    assert isinstance(decision, EscalationPacket)
    assert decision.reason is EscalationReason.VETO
    assert [a.failure for a in decision.attempts] == [FailureReason.VETO]


def test_outcome_classes() -> None:
    confirmed = run(P3_OF_5, "C1 A:v1 A:v2 A:v3").only_decisions[0]
    corrected = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 C2 A:v1 A:v2 A:v3").only_decisions[1]
    unresolved = run(RED_ESCALATES, "C1 V:rt").only_decisions[0]
    assert isinstance(confirmed, PassDecision)
    assert isinstance(corrected, PassDecision)
    assert isinstance(unresolved, EscalationPacket)
    assert confirmed.outcome is OutcomeClass.CONFIRMED
    assert corrected.outcome is OutcomeClass.CORRECTED
    assert unresolved.outcome is OutcomeClass.UNRESOLVED


def test_decision_ids_are_deterministic_and_distinct() -> None:
    assert decision_id("case-1", 1) == decision_id("case-1", 1)
    assert uuid.UUID(decision_id("case-1", 1)).version == 5
    ids = {decision_id(case, attempt) for case in ("case-1", "case-2") for attempt in (1, 2, 3)}
    assert len(ids) == 6
    first = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 C2 A:v1 A:v2 A:v3").only_decisions
    second = run(P3_OF_5, "C1 R:v3 R:v1 R:v2 C2 A:v2 A:v3 A:v1").only_decisions
    assert [d.decision_id for d in first] == [d.decision_id for d in second]
    assert [d.decision_id for d in first] == [decision_id(CASE, 1), decision_id(CASE, 2)]
    # A retry-timeout escalation takes the id of the attempt that never came: never one in use.
    timed_out = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 T+120000").only_decisions
    assert [d.decision_id for d in timed_out] == [decision_id(CASE, 1), decision_id(CASE, 2)]
    assert all(d.decision_id == decision_id(CASE, d.attempt) for d in (*first, *timed_out))


# --- late verdicts, redelivery, one decision per attempt ---------------------------------------


def test_late_verdicts_are_recorded_and_change_nothing_else() -> None:
    trace = run(P3_OF_5, "C1 A:v1 A:v2 A:v3 R:v4 X:v5 T+30000")
    assert len(trace.decisions) == 1
    assert [(index, v.validator_id) for index, v in trace.late] == [(5, "v4"), (6, "v5")]
    assert trace.state is not None
    assert trace.state.attempts[0].late == ("v4", "v5")
    assert sorted(trace.state.attempts[0].votes) == ["v1", "v2", "v3"]
    assert trace.steps[4].changed  # the late count is state


def test_late_verdict_for_an_earlier_attempt() -> None:
    trace = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 C2 A:v4@1")
    assert [v.validator_id for _, v in trace.late] == ["v4"]
    assert trace.state is not None
    assert trace.state.status is CaseStatus.VOTING


def test_redelivered_counted_verdict_after_decision_is_not_late() -> None:
    trace = run(P3_OF_5, "C1 A:v1 A:v2 A:v3 A:v3")
    assert trace.late == []
    assert not trace.steps[-1].changed


def test_exact_redelivery_changes_nothing() -> None:
    for script in ("C1 A:v1 A:v1", "C1 C1", "A:v1 A:v1", "C1 A:v1@2 A:v1@2"):
        last = run(P3_OF_5, script).steps[-1]
        assert not last.changed, script
        assert (last.decisions, last.rejected, last.late) == ((), (), ()), script


def test_second_opinion_from_same_validator_is_ignored() -> None:
    trace = run(P3_OF_5, "C1 A:v1 R:v1 A:v2 A:v3")
    [(_, decision)] = trace.decisions
    assert isinstance(decision, PassDecision)
    assert [v.vote for v in decision.votes] == [Vote.ACCEPT] * 3
    assert not trace.steps[2].changed


def test_at_most_one_decision_per_attempt_whatever_follows() -> None:
    trace = run(P3_OF_5, "C1 A:v1 A:v2 A:v3 R:v4 R:v5 T+30000 T+40000 A:v1 C1")
    assert len(trace.decisions) == 1


# --- time: due, ticks, pruning -----------------------------------------------------------------


def test_due_is_the_deadline_or_an_earlier_held_expiry() -> None:
    trace = run(P3_OF_5, "A:v1@2 C1 A:v1")
    assert trace.steps[0].due_ms == T0 + SETTINGS.hold_ms
    assert trace.steps[1].due_ms == T0 + SETTINGS.hold_ms
    assert run(P3_OF_5, "C1 A:v1").steps[-1].due_ms == T0 + 30_000


def test_tick_before_anything_is_due_changes_nothing() -> None:
    trace = run(P3_OF_5, "C1 A:v1 T+29999")
    last = trace.steps[-1]
    assert not last.changed
    assert last.decisions == ()
    assert last.due_ms == T0 + 30_000


def test_tick_without_state() -> None:
    assert on_tick(None, {}, T0, SETTINGS) == Step(None, False, (), (), (), None)


def test_finished_case_is_pruned_after_retention() -> None:
    trace = run(P3_OF_5, "C1 A:v1 A:v2 A:v3")
    assert trace.steps[-1].due_ms == T0 + SETTINGS.retention_ms
    early = on_tick(trace.state, {"p": P3_OF_5}, T0 + SETTINGS.retention_ms - 1, SETTINGS)
    assert not early.changed
    assert early.state is trace.state
    pruned = on_tick(trace.state, {"p": P3_OF_5}, T0 + SETTINGS.retention_ms, SETTINGS)
    assert pruned.state is None
    assert pruned.changed
    assert pruned.due_ms is None


def test_case_waiting_for_a_retry_is_escalated_then_pruned_after_retention() -> None:
    policies = {"p": P3_OF_5}
    trace = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 A:v1@2")
    assert trace.steps[-1].due_ms == T0 + SETTINGS.hold_ms  # the held verdict expires first
    after_hold = on_tick(trace.state, policies, T0 + SETTINGS.hold_ms, SETTINGS)
    assert [r.reason for r in after_hold.rejected] == [DeadLetterReason.UNKNOWN_ATTEMPT]
    wait_over = T0 + SETTINGS.retry_wait_ms
    assert after_hold.due_ms == wait_over
    early = on_tick(after_hold.state, policies, wait_over - 1, SETTINGS)
    assert (early.changed, early.decisions) == (False, ())
    escalated = on_tick(after_hold.state, policies, wait_over, SETTINGS)
    assert escalated.changed
    assert [type(d) for d in escalated.decisions] == [EscalationPacket]
    assert escalated.state is not None
    assert escalated.state.status is CaseStatus.ESCALATED
    # Retention runs from the escalation, not from the failed attempt's decision.
    assert escalated.due_ms == wait_over + SETTINGS.retention_ms
    kept = on_tick(escalated.state, policies, wait_over + SETTINGS.retention_ms - 1, SETTINGS)
    assert (kept.changed, kept.decisions) == (False, ())
    pruned = on_tick(escalated.state, policies, wait_over + SETTINGS.retention_ms, SETTINGS)
    assert (pruned.state, pruned.changed, pruned.decisions, pruned.due_ms) == (None, True, (), None)


def test_retry_timeout_rejects_verdicts_still_held() -> None:
    settings = TallySettings(hold_ms=500_000, retention_ms=60_000, retry_wait_ms=1_000)
    trace = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 A:v1@2 A:v2@3 T+1000", settings=settings)
    assert [type(d) for d in trace.only_decisions] == [RetryRequest, EscalationPacket]
    assert trace.state is not None
    assert trace.state.held == ()
    assert [(i, r.reason, r.source) for i, r in trace.rejected] == [
        (7, DeadLetterReason.UNKNOWN_ATTEMPT, SourceRef("ratifier.verdicts", 0, 5)),
        (7, DeadLetterReason.UNKNOWN_ATTEMPT, SourceRef("ratifier.verdicts", 0, 6)),
    ]
    assert trace.rejected[0][1].detail == "case case-1 was escalated before attempt 2 arrived"


def test_retry_timeout_with_no_retention_escalates_and_prunes_in_one_tick() -> None:
    settings = TallySettings(hold_ms=5_000, retention_ms=0, retry_wait_ms=1_000)
    trace = run(P3_OF_5, "C1 R:v1 R:v2 R:v3 T+1000", settings=settings)
    assert [type(d) for d in trace.only_decisions] == [RetryRequest, EscalationPacket]
    assert trace.state is None


def test_pruning_rejects_verdicts_still_held() -> None:
    settings = TallySettings(hold_ms=500_000, retention_ms=1_000, retry_wait_ms=1_000)
    # Held while attempt 1 was voting; the pass then closed the case with it still held.
    trace = run(P3_OF_5, "C1 A:v1@2 A:v1 A:v2 A:v3 T+1000", settings=settings)
    assert trace.state is None
    [(_, rejection)] = trace.rejected
    assert rejection.reason is DeadLetterReason.UNKNOWN_ATTEMPT
    assert rejection.source == SourceRef("ratifier.verdicts", 0, 2)
    assert rejection.detail == "case case-1 was closed before attempt 2 arrived"


def test_case_with_only_expired_held_verdicts_is_deleted() -> None:
    trace = run(P3_OF_5, "A:v1 T+5000")
    assert trace.state is None
    assert trace.steps[-1].changed


# --- purity and contracts ----------------------------------------------------------------------


def test_inputs_are_never_mutated() -> None:
    scripts = ["A:v1 A:v2@2", "C1", "C1 A:v1 A:v2", "C1 R:v1 R:v2 R:v3", "C1 A:v1 A:v2 A:v3"]
    follow_ups = [
        "A:v3",
        "R:v4",
        "V:rt",
        "X:v5",
        "A:zz",
        "A:v1@2",
        "C1",
        "C2",
        "T+5000",
        "T+30000",
        "T+200000",
    ]
    for script in scripts:
        state = run(RED, script).state
        for token in follow_ups:
            snapshot = copy.deepcopy(state)
            encoded = encode_state(state) if state is not None else None
            run(RED, token, state=state)
            assert state == snapshot, (script, token)
            assert (encode_state(state) if state is not None else None) == encoded


def test_state_of_another_case_is_a_caller_error() -> None:
    state = run(P3_OF_5, "C1").state
    other = replace(make_verdict("v1"), case_id="case-2")
    with pytest.raises(ValueError, match="case-2"):
        on_verdict(state, other, SourceRef("t", 0, 0), {"p": P3_OF_5}, T0, SETTINGS)


def test_verdict_for_a_case_whose_policy_is_gone() -> None:
    state = run(P3_OF_5, "C1").state
    step = on_verdict(state, make_verdict("v1"), SourceRef("t", 0, 0), {}, T0, SETTINGS)
    assert step.rejected[0].reason is DeadLetterReason.UNKNOWN_POLICY
    timeout = on_tick(state, {}, T0 + 30_000, SETTINGS)
    [decision] = timeout.decisions
    assert isinstance(decision, EscalationPacket)
    assert decision.attempts[0].failure is FailureReason.WINDOW_TIMEOUT


def test_held_second_opinion_is_not_held_twice() -> None:
    trace = run(P3_OF_5, "A:v1 R:v1 A:v1/other")
    assert trace.state is not None
    assert [(h.verdict.vote, h.verdict.candidate_id) for h in trace.state.held] == [
        (Vote.ACCEPT, "cand-1"),
        (Vote.ACCEPT, "other"),
    ]
    assert not trace.steps[1].changed


def test_decision_id_is_uuid5_of_case_and_attempt() -> None:
    namespace = uuid.UUID("309d8e0c-fd66-5a2e-a8e8-6f60c300fc36")
    for case_id in ("", "case-1", "c" * 300, "é/ü-😀", "a/b"):
        for attempt in (0, 1, 2, 17, 10**12, -1):
            expected = str(uuid.uuid5(namespace, f"{case_id}/{attempt}"))
            assert decision_id(case_id, attempt) == expected


# --- decision quality: posterior confidence, complete packets, escalation reasons, late
# verdicts in packets, the retry guard (docs/policy.md; the pure posterior: test_consensus.py) ---

TEN = tuple(f"v{i}" for i in range(1, 11))


def _pass(policy: Policy, script: str) -> PassDecision:
    decision = run(policy, script).only_decisions[-1]
    assert isinstance(decision, PassDecision)
    return decision


def test_pass_confidence_is_the_posterior_and_share_stays_separate() -> None:
    ten = make_policy(accepts=6, voters=TEN)
    accept_all = "C1 " + " ".join(f"A:{v}" for v in TEN)
    six_four = (
        "C1 " + " ".join(f"R:{v}" for v in TEN[:4]) + " " + " ".join(f"A:{v}" for v in TEN[4:])
    )
    # Early decision: 6 accepts pass at once, so the first six votes are all that count.
    early = _pass(ten, accept_all)
    assert early.accept_share == pytest.approx(0.6)
    # Six accepts at reliability 0.8, reported confidence 0.9 (q = 0.77): logit 6 * 1.208.
    assert early.confidence == pytest.approx(1 / (1 + math.exp(-6 * math.log(0.77 / 0.23))))
    split = _pass(ten, six_four)
    assert split.accept_share == pytest.approx(0.6)
    assert split.confidence < early.confidence  # 6-4 is weaker evidence than 6-0
    assert split.confidence == pytest.approx(1 / (1 + math.exp(-2 * math.log(0.77 / 0.23))))


def test_reliability_and_prior_from_the_policy_change_the_confidence() -> None:
    policy = make_policy()
    sure = replace(
        policy,
        validators=tuple(replace(v, reliability=0.95) for v in policy.validators),
        prior=0.2,
    )
    plain = _pass(policy, "C1 A:v1 A:v2 A:v3")
    stronger = _pass(sure, "C1 A:v1 A:v2 A:v3")
    assert plain.accept_share == stronger.accept_share == pytest.approx(0.6)
    assert stronger.confidence > plain.confidence


def test_abstain_is_not_accept_for_the_threshold_and_no_evidence_for_the_posterior() -> None:
    policy = make_policy(accepts=None, ratio=0.6)
    # Two accepts and three abstentions: 2/5 < 0.6, unreachable: abstaining is not accepting.
    [retry] = run(policy, "C1 A:v1 A:v2 X:v3 X:v4 X:v5").only_decisions
    assert isinstance(retry, RetryRequest)
    assert retry.reason is FailureReason.THRESHOLD_UNREACHABLE
    with_abstain = _pass(policy, "C1 X:v4 A:v1 A:v2 A:v3")
    without = _pass(policy, "C1 A:v1 A:v2 A:v3")
    assert with_abstain.confidence == without.confidence
    with_reject = _pass(policy, "C1 R:v4 A:v1 A:v2 A:v3")
    assert with_reject.confidence < without.confidence


def test_policy_rejects_bad_reliability_and_prior() -> None:
    base = make_policy()
    with pytest.raises(PolicyError, match="reliability must be in"):
        replace(base, validators=(replace(base.validators[0], reliability=0.5),))
    with pytest.raises(PolicyError, match="prior must be in"):
        replace(base, prior=1.0)
    with pytest.raises(PolicyError, match="max_similarity"):
        replace(base, max_retry_similarity=1.5)


def test_policy_reads_the_new_keys() -> None:
    policy = Policy.from_mapping(
        {
            "name": "q",
            "version": "1",
            "prior": 0.3,
            "complete_packets": True,
            "retry_guard": {"max_similarity": 0.9},
            "threshold": {"accepts": 1},
            "validators": [{"id": "a", "reliability": 0.7}],
        }
    )
    assert (policy.prior, policy.complete_packets, policy.max_retry_similarity) == (0.3, True, 0.9)
    assert policy.validators[0].reliability == 0.7
    with pytest.raises(PolicyError, match="complete_packets must be true or false"):
        Policy.from_mapping(
            {
                "name": "q",
                "version": "1",
                "complete_packets": 1,
                "threshold": {"accepts": 1},
                "validators": [{"id": "a"}],
            }
        )


# --- complete packets and escalation reasons ---------------------------------------------------


def _complete(**kwargs: object) -> Policy:
    return replace(make_policy(**kwargs), complete_packets=True)  # type: ignore[arg-type]


def test_complete_packets_hold_a_failure_until_every_validator_answered() -> None:
    policy = _complete(max_attempts=1)
    trace = run(policy, "C1 R:v1 R:v2 R:v3 A:v4")
    assert trace.only_decisions == []  # 3 of 5 rejected: certain, but held for v5
    trace = run(policy, "C1 R:v1 R:v2 R:v3 A:v4 X:v5")
    [packet] = trace.only_decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.REJECTED
    assert [v.validator_id for v in packet.attempts[0].verdicts] == list(FIVE)
    assert packet.attempts[0].failure is FailureReason.THRESHOLD_UNREACHABLE
    # Without the option the same votes decide at the third rejection.
    [early] = run(make_policy(max_attempts=1), "C1 R:v1 R:v2 R:v3 A:v4").only_decisions
    assert isinstance(early, EscalationPacket)
    assert len(early.attempts[0].verdicts) == 3


def test_a_held_failure_keeps_its_reason_at_the_deadline() -> None:
    policy = _complete()
    [retry] = run(policy, "C1 R:v1 R:v2 R:v3 T+30000").only_decisions
    assert isinstance(retry, RetryRequest)
    assert retry.reason is FailureReason.THRESHOLD_UNREACHABLE
    assert retry.missing_validators == ("v4", "v5")
    # A retry's dissent is complete too.
    [retry] = run(policy, "C1 R:v1 R:v2 R:v3 X:v4 R:v5").only_decisions
    assert isinstance(retry, RetryRequest)
    assert [v.validator_id for v in retry.dissent] == list(FIVE)


def test_a_pass_is_never_held() -> None:
    [decision] = run(_complete(), "C1 A:v1 A:v2 A:v3").only_decisions
    assert isinstance(decision, PassDecision)


def test_a_held_veto_still_vetoes() -> None:
    policy = _complete(red_team=("rt",), veto="escalate")
    assert run(policy, "C1 V:rt A:v1 A:v2 A:v3").only_decisions == []
    [packet] = run(policy, "C1 V:rt A:v1 A:v2 A:v3 A:v4 R:v5").only_decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.VETO
    assert len(packet.attempts[0].verdicts) == 6


@pytest.mark.parametrize(
    ("votes", "reason"),
    [
        ("A:v1 A:v2 A:v3 A:v4 A:v5 R:v6 R:v7 R:v8 R:v9 R:v10", EscalationReason.TIE),
        ("R:v1 R:v2 R:v3 R:v4 R:v5 R:v6 R:v7 R:v8 R:v9 R:v10", EscalationReason.REJECTED),
        ("A:v1 A:v2 A:v3 A:v4 A:v5 A:v6 R:v7 R:v8 R:v9 X:v10", EscalationReason.NO_CONSENSUS),
        ("A:v1 A:v2 A:v3 R:v4 R:v5 R:v6 T+30000", EscalationReason.WINDOW_TIMEOUT),
    ],
    ids=["tie", "rejected", "no-consensus", "timeout"],
)
def test_last_attempt_escalation_reasons(votes: str, reason: EscalationReason) -> None:
    policy = _complete(accepts=7, voters=TEN, max_attempts=1)
    [packet] = run(policy, f"C1 {votes}").only_decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is reason


def _lone_abstention(code: str) -> EscalationPacket:
    policy = make_policy(accepts=1, voters=("solo",), max_attempts=1)
    opened = on_candidate(None, make_candidate(), policy, T0, SETTINGS)
    verdict = replace(make_verdict("solo", Vote.ABSTAIN), reasons=(Reason(code, "no answer"),))
    source = SourceRef("ratifier.verdicts", 0, 1)
    step = on_verdict(opened.state, verdict, source, {"p": policy}, T0 + 5, SETTINGS)
    [packet] = step.decisions
    assert isinstance(packet, EscalationPacket)
    return packet


def test_a_lone_timed_out_abstention_escalates_as_a_window_timeout_not_a_tie() -> None:
    # The runtime publishes a call that hit its time limit as an ABSTAIN with this code: the
    # voter never answered, and 0 accepting against 0 rejecting is no tie.
    assert _lone_abstention(TIMEOUT_REASON_CODE).reason is EscalationReason.WINDOW_TIMEOUT


def test_abstentions_alone_escalate_as_no_consensus() -> None:
    assert _lone_abstention("judge.unsure").reason is EscalationReason.NO_CONSENSUS
    policy = _complete(accepts=3, max_attempts=1)
    [packet] = run(policy, "C1 X:v1 X:v2 X:v3 X:v4 X:v5").only_decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.NO_CONSENSUS
    # One side each is still a tie, whatever the others abstained.
    [packet] = run(policy, "C1 A:v1 R:v2 X:v3 X:v4 X:v5").only_decisions
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.TIE


def test_late_verdicts_are_recorded_against_their_attempt_and_in_the_packet() -> None:
    policy = make_policy(max_attempts=2)
    trace = run(policy, "C1 R:v1 R:v2 R:v3 A:v4 C2 R:v5@1 R:v1 R:v2 R:v3")
    packet = trace.only_decisions[-1]
    assert isinstance(packet, EscalationPacket)
    first = packet.attempts[0]
    assert [v.validator_id for v in first.verdicts] == ["v1", "v2", "v3"]
    assert [v.validator_id for v in first.late_verdicts] == ["v4", "v5"]
    assert trace.state is not None
    assert decode_state(encode_state(trace.state)) == trace.state


# --- the retry guard ---------------------------------------------------------------------------


def test_retry_similarity() -> None:
    assert retry_similarity("abc", "abc") == 1.0
    assert retry_similarity("abc", "xyz") == 0.0
    assert 0.9 < retry_similarity("Answer number 1.", "Answer number 2.") < 1.0


def test_a_near_identical_retry_escalates_without_voting() -> None:
    guarded = replace(make_policy(), max_retry_similarity=0.9)
    trace = run(guarded, "C1 R:v1 R:v2 R:v3 C2 A:v1@2")
    retry, packet = trace.only_decisions
    assert isinstance(retry, RetryRequest)
    assert isinstance(packet, EscalationPacket)
    assert packet.reason is EscalationReason.RETRY_NOT_DIFFERENT
    assert packet.attempt == 2
    assert [a.failure for a in packet.attempts] == [
        FailureReason.THRESHOLD_UNREACHABLE,
        FailureReason.RETRY_NOT_DIFFERENT,
    ]
    # The validators still judge the resubmitted candidate: recorded as late, not dead-lettered.
    assert [v.validator_id for _, v in trace.late] == ["v1"]
    assert trace.rejected == []
    # Below the threshold the retry votes as usual.
    loose = replace(make_policy(), max_retry_similarity=0.99)
    decisions = run(loose, "C1 R:v1 R:v2 R:v3 C2 A:v1 A:v2 A:v3").only_decisions
    assert isinstance(decisions[-1], PassDecision)
    assert retry_similarity(make_candidate(1).content, make_candidate(2).content) < 0.99


def test_late_verdicts_are_kept_in_full_only_while_they_can_matter() -> None:
    # After a pass (final), only the late validator's id is kept, once.
    passed = run(make_policy(), "C1 A:v1 A:v2 A:v3 A:v4 A:v4").state
    assert passed is not None
    assert (passed.attempts[0].late, passed.attempts[0].late_verdicts) == (("v4",), ())
    # The same under a policy that learns reliabilities: it learns from the verdict itself.
    learning = replace(make_policy(), learn_reliability=True)
    kept = run(learning, "C1 A:v1 A:v2 A:v3 A:v4 A:v4").state
    assert kept is not None
    assert [v.validator_id for v in kept.attempts[0].late_verdicts] == ["v4"]
    # While the case waits for its retry, a late verdict may still go into a packet: kept.
    open_case = run(make_policy(), "C1 R:v1 R:v2 R:v3 A:v4").state
    assert open_case is not None
    assert [v.validator_id for v in open_case.attempts[0].late_verdicts] == ["v4"]


def _settled(trace: Trace) -> list[tuple[int, int]]:
    return [(index, a.number) for index, s in enumerate(trace.steps, 1) for a in s.settled]


def test_an_attempt_settles_once_when_its_last_validator_is_heard() -> None:
    # Decided at v3 (3 of 5); v4 and v5 arrive late; the attempt settles with v5, once.
    assert _settled(run(make_policy(), "C1 A:v1 A:v2 A:v3 A:v4 A:v5 A:v5")) == [(6, 1)]
    # Decided by the last vote: it settles at the decision.
    assert _settled(run(make_policy(), "C1 A:v1 A:v2 R:v3 R:v4 A:v5")) == [(6, 1)]
    # A validator that never answers: the attempt settles when the case is forgotten.
    assert _settled(run(make_policy(), "C1 A:v1 A:v2 A:v3 T+59999 T+60000")) == [(6, 1)]
    # Each attempt of a retried case settles on its own.
    trace = run(make_policy(), "C1 R:v1 R:v2 R:v3 R:v4 X:v5 C2 A:v1@2 A:v2@2 A:v3@2 A:v4@2 A:v5@2")
    assert _settled(trace) == [(6, 1), (12, 2)]
