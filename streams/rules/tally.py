"""The decision rules: M-of-N voting windows per (case, attempt), pure and deterministic.

No faust, no I/O, no clock: the caller passes the current time and writes what comes back.
Three entry points, one per input: :func:`on_candidate`, :func:`on_verdict` and :func:`on_tick`.
Each takes the case's current :class:`CaseState` (or None) and returns a :class:`Step`: the new
state (never the input object changed in place), the decisions to publish, the records to
dead-letter, the verdicts that came too late, and when the case next needs :func:`on_tick`.

The rules in plain words are in ``docs/policy.md``. The hot path is :func:`on_verdict`; it does
O(number of validators) work and copies only the open attempt's vote map.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter

from rapidfuzz.fuzz import ratio as _similarity_percent

from ratifier.core.fastinit import fast_init
from ratifier.core.models import (
    TIMEOUT_REASON_CODE,
    AttemptRecord,
    Candidate,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    RetryRequest,
    RoundRecord,
    RoundRequest,
    Severity,
    Verdict,
    Vote,
)
from ratifier.core.policy import Policy, Threshold
from ratifier.core.signing import SignatureMode
from ratifier.streams.rules.consensus import Evidence, posterior
from ratifier.streams.rules.debate import NextStep, RoundTally, after_round, peers_of
from ratifier.streams.rules.state import AttemptState, CaseState, CaseStatus, HeldVerdict, SourceRef
from ratifier.streams.rules.stubs import stub_attempt, stub_verdict
from ratifier.streams.rules.verification import verdict_signature_problem

__all__ = [
    "Rejection",
    "SourceRef",
    "Step",
    "TallySettings",
    "decision_id",
    "on_candidate",
    "on_tick",
    "on_verdict",
    "round_request_id",
]

# Fixed forever: decision ids must not change between releases (uuid5(URL, urn:ratifier:decision)).
_DECISION_NAMESPACE = uuid.UUID("309d8e0c-fd66-5a2e-a8e8-6f60c300fc36")
_NAMESPACE_BYTES = _DECISION_NAMESPACE.bytes
# Weight shares are floats summed from TOML numbers: 0.1 + 0.2 must still reach a 0.3 threshold.
_RELATIVE_EPSILON = 1e-9
_by_validator = attrgetter("validator_id")


@dataclass(frozen=True, slots=True)
class TallySettings:
    hold_ms: int  # how long a verdict waits for its candidate
    retention_ms: int  # how long a passed or escalated case is kept (to recognise late verdicts)
    # How long a failed case waits for its next attempt's candidate before it is escalated.
    retry_wait_ms: int
    # How long a finished case's marker is kept after its final decision (streams/finished.py);
    # None: forever.
    finished_horizon_ms: int | None = 7 * 24 * 3600 * 1000


@fast_init
@dataclass(frozen=True, slots=True)
class Rejection:
    record: Candidate | Verdict
    reason: DeadLetterReason
    detail: str
    source: SourceRef | None  # None: the input being handled now


@fast_init
@dataclass(frozen=True, slots=True)
class Step:
    state: CaseState | None  # None: the case has no state (delete its key)
    changed: bool  # False: the state is the input's, nothing to write
    decisions: tuple[Decision, ...]
    rejected: tuple[Rejection, ...]
    late: tuple[Verdict, ...]
    due_ms: int | None  # when the case next needs on_tick; None: never
    # Decided attempts whose verdicts are now all in (every validator heard, counted or late),
    # or that are being forgotten short of that: each attempt appears here once, for learning
    # from complete evidence (streams/learning.py).
    settled: tuple[AttemptState, ...] = ()
    # Debate rounds opened by this input (policy [debate]): published with the state change.
    rounds: tuple[RoundRequest, ...] = ()


def decision_id(case_id: str, attempt: int) -> str:
    """The id of the one decision for (case, attempt): the same on every replay.

    A retry-timeout escalation is the decision of the attempt that never came (the failed
    attempt's id is its retry request's), so no id ever names two different decisions.
    """
    # uuid.uuid5 spelled out: it builds two UUID objects on the way, a third of a verdict's
    # handling when it decides the case. The test compares the two on many ids.
    name = f"{case_id}/{attempt}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def round_request_id(case_id: str, attempt: int, round_: int) -> str:
    """The id of the request opening debate round ``round_``: the same on every replay."""
    return str(uuid.uuid5(_DECISION_NAMESPACE, f"{case_id}/{attempt}/round/{round_}"))


# --- entry points ------------------------------------------------------------------------------


def on_candidate(
    state: CaseState | None,
    candidate: Candidate,
    policy: Policy,
    now_ms: int,
    settings: TallySettings,
) -> Step:
    """A candidate arrived: open its attempt's window, or say why it cannot be opened."""
    _check_case(state, candidate.case_id)
    if candidate.policy != policy.name:
        raise ValueError(f"candidate names policy {candidate.policy!r}, got {policy.name!r}")
    if _is_redelivery(state, candidate):
        return _unchanged(state, settings)
    problem = _candidate_problem(state, candidate, policy)
    if problem is not None:
        reason, detail = problem
        return _unchanged(state, settings, rejected=(Rejection(candidate, reason, detail, None),))
    effects = _Effects()
    opened = _open_window(state, candidate, policy, now_ms)
    if _not_different(state, candidate, policy):
        # Retry amplification: the generator resubmitted (almost) the same answer. Voting on it
        # again would cost every validator a call and loop to the same failure: escalate now.
        outcome = _Outcome(FailureReason.RETRY_NOT_DIFFERENT, 0.0)
        assert opened.latest is not None
        opened = _decide(opened, opened.latest, outcome, policy, now_ms, effects)
    return effects.step(_apply_held(opened, policy, now_ms, effects), True, settings)


