"""The outcomes runtime: every case's one final outcome on ``<prefix>.outcomes``, and the trusted
answers store kept from it.

:class:`OutcomesWriter` turns pass decisions (``<prefix>.decisions.pass``: confirmed on attempt
1, corrected after a retry, reviewer ``auto``) and reviewers' resolutions (the review queue's
resolutions stream in Redis) into :class:`Outcome` records.

Exactly one outcome per case, and why it holds (docs/review.md):

* Outcomes are written in Kafka transactions, with the pass decisions' consumer offsets in the
  same transaction (consume-process-produce, as the transactional tally does).
* The writer's transactional id is fixed (``<prefix>.outcomes``). Starting a writer fences any
  earlier one (its open transaction is aborted and it can commit nothing more), and only then
  does the new writer read ``<prefix>.outcomes`` back (read_committed) to learn which cases have
  an outcome. That set is complete: no other writer can add to it any more.
* An input for a case that already has an outcome (a pass decision read again after a crash, a
  resolution whose acknowledgement was lost, a second resolution) writes nothing. So the Redis
  side may deliver at least once: its acknowledgement follows the commit, and a redelivery
  after a crash between the two finds the case decided.

Run one writer per topic prefix; a second one takes over from the first (which stops with the
fencing error). :class:`TrustedProjector` is an ordinary consumer group on the outcomes topic that
writes confirmed and corrected outcomes to the trusted store (idempotent, so at least once is
enough).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from ratifier.core.errors import WireFormatError
from ratifier.core.models import (
    AUTO_REVIEWER,
    DeadLetter,
    DeadLetterReason,
    Outcome,
    PassDecision,
    now_ms,
)
from ratifier.core.outcome_signing import seal_from_headers, seal_headers
from ratifier.features.outcomes.config import OutcomesConfig
from ratifier.features.outcomes.core import outcome_from_pass, outcome_from_resolution
from ratifier.features.review.core import agreement
from ratifier.features.review.io.metrics import AgreementStore, ReviewGauges
from ratifier.features.review.io.queue import ReviewQueue, StoredResolution
from ratifier.io.client import assign_all
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    PoisonMode,
    RuntimeWorker,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.keys import signer_from
from ratifier.io.metrics import ConsumerLag, Observability, Readiness
from ratifier.io.redis_client import connect
from ratifier.io.trusted_store import TrustedStore
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 10_000
_POLL_MS = 200
_BATCH = 256
PENDING_CHECK_S = 30.0


@dataclass(slots=True)
class _Batch:
    outcomes: list[Outcome] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    resolutions: list[StoredResolution] = field(default_factory=list)
    duplicates: int = 0


class OutcomesWriter:
    """Pass decisions and resolutions in, one outcome per case out. ``async with`` it."""

    def __init__(
        self, config: OutcomesConfig, redis: Redis, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.config = config
        self._kafka = kafka = config.endpoints.kafka
        self.names = config.endpoints.topics
        self.queue = ReviewQueue(redis, config.review, reviewers=None)
        self.agreement = AgreementStore(redis, config.review)
        # One name for every writer: a restarted (or replacing) writer re-reads the resolutions
        # its predecessor read but did not acknowledge, which are pending under this name.
        self.consumer_name = "writer"
        self._client_id = client_id = f"ratifier-outcomes-{config.endpoints.worker_id}"
        self._producer = make_producer(
            kafka,
            client_id=client_id,
            transactional_id=self.names.outcomes_group,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            max_request_size=config.endpoints.max_record_bytes,
        )
        self._consumer = make_consumer(
            kafka, self.names.passed, group_id=self.names.outcomes_group, client_id=client_id
        )
        self.decided: set[str] = set()  # case ids with a committed outcome
        self._signer = signer_from(config.signing_key)  # None: outcomes unsigned
        # Re-read what was delivered but not acked: at the first step, then every PENDING_CHECK_S.
        self._pending_resolutions = False
        self._next_pending_check = 0.0
        registry = registry or CollectorRegistry()
        self.written = Counter(
            "ratifier_outcomes_written",
            "Outcomes committed to <prefix>.outcomes",
            ["kind", "origin"],
            registry=registry,
        )
        self.duplicates = Counter(
            "ratifier_outcomes_duplicate_inputs",
            "Pass decisions or resolutions for a case that already had an outcome: nothing written",
            registry=registry,
        )
        self.ready = False

    async def start(self) -> None:
        await self.queue.ensure_groups()
        # First the fencing (init_transactions inside start), then the read-back: see above.
        await self._producer.start()
        try:
            self.decided = await self._restore()
            await self._consumer.start()
        except BaseException:
            await self._producer.stop()
            raise
        self.ready = True
        logger.info("outcomes writer ready: %d cases already have an outcome", len(self.decided))

    async def stop(self) -> None:
        self.ready = False
        try:
            await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def __aenter__(self) -> OutcomesWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _restore(self) -> set[str]:
        """The case ids of every committed outcome (read_committed, to each partition's end)."""
        consumer = make_consumer(
            self._kafka,
            group_id=None,
            client_id=f"{self._client_id}-restore",
        )
        await consumer.start()
        decided: set[str] = set()
        try:
            topic = self.names.outcomes
            await assign_all(
                consumer,
                [topic],
                from_beginning=True,
                bootstrap_servers=self._kafka.bootstrap_servers,
            )
            partitions = list(consumer.assignment())
            ends = await consumer.end_offsets(partitions)
            remaining = {tp for tp in partitions if ends[tp] > 0}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1_000)
                for records in batches.values():
                    decided.update(r.key.decode() for r in records if r.key is not None)
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        return decided

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.step()

    async def step(self) -> int:
        """One poll of both inputs and one transaction; the number of outcomes written."""
        records = await self._consumer.getmany(timeout_ms=_POLL_MS, max_records=_BATCH)
        now = time.monotonic()
        if now >= self._next_pending_check:
            # Now and then again: a fenced writer still running may have read some since.
            self._pending_resolutions = True
            self._next_pending_check = now + PENDING_CHECK_S
        resolutions = await self.queue.read_resolutions(
            self.consumer_name, pending=self._pending_resolutions, count=_BATCH
        )
        if self._pending_resolutions and not resolutions:
            self._pending_resolutions = False
        batch = self._collect(records, resolutions)
        if batch.outcomes or batch.dead_letters or batch.offsets:
            await self._commit(batch)
        # After the commit: a crash before this re-reads them, and the case is decided by then.
        await self.queue.acknowledge([r.entry_id for r in batch.resolutions])
        await self._count_agreement(batch)
        return len(batch.outcomes)

    def _collect(
        self,
        records: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]],
        resolutions: Sequence[StoredResolution],
    ) -> _Batch:
        batch = _Batch(resolutions=list(resolutions))
        fresh: set[str] = set()

        def add(outcome: Outcome) -> None:
            if outcome.case_id in self.decided or outcome.case_id in fresh:
                batch.duplicates += 1
                logger.info(
                    "case %s has an outcome already: %s ignored", outcome.case_id, outcome.reviewer
                )
                return
            fresh.add(outcome.case_id)
            batch.outcomes.append(outcome)

        for tp, items in records.items():
            for record in items:
                try:
                    decision = codec.decode_as(record.value or b"", PassDecision)
                except WireFormatError as exc:
                    batch.dead_letters.append(_dead_letter(record, str(exc)))
                    continue
                add(outcome_from_pass(decision))
            if items:
                batch.offsets[tp] = items[-1].offset + 1
        for stored in resolutions:
            add(outcome_from_resolution(stored.packet, stored.resolution))
        return batch

    async def _commit(self, batch: _Batch) -> None:
        await self._producer.begin_transaction()
        try:
            for outcome in batch.outcomes:
                await self._producer.send(
                    self.names.outcomes,
                    codec.encode(outcome),
                    key=outcome.case_id.encode(),
                    headers=seal_headers(self._signer, outcome),
                )
            for letter in batch.dead_letters:
                key = f"{letter.source_topic}:{letter.partition}:{letter.offset}".encode()
                await self._producer.send(self.names.deadletter, codec.encode(letter), key=key)
            if batch.offsets:
                await self._producer.send_offsets_to_transaction(
                    batch.offsets, self.names.outcomes_group
                )
            await self._producer.commit_transaction()
        except BaseException:
            # Fenced (another writer took over) or the broker failed: nothing of it counts.
            logger.exception("outcomes transaction failed; aborting it")
            try:
                await self._producer.abort_transaction()
            except Exception:  # fenced producers cannot abort: the new owner already did
                logger.warning("abort failed too; the transaction times out on the broker")
            raise
        for outcome in batch.outcomes:
            self.decided.add(outcome.case_id)
            origin = "auto" if outcome.reviewer == AUTO_REVIEWER else "review"
            self.written.labels(outcome.kind.value, origin).inc()
        self.duplicates.inc(batch.duplicates)

    async def _count_agreement(self, batch: _Batch) -> None:
        written = {o.case_id: o for o in batch.outcomes}
        for stored in batch.resolutions:
            outcome = written.get(stored.resolution.case_id)
            if outcome is not None and outcome.reviewer == stored.resolution.reviewer:
                await self.agreement.record(outcome.case_id, agreement(stored.packet, outcome))


