"""A validator worker's Prometheus series: its verdicts, their latency, its consumer lag."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry, Counter, Histogram

from ratifier.core.models import Verdict, Vote
from ratifier.io.metrics import (
    CALL_LATENCY_BUCKETS,
    ConsumerLag,
    Observability,
    assigned_readiness,
)

_PROBLEMS = {"validator.timeout": "timeout", "validator.error": "error"}


class ValidatorMetrics:
    def __init__(self, validator_id: str, consumer: AIOKafkaConsumer) -> None:
        self.validator_id = validator_id
        self.registry = CollectorRegistry()
        self._consumer = consumer
        self._verdicts = Counter(
            "ratifier_validator_verdicts_total",
            "Verdicts this validator worker published, by vote",
            ["validator", "vote"],
            registry=self.registry,
        )
        self._failures = Counter(
            "ratifier_validator_failures_total",
            "Validator calls that timed out or raised (published as ABSTAIN), by kind",
            ["validator", "kind"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "ratifier_validator_latency_seconds",
            "Validator call latency: the time the validator callable took per candidate",
            ["validator"],
            buckets=CALL_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._lag = ConsumerLag(self.registry, consumer)

    def observe(self, verdict: Verdict, call_seconds: float | None = None) -> None:
        """Count a published verdict; ``call_seconds`` is the call's measured duration (the
        verdict's ``latency_ms`` is whole milliseconds: a rule checker's call reads 0 there)."""
        self._verdicts.labels(self.validator_id, verdict.vote.value).inc()
        seconds = verdict.latency_ms / 1000 if call_seconds is None else call_seconds
        self._latency.labels(self.validator_id).observe(seconds)
        if verdict.vote is Vote.ABSTAIN:
            for reason in verdict.reasons:
                kind = _PROBLEMS.get(reason.code)
                if kind is not None:
                    self._failures.labels(self.validator_id, kind).inc()
                    break

    def observability(self) -> Observability:
        what = f"validator {self.validator_id}"
        return Observability(
            self.registry, lambda: assigned_readiness(self._consumer, what), (self._lag.refresh,)
        )
