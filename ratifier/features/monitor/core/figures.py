"""The monitor's figures: decisions in, windowed governance statistics out (pure, no I/O).

The figures are computed over the votes the tally counted, which every decision carries (a pass
its votes, a retry its votes, an escalation the last attempt's verdicts): each attempt's votes
arrive exactly once, already joined with the candidate's policy and category, and a verdict
that came after its attempt was decided does not count here, as it did not count there.

Windows go by the records' timestamps (``span_ms``, e.g. one hour) and by count (``max_items``,
e.g. the last 10 000 cases), so replaying the same records gives the same figures.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ratifier.core.models import (
    Decision,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.core.time_to_decision import seconds_to_decision
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

__all__ = [
    "HOUR_MS",
    "CountedVote",
    "DecidedAttempt",
    "Figures",
    "PolicyFigures",
    "ValidatorFigures",
    "decided_attempt",
]

HOUR_MS = 3_600_000
VOTES = (Vote.ACCEPT.value, Vote.REJECT.value, Vote.ABSTAIN.value)
# The runtime's reason codes for an ABSTAIN it wrote itself (validators/runtime.py).
TIMEOUT_CODE = "validator.timeout"
ERROR_CODE = "validator.error"
# Cases between their first decision and their final one, remembered for verdicts per outcome.
_OPEN_CASES = 200_000


@dataclass(frozen=True, slots=True)
class CountedVote:
    validator: str
    category: str
    vote: str
    latency_ms: int
    problem: str | None  # "timeout" or "error" when the runtime abstained for the validator


@dataclass(frozen=True, slots=True)
class DecidedAttempt:
    """One attempt's decision, reduced to what the figures need."""

    kind: str  # pass, retry or escalate
    decision_id: str
    case_id: str
    attempt: int
    policy: str
    policy_version: str
    category: str
    votes: tuple[CountedVote, ...]  # this attempt's counted votes (none for a retry timeout)
    attempts_made: int  # candidates the case had (final decisions only)
    at_ms: int
    # Candidate produced -> decided (streams/decision_times.py); None: a packet without attempts.
    decision_ms: int | None = None

    @property
    def final(self) -> bool:
        return self.kind != "retry"

    @property
    def failed(self) -> bool:
        return self.kind != "pass" and bool(self.votes)


def _problem(verdict: Verdict) -> str | None:
    if verdict.vote is not Vote.ABSTAIN:
        return None
    codes = {reason.code for reason in verdict.reasons}
    if TIMEOUT_CODE in codes:
        return "timeout"
    if ERROR_CODE in codes:
        return "error"
    return None


def _counted(verdicts: Iterable[Verdict], category: str) -> tuple[CountedVote, ...]:
    return tuple(
        CountedVote(v.validator_id, category, v.vote.value, v.latency_ms, _problem(v))
        for v in verdicts
    )


def decided_attempt(decision: Decision) -> DecidedAttempt:
    """What a decision says about its attempt: kind, votes, category (pure)."""
    votes: Iterable[Verdict]
    if isinstance(decision, PassDecision | RetryRequest):
        passed = isinstance(decision, PassDecision)
        kind, category = ("pass" if passed else "retry"), decision.candidate.category
        votes, attempts_made = decision.votes, (decision.attempt if passed else 0)
    else:
        last = decision.attempts[-1] if decision.attempts else None
        kind, category = "escalate", last.candidate.category if last else ""
        # The packet's last attempt is this decision's own only when that attempt failed just
        # now; otherwise (no next attempt came) its votes were counted with its retry decision.
        own = last is not None and decision.attempt == last.candidate.attempt
        votes = last.verdicts if own and last else ()
        attempts_made = len(decision.attempts)
    return DecidedAttempt(
        kind,
        decision.decision_id,
        decision.case_id,
        decision.attempt,
        decision.policy,
        decision.policy_version,
        category,
        _counted(votes, category),
        attempts_made,
        decision.decided_at_ms,
        _decision_ms(decision),
    )


def _decision_ms(decision: Decision) -> int | None:
    seconds = seconds_to_decision(decision)
    return None if seconds is None else round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class ValidatorFigures:
    validator: str
    category: str
    counts: Mapping[str, int]  # vote -> verdicts in the window
    verdicts: int
    rejection_ratio: float
    timeout_ratio: float
    error_ratio: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float


