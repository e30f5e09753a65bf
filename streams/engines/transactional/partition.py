"""One input partition's transactions: its own producer, with a transactional id of its own.

Why a producer per partition: aiokafka has no KIP-447 (``send_offsets_to_transaction`` carries no
group generation), so the group cannot fence a worker that lost a partition but still runs
(paused, cut off). The transactional id can: it is derived from (tally group, partition) only,
so whichever worker takes the partition over opens a producer with the same id, the broker
bumps its epoch, aborts the old owner's open transaction, and refuses every later write or
commit of the old producer. Kafka Streams worked the same way before KIP-447.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_producer
from ratifier.streams.config import TallyConfig
from ratifier.streams.processor import Outgoing

logger = logging.getLogger(__name__)

# aiokafka's 100 ms default backoff turns the broker's CONCURRENT_TRANSACTIONS answer (common
# right after a commit) into 100 ms stalls; 20 ms took commit p99 from ~120 ms to 3-28 ms.
RETRY_BACKOFF_MS = 20
# How long the broker keeps a dead worker's transaction open before aborting it itself. A new
# owner aborts it sooner (its producer's init fences the old one); until either happens,
# read_committed readers of the topics it wrote to wait. Kafka Streams uses 10 s too.
TRANSACTION_TIMEOUT_MS = 10_000
# Changelog writes and decisions go out in bursts; larger batches mean fewer requests.
MAX_BATCH_BYTES = 256 * 1024

FENCED_ERRORS = (ProducerFenced, InvalidProducerEpoch)
_PARTITIONER = DefaultPartitioner()  # aiokafka's default: murmur2 of the key, as in Java


def transactional_id(names: TopicNames, partition: int) -> str:
    """Stable across workers and restarts: the fencing depends on it."""
    return f"{names.tally_app_id}-{partition}"


class PartitionTransactions:
    """The open transaction of one input partition: what it sent and the offsets it read to.

    One transaction is always open between :meth:`open` and :meth:`close`; :meth:`commit` ends it
    (with the input offsets) and begins the next. An empty transaction costs no request.
    """

    def __init__(
        self, config: TallyConfig, partition: int, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        names = config.names
        self.partition = partition
        self.group_id = names.tally_app_id
        self.changelog = names.tally_changelog
        self._headers = list(headers)
        self._producer: AIOKafkaProducer = make_producer(
            config.connection,
            client_id=f"ratifier-tally-{config.worker_id}-p{partition}",
            transactional_id=transactional_id(names, partition),
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            retry_backoff_ms=RETRY_BACKOFF_MS,
            max_request_size=config.limits.max_record_bytes,
            max_batch_size=MAX_BATCH_BYTES,
        )
        self._offsets: dict[TopicPartition, int] = {}
        self._deliveries: list[asyncio.Future[Any]] = []
        # The changelog batches' deliveries with their record counts: their offsets say where
        # the local state's checkpoint is once the transaction commits.
        self._changelog_batches: list[tuple[asyncio.Future[Any], int]] = []
        self.decisions_pending = 0  # outputs other than state, waiting for the commit

    @property
    def pending(self) -> bool:
        return bool(self._offsets or self._deliveries)

    async def open(self) -> None:
        """Start the producer and take the transactional id over.

        ``begin_transaction`` waits for the producer id, and the broker hands out a new epoch only
        after the previous holder's open transaction is completed or aborted: once this returns,
        the committed offsets and changelog of this partition are final and nobody else can add
        to them.
        """
        await self._producer.start()
        await self._producer.begin_transaction()

    async def send(self, records: Iterable[Outgoing]) -> None:
        """Decisions and dead letters, each to the partition its key hashes to."""
        batches = _Batches(self._producer, self._headers)
        partitions: dict[str, list[int]] = {}
        for record in records:
            topic_partitions = partitions.get(record.topic)
            if topic_partitions is None:
                topic_partitions = sorted(await self._producer.partitions_for(record.topic))
                partitions[record.topic] = topic_partitions
            # What producer.send would pick for a keyed record: murmur2 of the key over all
            # partitions, as the Java client does.
            partition = _PARTITIONER(record.key, topic_partitions, topic_partitions)
            await batches.add(record.topic, partition, record.key, record.value)
            self.decisions_pending += 1
        self._deliveries += await batches.send_all()

    async def write_changelog(self, changes: dict[bytes, bytes | None]) -> None:
        """Each changed case's latest entry (None: a tombstone) to this partition's changelog."""
        batches = _Batches(self._producer, self._headers)
        for key, entry in changes.items():
            await batches.add(self.changelog, self.partition, key, entry)
        self._deliveries += await batches.send_all()
        self._changelog_batches += batches.counted

    def advance(self, tp: TopicPartition, next_offset: int) -> None:
        """Inputs of ``tp`` before ``next_offset`` are processed: commit that with the outputs."""
        self._offsets[tp] = next_offset

    async def commit(self) -> int | None:
        """Commit outputs, state and offsets at once, then open the next transaction.

        Returns the changelog offset after the last entry committed (None: none was written).
        """
        if not self.pending:
            return None
        # A failed send must fail the commit: committing without it would lose the record.
        await asyncio.gather(*self._deliveries)
        changelog_end = max(
            (future.result().offset + count for future, count in self._changelog_batches),
            default=None,
        )
        if self._offsets:
            await self._producer.send_offsets_to_transaction(self._offsets, self.group_id)
        await self._producer.commit_transaction()
        self._offsets = {}
        self._deliveries = []
        self._changelog_batches = []
        self.decisions_pending = 0
        await self._producer.begin_transaction()
        return changelog_end

    async def close(self) -> None:
        """Stop the producer; an open transaction is left to the next owner (or the timeout)."""
        self._changelog_batches = []
        for delivery in self._deliveries:
            if delivery.done() and not delivery.cancelled():
                delivery.exception()  # failed with the transaction: seen, not "never retrieved"
            else:
                delivery.cancel()
        try:
            await self._producer.stop()
        except Exception as exc:  # a failing stop must not stop the worker from going on
            logger.warning("producer of partition %d stopped with %r", self.partition, exc)


class _Batches:
    """Records gathered into one producer batch per topic partition, then sent batch by batch.

    ``producer.send`` costs ~9 µs a record here (a future, the accumulator, metadata checks);
    appending to a batch and sending it whole, ~5 (docs/benchmarks.md). A full batch is sent at
    once and a new one started; the first record always fits, whatever its size, as with
    ``send``. Within a partition the records keep their order: ``send_batch`` waits for the
    partition's previous batch to be drained before it queues the next.
    """

    def __init__(self, producer: AIOKafkaProducer, headers: list[tuple[str, bytes]]) -> None:
        self._producer = producer
        self._headers = headers
        self._open: dict[tuple[str, int], BatchBuilder] = {}
        self._sent: list[asyncio.Future[Any]] = []
        self.counted: list[tuple[asyncio.Future[Any], int]] = []  # each batch's, with its size

    async def add(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        where = (topic, partition)
        batch = self._open.get(where)
        if batch is None:
            batch = self._open[where] = self._producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value, headers=self._headers) is None:
            await self._send(batch, where)
            batch = self._open[where] = self._producer.create_batch()
            batch.append(timestamp=None, key=key, value=value, headers=self._headers)

    async def send_all(self) -> list[asyncio.Future[Any]]:
        """Send every open batch; the futures of every batch sent, to await before committing."""
        for where, batch in self._open.items():
            await self._send(batch, where)
        self._open = {}
        return self._sent

    async def _send(self, batch: BatchBuilder, where: tuple[str, int]) -> None:
        topic, partition = where
        sent = await self._producer.send_batch(batch, topic, partition=partition)
        self._sent.append(sent)
        self.counted.append((sent, batch.record_count()))
