"""The raw transactional relay: the least an exactly-once tally must do, without the tally.

It reads the same input as the raw relay, decodes and counts the same way (:class:`PassWatcher`)
and writes the same one record per case, but in the transactional engine's protocol
(docs/delivery.md):

- one transactional producer per input partition number (candidates *p* and verdicts *p*
  together: they are co-partitioned, so a case's records all land in one partition's task),
  with a **stable** transactional id, ``<group>-<p>``. aiokafka has no KIP-447 (its
  ``send_offsets_to_transaction`` sends no group generation), so fencing a zombie that lost the
  partition has to come from a successor's ``init_transactions`` with the same id;
- each partition's records since its last commit go out in one transaction, with the consumed
  offsets added by ``send_offsets_to_transaction``; every open transaction is committed every
  ``settings.commit_interval_ms`` (~100 ms), concurrently;
- ``retry_backoff_ms=20``: with aiokafka's default 100 ms the broker's ``CONCURRENT_TRANSACTIONS``
  answer right after a commit pushed commit p99 to ~120 ms; at 20 ms it was 3-28 ms (the notes);
- the consumer reads with ``isolation_level="read_committed"`` and never commits itself.

The difference between this relay and the raw at-least-once one is what transactions cost with
aiokafka on this machine; a transactional tally is measured against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from bench.pass_watcher import PassWatcher
from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer, make_producer

RETRY_BACKOFF_MS = 20


class _Task:
    """One input partition number: its producer and the transaction open on it, if any."""

    __slots__ = ("in_transaction", "offsets", "producer")

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.in_transaction = False
        self.offsets: dict[TopicPartition, int] = {}  # next offset to read, per input partition

    async def commit(self, group: str) -> None:
        await self.producer.send_offsets_to_transaction(self.offsets, group)
        await self.producer.commit_transaction()  # flushes this transaction's sends first
        self.offsets = {}
        self.in_transaction = False


class TransactionalRelay(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consume, count, produce and commit offsets in one transaction per input partition."""

    def __init__(self, settings: Settings, group: str, out_topic: str) -> None:
        self.settings = settings
        self.group = group
        self.out_topic = out_topic
        self.interval_s = settings.commit_interval_ms / 1000
        self.consumer = make_consumer(
            settings, group_id=group, client_id="bench-txn-relay", isolation_level="read_committed"
        )
        self.tasks: dict[int, _Task] = {}
        # Set once the assigned partitions' producers are ready. aiokafka hands out the new
        # assignment's records *before* it calls on_partitions_assigned (and while that awaits),
        # so the loop waits here rather than meet a partition that has no producer yet.
        self.assigned = asyncio.Event()
        self.watcher = PassWatcher()

    # --- the group's partitions --------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.assigned.clear()
        # Commit what was relayed while the partitions were ours; a new owner starts after it.
        await self.commit()
        await self._stop_producers()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in assigned} - set(self.tasks))
        producers = {p: self._producer(p) for p in numbers}
        # start() runs init_transactions: it bumps the id's epoch, fencing a previous owner, and
        # aborts whatever transaction that owner left open.
        await asyncio.gather(*(producer.start() for producer in producers.values()))
        self.tasks.update((p, _Task(producer)) for p, producer in producers.items())
        self.assigned.set()

    def _producer(self, partition: int) -> AIOKafkaProducer:
        return make_producer(
            self.settings,
            client_id=f"bench-txn-relay-{partition}",
            transactional_id=f"{self.group}-{partition}",
            retry_backoff_ms=RETRY_BACKOFF_MS,
        )

    async def _stop_producers(self) -> None:
        tasks, self.tasks = self.tasks, {}
        await asyncio.gather(*(task.producer.stop() for task in tasks.values()))

    # --- the loop ----------------------------------------------------------------------------

    async def relay(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        if tp.partition not in self.tasks:
            await self.assigned.wait()
        task = self.tasks.get(tp.partition)
        if task is None:  # revoked meanwhile: not committed, so its next owner reads them
            return
        if not task.in_transaction:
            await task.producer.begin_transaction()
            task.in_transaction = True
        for record in records:
            passed = self.watcher.feed(record.value)
            if passed is not None:
                await task.producer.send(self.out_topic, passed, key=record.key)
        task.offsets[tp] = records[-1].offset + 1

    async def commit(self) -> None:
        """Commit every open transaction, concurrently: each is a few round trips."""
        open_tasks = [task for task in self.tasks.values() if task.in_transaction]
        await asyncio.gather(*(task.commit(self.group) for task in open_tasks))

    async def run(self, stop: asyncio.Event) -> None:
        names = TopicNames.from_settings(self.settings)
        self.consumer.subscribe([names.candidates, names.verdicts], listener=self)
        await self.consumer.start()
        due = time.monotonic() + self.interval_s
        try:
            while not stop.is_set():
                remaining_ms = int((due - time.monotonic()) * 1000)
                if remaining_ms > 0:
                    batch = await self.consumer.getmany(timeout_ms=remaining_ms)
                    for tp, records in batch.items():
                        if records:
                            await self.relay(tp, records)
                if time.monotonic() >= due:
                    await self.commit()
                    due = time.monotonic() + self.interval_s
            await self.commit()  # a clean stop leaves nothing relayed uncommitted
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            await self._stop_producers()


async def transactional_relay(
    settings: Settings, group: str, out_topic: str, stop: asyncio.Event
) -> None:
    await TransactionalRelay(settings, group, out_topic).run(stop)