def on_verdict(
    state: CaseState | None,
    verdict: Verdict,
    source: SourceRef,
    policies: Mapping[str, Policy],
    now_ms: int,
    settings: TallySettings,
) -> Step:
    """A verdict arrived: count it, hold it, or say why it cannot count."""
    _check_case(state, verdict.case_id)
    if verdict.attempt < 1:
        return _reject(
            state, verdict, DeadLetterReason.UNKNOWN_ATTEMPT, "attempt must be >= 1", settings
        )
    if state is None or state.status is CaseStatus.PENDING:
        # No candidate yet, so no policy to check the validator against: hold it.
        return _hold(state, verdict, source, now_ms, settings)
    policy = policies.get(state.policy or "")
    if policy is None:
        detail = f"case runs under policy {state.policy!r}, which is not loaded"
        return _reject(state, verdict, DeadLetterReason.UNKNOWN_POLICY, detail, settings)
    problem = _verdict_problem(state, verdict, policy, now_ms)
    if problem is not None:
        return _reject(state, verdict, *problem, settings)
    if verdict.attempt > len(state.attempts):
        return _hold(state, verdict, source, now_ms, settings)
    effects = _Effects()
    new_state = _count(state, policy, verdict, None, now_ms, effects)
    return effects.step(new_state, new_state is not state, settings)


def on_tick(
    state: CaseState | None,
    policies: Mapping[str, Policy],
    now_ms: int,
    settings: TallySettings,
) -> Step:
    """Time passed: expire held verdicts, close a window at its deadline, escalate a retry
    that never came, prune finished cases."""
    if state is None:
        return _unchanged(None, settings)
    effects = _Effects()
    new_state: CaseState | None = _expire_held(state, now_ms, settings, effects)
    if new_state is not None:
        new_state = _close_at_deadline(new_state, policies, now_ms, effects)
        new_state = _escalate_unanswered_retry(new_state, now_ms, settings, effects)
        new_state = _prune(new_state, policies, now_ms, settings, effects)
    return effects.step(new_state, new_state is not state, settings)


# --- candidates --------------------------------------------------------------------------------


def _is_redelivery(state: CaseState | None, candidate: Candidate) -> bool:
    if state is None or not 1 <= candidate.attempt <= len(state.attempts):
        return False
    return state.attempts[candidate.attempt - 1].candidate.candidate_id == candidate.candidate_id


def _candidate_problem(
    state: CaseState | None, candidate: Candidate, policy: Policy
) -> tuple[DeadLetterReason, str] | None:
    if state is not None and state.status.is_final:
        return DeadLetterReason.CASE_CLOSED, f"case already {state.status.value}"
    if state is not None and state.policy not in (None, policy.name):
        detail = f"case runs under policy {state.policy!r}, candidate names {policy.name!r}"
        return DeadLetterReason.UNKNOWN_POLICY, detail
    attempts = state.attempts if state is not None else ()
    if 1 <= candidate.attempt <= len(attempts):
        other = attempts[candidate.attempt - 1].candidate.candidate_id
        detail = f"attempt {candidate.attempt} already has candidate {other}"
        return DeadLetterReason.WRONG_ATTEMPT, detail
    expected = _expected_attempt(state)
    if expected is None:
        latest = attempts[-1]
        detail = (
            f"attempt {latest.number} (candidate {latest.candidate.candidate_id}) is still "
            f"voting; no new attempt expected, got attempt {candidate.attempt}"
        )
        return DeadLetterReason.WRONG_ATTEMPT, detail
    if candidate.attempt != expected:
        detail = f"expected attempt {expected}, got attempt {candidate.attempt}"
        return DeadLetterReason.WRONG_ATTEMPT, detail
    if candidate.attempt > policy.max_attempts:
        detail = f"policy {policy.name!r} allows at most {policy.max_attempts} attempts"
        return DeadLetterReason.WRONG_ATTEMPT, detail
    return None


def retry_similarity(previous: str, current: str) -> float:
    """How alike two candidates' contents are, 0..1 (rapidfuzz's normalised Indel ratio)."""
    return float(_similarity_percent(previous, current)) / 100.0


