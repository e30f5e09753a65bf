"""The monitor's alarm rules: a policy's figures and limits in, the alarms that hold out (pure).

The monitor compares the alarms that hold now with those that held before and publishes each
change as an :class:`~ratifier.core.models.Alert` (RAISED or CLEARED). Limits come from the
policy's ``[monitor]`` table (:class:`~ratifier.core.policy.MonitorSettings`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ratifier.core.models import Alert
from ratifier.core.policy import MonitorSettings, Policy
from ratifier.features.monitor.core.figures import Figures

__all__ = [
    "CORRELATED_VALIDATORS",
    "DRIFT",
    "ESCALATION_CAPACITY",
    "TIME_TO_DECISION",
    "VOTE_INFLATION",
    "Alarm",
    "alert_for",
    "evaluate",
]

VOTE_INFLATION = "VOTE_INFLATION"
DRIFT = "DRIFT"
CORRELATED_VALIDATORS = "CORRELATED_VALIDATORS"
ESCALATION_CAPACITY = "ESCALATION_CAPACITY"
TIME_TO_DECISION = "TIME_TO_DECISION"
KINDS = (VOTE_INFLATION, DRIFT, CORRELATED_VALIDATORS, ESCALATION_CAPACITY, TIME_TO_DECISION)
RAISED = "RAISED"
CLEARED = "CLEARED"


@dataclass(frozen=True, slots=True)
class Alarm:
    kind: str
    policy: str
    subject: str
    value: float
    threshold: float
    sample_size: int
    message: str

    @property
    def key(self) -> str:
        """What the alarm is about: the same key is the same alarm, whatever its figures."""
        return f"{self.kind}|{self.policy}|{self.subject}"


def evaluate(policy: Policy | None, figures: Figures) -> dict[str, Alarm]:
    """The alarms that hold for ``figures`` under ``policy``'s limits (defaults if unknown)."""
    limits = policy.monitor if policy is not None else MonitorSettings()
    red_team = set(policy.red_team_ids) if policy is not None else set()
    alarms = [
        *_vote_inflation(figures, limits, red_team),
        *_drift(figures, limits),
        *_correlated(figures, limits),
        *_capacity(figures, limits),
        *_time_to_decision(figures, limits),
    ]
    return {alarm.key: alarm for alarm in alarms}


def _vote_inflation(figures: Figures, limits: MonitorSettings, red_team: set[str]) -> list[Alarm]:
    out = []
    for v in figures.validators:
        # A red-team validator rejects only what it finds critical: rarely, by design.
        if v.validator in red_team or v.verdicts < limits.inflation_min_verdicts:
            continue
        if v.rejection_ratio < limits.inflation_max_rejection_rate:
            out.append(
                Alarm(
                    VOTE_INFLATION,
                    figures.policy,
                    f"{v.validator}/{v.category}",
                    v.rejection_ratio,
                    limits.inflation_max_rejection_rate,
                    v.verdicts,
                    f"validator {v.validator} rejected {v.rejection_ratio:.1%} of {v.verdicts} "
                    f"'{v.category}' candidates, under the policy's "
                    f"{limits.inflation_max_rejection_rate:.1%}: it may approve everything",
                )
            )
    return out


def _drift(figures: Figures, limits: MonitorSettings) -> list[Alarm]:
    out = []
    for validator, (z, half) in sorted(figures.drift.items()):
        if abs(z) >= limits.drift_max_z:
            direction = "more" if z > 0 else "less"
            out.append(
                Alarm(
                    DRIFT,
                    figures.policy,
                    validator,
                    z,
                    limits.drift_max_z,
                    2 * half,
                    f"validator {validator} rejects {direction} often in its last {half} verdicts "
                    f"than in the {half} before (z = {z:.2f}, limit {limits.drift_max_z:g})",
                )
            )
    return out


def _correlated(figures: Figures, limits: MonitorSettings) -> list[Alarm]:
    out = []
    for (first, second), (kappa, n) in sorted(figures.pair_kappas.items()):
        if n < limits.correlation_min_attempts or math.isnan(kappa):
            continue
        if kappa > limits.correlation_max_kappa:
            out.append(
                Alarm(
                    CORRELATED_VALIDATORS,
                    figures.policy,
                    f"{first}+{second}",
                    kappa,
                    limits.correlation_max_kappa,
                    n,
                    f"validators {first} and {second} agree beyond chance on {n} failed "
                    f"attempts (Cohen's kappa {kappa:.2f} > {limits.correlation_max_kappa:g}): "
                    "they may share blind spots, and count as one opinion twice",
                )
            )
    return out


def _capacity(figures: Figures, limits: MonitorSettings) -> list[Alarm]:
    capacity = limits.review_capacity_per_hour
    if capacity <= 0 or figures.escalations_last_hour <= capacity:
        return []
    n = figures.escalations_last_hour
    return [
        Alarm(
            ESCALATION_CAPACITY,
            figures.policy,
            figures.policy,
            float(n),
            float(capacity),
            n,
            f"{n} escalations in the last hour, more than the {capacity} per hour reviewers "
            "can handle",
        )
    ]


def _time_to_decision(figures: Figures, limits: MonitorSettings) -> list[Alarm]:
    slo_s = limits.time_to_decision_p95_max_seconds
    n = figures.decisions_timed
    if slo_s <= 0 or n < limits.time_to_decision_min_decisions:
        return []
    p95_ms = figures.time_to_decision_ms["all"][1]
    if not p95_ms > slo_s * 1000:  # nan (nothing timed) holds no alarm
        return []
    return [
        Alarm(
            TIME_TO_DECISION,
            figures.policy,
            figures.policy,
            p95_ms / 1000,
            slo_s,
            n,
            f"time to decision p95 is {p95_ms / 1000:.3g} s over the last {n} decisions, above "
            f"the policy's {slo_s:g} s (candidate produced -> decided)",
        )
    ]


def alert_for(alarm: Alarm, state: str, *, monitor: str, at_ms: int) -> Alert:
    """The record announcing that ``alarm`` was raised or cleared at ``at_ms``."""
    digest = hashlib.blake2b(f"{alarm.key}|{state}|{at_ms}".encode(), digest_size=12)
    return Alert(
        alert_id=digest.hexdigest(),
        kind=alarm.kind,
        state=state,
        policy=alarm.policy,
        subject=alarm.subject,
        value=alarm.value,
        threshold=alarm.threshold,
        sample_size=alarm.sample_size,
        message=alarm.message,
        monitor=monitor,
        changed_at_ms=at_ms,
    )


def changes(before: Mapping[str, Alarm], now: Mapping[str, Alarm]) -> list[tuple[str, Alarm]]:
    """(RAISED, alarm) for each new alarm and (CLEARED, alarm) for each that no longer holds."""
    raised = [(RAISED, now[key]) for key in sorted(now.keys() - before.keys())]
    cleared = [(CLEARED, before[key]) for key in sorted(before.keys() - now.keys())]
    return raised + cleared