@dataclass(frozen=True, slots=True)
class Figures:
    """A policy's figures over the window (``nan`` where there is nothing to measure yet)."""

    policy: str
    final_outcomes: int
    first_attempt_consensus_ratio: float
    mean_attempts: float
    escalation_ratio: float
    retry_ratio: float
    verdicts_per_outcome: float
    escalations_last_hour: int
    # Validator call latency (Verdict.latency_ms, whole ms on the wire), every validator.
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    # Candidate produced -> decided, ms: (p50, p95, p99) by outcome, and "all" of them.
    time_to_decision_ms: Mapping[str, tuple[float, float, float]]
    decisions_timed: int  # decisions behind time_to_decision_ms["all"]
    fleiss_kappa: float
    pair_kappas: Mapping[tuple[str, str], tuple[float, int]]  # on failed attempts: (kappa, n)
    validators: tuple[ValidatorFigures, ...]
    drift: Mapping[str, tuple[float, int]]  # validator -> (z, verdicts per half); full only


@dataclass(frozen=True, slots=True)
class _Final:
    attempts: int
    escalated: bool
    verdicts: int


@dataclass
class PolicyFigures:
    """Everything the monitor keeps about one policy's decisions."""

    policy: str
    span_ms: int
    max_items: int
    drift_window: int
    attempts: SlidingWindow[str] = field(init=False)  # each decided attempt's kind
    finals: SlidingWindow[_Final] = field(init=False)
    escalations: SlidingWindow[None] = field(init=False)  # the last hour, for review capacity
    decision_times: SlidingWindow[tuple[str, int]] = field(init=False)  # (kind, ms)
    failed_votes: SlidingWindow[dict[str, str]] = field(init=False)  # validator -> vote
    all_votes: SlidingWindow[dict[str, str]] = field(init=False)
    by_validator: dict[tuple[str, str], SlidingWindow[CountedVote]] = field(default_factory=dict)
    drift_votes: dict[str, deque[bool]] = field(default_factory=dict)  # rejected?
    _open: OrderedDict[str, int] = field(default_factory=OrderedDict)  # case -> verdicts so far

    def __post_init__(self) -> None:
        span, most = self.span_ms, self.max_items
        self.attempts = SlidingWindow(span_ms=span, max_items=most)
        self.finals = SlidingWindow(span_ms=span, max_items=most)
        self.escalations = SlidingWindow(span_ms=HOUR_MS)
        self.decision_times = SlidingWindow(span_ms=span, max_items=most)
        self.failed_votes = SlidingWindow(span_ms=span, max_items=most)
        self.all_votes = SlidingWindow(span_ms=span, max_items=most)

    def add(self, attempt: DecidedAttempt) -> None:
        at = attempt.at_ms
        self.attempts.add(at, attempt.kind)
        if attempt.decision_ms is not None:
            self.decision_times.add(at, (attempt.kind, attempt.decision_ms))
        votes = {v.validator: v.vote for v in attempt.votes}
        if votes:
            self.all_votes.add(at, votes)
            if attempt.failed:
                self.failed_votes.add(at, votes)
        for vote in attempt.votes:
            key = (vote.validator, vote.category)
            window = self.by_validator.get(key)
            if window is None:
                window = SlidingWindow(span_ms=self.span_ms, max_items=self.max_items)
                self.by_validator[key] = window
            window.add(at, vote)
            drift = self.drift_votes.get(vote.validator)
            if drift is None:
                drift = self.drift_votes[vote.validator] = deque(maxlen=2 * self.drift_window)
            drift.append(vote.vote == Vote.REJECT.value)
        so_far = self._open.pop(attempt.case_id, 0) + len(attempt.votes)
        if attempt.final:
            self.finals.add(at, _Final(attempt.attempts_made, attempt.kind == "escalate", so_far))
            if attempt.kind == "escalate":
                self.escalations.add(at, None)
        else:
            self._open[attempt.case_id] = so_far
            if len(self._open) > _OPEN_CASES:
                self._open.popitem(last=False)
        self.advance(at)

    def advance(self, now_ms: int) -> None:
        self.attempts.advance(now_ms)
        self.finals.advance(now_ms)
        self.escalations.advance(now_ms)
        self.decision_times.advance(now_ms)
        self.failed_votes.advance(now_ms)
        self.all_votes.advance(now_ms)
        for votes in self.by_validator.values():
            votes.advance(now_ms)

    def figures(self) -> Figures:
        finals = list(self.finals)
        n = len(finals)
        first = sum(1 for f in finals if f.attempts == 1 and not f.escalated)
        kinds = Counter(self.attempts)
        latencies = [v.latency_ms for w in self.by_validator.values() for v in w]
        return Figures(
            policy=self.policy,
            final_outcomes=n,
            first_attempt_consensus_ratio=ratio(first, n),
            mean_attempts=ratio(sum(f.attempts for f in finals), n),
            escalation_ratio=ratio(sum(f.escalated for f in finals), n),
            retry_ratio=ratio(kinds["retry"], sum(kinds.values())),
            verdicts_per_outcome=ratio(sum(f.verdicts for f in finals), n),
            escalations_last_hour=len(self.escalations),
            latency_p50_ms=quantile(latencies, 0.5),
            latency_p95_ms=quantile(latencies, 0.95),
            latency_p99_ms=quantile(latencies, 0.99),
            time_to_decision_ms=self._time_to_decision(),
            decisions_timed=len(self.decision_times),
            fleiss_kappa=self._fleiss(),
            pair_kappas=self._pair_kappas(),
            validators=tuple(self._validator(k, w) for k, w in sorted(self.by_validator.items())),
            drift=self._drift(),
        )

    def _time_to_decision(self) -> dict[str, tuple[float, float, float]]:
        timed = list(self.decision_times)
        groups: dict[str, list[float]] = {"all": [float(ms) for _, ms in timed]}
        for kind in ("pass", "retry", "escalate"):
            groups[kind] = [float(ms) for k, ms in timed if k == kind]
        return {
            kind: (quantile(values, 0.5), quantile(values, 0.95), quantile(values, 0.99))
            for kind, values in groups.items()
        }

    def _fleiss(self) -> float:
        items = list(self.all_votes)
        raters = sorted({name for votes in items for name in votes})
        if len(raters) < 2:
            return math.nan
        # Fleiss needs every item rated by the same raters: the group that judged most items.
        most = Counter(tuple(sorted(votes)) for votes in items).most_common(1)[0][0]
        if len(most) < 2:
            return math.nan
        return fleiss_kappa(fleiss_table(items, most, VOTES))

    def _pair_kappas(self) -> dict[tuple[str, str], tuple[float, int]]:
        items = list(self.failed_votes)
        raters = sorted({name for votes in items for name in votes})
        kappas = {}
        for first, second in itertools.combinations(raters, 2):
            pairs = pairwise_labels(items, first, second)
            kappas[(first, second)] = (cohens_kappa(pairs), len(pairs))
        return kappas

    def _validator(
        self, key: tuple[str, str], window: SlidingWindow[CountedVote]
    ) -> ValidatorFigures:
        votes = list(window)
        counts = Counter(v.vote for v in votes)
        problems = Counter(v.problem for v in votes)
        latencies = [v.latency_ms for v in votes]
        n = len(votes)
        return ValidatorFigures(
            validator=key[0],
            category=key[1],
            counts={vote: counts[vote] for vote in VOTES},
            verdicts=n,
            rejection_ratio=ratio(counts[Vote.REJECT.value], n),
            timeout_ratio=ratio(problems["timeout"], n),
            error_ratio=ratio(problems["error"], n),
            latency_p50_ms=quantile(latencies, 0.5),
            latency_p95_ms=quantile(latencies, 0.95),
            latency_p99_ms=quantile(latencies, 0.99),
        )

    def _drift(self) -> dict[str, tuple[float, int]]:
        out = {}
        half = self.drift_window
        for validator, flags in self.drift_votes.items():
            if len(flags) < 2 * half:
                continue
            ordered = list(flags)
            baseline, recent = sum(ordered[:half]), sum(ordered[half:])
            out[validator] = (two_proportion_z_test(baseline, half, recent, half).z, half)
        return out