def _not_different(state: CaseState | None, candidate: Candidate, policy: Policy) -> bool:
    """A retry whose content is at least the policy's maximum similarity to the last attempt's."""
    limit = policy.max_retry_similarity
    if limit is None or state is None or state.latest is None or candidate.attempt < 2:
        return False
    previous = state.latest.candidate.content
    return retry_similarity(previous, candidate.content) >= limit - _RELATIVE_EPSILON


def _expected_attempt(state: CaseState | None) -> int | None:
    """The attempt number a new candidate must carry; None while a window is open."""
    if state is None or state.status is CaseStatus.PENDING:
        return 1
    if state.status is CaseStatus.AWAITING_RETRY:
        return len(state.attempts) + 1
    return None


def _open_window(
    state: CaseState | None, candidate: Candidate, policy: Policy, now_ms: int
) -> CaseState:
    window = AttemptState(
        candidate=candidate,
        opened_at_ms=now_ms,
        deadline_ms=now_ms + policy.window_ms,
        votes={},
    )
    earlier = state.attempts if state else ()
    if earlier and policy.reference_earlier_attempts:
        # The attempt before is in its retry request in full: keep a stub (streams/stubs.py).
        earlier = (*earlier[:-1], stub_attempt(earlier[-1]))
    return CaseState(
        case_id=candidate.case_id,
        status=CaseStatus.VOTING,
        policy=policy.name,
        policy_version=policy.version,
        attempts=(*earlier, window),
        held=state.held if state else (),
    )


def _apply_held(state: CaseState, policy: Policy, now_ms: int, effects: _Effects) -> CaseState:
    """Count held verdicts for the attempt just opened, in arrival order; drop impossible ones."""
    if not state.held:
        return state
    opened = len(state.attempts)
    keep: list[HeldVerdict] = []
    apply: list[HeldVerdict] = []
    for held in state.held:
        problem = _verdict_problem(state, held.verdict, policy, held.held_at_ms)
        if problem is not None:
            effects.reject(held.verdict, *problem, held.source)
        elif held.verdict.attempt == opened:
            apply.append(held)
        elif held.verdict.attempt > opened:
            keep.append(held)
        else:  # cannot happen: verdicts are held only for attempts not opened yet
            detail = f"attempt {held.verdict.attempt} was never opened"
            effects.reject(held.verdict, DeadLetterReason.UNKNOWN_ATTEMPT, detail, held.source)
    state = _with(state, held=tuple(keep))
    for held in apply:
        state = _count(state, policy, held.verdict, held.source, now_ms, effects)
    return state


# --- verdicts ----------------------------------------------------------------------------------


def _verdict_problem(
    state: CaseState, verdict: Verdict, policy: Policy, arrived_ms: int
) -> tuple[DeadLetterReason, str] | None:
    if policy.validator(verdict.validator_id) is None:
        detail = f"validator {verdict.validator_id!r} is not in policy {policy.name!r}"
        return DeadLetterReason.UNKNOWN_VALIDATOR, detail
    # Before anything else can count or record it (signing.md); a no-op when signatures are off.
    if policy.signatures is not SignatureMode.OFF:
        signature_problem = verdict_signature_problem(verdict, policy, state, arrived_ms)
        if signature_problem is not None:
            return signature_problem
    if verdict.attempt > policy.max_attempts:
        detail = f"policy {policy.name!r} allows at most {policy.max_attempts} attempts"
        return DeadLetterReason.UNKNOWN_ATTEMPT, detail
    if verdict.attempt > len(state.attempts) and state.status.is_final:
        detail = f"case already {state.status.value} at attempt {len(state.attempts)}"
        return DeadLetterReason.UNKNOWN_ATTEMPT, detail
    return None


def _hold(
    state: CaseState | None,
    verdict: Verdict,
    source: SourceRef,
    now_ms: int,
    settings: TallySettings,
) -> Step:
    if state is None:
        state = CaseState(verdict.case_id, CaseStatus.PENDING, None, None, ())
    elif any(_same_vote(held.verdict, verdict) for held in state.held):
        # A redelivery, or a second opinion that would lose to the first anyway: the first
        # verdict from a validator on a candidate wins, so holding it too only costs memory.
        return _unchanged(state, settings)
    held = _with(state, held=(*state.held, HeldVerdict(verdict, source, now_ms)))
    return Step(held, True, (), (), (), _due(held, settings))


def _same_vote(held: Verdict, verdict: Verdict) -> bool:
    return (
        held.validator_id == verdict.validator_id
        and held.attempt == verdict.attempt
        and held.round == verdict.round
        and held.candidate_id == verdict.candidate_id
        # Signatures are checked only once the candidate (the policy) is known: a forgery held
        # first must not shadow the genuine vote, nor be dropped unreported. So of signed
        # verdicts only exact copies (redeliveries) are left out.
        and ((not held.signature and not verdict.signature) or held == verdict)
    )


