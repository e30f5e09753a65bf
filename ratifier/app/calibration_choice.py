"""``ratifier calibrate``'s recommendation: per mode, the smallest M that meets a target pass
error and an escalation budget, judged on the upper ends of their Wilson intervals, so a small
history cannot recommend an M on luck (docs/calibration.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ratifier.app.calibration_replay import ReplayResult
from ratifier.core.uncertainty import wilson_interval

__all__ = ["Recommendation", "Targets", "intervals", "recommend"]


@dataclass(frozen=True, slots=True)
class Targets:
    max_pass_error: float  # wrong passes / passes
    max_escalation: float  # escalated cases / cases
    confidence: float = 0.95  # of the Wilson intervals


@dataclass(frozen=True, slots=True)
class Recommendation:
    mode: str
    m: int | None  # None: no M meets both targets
    explanation: str

    def as_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "m": self.m, "explanation": self.explanation}


def intervals(row: ReplayResult, confidence: float) -> dict[str, tuple[float, float]]:
    """The Wilson interval of each of the row's rates, by the name its JSON uses."""
    return {
        "first_attempt_consensus": wilson_interval(row.first_attempt_passes, row.cases, confidence),
        "escalation_rate": wilson_interval(row.escalations, row.cases, confidence),
        "pass_error_rate": wilson_interval(row.wrong_passes, row.passes, confidence),
        "accuracy": wilson_interval(row.correct, row.cases, confidence),
    }


def recommend(rows: Sequence[ReplayResult], targets: Targets) -> list[Recommendation]:
    """One recommendation per mode, in the rows' order of modes."""
    out: list[Recommendation] = []
    for mode in dict.fromkeys(row.mode for row in rows):
        ranked = sorted((row for row in rows if row.mode == mode), key=lambda row: row.m)
        out.append(_for_mode(mode, ranked, targets))
    return out


def _for_mode(mode: str, rows: list[ReplayResult], targets: Targets) -> Recommendation:
    level = f"{targets.confidence:.0%}"
    closest: tuple[float, ReplayResult, float, float] | None = None
    for row in rows:
        bounds = intervals(row, targets.confidence)
        error_high = bounds["pass_error_rate"][1]
        escalation_high = bounds["escalation_rate"][1]
        if error_high <= targets.max_pass_error and escalation_high <= targets.max_escalation:
            return Recommendation(
                mode,
                row.m,
                f"M = {row.m}: pass error {row.pass_error_rate:.2%} (at most {error_high:.2%}), "
                f"escalated {row.escalation_rate:.1%} (at most {escalation_high:.1%}), "
                f"{level} upper bounds within {targets.max_pass_error:.2%} and "
                f"{targets.max_escalation:.1%}",
            )
        # How far over its targets the row is, in units of each target: the closest miss.
        excess = max(
            error_high / max(targets.max_pass_error, 1e-12),
            escalation_high / max(targets.max_escalation, 1e-12),
        )
        if closest is None or excess < closest[0]:
            closest = (excess, row, error_high, escalation_high)
    assert closest is not None  # every mode has rows
    _, row, error_high, escalation_high = closest
    return Recommendation(
        mode,
        None,
        f"no M meets pass error <= {targets.max_pass_error:.2%} and escalated <= "
        f"{targets.max_escalation:.1%} at {level}; closest M = {row.m}: pass error at most "
        f"{error_high:.2%}, escalated at most {escalation_high:.1%} (more history narrows "
        f"the intervals)",
    )
