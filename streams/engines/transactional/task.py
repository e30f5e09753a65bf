"""One input partition's work on one worker: the partition task (Kafka Streams' StreamTask).

A task owns everything that belongs to its partition while this worker holds it:

- its store (``local_state.partition.PartitionStore``): the committed state, memory or RocksDB,
  with the open transaction's changes on top;
- its time (``rules.clock.PartitionClock``): how far its two inputs have been read;
- its deadline index (``rules.deadlines.DeadlineIndex``): when each open case is next due;
- its transactions (``partition.PartitionTransactions``): its own producer, which fenced the
  previous owner, the outputs and changelog entries sent, the input offsets read to.

Lifecycle, driven by the engine (the manager of its tasks)::

    open()                       fence the previous owner, open the committed state
    begin_restore(plan)          the changelog's tail (or all of it) is read into the store:
    restore(entries) ...         the engine reads every new task's tail in one pass
    restored(plan)
    start()                      deadlines rebuilt; the shared processor sees this partition
    process(records) / tick()    in the open transaction
    commit()                     outputs, changelog and offsets at once; the state moves on
    close()                      revoked, failed or stopping: the open transaction's work is
                                 dropped, the committed state (and its checkpoint) kept

The processor (the pure rules' driver) is one for the worker and serves every task: a task
attaches its store and deadline index to it in :meth:`start` and detaches them in :meth:`close`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from enum import Enum
from operator import attrgetter

from aiokafka import ConsumerRecord, TopicPartition

from ratifier.streams.engines.transactional.changelog import Entries, Restore
from ratifier.streams.engines.transactional.partition import PartitionTransactions
from ratifier.streams.local_state.base import Backend, Checkpoint
from ratifier.streams.local_state.partition import PartitionStore
from ratifier.streams.local_state.partitioned import PartitionedCaseStore
from ratifier.streams.processor import InputRecord, TallyProcessor
from ratifier.streams.rules.clock import PartitionClock
from ratifier.streams.rules.deadlines import DeadlineIndex
from ratifier.streams.store import entry_header

_by_timestamp = attrgetter("timestamp")


def in_timestamp_order(streams: list[list[ConsumerRecord]]) -> Iterator[ConsumerRecord]:
    """One partition's records of both topics by timestamp; ties in the order of ``streams``."""
    return heapq.merge(*streams, key=_by_timestamp)


class TaskState(Enum):
    CREATED = "created"
    RESTORING = "restoring"
    RUNNING = "running"
    CLOSED = "closed"


class PartitionTask:
    """One input partition's store, time, deadlines and transactions (see the module's doc)."""

    def __init__(
        self,
        partition: int,
        inputs: tuple[str, str],
        transactions: PartitionTransactions,
        backend: Backend,
        processor: TallyProcessor,
        cases: PartitionedCaseStore,
    ) -> None:
        self.partition = partition
        self.inputs = [TopicPartition(topic, partition) for topic in inputs]
        self.transactions = transactions
        self.clock = PartitionClock(inputs)
        self.deadlines = DeadlineIndex()
        self.state = TaskState.CREATED
        self._backend = backend
        self._processor = processor
        self._cases = cases
        self._store: PartitionStore | None = None

    @property
    def store(self) -> PartitionStore:
        if self._store is None:
            raise RuntimeError(f"partition task {self.partition} is {self.state.value}")
        return self._store

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> Checkpoint | None:
        """Fence the previous owner, then open the committed state; its checkpoint (None: empty).

        Once the producer holds the partition's transactional id, its changelog and committed
        offsets are final: what the state is restored from no longer moves.
        """
        await self.transactions.open()
        self._store = PartitionStore(self.partition, self._backend.open(self.partition))
        self.state = TaskState.RESTORING
        return self._store.checkpoint

    def begin_restore(self, plan: Restore) -> None:
        if plan.reset:
            self.store.reset()  # a checkpoint the changelog cannot continue: read it whole

    def restore(self, entries: Entries) -> None:
        self.store.restore(entries)

    def restored(self, plan: Restore) -> None:
        self.store.restored(plan.end)

    def start(self) -> None:
        """Restored and positioned: rebuild the deadlines, let the processor see the partition."""
        store = self.store
        self.deadlines.rebuild(
            (key, self.partition, entry_header(entry)[1]) for key, entry in store.entries()
        )
        for tp in self.inputs:
            # Until the first fetch says otherwise, records may be waiting: time waits for them.
            self.clock.lagging(tp.topic, True)
        self._cases.attach(store)
        self._processor.index.attach(self.partition, self.deadlines)
        self.state = TaskState.RUNNING

    async def close(self) -> None:
        """Stop the producer (an open transaction is left to the next owner, or the timeout)
        and give the store up: uncommitted changes are void; the committed state stays
        (checkpointed) for the next set-up, which reads only the changelog written since."""
        if self.state is TaskState.RUNNING:
            self._cases.detach(self.partition)
            self._processor.index.drop(self.partition)
        self.state = TaskState.CLOSED
        await self.transactions.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- work, in the open transaction ---------------------------------------------------------

    async def process(self, streams: list[list[ConsumerRecord]]) -> None:
        """This partition's records of one poll, one list per input topic (candidates first)."""
        partition, clock = self.partition, self.clock
        inputs = []
        # Both topics' records in timestamp order, candidates first on ties.
        for m in in_timestamp_order(streams):
            clock.observe(m.topic, m.timestamp)
            now = clock.at(m.timestamp)
            inputs.append(InputRecord(m.topic, partition, m.offset, m.key, m.value, now))
        out = self._processor.handle_batch(inputs)
        transactions = self.transactions
        await transactions.send(out)
        await transactions.write_changelog(self.store.take_changes())
        for records in streams:
            last = records[-1]
            transactions.advance(TopicPartition(last.topic, partition), last.offset + 1)

    async def tick(self) -> None:
        """Close due windows, expire held verdicts, prune and forget, by the partition's time."""
        out = self._processor.tick((self.partition,), self._now)
        await self.transactions.send(out)
        await self.transactions.write_changelog(self.store.take_changes())

    def _now(self, partition: int) -> int:
        return self.clock.now()

    def lagging(self, tp: TopicPartition, behind: bool) -> None:
        """The consumer says whether ``tp`` (one of this task's inputs) has records waiting."""
        self.clock.lagging(tp.topic, behind)

    def start_from(self, tp: TopicPartition, offset: int) -> None:
        """An input with no committed offset is read from ``offset``: committed with the first
        transaction, so "no offset" never means "not read yet" afterwards."""
        self.transactions.advance(tp, offset)

    @property
    def pending(self) -> bool:
        return self.transactions.pending

    @property
    def decisions_pending(self) -> int:
        return self.transactions.decisions_pending

    async def commit(self) -> None:
        """Commit outputs, changelog and input offsets at once; then the state moves on."""
        changelog_end = await self.transactions.commit()
        self.store.commit(changelog_end)
