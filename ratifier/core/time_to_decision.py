"""Time to decision: from a candidate's production to the decision on it (pure).

Measured from ``candidate.produced_at_ms`` (the producer's clock) to ``decided_at_ms`` (the tally's
time for the partition: the wall clock while it is caught up, see streams/clock.py), both carried
by the decision itself, so the tally (streams/decision_times.py) and the monitor, reading the
decision topics, compute the same figure. An escalation is timed from its last attempt's
candidate (after a retry that never came, that includes the retry wait). A negative span (the
producer's clock ahead of the tally's) counts as 0.
"""

from __future__ import annotations

from ratifier.core.models import Decision, EscalationPacket, PassDecision

__all__ = ["outcome_of", "seconds_to_decision"]


def outcome_of(decision: Decision) -> str:
    """pass, retry or escalate."""
    if isinstance(decision, PassDecision):
        return "pass"
    return "escalate" if isinstance(decision, EscalationPacket) else "retry"


def seconds_to_decision(decision: Decision) -> float | None:
    """Candidate produced -> decided, in seconds; None for a packet without attempts."""
    if isinstance(decision, EscalationPacket):
        if not decision.attempts:
            return None
        produced = decision.attempts[-1].candidate.produced_at_ms
    else:
        produced = decision.candidate.produced_at_ms
    return max(0, decision.decided_at_ms - produced) / 1000