def _count(
    state: CaseState,
    policy: Policy,
    verdict: Verdict,
    source: SourceRef | None,
    now_ms: int,
    effects: _Effects,
) -> CaseState:
    """Count a verdict for an attempt that exists (open or decided)."""
    attempt = state.attempts[verdict.attempt - 1]
    if verdict.candidate_id != attempt.candidate.candidate_id:
        detail = (
            f"attempt {attempt.number} is candidate {attempt.candidate.candidate_id}, "
            f"verdict is for {verdict.candidate_id}"
        )
        effects.reject(verdict, DeadLetterReason.WRONG_CANDIDATE, detail, source)
        return state
    round_ = verdict.round or 1
    if round_ != attempt.round:
        return _other_round(state, attempt, verdict, round_, source, effects)
    if verdict.validator_id in attempt.votes or verdict.validator_id in attempt.late:
        return state  # counts once: the first verdict wins, redeliveries change nothing
    if not attempt.is_open:
        effects.late.append(verdict)
        # The verdict itself is kept while a later escalation packet can still carry it, or for
        # a policy that learns from it; after the final outcome, the validator id is enough
        # (most late verdicts follow an early pass: the state stays as small as before).
        keep = policy.learn_reliability or not state.status.is_final
        if policy.reference_earlier_attempts and attempt.number < len(state.attempts):
            verdict = stub_verdict(verdict)  # an earlier attempt's: its packet entry is a stub
        late = AttemptState(
            attempt.candidate,
            attempt.opened_at_ms,
            attempt.deadline_ms,
            attempt.votes,
            attempt.decided_at_ms,
            attempt.failure,
            (*attempt.late, verdict.validator_id),
            (*attempt.late_verdicts, verdict) if keep else attempt.late_verdicts,
            attempt.rounds,
        )
        if _heard_all(policy, late):
            effects.settled.append(late)
        return _with_attempt(state, late)
    votes = dict(attempt.votes)
    votes[verdict.validator_id] = verdict
    counted = AttemptState(
        attempt.candidate, attempt.opened_at_ms, attempt.deadline_ms, votes, rounds=attempt.rounds
    )
    if policy.debate is not None:
        return _debate_count(state, policy, counted, now_ms, effects)
    outcome = _evaluate(policy, counted)
    if outcome is None:
        return _with_attempt(state, counted)
    return _decide(state, counted, outcome, policy, now_ms, effects)


def _other_round(
    state: CaseState,
    attempt: AttemptState,
    verdict: Verdict,
    round_: int,
    source: SourceRef | None,
    effects: _Effects,
) -> CaseState:
    """A verdict for another round than the attempt's current one: late, or never opened."""
    if round_ > attempt.round or round_ < 1:
        detail = f"round {round_} of attempt {attempt.number} was never opened"
        effects.reject(verdict, DeadLetterReason.UNKNOWN_ATTEMPT, detail, source)
        return state
    closed = attempt.rounds[round_ - 1]
    if all(v.validator_id != verdict.validator_id for v in closed.verdicts):
        effects.late.append(verdict)  # its round closed without it: recorded nowhere, as late
    return state  # a redelivery of a verdict counted in its round changes nothing


# --- debate rounds (policy [debate], docs/debate.md) -------------------------------------------


def _debate_count(
    state: CaseState, policy: Policy, attempt: AttemptState, now_ms: int, effects: _Effects
) -> CaseState:
    """A verdict counted in a debate round: the round ends once every validator answered (a
    red-team veto ends the attempt at once unless the packet is to be complete)."""
    heard_all = len(attempt.votes) >= len(policy.validators)
    if not heard_all and not (_vetoed(policy, attempt) and not policy.complete_packets):
        return _with_attempt(state, attempt)
    return _end_round(state, policy, attempt, now_ms, effects)


def _vetoed(policy: Policy, attempt: AttemptState) -> bool:
    for validator_id in policy.red_team_ids:
        verdict = attempt.votes.get(validator_id)
        if (
            verdict is not None
            and verdict.vote is Vote.REJECT
            and verdict.severity is Severity.CRITICAL
        ):
            return True
    return False


