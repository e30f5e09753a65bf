"""A validator worker's Prometheus series: its verdicts, their latency, and the scale signals.

The scale signals (docs/monitoring.md, "Scaling validators"): consumer lag, candidates in
flight, judge slots busy, time a candidate waited for a slot, judge latency. All carry the
validator id, which names the group (``<prefix>.validator.<id>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ratifier.core.models import Verdict, Vote
from ratifier.io.metrics import (
    CALL_LATENCY_BUCKETS,
    LATENCY_BUCKETS,
    ConsumerLag,
    Observability,
    ReadAtScrape,
    assigned_readiness,
)

_PROBLEMS = {"validator.timeout": "timeout", "validator.error": "error"}


class _Counts(Protocol):
    """What the worker counts, read when scraped."""

    concurrency: int
    busy_slots: int
    not_listed: int
    skipped_decided: int

    @property
    def in_flight(self) -> int: ...


class ValidatorMetrics:
    def __init__(self, validator_id: str, consumer: AIOKafkaConsumer, counts: _Counts) -> None:
        self.validator_id = validator_id
        self.registry = CollectorRegistry()
        self._consumer = consumer
        self._counts = counts
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
        self._queue_wait = Histogram(
            "ratifier_validator_queue_wait_seconds",
            "Time a candidate waited for a free judge slot (apart from the call itself)",
            ["validator"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._rate_limit_wait = Histogram(
            "ratifier_validator_rate_limit_wait_seconds",
            "Time a candidate waited for the validator's rate limit (requests, tokens per minute)",
            ["validator"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(ReadAtScrape(self._families))
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

    def waited(self, seconds: float) -> None:
        self._queue_wait.labels(self.validator_id).observe(seconds)

    def rate_limit_waited(self, seconds: float) -> None:
        self._rate_limit_wait.labels(self.validator_id).observe(seconds)

    def _families(self) -> Iterable[Metric]:
        counts, label = self._counts, [self.validator_id]
        gauges = (
            ("ratifier_validator_in_flight", "Candidates read and not yet done", counts.in_flight),
            ("ratifier_validator_slots", "Judge calls run at once", counts.concurrency),
            ("ratifier_validator_busy_slots", "Judge calls running now", counts.busy_slots),
        )  # fmt: skip
        for name, help_text, value in gauges:
            gauge = GaugeMetricFamily(name, help_text, labels=["validator"])
            gauge.add_metric(label, value)
            yield gauge
        skipped = CounterMetricFamily(
            "ratifier_validator_skipped",
            "Candidates not judged: their policy does not list this validator (not_listed), "
            "or their attempt was decided already (decided)",
            labels=["validator", "why"],
        )
        skipped.add_metric([self.validator_id, "not_listed"], counts.not_listed)
        skipped.add_metric([self.validator_id, "decided"], counts.skipped_decided)
        yield skipped

    def observability(self) -> Observability:
        what = f"validator {self.validator_id}"
        return Observability(
            self.registry, lambda: assigned_readiness(self._consumer, what), (self._lag.refresh,)
        )
