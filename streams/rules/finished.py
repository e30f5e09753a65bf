"""The memory of finished cases: one compact marker per case that reached its final outcome.

A case's full state is pruned a short retention after its final decision
(``RATIFIER_RETENTION_MS``). Its marker stays for the finished-case horizon
(``RATIFIER_FINISHED_HORIZON_MS``, default 7 days): a candidate or verdict for the case within
that horizon is dead-lettered ``CASE_CLOSED`` naming the final decision, whatever the offsets
say, so a resubmission or a replay never gives the case a second final outcome.

Markers live in the tally's case store and changelog under keys ``MARKER_PREFIX + case id``: the
prefix byte never starts a UTF-8 string, so no case id can collide with it. A marker is 27 bytes:
the decision id as 16 uuid bytes, the outcome, the attempt and the decision time.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum

from ratifier.core.models import Decision, EscalationPacket, FinalOutcomeRef, PassDecision

__all__ = [
    "MARKER_PREFIX",
    "Finished",
    "decode_marker",
    "encode_marker",
    "finished_by",
    "is_marker_key",
    "marker_decided_at",
    "marker_key",
]

MARKER_PREFIX = b"\xfe"
_MARKER_BYTE = MARKER_PREFIX[0]
_MARKER = struct.Struct(">16sBHq")  # decision uuid, outcome, attempt, decided_at_ms
_DECIDED_AT = struct.Struct(">q")
_DECIDED_AT_OFFSET = _MARKER.size - _DECIDED_AT.size


class _Outcome(IntEnum):  # append-only: stored in markers
    PASSED = 1
    ESCALATED = 2


_OUTCOME_NAMES = {_Outcome.PASSED: "pass", _Outcome.ESCALATED: "escalate"}
_OUTCOME_CODES = {name: code for code, name in _OUTCOME_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Finished:
    """What a finished case's marker says: its final decision."""

    decision_id: str
    outcome: str  # "pass" or "escalate": the decision topic it went to
    attempt: int
    decided_at_ms: int

    def ref(self) -> FinalOutcomeRef:
        """As carried by a ``CASE_CLOSED`` dead letter (clients fetch the decision with it)."""
        return FinalOutcomeRef(self.decision_id, self.outcome, self.attempt, self.decided_at_ms)


def marker_key(case_key: bytes) -> bytes:
    return MARKER_PREFIX + case_key


def is_marker_key(key: bytes) -> bool:
    return bool(key) and key[0] == _MARKER_BYTE


def finished_by(decision: Decision) -> Finished | None:
    """The marker a final decision leaves; None for a retry request (not final)."""
    if isinstance(decision, PassDecision):
        outcome = "pass"
    elif isinstance(decision, EscalationPacket):
        outcome = "escalate"
    else:
        return None
    return Finished(decision.decision_id, outcome, decision.attempt, decision.decided_at_ms)


def encode_marker(finished: Finished) -> bytes:
    return _MARKER.pack(
        uuid.UUID(finished.decision_id).bytes,
        _OUTCOME_CODES[finished.outcome],
        finished.attempt,
        finished.decided_at_ms,
    )


def decode_marker(marker: bytes) -> Finished:
    raw_id, outcome, attempt, decided_at_ms = _MARKER.unpack(marker)
    return Finished(str(uuid.UUID(bytes=raw_id)), _OUTCOME_NAMES[outcome], attempt, decided_at_ms)


def marker_decided_at(marker: bytes) -> int:
    """The decision time alone, without decoding the rest (expiry reads only this)."""
    return int(_DECIDED_AT.unpack_from(marker, _DECIDED_AT_OFFSET)[0])