def _end_round(
    state: CaseState, policy: Policy, attempt: AttemptState, now_ms: int, effects: _Effects
) -> CaseState:
    """Round k is over (every validator heard, or its window closed): pass, fail, or open
    round k + 1 with a round request carrying round k's verdicts."""
    debate = policy.debate
    assert debate is not None
    table = policy.voter_weights(attempt.candidate.category)
    accepting = rejecting = 0.0
    n_accepting = 0
    for validator_id, weight in table.weights:  # policy order: the same votes, the same sums
        verdict = attempt.votes.get(validator_id)
        if verdict is None:
            continue
        if verdict.vote is Vote.ACCEPT:
            accepting += weight
            n_accepting += 1
        elif verdict.vote is Vote.REJECT:
            rejecting += weight
    share = accepting / table.total
    if _vetoed(policy, attempt):
        return _decide(state, attempt, _Outcome(FailureReason.VETO, share), policy, now_ms, effects)
    round_tally = RoundTally(
        round=attempt.round,
        accepting=accepting,
        rejecting=rejecting,
        total=table.total,
        threshold_met=_threshold_met(policy.threshold, n_accepting, accepting, table.total),
        red_team_heard=all(v in attempt.votes for v in policy.red_team_ids),
    )
    step, failure = after_round(debate, round_tally)
    if step is NextStep.PASS:
        return _decide(state, attempt, _Outcome(None, share), policy, now_ms, effects)
    if step is NextStep.FAIL:
        return _decide(state, attempt, _Outcome(failure, share), policy, now_ms, effects)
    closed = RoundRecord(attempt.round, _sorted(attempt.votes.values()), now_ms)
    opened = AttemptState(
        attempt.candidate,
        attempt.opened_at_ms,
        now_ms + policy.window_ms,
        {},
        rounds=(*attempt.rounds, closed),
    )
    candidate = attempt.candidate
    effects.rounds.append(
        RoundRequest(
            request_id=round_request_id(state.case_id, candidate.attempt, opened.round),
            case_id=state.case_id,
            attempt=candidate.attempt,
            candidate_id=candidate.candidate_id,
            policy=policy.name,
            round=opened.round,
            peers=peers_of(closed.verdicts),
            anonymise=debate.anonymise,
            opened_at_ms=now_ms,
            closes_at_ms=opened.deadline_ms,
        )
    )
    return _with_attempt(state, opened)


# --- evaluation --------------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class _Outcome:
    failure: FailureReason | None  # None: pass
    share: float  # accepting voter weight / total voter weight


def _evaluate(policy: Policy, attempt: AttemptState, hold: bool = True) -> _Outcome | None:
    """Pass, fail, or None (keep waiting), from the votes counted so far.

    With ``hold`` and a policy with ``complete_packets``, a certain failure still waits until
    every validator has answered (the deadline decides otherwise, see _close_at_deadline).
    """
    votes = attempt.votes
    table = policy.voter_weights(attempt.candidate.category)
    accepting = pending = 0.0
    n_accepting = n_pending = 0
    # Policy order, not arrival order: the same votes always give the same float sums.
    for validator_id, weight in table.weights:
        verdict = votes.get(validator_id)
        if verdict is None:
            pending += weight
            n_pending += 1
        elif verdict.vote is Vote.ACCEPT:
            accepting += weight
            n_accepting += 1
    total = table.total
    red_team_pending = False
    for validator_id in policy.red_team_ids:
        verdict = votes.get(validator_id)
        if verdict is None:
            red_team_pending = True
        elif verdict.vote is Vote.REJECT and verdict.severity is Severity.CRITICAL:
            if hold and policy.complete_packets and len(votes) < len(policy.validators):
                return None  # the veto is certain; wait for the rest of the packet
            return _Outcome(FailureReason.VETO, accepting / total)
    threshold = policy.threshold
    met = _threshold_met(threshold, n_accepting, accepting, total)
    reachable = _threshold_met(threshold, n_accepting + n_pending, accepting + pending, total)
    ordinary_reachable = reachable
    rule = policy.supermajority
    if rule is not None and attempt.number < rule.min_rounds:
        met = met and _share_at_least(accepting, total, rule.ratio)
        reachable = reachable and _share_at_least(accepting + pending, total, rule.ratio)
    if met:
        # A red-team validator still to answer could veto: wait for it (or the deadline).
        return None if red_team_pending else _Outcome(None, accepting / total)
    if not reachable:
        if hold and policy.complete_packets and (n_pending or red_team_pending):
            return None  # the failure is certain (pending only shrinks); complete the packet
        failure = (
            FailureReason.SUPERMAJORITY_UNREACHABLE
            if ordinary_reachable
            else FailureReason.THRESHOLD_UNREACHABLE
        )
        return _Outcome(failure, accepting / total)
    return None


def _confidence(policy: Policy, attempt: AttemptState) -> float:
    """The posterior probability that the attempt's candidate is acceptable, from every voter's
    counted vote (red team aside), in policy order so the same votes give the same bits."""
    table = policy.voter_weights(attempt.candidate.category)
    mean_weight = table.total / len(table.weights)
    votes = attempt.votes
    evidence: list[Evidence] = []
    for validator_id, weight in table.weights:
        verdict = votes.get(validator_id)
        if verdict is None or verdict.vote is Vote.ABSTAIN:
            continue  # unheard and abstaining voters carry no evidence either way
        spec = policy.validator(validator_id)
        assert spec is not None  # the table is built from the policy's voters
        sign = 1 if verdict.vote is Vote.ACCEPT else -1
        evidence.append(Evidence(sign, spec.reliability, verdict.confidence, weight / mean_weight))
    return posterior(policy.prior, evidence)


