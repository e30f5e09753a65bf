"""Outcomes, the pure part: the one outcome of a case, built from a pass decision or a reviewer's
resolution.

An outcome is the same whichever process builds it, and as often as it is built: the outcome id is
derived from the case id (one case, one outcome id).
"""

from __future__ import annotations

import uuid

from ratifier.core.models import (
    AUTO_REVIEWER,
    EscalationPacket,
    Outcome,
    OutcomeClass,
    PassDecision,
)
from ratifier.features.review.core import Action, Resolution

__all__ = ["outcome_from_pass", "outcome_from_resolution", "outcome_id_for"]

_OUTCOME_NAMESPACE = uuid.UUID("0b4f3c52-8d0e-4f55-a1f7-5a8e2c9d7b31")


def outcome_id_for(case_id: str) -> str:
    """The id of a case's one outcome: the same for every process that builds it."""
    return str(uuid.uuid5(_OUTCOME_NAMESPACE, case_id))


def outcome_from_pass(decision: PassDecision) -> Outcome:
    """An automatic outcome: confirmed when attempt 1 passed, corrected after a retry."""
    candidate = decision.candidate
    return Outcome(
        outcome_id=outcome_id_for(decision.case_id),
        case_id=decision.case_id,
        kind=OutcomeClass.CONFIRMED if decision.attempt == 1 else OutcomeClass.CORRECTED,
        reviewer=AUTO_REVIEWER,
        decided_at_ms=decision.decided_at_ms,
        attempt=decision.attempt,
        candidate_id=candidate.candidate_id,
        content=candidate.content,
        query=candidate.query,
        category=candidate.category,
        note=None,
        policy=decision.policy,
        policy_version=decision.policy_version,
        resolves=(decision.decision_id,),
    )


def outcome_from_resolution(packet: EscalationPacket, resolution: Resolution) -> Outcome:
    """The outcome of a reviewer's resolution of ``packet`` (validated when it was made)."""
    first = packet.attempts[0].candidate
    kind = {
        Action.CONFIRM: OutcomeClass.CONFIRMED,
        Action.CORRECT: OutcomeClass.CORRECTED,
        Action.UNRESOLVED: OutcomeClass.UNRESOLVED,
    }[resolution.action]
    attempt = candidate_id = content = None
    if resolution.action is Action.CONFIRM:
        (chosen,) = [
            a.candidate
            for a in packet.attempts
            if a.candidate.candidate_id == resolution.candidate_id
        ]
        attempt, candidate_id, content = chosen.attempt, chosen.candidate_id, chosen.content
    elif resolution.action is Action.CORRECT:
        content = resolution.text
    return Outcome(
        outcome_id=outcome_id_for(packet.case_id),
        case_id=packet.case_id,
        kind=kind,
        reviewer=resolution.reviewer,
        decided_at_ms=resolution.resolved_at_ms,
        attempt=attempt,
        candidate_id=candidate_id,
        content=content,
        query=first.query,
        category=first.category,
        note=resolution.note,
        policy=packet.policy,
        policy_version=packet.policy_version,
        resolves=(packet.decision_id,),
    )
