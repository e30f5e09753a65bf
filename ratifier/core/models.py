"""Domain types shared by every part: plain frozen dataclasses, no I/O.

They mirror the Avro records in ``schemas/*.avsc`` field for field; ``ratifier.schemas.codec``
converts between the two. Times are integer milliseconds since the Unix epoch (Kafka's own
unit), named ``*_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ratifier.core.fastinit import fast_init


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Vote(StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    ABSTAIN = "ABSTAIN"


class Severity(StrEnum):
    MINOR = "MINOR"
    MAJOR = "MAJOR"
    CRITICAL = "CRITICAL"


class FailureReason(StrEnum):
    """Why an attempt did not pass."""

    THRESHOLD_UNREACHABLE = "THRESHOLD_UNREACHABLE"
    WINDOW_TIMEOUT = "WINDOW_TIMEOUT"
    VETO = "VETO"
    # Before the policy's minimum rounds only a supermajority may pass (debate-protocol rule).
    SUPERMAJORITY_UNREACHABLE = "SUPERMAJORITY_UNREACHABLE"
    # The retry guard: a retry's candidate was too similar to the previous one; not voted on.
    RETRY_NOT_DIFFERENT = "RETRY_NOT_DIFFERENT"
    # A debate ([debate], docs/debate.md) reached max_rounds without a supermajority either way.
    NO_SUPERMAJORITY = "NO_SUPERMAJORITY"


class OutcomeClass(StrEnum):
    CONFIRMED = "confirmed"  # passed on attempt 1
    CORRECTED = "corrected"  # passed after at least one retry
    UNRESOLVED = "unresolved"  # escalated to a human


class EscalationReason(StrEnum):
    MAX_ATTEMPTS_EXHAUSTED = "MAX_ATTEMPTS_EXHAUSTED"
    VETO = "VETO"  # a policy may escalate a red-team veto at once instead of retrying
    RETRY_TIMEOUT = "RETRY_TIMEOUT"  # the generator sent no next attempt within the retry wait
    # The last attempt failed: how the votes stood (see docs/policy.md).
    TIE = "TIE"  # accepting weight == rejecting weight > 0
    REJECTED = "REJECTED"  # more rejecting than accepting weight
    # More accepting than rejecting weight, short of the threshold; or abstentions only.
    NO_CONSENSUS = "NO_CONSENSUS"
    # The window closed while the threshold was still reachable, or only timed-out abstentions.
    WINDOW_TIMEOUT = "WINDOW_TIMEOUT"
    RETRY_NOT_DIFFERENT = "RETRY_NOT_DIFFERENT"  # a retry's candidate barely changed (retry guard)


class DeadLetterReason(StrEnum):
    MALFORMED = "MALFORMED"  # not decodable as the topic's record type
    UNKNOWN_POLICY = "UNKNOWN_POLICY"
    UNKNOWN_VALIDATOR = "UNKNOWN_VALIDATOR"
    UNKNOWN_ATTEMPT = "UNKNOWN_ATTEMPT"  # a verdict for an attempt that never arrived
    WRONG_ATTEMPT = "WRONG_ATTEMPT"  # a candidate whose attempt the case did not ask for
    WRONG_CANDIDATE = "WRONG_CANDIDATE"  # verdict's candidate id differs from the attempt's
    CASE_CLOSED = "CASE_CLOSED"  # a candidate for a case that already has a final outcome
    PROCESSING_ERROR = "PROCESSING_ERROR"  # the tally failed on this record (a bug): kept, not lost
    # The record, or the state or output it would make, exceeds the size limit (in the detail).
    TOO_LARGE = "TOO_LARGE"
    # Signed verdicts (docs/signing.md): why the tally would not count one.
    UNSIGNED = "UNSIGNED"  # no signature, and the case's policy requires one
    BAD_SIGNATURE = "BAD_SIGNATURE"  # the signature does not match the verdict
    UNKNOWN_KEY = "UNKNOWN_KEY"  # signed with a key the policy does not list for the validator
    KEY_OUT_OF_WINDOW = "KEY_OUT_OF_WINDOW"  # the key is listed, but not valid at that time
    REPLAYED = "REPLAYED"  # a genuine signature of another attempt or candidate of the case


@dataclass(frozen=True, slots=True)
class Span:
    """Character offsets [start, end) into the candidate's content."""

    start: int
    end: int


