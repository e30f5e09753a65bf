"""The tally's per-case state and its compact bytes codec.

One :class:`CaseState` per case id (a faust table key). It keeps every attempt, because an
escalation packet carries them all, plus verdicts that arrived before their candidate. The types
are immutable: the rules in :mod:`.tally` return new states instead of changing
old ones. Mappings inside them (``AttemptState.votes``, ``Candidate.metadata``) are read-only by
convention.

The codec (:func:`encode_state` / :func:`decode_state`) writes positional JSON arrays with orjson:
no field names, enum members as small integers, and the fields a counted verdict shares with its
attempt (case id, attempt, candidate id) left out. The first element is a format version.
Candidates and verdicts are rows generated from their models' fields (:mod:`.rows`),
so a field added to either is stored with no edit here; the state's own types are written below.
Enum code tables below are append-only: reordering them would misread stored state. Optional
trailing elements (``closed_at_ms``, an attempt's ``late_verdicts``) are written only when set,
so states without them keep their bytes; a tally from before such an element cannot read a state
that has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from ratifier.core.errors import WireFormatError
from ratifier.core.fastinit import fast_init
from ratifier.core.models import (
    Candidate,
    FailureReason,
    RoundRecord,
    Severity,
    Verdict,
    Vote,
)
from ratifier.streams.rules import rows

__all__ = [
    "AttemptState",
    "CaseState",
    "CaseStatus",
    "HeldVerdict",
    "SourceRef",
    "decode_state",
    "encode_state",
]

FORMAT_VERSION = 1


class CaseStatus(StrEnum):
    PENDING = "pending"  # only held verdicts: no candidate yet
    VOTING = "voting"  # the latest attempt's window is open
    AWAITING_RETRY = "awaiting-retry"  # the latest attempt failed and a retry was requested
    PASSED = "passed"  # final
    ESCALATED = "escalated"  # final

    @property
    def is_final(self) -> bool:
        return self in (CaseStatus.PASSED, CaseStatus.ESCALATED)


@fast_init
@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a record was read from, so it can be dead-lettered later with its origin."""

    topic: str
    partition: int
    offset: int


@fast_init
@dataclass(frozen=True, slots=True)
class HeldVerdict:
    """A verdict waiting for its attempt's candidate, until ``held_at_ms`` + hold time."""

    verdict: Verdict
    source: SourceRef
    held_at_ms: int


@fast_init
@dataclass(frozen=True, slots=True)
class AttemptState:
    """One attempt's voting window. Undecided while ``decided_at_ms`` is None."""

    candidate: Candidate
    opened_at_ms: int
    deadline_ms: int
    votes: Mapping[str, Verdict]  # validator id -> first verdict counted, in arrival order
    decided_at_ms: int | None = None
    failure: FailureReason | None = None  # set when the attempt failed
    # Validators heard only after the decision (each once: a redelivery is not another one).
    late: tuple[str, ...] = ()
    # Those late verdicts themselves, in arrival order, for escalation packets: recorded against
    # their attempt, never counted. States written before this field hold only the ids above.
    late_verdicts: tuple[Verdict, ...] = ()
    # Debate rounds closed so far (policy [debate], docs/debate.md), oldest first; ``votes`` are
    # the open (or last) round's. Empty without a debate.
    rounds: tuple[RoundRecord, ...] = ()

    @property
    def number(self) -> int:
        return self.candidate.attempt

    @property
    def round(self) -> int:
        """The round ``votes`` belong to: the one open, or the last once decided."""
        return len(self.rounds) + 1

    @property
    def is_open(self) -> bool:
        return self.decided_at_ms is None


@fast_init
@dataclass(frozen=True, slots=True)
class CaseState:
    case_id: str
    status: CaseStatus
    policy: str | None  # name of the policy the case runs under; None while PENDING
    policy_version: str | None  # version recorded when the latest window opened
    attempts: tuple[AttemptState, ...]  # oldest first; attempt n is attempts[n - 1]
    held: tuple[HeldVerdict, ...] = ()  # in arrival order
    # When the case became final, if not by its latest attempt's decision: a case escalated
    # because its next attempt never came (retention runs from then). None: at that decision.
    closed_at_ms: int | None = None

    @property
    def latest(self) -> AttemptState | None:
        return self.attempts[-1] if self.attempts else None


# --- codec -------------------------------------------------------------------------------------
# Integer codes for enum members (append-only, see module docstring).
_STATUSES = tuple(CaseStatus)
_VOTES = (Vote.ACCEPT, Vote.REJECT, Vote.ABSTAIN)
_SEVERITIES = (Severity.MINOR, Severity.MAJOR, Severity.CRITICAL)
_FAILURES = (
    FailureReason.THRESHOLD_UNREACHABLE,
    FailureReason.WINDOW_TIMEOUT,
    FailureReason.VETO,
    FailureReason.SUPERMAJORITY_UNREACHABLE,
    FailureReason.RETRY_NOT_DIFFERENT,
    FailureReason.NO_SUPERMAJORITY,
)
_STATUS_CODES = {member: code for code, member in enumerate(_STATUSES)}
# Candidates and verdicts are stored by rows.py, which codes an enum by its definition order:
# it must keep the released codes above (new members go at the end, as in the Avro symbols).
if tuple(Vote)[: len(_VOTES)] != _VOTES or tuple(Severity)[: len(_SEVERITIES)] != _SEVERITIES:
    raise TypeError("Vote or Severity members were reordered: stored states would be misread")