def _vote_split(policy: Policy, attempt: AttemptState) -> EscalationReason:
    """How a failed last attempt's voters stood: TIE, REJECTED or NO_CONSENSUS (by weight).

    A tie needs both sides: when no voter took one (every verdict an abstention), the attempt
    reads WINDOW_TIMEOUT if each of those abstentions is a validator's time limit (the runtime
    publishes a timed-out call as an ABSTAIN), else NO_CONSENSUS.
    """
    accepting = rejecting = 0.0
    abstentions: list[Verdict] = []
    for validator_id, weight in policy.voter_weights(attempt.candidate.category).weights:
        verdict = attempt.votes.get(validator_id)
        if verdict is None:
            continue
        if verdict.vote is Vote.ACCEPT:
            accepting += weight
        elif verdict.vote is Vote.REJECT:
            rejecting += weight
        else:
            abstentions.append(verdict)
    if accepting == 0.0 and rejecting == 0.0:
        timed_out = bool(abstentions) and all(map(_timed_out, abstentions))
        return EscalationReason.WINDOW_TIMEOUT if timed_out else EscalationReason.NO_CONSENSUS
    scale = max(accepting, rejecting, 1.0)
    if abs(accepting - rejecting) <= _RELATIVE_EPSILON * scale:
        return EscalationReason.TIE
    return EscalationReason.REJECTED if rejecting > accepting else EscalationReason.NO_CONSENSUS


def _timed_out(verdict: Verdict) -> bool:
    """An abstention the validator runtime published because the call hit its time limit."""
    return any(reason.code == TIMEOUT_REASON_CODE for reason in verdict.reasons)


def _threshold_met(threshold: Threshold, count: int, weight: float, total: float) -> bool:
    if threshold.accepts is not None:
        return count >= threshold.accepts
    assert threshold.ratio is not None  # a policy has exactly one of the two
    return _share_at_least(weight, total, threshold.ratio)


def _share_at_least(weight: float, total: float, ratio: float) -> bool:
    return weight >= ratio * total - _RELATIVE_EPSILON * total


# --- decisions ---------------------------------------------------------------------------------


def _decide(
    state: CaseState,
    attempt: AttemptState,
    outcome: _Outcome,
    policy: Policy | None,
    now_ms: int,
    effects: _Effects,
) -> CaseState:
    """Close ``attempt`` with ``outcome``: record it and emit the attempt's one decision."""
    decided = AttemptState(
        attempt.candidate,
        attempt.opened_at_ms,
        attempt.deadline_ms,
        attempt.votes,
        decided_at_ms=now_ms,
        failure=outcome.failure,
        late=attempt.late,
        late_verdicts=attempt.late_verdicts,
        rounds=attempt.rounds,
    )
    case_id, number = state.case_id, attempt.number
    policy_name, policy_version = state.policy or "", state.policy_version or ""
    votes = _sorted(attempt.votes.values())
    decision: Decision
    if outcome.failure is None:
        assert policy is not None  # a pass is decided only from counted votes, under a policy
        status = CaseStatus.PASSED
        decision = PassDecision(
            decision_id=decision_id(case_id, number),
            case_id=case_id,
            attempt=number,
            candidate=attempt.candidate,
            confidence=_confidence(policy, attempt),
            votes=votes,
            policy=policy_name,
            policy_version=policy_version,
            outcome=OutcomeClass.CONFIRMED if number == 1 else OutcomeClass.CORRECTED,
            decided_at_ms=now_ms,
            accept_share=outcome.share,
            rounds=attempt.rounds,
        )
    elif (escalation := _escalation_reason(outcome.failure, decided, policy)) is not None:
        status = CaseStatus.ESCALATED
        decision = EscalationPacket(
            decision_id=decision_id(case_id, number),
            case_id=case_id,
            attempts=_attempt_records((*state.attempts[:-1], decided), state.case_id),
            reason=escalation,
            policy=policy_name,
            policy_version=policy_version,
            outcome=OutcomeClass.UNRESOLVED,
            decided_at_ms=now_ms,
        )
    else:
        assert policy is not None  # _escalation_reason escalates when the policy is unknown
        status = CaseStatus.AWAITING_RETRY
        decision = RetryRequest(
            decision_id=decision_id(case_id, number),
            case_id=case_id,
            attempt=number,
            next_attempt=number + 1,
            candidate=attempt.candidate,
            reason=outcome.failure,
            dissent=tuple(v for v in votes if v.vote is not Vote.ACCEPT),
            missing_validators=tuple(
                sorted(v.id for v in policy.validators if v.id not in attempt.votes)
            ),
            votes=votes,
            policy=policy_name,
            policy_version=policy_version,
            decided_at_ms=now_ms,
            rounds=attempt.rounds,
        )
    effects.decisions.append(decision)
    if policy is not None and _heard_all(policy, decided):
        effects.settled.append(decided)
    return _with(_with_attempt(state, decided), status=status)