def _dead_letter(record: ConsumerRecord[bytes, bytes], detail: str) -> DeadLetter:
    return DeadLetter(
        original=record.value or b"",
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=DeadLetterReason.MALFORMED,
        detail=f"not a pass decision: {detail}",
        dead_at_ms=now_ms(),
    )


class TrustedProjector(RuntimeWorker):
    """``<prefix>.outcomes`` -> the trusted answers store (confirmed and corrected only), on the
    consumer runtime (one case's outcomes in offset order)."""

    def __init__(self, config: OutcomesConfig, redis: Redis) -> None:
        names = config.endpoints.topics
        self.store = TrustedStore(redis, names.key_prefix, config.public_key)
        self._consumer = make_consumer(
            config.endpoints.kafka,
            group_id=names.trusted_group,
            client_id=f"ratifier-trusted-{config.endpoints.worker_id}",
        )
        # Only the outcomes writer writes the topic: a foreign record is skipped, never trusted.
        self.runtime = ConsumerRuntime(
            self._consumer,
            [names.outcomes],
            self._handle,
            limits=Limits(max_in_flight=_BATCH, order_by_key=True),
            poison=dataclasses.replace(config.poison, mode=PoisonMode.SKIP),
        )
        self.stored = 0
        self.skipped = 0

    async def _handle(self, record: ConsumerRecord) -> None:
        await self._project(record.value or b"", record.headers)

    async def _project(self, raw: bytes, headers: Sequence[tuple[str, bytes]] = ()) -> None:
        try:
            outcome = codec.decode_as(raw, Outcome)
        except WireFormatError as exc:
            self.skipped += 1
            raise InvalidRecord(
                DeadLetterReason.MALFORMED,
                f"a record on the outcomes topic that is no outcome: {exc}",
            ) from None
        if await self.store.put(outcome, seal_from_headers(headers)):
            self.stored += 1
        else:
            self.skipped += 1


