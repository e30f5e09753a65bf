"""The governance monitor: candidates, verdicts and decisions in; figures, alarms, read models out.

A consumer group (``<prefix>.monitor``) over the candidates, verdicts and decision topics, so it
scales and fails over like any group, on the consumer runtime's batch mode. Per batch:

1. decode the records, feed the decisions to the windowed figures (:mod:`.figures`);
2. write the read models to Redis (:mod:`ratifier.io.readmodels`): case histories (idempotent
   fields) and the scoreboard's counts, applied once with the offsets they came from;
3. only then is the batch done, and the runtime commits its offsets (every second). With Redis
   down the monitor waits, saying so in its log, and commits nothing meanwhile: after a crash
   or a rebalance the records come again, and the offsets recorded in Redis keep them from
   being counted twice.

About once a second (and only once caught up, so half-rebuilt windows raise nothing) it
evaluates the alarms; each alarm raised or cleared is published to ``<prefix>.alerts`` (Avro),
logged, and kept in Redis's ``alarms`` hash.

The windows live in memory. After each assignment the monitor re-reads the decision partitions
from the start of the time window (``offsets_for_times``), so a restarted or new owner rebuilds
them; records below the offsets recorded in Redis only feed the windows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from operator import attrgetter
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from ratifier.core.errors import WireFormatError
from ratifier.core.models import (
    Candidate,
    DeadLetterReason,
    EscalationPacket,
    PassDecision,
    RetryRequest,
    Verdict,
    now_ms,
)
from ratifier.core.policy import Policy
from ratifier.features.monitor.config import MonitorConfig
from ratifier.features.monitor.core import alarms as rules
from ratifier.features.monitor.core.figures import Figures, PolicyFigures, decided_attempt
from ratifier.features.monitor.runtime.metrics import MonitorMetrics
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    PoisonMode,
    RuntimeWorker,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.metrics import ConsumerLag, Observability, Readiness
from ratifier.io.readmodels import OffsetGroup, ReadModels, case_fields, score_field
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

T = TypeVar("T")

WINDOW_S = 3_600.0
WINDOW_CASES = 10_000
EVALUATE_EVERY_S = 1.0
_REDIS_RETRY_MAX_S = 5.0
_REDIS_LOG_EVERY_S = 30.0
_by_timestamp = attrgetter("timestamp")


_BATCH = 500  # records per batch (aiokafka's default max_poll_records, as before the runtime)


class MonitorWorker(RuntimeWorker):
    """One monitor instance. ``async with`` it, or ``start()``, ``run(stop)``, ``stop()``."""

    _producer: AIOKafkaProducer

    def __init__(
        self,
        config: MonitorConfig,
        policies: Mapping[str, Policy],
        *,
        window_s: float = WINDOW_S,
        window_cases: int = WINDOW_CASES,
        evaluate_every_s: float = EVALUATE_EVERY_S,
    ) -> None:
        self.config = config
        endpoints = config.endpoints
        self.policies = policies
        self.names = endpoints.topics
        self.window_ms = int(window_s * 1000)
        self.window_cases = window_cases
        self.evaluate_every_s = evaluate_every_s
        self.registry = CollectorRegistry()
        self.metrics = MonitorMetrics(self.registry)
        client_id = f"ratifier-monitor-{endpoints.worker_id}"
        self._consumer: AIOKafkaConsumer = make_consumer(
            endpoints.kafka,
            group_id=self.names.monitor_group,
            client_id=client_id,
            # Candidates, verdicts and decisions are all keyed by case id: range assignment gives
            # an instance the same partitions of each, so a case's records meet in one instance.
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        self._producer = make_producer(endpoints.kafka, client_id=client_id)
        self.runtime = ConsumerRuntime(
            self._consumer,
            [self.names.candidates, self.names.verdicts, *self.names.decisions],
            batch_handler=self._process,
            limits=Limits(max_in_flight=_BATCH),
            # The tally dead-letters undecodable input; the monitor counts and skips it.
            poison=dataclasses.replace(config.poison, mode=PoisonMode.SKIP),
            before_fetch=self._before_fetch,
            on_assigned=lambda _: self.restore_later(),
            on_revoked=lambda _: self.forget(),
        )
        self.read_models = ReadModels(endpoints.redis, endpoints.topics.key_prefix)
        self._lag = ConsumerLag(self.registry, self._consumer)
        self._decision_topics = frozenset(self.names.decisions)
        self.figures: dict[str, PolicyFigures] = {}
        self.active: dict[str, rules.Alarm] = {}  # alarm key -> alarm, as published
        self._applied: dict[str, int] = {}  # "<topic>:<partition>" -> next offset counted
        self._resume: dict[TopicPartition, int] = {}  # committed offsets at assignment
        self._catching_up: dict[TopicPartition, int] = {}  # decision partitions -> resume offset
        self._restore_pending = False
        self._restored = False
        self._last_evaluation = 0.0
        self._redis_waiting_since: float | None = None
        self._stop: asyncio.Event | None = None
        self.processed = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def on_stop(self) -> None:
        await self.read_models.aclose()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        self._stop = stop = stop or asyncio.Event()
        try:
            await self.runtime.run(stop)
        except _StoppedWaiting:
            logger.warning(
                "stopped while waiting for Redis at %s: the last records' offsets are not "
                "committed, and the next monitor reads them again",
                self.read_models.url,
            )

    # -- observability -----------------------------------------------------------------------

    def readiness(self) -> Readiness:
        assigned = self._consumer.assignment()
        if not assigned:
            return Readiness(False, "monitor: no partitions assigned yet")
        if self._restore_pending or not self._restored:
            return Readiness(False, "monitor: restoring (read models' offsets, windows)")
        if self._catching_up:
            behind = len(self._catching_up)
            return Readiness(False, f"monitor: rebuilding windows of {behind} partition(s)")
        if self._redis_waiting_since is not None:
            return Readiness(False, f"monitor: waiting for Redis at {self.read_models.url}")
        partitions = sorted({tp.partition for tp in assigned})
        return Readiness(True, f"monitor: partitions {partitions} assigned, windows rebuilt")

    def observability(self) -> Observability:
        return Observability(self.registry, self.readiness, (self._lag.refresh,))

    # -- rebalances --------------------------------------------------------------------------

    def forget(self) -> None:
        """Revoked: the windows belong to the old assignment (rebuilt after the next one)."""
        self.figures.clear()
        self._restored = False

    def restore_later(self) -> None:
        self._restore_pending = True
        self._restored = False

    async def _before_fetch(self) -> None:
        """Each turn of the runtime's loop: restore after an assignment, evaluate when due."""
        if self._restore_pending:
            await self._restore()
        await self._evaluate_when_due()

    async def _restore(self) -> None:
        """Load the read models' offsets and alarms, and seek back to rebuild the windows."""
        self._restore_pending = False
        self.figures.clear()
        models = self.read_models
        self._applied = await self._with_redis("read the offsets counted", models.applied_offsets)
        stored = await self._with_redis("read the current alarms", models.alarms)
        self.active = {
            key: rules.Alarm(**{f: alert[f] for f in _ALARM_FIELDS})
            for key, alert in stored.items()
        }
        assigned = list(self._consumer.assignment())
        self._resume, self._catching_up = {}, {}
        if not assigned:
            self._restored = True
            return
        committed = await asyncio.gather(*(self._consumer.committed(tp) for tp in assigned))
        decisions = [tp for tp in assigned if tp.topic in self._decision_topics]
        since = now_ms() - self.window_ms
        starts = await self._consumer.offsets_for_times(dict.fromkeys(decisions, since))
        beginnings = await self._consumer.beginning_offsets(assigned)
        ends = await self._consumer.end_offsets(decisions) if decisions else {}
        for tp, offset in zip(assigned, committed, strict=True):
            resume = beginnings[tp] if offset is None else offset
            self._resume[tp] = resume
            target = resume
            if tp in starts:
                found = starts[tp]
                window_start = ends[tp] if found is None else found.offset
                target = min(resume, max(window_start, beginnings[tp]))
                if target < resume:
                    self._catching_up[tp] = resume
            self._consumer.seek(tp, target)
        # Records read again below these (to rebuild the windows) never move a commit back.
        self.runtime.resume_from(self._resume)
        self._restored = True
        logger.info(
            "monitor owns %d partitions; rebuilding windows from %d decision partition(s)",
            len(assigned),
            len(self._catching_up),
        )

    # -- processing --------------------------------------------------------------------------

    async def _process(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        cases: dict[str, dict[str, bytes]] = {}
        groups: dict[TopicPartition, OffsetGroup] = {}
        for record in heapq.merge(*batches.values(), key=_by_timestamp):
            tp = TopicPartition(record.topic, record.partition)
            self._handle(tp, record, cases, groups)
        count = sum(map(len, batches.values()))
        await self._with_redis(
            f"write the read models of {count} records",
            lambda: self.read_models.write_cases(cases),
        )
        await self._with_redis(
            "count the batch's verdicts in the scoreboard",
            lambda: self.read_models.apply_counts(groups.values()),
        )
        for tp, group in groups.items():
            self._applied[f"{tp.topic}:{tp.partition}"] = group.next
        for tp, records in batches.items():
            target = self._catching_up.get(tp)
            if target is not None and records[-1].offset + 1 >= target:
                del self._catching_up[tp]
        self.processed += sum(len(records) for records in batches.values())

    def _handle(
        self,
        tp: TopicPartition,
        record: ConsumerRecord,
        cases: dict[str, dict[str, bytes]],
        groups: dict[TopicPartition, OffsetGroup],
    ) -> None:
        try:
            value = codec.decode(record.value or b"")
        except WireFormatError as exc:
            self.metrics.undecodable.labels(record.topic).inc()
            self.runtime.note_invalid(record, InvalidRecord(DeadLetterReason.MALFORMED, str(exc)))
            return
        fresh = record.offset >= self._resume.get(tp, 0)
        if isinstance(value, Candidate | Verdict):
            if not fresh:
                return
            cases.setdefault(value.case_id, {}).update(case_fields(value))
            if isinstance(value, Candidate):
                self.metrics.candidates.labels(value.policy).inc()
            else:
                self.metrics.verdicts_received.labels(value.validator_id, value.vote.value).inc()
            return
        if not isinstance(value, PassDecision | RetryRequest | EscalationPacket):
            return
        attempt = decided_attempt(value)
        figures = self.figures.get(attempt.policy)
        if figures is None:
            policy = self.policies.get(attempt.policy)
            drift_window = policy.monitor.drift_window if policy else 500
            figures = PolicyFigures(attempt.policy, self.window_ms, self.window_cases, drift_window)
            self.figures[attempt.policy] = figures
        figures.add(attempt)
        if record.offset < self._applied.get(f"{tp.topic}:{tp.partition}", 0):
            return  # counted already (an earlier run): it only rebuilds the windows
        cases.setdefault(value.case_id, {}).update(case_fields(value))
        group = groups.get(tp)
        if group is None:
            group = groups[tp] = OffsetGroup(tp.topic, tp.partition, record.offset, record.offset)
        group.next = record.offset + 1
        self.metrics.decisions.labels(attempt.policy, attempt.kind).inc()
        for vote in attempt.votes:
            base = (attempt.policy, vote.validator, vote.category)
            group.increments[score_field(*base, vote.vote)] += 1
            group.increments[score_field(*base, "latency_ms")] += vote.latency_ms
            if vote.problem is not None:
                group.increments[score_field(*base, vote.problem)] += 1
            self.metrics.verdicts.labels(vote.validator, vote.category, vote.vote).inc()
            self.metrics.latency.labels(vote.validator).observe(vote.latency_ms / 1000)

    # -- alarms ------------------------------------------------------------------------------

    async def _evaluate_when_due(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_evaluation < self.evaluate_every_s:
            return
        if self._restore_pending or not self._restored or self._catching_up:
            return  # half-rebuilt windows would raise (or clear) alarms that do not hold
        self._last_evaluation = now
        await self.evaluate()

    async def evaluate(self) -> list[Any]:
        """Compute every policy's figures and alarms; publish what changed. Returns the alerts."""
        holding: dict[str, rules.Alarm] = {}
        snapshots: dict[str, dict[str, Any]] = {}
        for name, policy_figures in self.figures.items():
            figures = policy_figures.figures()
            self.metrics.show(figures)
            snapshots[name] = _snapshot(figures)
            holding.update(rules.evaluate(self.policies.get(name), figures))
        # Alarms of policies this instance has no figures of (another instance's) stay as they are.
        before = {k: a for k, a in self.active.items() if a.policy in self.figures}
        alerts = []
        at = now_ms()
        for state, alarm in rules.changes(before, holding):
            alert = rules.alert_for(alarm, state, monitor=self.config.endpoints.worker_id, at_ms=at)
            alerts.append((state, alarm, alert))
        for state, alarm, alert in alerts:
            await self._producer.send_and_wait(
                self.names.alerts, codec.encode(alert), key=alarm.key.encode()
            )
            log = logger.warning if state == rules.RAISED else logger.info
            log("alarm %s %s: %s", state.lower(), alarm.kind, alarm.message)
            self.metrics.alerts.labels(alarm.kind, state).inc()
        raised = [(a.key, alert) for state, a, alert in alerts if state == rules.RAISED]
        cleared = [a.key for state, a, _ in alerts if state == rules.CLEARED]
        models = self.read_models
        await self._with_redis("record the alarms", lambda: models.set_alarms(raised, cleared))
        await self._with_redis("record the figures", lambda: models.set_figures(snapshots))
        for key in cleared:
            self.active.pop(key, None)
        self.active.update({a.key: a for state, a, _ in alerts if state == rules.RAISED})
        for kind in rules.KINDS:
            self.metrics.alarms_active.labels(kind).set(
                sum(1 for a in self.active.values() if a.kind == kind)
            )
        return [alert for _, _, alert in alerts]

    # -- Redis -------------------------------------------------------------------------------

    async def _with_redis(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, waiting for Redis as long as it takes (or until the worker stops)."""
        delay = 0.1
        last_log = 0.0
        while True:
            try:
                result = await call()
            except (RedisError, OSError) as exc:
                now = time.monotonic()
                if self._redis_waiting_since is None:
                    self._redis_waiting_since = now
                    self.metrics.redis_up.set(0)
                if now - last_log >= _REDIS_LOG_EVERY_S:
                    last_log = now
                    logger.warning(
                        "waiting for Redis at %s to %s (%s); Kafka offsets are not committed "
                        "until it answers, so nothing is lost",
                        self.read_models.url,
                        what,
                        exc,
                    )
                if self._stop is not None and self._stop.is_set():
                    raise _StoppedWaiting from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, _REDIS_RETRY_MAX_S)
                continue
            if self._redis_waiting_since is not None:
                waited = time.monotonic() - self._redis_waiting_since
                logger.info("Redis at %s answers again after %.1fs", self.read_models.url, waited)
                self._redis_waiting_since = None
                self.metrics.redis_up.set(1)
            return result


class _StoppedWaiting(Exception):
    """Asked to stop while Redis was down: nothing more to write, nothing committed."""


_ALARM_FIELDS = tuple(f.name for f in dataclasses.fields(rules.Alarm))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _snapshot(figures: Figures) -> dict[str, Any]:
    """The figures as JSON (``nan`` as null), for Redis and ``ratifier scoreboard``."""
    return {
        "final_outcomes": figures.final_outcomes,
        "first_attempt_consensus_ratio": _finite(figures.first_attempt_consensus_ratio),
        "mean_attempts": _finite(figures.mean_attempts),
        "escalation_ratio": _finite(figures.escalation_ratio),
        "retry_ratio": _finite(figures.retry_ratio),
        "verdicts_per_outcome": _finite(figures.verdicts_per_outcome),
        "escalations_last_hour": figures.escalations_last_hour,
        "latency_ms": {  # the validator calls'
            "p50": _finite(figures.latency_p50_ms),
            "p95": _finite(figures.latency_p95_ms),
            "p99": _finite(figures.latency_p99_ms),
        },
        "time_to_decision_ms": {
            kind: {"p50": _finite(p50), "p95": _finite(p95), "p99": _finite(p99)}
            for kind, (p50, p95, p99) in figures.time_to_decision_ms.items()
        },
        "decisions_timed": figures.decisions_timed,
        "fleiss_kappa": _finite(figures.fleiss_kappa),
        "pair_kappas": {
            f"{a}+{b}": {"kappa": _finite(k), "attempts": n}
            for (a, b), (k, n) in sorted(figures.pair_kappas.items())
        },
        "drift_z": {v: _finite(z) for v, (z, _) in sorted(figures.drift.items())},
        "validators": [
            {
                "validator": v.validator,
                "category": v.category,
                "verdicts": v.verdicts,
                "counts": dict(v.counts),
                "rejection_ratio": _finite(v.rejection_ratio),
                "timeout_ratio": _finite(v.timeout_ratio),
                "error_ratio": _finite(v.error_ratio),
                "latency_p50_ms": _finite(v.latency_p50_ms),
                "latency_p95_ms": _finite(v.latency_p95_ms),
                "latency_p99_ms": _finite(v.latency_p99_ms),
            }
            for v in figures.validators
        ],
    }
