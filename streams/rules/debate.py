"""Debate rounds (policy ``[debate]``, docs/debate.md): when a closed round ends the debate.

Pure arithmetic on one round's weight shares, no I/O: the tally (``streams/tally.py``) calls
:func:`after_round` once every validator has answered the round or its window has closed, and
:func:`peers_of` puts a round's verdicts in the next round's request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ratifier.core.models import FailureReason, PeerVerdict, Verdict
from ratifier.core.policy import Debate

__all__ = ["NextStep", "RoundTally", "after_round", "peers_of"]

# Weight shares are float sums of TOML numbers: 3 x 0.25 must still reach 0.75 (as the tally).
_RELATIVE_EPSILON = 1e-9


class NextStep(Enum):
    NEXT_ROUND = "next-round"
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class RoundTally:
    """How one closed round's voters stood, by weight (abstaining and unheard voters count in
    the total, as for a ratio threshold)."""

    round: int
    accepting: float
    rejecting: float
    total: float
    threshold_met: bool  # the policy's [threshold] holds too: a floor for a pass
    red_team_heard: bool  # a pass waits for every red-team validator, as without debates


def after_round(debate: Debate, tally: RoundTally) -> tuple[NextStep, FailureReason | None]:
    """What follows a closed round: another round, a pass, or a failure (with its reason).

    1. round < min_rounds: another round.
    2. the accepting share >= supermajority (with the threshold met and the red team heard):
       pass; the rejecting share >= supermajority: fail (THRESHOLD_UNREACHABLE).
    3. otherwise another round before max_rounds; at max_rounds fail with NO_SUPERMAJORITY.
    """
    if tally.round < debate.min_rounds:
        return NextStep.NEXT_ROUND, None
    if (
        _share_at_least(tally.accepting, tally.total, debate.supermajority)
        and tally.threshold_met
        and tally.red_team_heard
    ):
        return NextStep.PASS, None
    if _share_at_least(tally.rejecting, tally.total, debate.supermajority):
        return NextStep.FAIL, FailureReason.THRESHOLD_UNREACHABLE
    if tally.round < debate.max_rounds:
        return NextStep.NEXT_ROUND, None
    return NextStep.FAIL, FailureReason.NO_SUPERMAJORITY


def peers_of(verdicts: Iterable[Verdict]) -> tuple[PeerVerdict, ...]:
    """A round's verdicts as a round request carries them: by validator id, sorted."""
    return tuple(
        PeerVerdict(v.validator_id, v.vote, v.confidence, v.severity, v.reasons)
        for v in sorted(verdicts, key=lambda v: v.validator_id)
    )


def _share_at_least(weight: float, total: float, ratio: float) -> bool:
    return total > 0 and weight >= ratio * total - _RELATIVE_EPSILON * total
