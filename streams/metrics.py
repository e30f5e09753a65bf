"""The tally's Prometheus series, read from its counters when scraped, on either engine.

Nothing here runs per record: the processor already counts inputs, decisions and dead letters
(:class:`~ratifier.streams.processor.TallyStats`), and a scrape reads those counters, the store's
size and (with an aiokafka consumer: the transactional engine) the consumer's lag. Served by
:func:`ratifier.io.metrics.serve_metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ratifier.core.models import DeadLetterReason
from ratifier.core.topics import TopicNames
from ratifier.io.metrics import (
    BeforeScrape,
    ConsumerLag,
    Observability,
    ReadAtScrape,
    Readiness,
)
from ratifier.io.readiness import ReadinessFile
from ratifier.streams.processor import TallyProcessor


class HeldState(Protocol):
    def __len__(self) -> int: ...

    def markers(self) -> int:
        """Finished-case markers held (streams/finished.py)."""
        ...


class TallyView(Protocol):
    """What a scrape reads of a tally worker, whichever engine drives its processor."""

    @property
    def processor(self) -> TallyProcessor: ...

    @property
    def names(self) -> TopicNames: ...

    @property
    def store(self) -> HeldState: ...

    @property
    def readiness(self) -> ReadinessFile: ...


def tally_observability(
    tally: TallyView, consumer: AIOKafkaConsumer | None = None
) -> Observability:
    """The tally's series and /readyz; with ``consumer``, ``ratifier_consumer_lag`` too."""
    registry = CollectorRegistry()
    refresh: tuple[BeforeScrape, ...] = ()
    if consumer is not None:
        refresh = (ConsumerLag(registry, consumer).refresh,)
    registry.register(ReadAtScrape(lambda: _families(tally)))
    return Observability(registry, lambda: _readiness(tally), refresh)


def _readiness(tally: TallyView) -> Readiness:
    status = tally.readiness.status
    if status.ready and status.partitions:
        return Readiness(True, f"tally: partitions {list(status.partitions)} restored")
    if status.recovering:
        return Readiness(False, f"tally: restoring partitions {list(status.recovering)}")
    return Readiness(False, "tally: no partitions assigned yet")


def _families(tally: TallyView) -> Iterable[Metric]:
    stats = tally.processor.stats
    names = tally.names
    outcome_of = {names.passed: "pass", names.retry: "retry", names.escalate: "escalate"}
    inputs = CounterMetricFamily(
        "ratifier_tally_records", "Input records the tally processed, by kind", labels=["kind"]
    )
    inputs.add_metric(["candidate"], stats.candidates)
    inputs.add_metric(["verdict"], stats.verdicts)
    yield inputs
    decisions = CounterMetricFamily(
        "ratifier_tally_decisions", "Decisions the tally published, by outcome", labels=["outcome"]
    )
    for topic, outcome in outcome_of.items():
        decisions.add_metric([outcome], stats.decisions.get(topic, 0))
    yield decisions
    dead = CounterMetricFamily(
        "ratifier_dead_letters", "Records the tally set aside, by reason", labels=["reason"]
    )
    # Every reason, 0 included: a dashboard's rate() needs the series before the first one.
    for reason in sorted({r.value for r in DeadLetterReason} | set(stats.dead_letters)):
        dead.add_metric([reason], stats.dead_letters.get(reason, 0))
    yield dead
    yield CounterMetricFamily(
        "ratifier_tally_late_verdicts",
        "Verdicts that arrived after their attempt was decided (recorded, not counted)",
        value=stats.late_verdicts,
    )
    yield GaugeMetricFamily(
        "ratifier_open_windows",
        "Cases this worker holds with a deadline pending (open voting windows, retry waits)",
        value=len(tally.processor.index),
    )
    yield GaugeMetricFamily(
        "ratifier_tally_cases", "Cases held in this worker's state store", value=len(tally.store)
    )
    yield GaugeMetricFamily(
        "ratifier_tally_finished_cases",
        "Finished cases this worker remembers (markers, kept for RATIFIER_FINISHED_HORIZON_MS)",
        value=tally.store.markers(),
    )
    yield CounterMetricFamily(
        "ratifier_tally_finished_expired",
        "Finished-case markers forgotten at the horizon",
        value=stats.markers_expired,
    )