_FAILURE_CODES = {member: code for code, member in enumerate(_FAILURES)}


def encode_state(state: CaseState) -> bytes:
    fields = [
        FORMAT_VERSION,
        state.case_id,
        _STATUS_CODES[state.status],
        state.policy,
        state.policy_version,
        [_encode_attempt(attempt) for attempt in state.attempts],
        [_encode_held(held) for held in state.held],
    ]
    # An optional trailing element, written only when set: every other state keeps the bytes
    # (and the size) it had before the field existed, and older states decode unchanged.
    if state.closed_at_ms is not None:
        fields.append(state.closed_at_ms)
    return orjson.dumps(fields)


def decode_state(data: bytes) -> CaseState:
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, list) or not raw or raw[0] != FORMAT_VERSION:
            version = raw[0] if isinstance(raw, list) and raw else None
            raise WireFormatError(f"unknown case state format version {version!r}")
        _, case_id, status, policy, policy_version, attempts, held, *optional = raw
        (closed_at,) = optional or (None,)  # more than one extra element: a ValueError
        return CaseState(
            case_id=case_id,
            status=_STATUSES[status],
            policy=policy,
            policy_version=policy_version,
            attempts=tuple(_decode_attempt(case_id, item) for item in attempts),
            held=tuple(_decode_held(case_id, item) for item in held),
            closed_at_ms=closed_at,
        )
    except WireFormatError:
        raise
    except (orjson.JSONDecodeError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise WireFormatError(f"not a valid case state: {exc}") from exc


def _encode_attempt(attempt: AttemptState) -> list[Any]:
    fields = [
        _encode_candidate(attempt.candidate),
        attempt.opened_at_ms,
        attempt.deadline_ms,
        attempt.decided_at_ms,
        None if attempt.failure is None else _FAILURE_CODES[attempt.failure],
        attempt.late,
        [_encode_vote(verdict) for verdict in attempt.votes.values()],
    ]
    # Optional trailing elements, only when set (see the module docstring).
    if attempt.late_verdicts or attempt.rounds:
        fields.append([_encode_vote(verdict) for verdict in attempt.late_verdicts])
    if attempt.rounds:
        fields.append([_encode_round(record) for record in attempt.rounds])
    return fields


def _decode_attempt(case_id: str, item: list[Any]) -> AttemptState:
    candidate_raw, opened_at, deadline, decided_at, failure, late, votes, *optional = item
    late_votes, rounds = (*optional, (), ())[:2] if len(optional) <= 2 else _too_many(optional)
    candidate = _decode_candidate(case_id, candidate_raw)
    verdicts = (_decode_vote(candidate, vote) for vote in votes)
    return AttemptState(
        candidate=candidate,
        opened_at_ms=opened_at,
        deadline_ms=deadline,
        votes={verdict.validator_id: verdict for verdict in verdicts},
        decided_at_ms=decided_at,
        failure=None if failure is None else _FAILURES[failure],
        late=tuple(late),
        late_verdicts=tuple(_decode_vote(candidate, vote) for vote in late_votes),
        rounds=tuple(_decode_round(candidate, record) for record in rounds),
    )


def _too_many(optional: list[Any]) -> tuple[Any, Any]:
    raise ValueError(f"{len(optional)} optional attempt elements, at most 2 known")


def _encode_round(record: RoundRecord) -> list[Any]:
    return [record.round, record.closed_at_ms, [_encode_vote(v) for v in record.verdicts]]


def _decode_round(candidate: Candidate, item: list[Any]) -> RoundRecord:
    number, closed_at, votes = item
    return RoundRecord(number, tuple(_decode_vote(candidate, vote) for vote in votes), closed_at)


# A candidate and a counted verdict are rows generated from their models' fields (rows.py): a
# field added to Candidate or Verdict is stored with no edit here. ``always``: the fields each
# had when the format was released, written in every state; later ones are optional trailing
# elements. The case id is the state's own; a counted verdict's attempt and candidate id its
# attempt's.
_CANDIDATE_ROW = rows.row(Candidate, implied=("case_id",), always=10)
_VERDICT_ROW = rows.row(Verdict, implied=("case_id", "attempt", "candidate_id"), always=8)
_encode_candidate = _CANDIDATE_ROW.encode
_decode_candidate = _CANDIDATE_ROW.decode  # (case_id, row)
_encode_vote = _VERDICT_ROW.encode  # a counted verdict without the fields its attempt holds
_verdict_from = _VERDICT_ROW.decode  # (case_id, attempt, candidate_id, row)


def _decode_vote(candidate: Candidate, item: list[Any]) -> Verdict:
    return _verdict_from(candidate.case_id, candidate.attempt, candidate.candidate_id, item)  # type: ignore[no-any-return]


def _encode_held(held: HeldVerdict) -> list[Any]:
    # A held verdict has not been checked against any candidate: keep attempt and candidate id.
    verdict, source = held.verdict, held.source
    return [
        verdict.attempt,
        verdict.candidate_id,
        _encode_vote(verdict),
        source.topic,
        source.partition,
        source.offset,
        held.held_at_ms,
    ]


def _decode_held(case_id: str, item: list[Any]) -> HeldVerdict:
    attempt, candidate_id, vote, topic, partition, offset, held_at = item
    return HeldVerdict(
        verdict=_verdict_from(case_id, attempt, candidate_id, vote),
        source=SourceRef(topic, partition, offset),
        held_at_ms=held_at,
    )
