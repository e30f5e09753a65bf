"""The monitor's Prometheus series (its own registry; names follow Prometheus conventions)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ratifier.features.monitor.core.figures import Figures
from ratifier.io.metrics import LATENCY_BUCKETS


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.decisions = Counter(
            "ratifier_decisions_total",
            "Decisions by policy and outcome (pass, retry, escalate)",
            ["policy", "outcome"],
            registry=r,
        )
        self.verdicts = Counter(
            "ratifier_verdicts_total",
            "Verdicts the tally counted, by validator, candidate category and vote",
            ["validator", "category", "vote"],
            registry=r,
        )
        self.verdicts_received = Counter(
            "ratifier_verdicts_received_total",
            "Verdicts published on the verdicts topic (counted or not), by validator and vote",
            ["validator", "vote"],
            registry=r,
        )
        self.candidates = Counter(
            "ratifier_candidates_total", "Candidates published, by policy", ["policy"], registry=r
        )
        self.latency = Histogram(
            "ratifier_validator_latency_seconds",
            "Time a validator took for a verdict the tally counted",
            ["validator"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.undecodable = Counter(
            "ratifier_monitor_undecodable_total",
            "Records the monitor could not decode (the tally dead-letters them)",
            ["topic"],
            registry=r,
        )
        self.alerts = Counter(
            "ratifier_alerts_total",
            "Alerts published, by kind and state (RAISED, CLEARED)",
            ["kind", "state"],
            registry=r,
        )
        self.alarms_active = Gauge(
            "ratifier_alarms_active", "Alarms holding now, by kind", ["kind"], registry=r
        )
        self.redis_up = Gauge(
            "ratifier_monitor_redis_up",
            "1 while the read models' Redis answers, 0 while the monitor waits for it",
            registry=r,
        )
        self.first_attempt = _ratio(
            r, "ratifier_first_attempt_consensus_ratio", "Final outcomes passed on attempt 1"
        )
        self.escalation = _ratio(r, "ratifier_escalation_ratio", "Final outcomes escalated")
        self.retry = _ratio(r, "ratifier_retry_ratio", "Decided attempts that were retried")
        self.attempts = _ratio(
            r, "ratifier_attempts_per_outcome", "Mean attempts per final outcome"
        )
        self.cost = _ratio(
            r, "ratifier_verdicts_per_outcome", "Counted validator verdicts per final outcome"
        )
        self.escalations_hour = _ratio(
            r, "ratifier_escalations_last_hour", "Escalations in the last hour"
        )
        self.latency_quantile = Gauge(
            "ratifier_validator_latency_quantile_seconds",
            "Validator call latency quantiles over the window, all validators of a policy",
            ["policy", "quantile"],
            registry=r,
        )
        self.decision_quantile = Gauge(
            "ratifier_time_to_decision_quantile_seconds",
            "Candidate produced -> decided, quantiles over the window, by outcome (all: every one)",
            ["policy", "outcome", "quantile"],
            registry=r,
        )
        self.kappa = Gauge(
            "ratifier_agreement_kappa",
            "Cohen's kappa of a validator pair over the attempts that failed (window)",
            ["policy", "pair"],
            registry=r,
        )
        self.fleiss = Gauge(
            "ratifier_fleiss_kappa",
            "Fleiss' kappa of the validators that judged the same attempts (window)",
            ["policy"],
            registry=r,
        )
        self.rejection = Gauge(
            "ratifier_validator_rejection_ratio",
            "A validator's share of REJECT votes in a category (window)",
            ["policy", "validator", "category"],
            registry=r,
        )
        self.window_outcomes = _ratio(
            r, "ratifier_window_final_outcomes", "Final outcomes in the window"
        )
        self.redis_up.set(1)

    def show(self, figures: Figures) -> None:
        p = figures.policy
        self.first_attempt.labels(p).set(figures.first_attempt_consensus_ratio)
        self.escalation.labels(p).set(figures.escalation_ratio)
        self.retry.labels(p).set(figures.retry_ratio)
        self.attempts.labels(p).set(figures.mean_attempts)
        self.cost.labels(p).set(figures.verdicts_per_outcome)
        self.escalations_hour.labels(p).set(figures.escalations_last_hour)
        self.window_outcomes.labels(p).set(figures.final_outcomes)
        for q, value in (
            ("0.5", figures.latency_p50_ms),
            ("0.95", figures.latency_p95_ms),
            ("0.99", figures.latency_p99_ms),
        ):
            self.latency_quantile.labels(p, q).set(value / 1000 if math.isfinite(value) else value)
        for outcome, quantiles in figures.time_to_decision_ms.items():
            for q, value in zip(("0.5", "0.95", "0.99"), quantiles, strict=True):
                self.decision_quantile.labels(p, outcome, q).set(value / 1000)
        self.fleiss.labels(p).set(figures.fleiss_kappa)
        for (first, second), (kappa, _n) in figures.pair_kappas.items():
            self.kappa.labels(p, f"{first}+{second}").set(kappa)
        for v in figures.validators:
            self.rejection.labels(p, v.validator, v.category).set(v.rejection_ratio)


def _ratio(registry: CollectorRegistry, name: str, documentation: str) -> Gauge:
    return Gauge(name, f"{documentation}, by policy (window)", ["policy"], registry=registry)