def _heard_all(policy: Policy, attempt: AttemptState) -> bool:
    """Every validator of the policy has a verdict for the attempt, counted or late (only the
    policy's validators can have one: others are dead-lettered)."""
    return len(attempt.votes) + len(attempt.late) >= len(policy.validators)


def _escalation_reason(
    failure: FailureReason, attempt: AttemptState, policy: Policy | None
) -> EscalationReason | None:
    """Why a failed attempt goes to a human instead of being retried; None: retry."""
    if policy is None:
        # The case's policy is no longer loaded, so its attempt limit is unknown: stop here.
        return EscalationReason.MAX_ATTEMPTS_EXHAUSTED
    if failure is FailureReason.RETRY_NOT_DIFFERENT:
        return EscalationReason.RETRY_NOT_DIFFERENT
    if failure is FailureReason.VETO and policy.veto_escalates:
        return EscalationReason.VETO
    if attempt.number < policy.max_attempts:
        return None
    # The last attempt failed: say how, so a tie and a clear rejection read differently.
    if failure is FailureReason.VETO:
        return EscalationReason.VETO
    if failure is FailureReason.WINDOW_TIMEOUT:
        return EscalationReason.WINDOW_TIMEOUT
    return _vote_split(policy, attempt)


def _attempt_records(attempts: tuple[AttemptState, ...], case_id: str) -> tuple[AttemptRecord, ...]:
    """An escalation's attempts. Every one but the last failed with a retry request, whose id
    (its attempt's decision id) each names: the full record when the policy keeps earlier
    attempts as stubs (``earlier_attempts = "referenced"``, streams/stubs.py)."""
    last = len(attempts)
    return tuple(
        _attempt_record(a, decision_id(case_id, a.number) if a.number < last else None)
        for a in attempts
    )


def _attempt_record(attempt: AttemptState, reference: str | None) -> AttemptRecord:
    if attempt.failure is None:
        raise AssertionError(f"attempt {attempt.number} of an escalated case did not fail")
    return AttemptRecord(
        attempt.candidate,
        _sorted(attempt.votes.values()),
        attempt.failure,
        attempt.late_verdicts,
        reference,
        attempt.rounds,
    )


def _sorted(verdicts: Iterable[Verdict]) -> tuple[Verdict, ...]:
    return tuple(sorted(verdicts, key=_by_validator))


# --- time --------------------------------------------------------------------------------------


def _expire_held(
    state: CaseState, now_ms: int, settings: TallySettings, effects: _Effects
) -> CaseState | None:
    if not state.held:
        return state
    keep: list[HeldVerdict] = []
    for held in state.held:
        if held.held_at_ms + settings.hold_ms <= now_ms:
            detail = (
                f"no candidate for attempt {held.verdict.attempt} arrived within "
                f"{settings.hold_ms} ms"
            )
            effects.reject(held.verdict, DeadLetterReason.UNKNOWN_ATTEMPT, detail, held.source)
        else:
            keep.append(held)
    if len(keep) == len(state.held):
        return state
    if not keep and state.status is CaseStatus.PENDING:
        return None  # nothing but expired verdicts: forget the case
    return _with(state, held=tuple(keep))


def _close_at_deadline(
    state: CaseState, policies: Mapping[str, Policy], now_ms: int, effects: _Effects
) -> CaseState:
    latest = state.latest
    if state.status is not CaseStatus.VOTING or latest is None or now_ms < latest.deadline_ms:
        return state
    policy = policies.get(state.policy or "")
    if policy is not None and policy.debate is not None and latest.votes:
        return _end_round(state, policy, latest, now_ms, effects)  # the round's window closed
    # A failure held for a complete packet keeps its own reason; anything else timed out.
    held = _evaluate(policy, latest, hold=False) if policy and policy.complete_packets else None
    if held is None or held.failure is None:
        held = _Outcome(FailureReason.WINDOW_TIMEOUT, 0.0)
    return _decide(state, latest, held, policy, now_ms, effects)


def _escalate_unanswered_retry(
    state: CaseState, now_ms: int, settings: TallySettings, effects: _Effects
) -> CaseState:
    """A retry was requested and its candidate did not come within the retry wait: escalate.

    Every case must end in exactly one final outcome; forgetting it here would leave the
    retry request as its last word. The packet holds every failed attempt, as any escalation's
    does, and is the decision of the attempt that never came (see :func:`decision_id`).
    """
    wait_over = _retry_wait_over(state, settings)
    if wait_over is None or now_ms < wait_over:
        return state
    missing = len(state.attempts) + 1
    _reject_held(state, "escalated", effects)
    effects.decisions.append(
        EscalationPacket(
            decision_id=decision_id(state.case_id, missing),
            case_id=state.case_id,
            attempts=_attempt_records(state.attempts, state.case_id),
            reason=EscalationReason.RETRY_TIMEOUT,
            policy=state.policy or "",
            policy_version=state.policy_version or "",
            outcome=OutcomeClass.UNRESOLVED,
            decided_at_ms=now_ms,
        )
    )
    return CaseState(
        state.case_id,
        CaseStatus.ESCALATED,
        state.policy,
        state.policy_version,
        state.attempts,
        held=(),
        closed_at_ms=now_ms,  # retention runs from the escalation, not from the failed attempt
    )