# The reason code of the ABSTAIN a validator runtime publishes when a call hits its time limit;
# the tally reads it to tell a timed-out attempt from a split one (docs/policy.md).
TIMEOUT_REASON_CODE = "validator.timeout"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    case_id: str
    attempt: int  # 1-based
    candidate_id: str
    policy: str
    category: str
    query: str
    content: str
    producer: str
    produced_at_ms: int
    previous_candidate_ids: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Judgement:
    """What a validator callable returns; the runtime turns it into a :class:`Verdict`."""

    vote: Vote
    confidence: float = 1.0
    severity: Severity | None = None
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    case_id: str
    attempt: int
    candidate_id: str
    validator_id: str
    validator_version: str
    vote: Vote
    confidence: float
    severity: Severity | None
    reasons: tuple[Reason, ...]
    latency_ms: int
    produced_at_ms: int
    # Ed25519 signature (docs/signing.md) and the id of the key that made it; empty: unsigned.
    signature: bytes = b""
    key_id: str = ""
    # The debate round it answers (docs/debate.md); None: round 1 (every verdict before debates).
    round: int | None = None


def verdict_on(
    candidate: Candidate,
    validator_id: str,
    vote: Vote,
    *,
    confidence: float,
    version: str,
    severity: Severity | None = None,
    reasons: tuple[Reason, ...] = (),
    latency_ms: int = 0,
    round_: int | None = None,
) -> Verdict:
    """A verdict on ``candidate`` (its case, attempt and id), unsigned, produced now; ``round_``
    is the debate round it answers (None: round 1)."""
    return Verdict(
        case_id=candidate.case_id,
        attempt=candidate.attempt,
        candidate_id=candidate.candidate_id,
        validator_id=validator_id,
        validator_version=version,
        vote=vote,
        confidence=confidence,
        severity=severity,
        reasons=reasons,
        latency_ms=latency_ms,
        produced_at_ms=now_ms(),
        round=round_,
    )


@fast_init
@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One closed debate round of an attempt: the verdicts counted in it and when it closed."""

    round: int
    verdicts: tuple[Verdict, ...]
    closed_at_ms: int


@dataclass(frozen=True, slots=True)
class PeerVerdict:
    """A verdict of the previous round as the next round's validators see it."""

    peer: str  # in a RoundRequest the validator id; shown to a judge as "peer n" or "you"
    vote: Vote
    confidence: float
    severity: Severity | None
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class RoundRequest:
    """The tally opened debate round ``round`` of an attempt (``<prefix>.rounds``)."""

    request_id: str  # uuid5 of case/attempt/round: the same on every replay
    case_id: str
    attempt: int
    candidate_id: str
    policy: str
    round: int  # >= 2: round 1 is the candidate itself
    peers: tuple[PeerVerdict, ...]  # the previous round's verdicts, by validator id
    anonymise: bool  # the policy's debate.anonymise: judges see "peer n", not ids
    opened_at_ms: int
    closes_at_ms: int  # when its window closes, in the tally's time


@fast_init  # built once per decision, on the tally's hot path (fastinit.py)
@dataclass(frozen=True, slots=True)
class PassDecision:
    decision_id: str
    case_id: str
    attempt: int
    candidate: Candidate
    confidence: float  # posterior probability the candidate is acceptable (streams.rules.consensus)
    votes: tuple[Verdict, ...]
    policy: str
    policy_version: str
    outcome: OutcomeClass
    decided_at_ms: int
    accept_share: float | None = None  # accepting voter weight / total; None in old records
    # Ed25519 signature (docs/signing.md) and the id of the key that made it; empty: unsigned.
    signature: bytes = b""
    key_id: str = ""
    # Debate rounds before the last (docs/debate.md), oldest first; the last round's verdicts
    # are the votes. Empty without [debate].
    rounds: tuple[RoundRecord, ...] = ()


@fast_init  # built once per decision, on the tally's hot path (fastinit.py)
@dataclass(frozen=True, slots=True)
class RetryRequest:
    decision_id: str
    case_id: str
    attempt: int  # the attempt that failed
    next_attempt: int
    candidate: Candidate  # the failed candidate, with its content, query and metadata
    reason: FailureReason
    dissent: tuple[Verdict, ...]  # every REJECT and ABSTAIN verdict, with reasons
    missing_validators: tuple[str, ...]  # expected validators that never answered
    votes: tuple[Verdict, ...]  # every vote counted for the failed attempt
    policy: str
    policy_version: str
    decided_at_ms: int
    # Ed25519 signature (docs/signing.md) and the id of the key that made it; empty: unsigned.
    signature: bytes = b""
    key_id: str = ""
    # Debate rounds before the last (docs/debate.md), oldest first; the last round's verdicts
    # are the votes. Empty without [debate].
    rounds: tuple[RoundRecord, ...] = ()


