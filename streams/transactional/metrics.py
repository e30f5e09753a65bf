"""The transactional tally's Prometheus series, read from its counters when scraped.

Nothing here runs per record: the processor already counts inputs, decisions and dead letters
(:class:`~ratifier.streams.processor.TallyStats`), and a scrape reads those counters, the store's
size and the consumer's lag. Served by :func:`ratifier.io.metrics.serve_metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ratifier.core.models import DeadLetterReason
from ratifier.io.metrics import ConsumerLag, Observability, ReadAtScrape, Readiness

if TYPE_CHECKING:
    from ratifier.streams.transactional.engine import TransactionalTally


def tally_observability(tally: TransactionalTally) -> Observability:
    registry = CollectorRegistry()
    lag = ConsumerLag(registry, tally._consumer)
    registry.register(ReadAtScrape(lambda: _families(tally)))
    return Observability(registry, lambda: _readiness(tally), (lag.refresh,))


def _readiness(tally: TransactionalTally) -> Readiness:
    status = tally.readiness.status
    if status.ready and status.partitions:
        return Readiness(True, f"tally: partitions {list(status.partitions)} restored")
    if status.recovering:
        return Readiness(False, f"tally: restoring partitions {list(status.recovering)}")
    return Readiness(False, "tally: no partitions assigned yet")


def _families(tally: TransactionalTally) -> Iterable[Metric]:
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
