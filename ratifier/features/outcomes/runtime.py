"""The outcomes runtime: every case's one final outcome on ``<prefix>.outcomes``, and the trusted
answers store kept from it.

:class:`OutcomesWriter` turns pass decisions (``<prefix>.decisions.pass``: confirmed on attempt
1, corrected after a retry, reviewer ``auto``) and reviewers' resolutions (the review queue's
resolutions stream in Redis) into :class:`Outcome` records.

Exactly one outcome per case, and why it holds (docs/review.md):

* Outcomes are written in Kafka transactions, with the pass decisions' consumer offsets in the
  same transaction (consume-process-produce): the consumer runtime's transactional commit step,
  ratifier.io.consume.transactional.
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
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis

from ratifier.core.errors import WireFormatError
from ratifier.core.models import AUTO_REVIEWER, DeadLetterReason, Outcome, PassDecision
from ratifier.core.outcome_signing import seal_from_headers, seal_headers
from ratifier.features.outcomes.config import OutcomesConfig
from ratifier.features.outcomes.core import outcome_from_pass, outcome_from_resolution
from ratifier.features.review.core import agreement
from ratifier.features.review.io.metrics import AgreementStore, ReviewGauges
from ratifier.features.review.io.queue import ReviewQueue, StoredResolution
from ratifier.io.client import read_to_end
from ratifier.io.consume import (
    Batch,
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    PoisonMode,
    RuntimeWorker,
    TransactionalCommits,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.keys import signer_from
from ratifier.io.metrics import ConsumerLag, Observability, Readiness
from ratifier.io.redis_client import connect
from ratifier.io.trusted_store import TrustedStore
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 10_000
_BATCH = 256
PENDING_CHECK_S = 30.0


@dataclass(slots=True)
class _Written:
    """What one batch's transaction carries, for the work after its commit."""

    outcomes: list[Outcome] = field(default_factory=list)
    resolutions: list[StoredResolution] = field(default_factory=list)
    duplicates: int = 0


class OutcomesWriter(RuntimeWorker):
    """Pass decisions and resolutions in, one outcome per case out. ``async with`` it.

    On the consumer runtime in transactional batch mode (ratifier.io.consume.transactional):
    each fetch of pass decisions, with the resolutions read from Redis beside it, is one batch
    whose outcomes, dead letters and offsets commit in one transaction.
    """

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
            kafka, group_id=self.names.outcomes_group, client_id=client_id
        )
        self.transaction = TransactionalCommits(self._producer, self.names.outcomes_group)
        self.runtime = ConsumerRuntime(
            self._consumer,
            [self.names.passed],
            batch_handler=self._write,
            limits=Limits(max_in_flight=_BATCH),
            poison=config.poison,
            dead_letter=self.transaction.dead_letter_sink(self.names.deadletter),
            transaction=self.transaction,
            empty_batches=True,  # resolutions arrive while no pass decision does
        )
        self.decided: set[str] = set()  # case ids with a committed outcome
        self._signer = signer_from(config.signing_key)  # None: outcomes unsigned
        # Re-read what was delivered but not acked: at the first batch, then every PENDING_CHECK_S.
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

    async def on_start(self) -> None:
        # The producer started first (RuntimeWorker.start): its init_transactions fenced every
        # earlier writer, so the outcomes read back now are complete (see above).
        await self.queue.ensure_groups()
        self.decided = await self._restore()
        self.ready = True
        logger.info("outcomes writer ready: %d cases already have an outcome", len(self.decided))

    async def on_stop(self) -> None:
        self.ready = False

    async def _restore(self) -> set[str]:
        """The case ids of every committed outcome (read_committed, to each partition's end)."""
        reader = read_to_end(
            self._kafka, [self.names.outcomes], client_id=f"{self._client_id}-restore"
        )
        return {record.key.decode() async for record in reader if record.key is not None}

    async def _write(self, batch: Batch) -> None:
        """One batch: its outcomes into the runtime's transaction; the rest after the commit."""
        written = _Written(resolutions=await self._read_resolutions())
        fresh: set[str] = set()

        def add(outcome: Outcome) -> None:
            if outcome.case_id in self.decided or outcome.case_id in fresh:
                written.duplicates += 1
                logger.info(
                    "case %s has an outcome already: %s ignored", outcome.case_id, outcome.reviewer
                )
                return
            fresh.add(outcome.case_id)
            written.outcomes.append(outcome)

        for records in batch.values():
            for record in records:
                try:
                    decision = codec.decode_as(record.value or b"", PassDecision)
                except WireFormatError as exc:
                    error = InvalidRecord(DeadLetterReason.MALFORMED, f"not a pass decision: {exc}")
                    self.runtime.note_invalid(record, error)
                    continue
                add(outcome_from_pass(decision))
        for stored in written.resolutions:
            add(outcome_from_resolution(stored.packet, stored.resolution))
        for outcome in written.outcomes:
            await self.transaction.send(
                self.names.outcomes,
                codec.encode(outcome),
                key=outcome.case_id.encode(),
                headers=seal_headers(self._signer, outcome),
            )
        self.transaction.after_commit(lambda: self._committed(written))

    async def _read_resolutions(self) -> list[StoredResolution]:
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
        return list(resolutions)

    async def _committed(self, written: _Written) -> None:
        for outcome in written.outcomes:
            self.decided.add(outcome.case_id)
            origin = "auto" if outcome.reviewer == AUTO_REVIEWER else "review"
            self.written.labels(outcome.kind.value, origin).inc()
        self.duplicates.inc(written.duplicates)
        # After the commit: a crash before this re-reads them, and the case is decided by then.
        await self.queue.acknowledge([r.entry_id for r in written.resolutions])
        by_case = {o.case_id: o for o in written.outcomes}
        for stored in written.resolutions:
            resolved = by_case.get(stored.resolution.case_id)
            if resolved is not None and resolved.reviewer == stored.resolution.reviewer:
                await self.agreement.record(resolved.case_id, agreement(stored.packet, resolved))


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