@fast_init  # built once per decision, on the tally's hot path (fastinit.py)
@dataclass(frozen=True, slots=True)
class AttemptRecord:
    candidate: Candidate
    verdicts: tuple[Verdict, ...]
    failure: FailureReason
    late_verdicts: tuple[Verdict, ...] = ()  # arrived after the decision: recorded, not counted
    # Set on every attempt but the last: the retry request it failed with, which holds it in
    # full. Under a policy with earlier_attempts = "referenced" the candidate and verdicts above
    # are then stubs (no content, query, metadata, reasons; ratifier.io.attempts fetches them).
    retry_decision_id: str | None = None
    # Debate rounds before the last (docs/debate.md); the last round's are the verdicts.
    rounds: tuple[RoundRecord, ...] = ()


@fast_init  # built once per decision, on the tally's hot path (fastinit.py)
@dataclass(frozen=True, slots=True)
class EscalationPacket:
    decision_id: str
    case_id: str
    attempts: tuple[AttemptRecord, ...]  # every failed attempt, oldest first
    reason: EscalationReason
    policy: str
    policy_version: str
    outcome: OutcomeClass  # always UNRESOLVED
    decided_at_ms: int
    # Ed25519 signature (docs/signing.md) and the id of the key that made it; empty: unsigned.
    signature: bytes = b""
    key_id: str = ""

    @property
    def attempt(self) -> int:
        """The attempt this decision belongs to (every decision names one; see decision ids).

        The attempt whose failure escalated the case, except after ``RETRY_TIMEOUT``: then the
        last attempt already has its decision (the retry request), and the escalation is the
        decision of the next attempt, the one that never came.
        """
        last = self.attempts[-1].candidate.attempt
        return last + 1 if self.reason is EscalationReason.RETRY_TIMEOUT else last


@dataclass(frozen=True, slots=True)
class FinalOutcomeRef:
    """Which final decision closed a case: carried by ``CASE_CLOSED`` dead letters, so a client
    that resubmits a finished case can fetch that outcome (docs/delivery.md)."""

    decision_id: str
    outcome: str  # "pass" or "escalate": the decision topic it was published to
    attempt: int
    decided_at_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    original: bytes
    source_topic: str
    partition: int
    offset: int
    reason: DeadLetterReason
    detail: str  # human-readable explanation
    dead_at_ms: int
    closed_by: FinalOutcomeRef | None = None  # CASE_CLOSED: the case's final decision


Decision = PassDecision | RetryRequest | EscalationPacket
# Record: every top-level record type; defined below Outcome, which it includes.


# --- outcomes (issue 13): every case's final answer and where it came from --------------------

AUTO_REVIEWER = "auto"  # Outcome.reviewer of an automatic pass


@dataclass(frozen=True, slots=True)
class Outcome:
    """A case's one final outcome, with its provenance (``<prefix>.outcomes``).

    ``kind`` is confirmed (a candidate taken as it was: passed on attempt 1, or confirmed by a
    reviewer), corrected (passed after a retry, or a reviewer wrote the right answer) or
    unresolved (a reviewer could not settle it: no answer). ``reviewer`` is the reviewer's id,
    or ``"auto"`` when the tally's pass decided.
    """

    outcome_id: str  # derived from the case id: one outcome per case
    case_id: str
    kind: OutcomeClass
    reviewer: str
    decided_at_ms: int
    attempt: int | None  # the attempt whose candidate is the answer; None for a written answer
    candidate_id: str | None
    content: str | None  # the answer; None when unresolved
    query: str
    category: str
    note: str | None  # the reviewer's note, or why it is unresolved
    policy: str
    policy_version: str
    resolves: tuple[str, ...]  # the decision ids this outcome settles


# --- alerts (issue 11): the governance monitor's alarms ----------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    """An alarm raised or cleared by the monitor (``<prefix>.alerts``, docs/monitoring.md).

    ``kind`` and ``state`` are plain strings on the wire, so a new alarm kind needs no schema
    change: kinds are VOTE_INFLATION, DRIFT, CORRELATED_VALIDATORS, ESCALATION_CAPACITY; states
    RAISED and CLEARED. ``subject`` names what the alarm is about (a validator and category, a
    pair of validators, a policy); ``value`` is the figure measured over ``sample_size``
    observations and ``threshold`` the policy's limit it crossed (or came back within).
    """

    alert_id: str  # derived from what it says: the same alarm replayed has the same id
    kind: str
    state: str
    policy: str
    subject: str
    value: float
    threshold: float
    sample_size: int
    message: str
    monitor: str  # the worker id of the monitor that raised it
    changed_at_ms: int  # when the monitor saw the alarm change state


Record = (
    Candidate
    | Verdict
    | PassDecision
    | RetryRequest
    | EscalationPacket
    | DeadLetter
    | Outcome
    | Alert
    | RoundRequest
)