class OutcomesService:
    """``ratifier outcomes run``: the writer and the trusted store's projection, one process."""

    def __init__(self, config: OutcomesConfig) -> None:
        self.redis = connect(config.endpoints.redis)
        self.registry = CollectorRegistry()
        self.writer = OutcomesWriter(config, self.redis, registry=self.registry)
        self.projector = TrustedProjector(config, self.redis)
        self.gauges = ReviewGauges(self.registry, self.writer.queue, self.writer.agreement)

    def observability(self) -> Observability:
        """/metrics on RATIFIER_METRICS_PORT: outcomes written, duplicates ignored, the review
        queue's length and age, agreement of the automatic decisions with the reviewers."""
        lag = ConsumerLag(self.registry, self.writer._consumer)

        def ready() -> Readiness:
            if self.writer.ready:
                return Readiness(True, f"{len(self.writer.decided)} cases have an outcome")
            return Readiness(False, "fencing earlier writers and reading the outcomes back")

        return Observability(self.registry, ready, (lag.refresh, self.gauges.refresh))

    async def start(self) -> None:
        await self.writer.start()
        try:
            await self.projector.start()
        except BaseException:
            await self.writer.stop()
            raise

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        # Either loop failing (e.g. the writer fenced by a newer one) stops both.
        tasks = [
            asyncio.create_task(self.writer.run(stop)),
            asyncio.create_task(self.projector.run(stop)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        try:
            await self.projector.stop()
            await self.writer.stop()
        finally:
            await self.redis.aclose()