def _prune(
    state: CaseState,
    policies: Mapping[str, Policy],
    now_ms: int,
    settings: TallySettings,
    effects: _Effects,
) -> CaseState | None:
    expires = _expiry(state, settings)
    if expires is None or now_ms < expires:
        return state
    _reject_held(state, "closed", effects)
    # Attempts some validator never answered settle now, with what they have.
    policy = policies.get(state.policy or "")
    effects.settled.extend(
        a
        for a in state.attempts
        if a.decided_at_ms is not None and not (policy and _heard_all(policy, a))
    )
    return None


def _reject_held(state: CaseState, closed: str, effects: _Effects) -> None:
    """Dead-letter the held verdicts of a case that is closing: their attempt can never open."""
    for held in state.held:
        detail = f"case {state.case_id} was {closed} before attempt {held.verdict.attempt} arrived"
        effects.reject(held.verdict, DeadLetterReason.UNKNOWN_ATTEMPT, detail, held.source)


def _retry_wait_over(state: CaseState, settings: TallySettings) -> int | None:
    """When a case waiting for its next attempt is escalated; None if it is not waiting."""
    latest = state.latest
    if state.status is not CaseStatus.AWAITING_RETRY or latest is None:
        return None
    assert latest.decided_at_ms is not None  # a retry is requested only by a decided attempt
    return latest.decided_at_ms + settings.retry_wait_ms


def _expiry(state: CaseState, settings: TallySettings) -> int | None:
    """When a final case is forgotten: retention after it became final; None if not final."""
    latest = state.latest
    if not state.status.is_final or latest is None or latest.decided_at_ms is None:
        return None
    closed_at = latest.decided_at_ms if state.closed_at_ms is None else state.closed_at_ms
    return closed_at + settings.retention_ms


def _due(state: CaseState | None, settings: TallySettings) -> int | None:
    if state is None:
        return None
    latest = state.latest
    if latest is not None and latest.is_open:
        due: int | None = latest.deadline_ms
    else:  # at most one of the two applies: waiting for a retry, or final
        due = _retry_wait_over(state, settings)
        if due is None:
            due = _expiry(state, settings)
    for held in state.held:
        expires = held.held_at_ms + settings.hold_ms
        if due is None or expires < due:
            due = expires
    return due


# --- small helpers -----------------------------------------------------------------------------


class _Effects:
    """What one input produced besides the new state, collected while the rules run."""

    __slots__ = ("decisions", "late", "rejected", "rounds", "settled")

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.rejected: list[Rejection] = []
        self.late: list[Verdict] = []
        self.settled: list[AttemptState] = []
        self.rounds: list[RoundRequest] = []

    def reject(
        self,
        record: Verdict,
        reason: DeadLetterReason,
        detail: str,
        source: SourceRef | None,
    ) -> None:
        self.rejected.append(Rejection(record, reason, detail, source))

    def step(self, state: CaseState | None, changed: bool, settings: TallySettings) -> Step:
        return Step(
            state,
            changed,
            tuple(self.decisions),
            tuple(self.rejected),
            tuple(self.late),
            _due(state, settings),
            tuple(self.settled),
            tuple(self.rounds),
        )


def _check_case(state: CaseState | None, case_id: str) -> None:
    if state is not None and state.case_id != case_id:
        raise ValueError(f"record for case {case_id!r} given the state of {state.case_id!r}")


def _unchanged(
    state: CaseState | None, settings: TallySettings, rejected: tuple[Rejection, ...] = ()
) -> Step:
    return Step(state, False, (), rejected, (), _due(state, settings))


def _reject(
    state: CaseState | None,
    verdict: Verdict,
    reason: DeadLetterReason,
    detail: str,
    settings: TallySettings,
) -> Step:
    return _unchanged(state, settings, rejected=(Rejection(verdict, reason, detail, None),))


def _with(
    state: CaseState,
    *,
    status: CaseStatus | None = None,
    held: tuple[HeldVerdict, ...] | None = None,
) -> CaseState:
    return CaseState(
        state.case_id,
        state.status if status is None else status,
        state.policy,
        state.policy_version,
        state.attempts,
        state.held if held is None else held,
        state.closed_at_ms,
    )


def _with_attempt(state: CaseState, attempt: AttemptState) -> CaseState:
    """Replace the attempt with the same number (a shallow tuple copy: a few references)."""
    attempts = list(state.attempts)
    attempts[attempt.number - 1] = attempt
    return CaseState(
        state.case_id,
        state.status,
        state.policy,
        state.policy_version,
        tuple(attempts),
        state.held,
        state.closed_at_ms,
    )
