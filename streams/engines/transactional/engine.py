"""The transactional tally: a batch consume-process-produce loop over Kafka transactions.

    consume candidates + verdicts (read_committed, co-partitioned, range assignment)
      -> per input partition, its PartitionTask (task.py): its records through the shared
         TallyProcessor (pure rules) over the task's own store, clock and deadlines
      -> per task, ONE transaction per commit interval holding that partition's decisions,
         dead letters, changelog entries and input offsets

This module is the manager of the tasks: it polls, hands each task its records, ticks and
commits them, and on a rebalance or a failed transaction closes a task and sets up a new one.

A crash anywhere commits all of an interval's work or none of it; a restarted or new owner
restores the partition's state from the committed changelog and resumes at the committed
offsets, which were written in the same transactions. Deadline ticks run in the same loop and
the same transactions.

Rebalances use aiokafka's eager protocol: every partition is given back on revocation (its open
transaction committed first) and set up afresh on assignment: a new producer with the
partition's transactional id (fencing any earlier owner), the changelog read from the local
state's checkpoint on (the tail, usually nothing for a partition this worker kept), the
consumer moved to the committed offsets, the deadline index rebuilt. The local state (memory
or RocksDB, ``streams/local_state``) only ever holds committed changes, so whatever a rebalance
or a crash left is a state of the changelog, and reading the changelog on from its checkpoint
brings it up to date.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from ratifier.core.config import Settings
from ratifier.core.errors import ConfigError
from ratifier.core.policy import Policy
from ratifier.core.topics import TopicNames
from ratifier.io.consume import PoisonLimitExceeded
from ratifier.io.kafka import make_consumer
from ratifier.io.metrics import Observability
from ratifier.io.readiness import ReadinessFile
from ratifier.streams.config import TallyConfig
from ratifier.streams.engines.transactional.changelog import ChangelogReader, Restore
from ratifier.streams.engines.transactional.partition import FENCED_ERRORS, PartitionTransactions
from ratifier.streams.engines.transactional.preflight import check_topics
from ratifier.streams.engines.transactional.task import PartitionTask
from ratifier.streams.heap import HeapTrimmer, glibc_malloc_trim
from ratifier.streams.local_state.base import Backend
from ratifier.streams.local_state.memory import MemoryBackend
from ratifier.streams.local_state.partitioned import PartitionedCaseStore
from ratifier.streams.local_state.rocksdb import RocksDBBackend
from ratifier.streams.metrics import tally_observability
from ratifier.streams.processor import TallyProcessor

logger = logging.getLogger(__name__)

ENGINE = "transactional"
# A crashed worker's partitions move after this long; a paused one is fenced after it.
SESSION_TIMEOUT_MS = 10_000
# How often a missing committed offset is looked up again before the worker gives up (a failed
# lookup can answer "no offset": aiokafka skips partitions the coordinator reported an error for).
COMMITTED_RETRIES = 5
HEARTBEAT_INTERVAL_MS = 3_000
# A partition whose set-up failed is tried again after this long; one whose transaction failed
# after a session timeout more (by then, if this worker lost it, the group has told it so).
RETRY_SETUP_S = 1.0
GC_YOUNG_THRESHOLD = 50_000  # net allocations between young-generation collections


def per_partition(
    batches: Mapping[TopicPartition, list[ConsumerRecord]], candidates_topic: str
) -> dict[int, list[list[ConsumerRecord]]]:
    """A poll's record lists by input partition, the candidates topic's first.

    ``heapq.merge`` keeps the order of its inputs among equal timestamps, so with candidates
    first a verdict stamped in its candidate's millisecond is counted at once instead of held
    until the candidate comes (a verdict is written after its candidate was read, and the
    records of a backlog often share a millisecond).
    """
    by_partition: dict[int, list[list[ConsumerRecord]]] = {}
    for tp, records in batches.items():
        streams = by_partition.setdefault(tp.partition, [])
        if tp.topic == candidates_topic:
            streams.insert(0, records)
        else:
            streams.append(records)
    return by_partition


def _backend(settings: Settings, names: TopicNames) -> Backend:
    if settings.tally_store == "memory":
        return MemoryBackend()
    return RocksDBBackend(settings.state_dir / "tally" / names.tally_app_id)


class UnsafeStart(ConfigError):
    """The group's committed offsets are gone while its changelog holds state: starting from
    the beginning would re-read every input. Stops the worker, saying what to do."""

    def __init__(self, group: str, changelog: str, inputs: list[TopicPartition]) -> None:
        where = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in inputs)
        super().__init__(
            f"consumer group {group} has no committed offset for {where}, but its changelog "
            f"{changelog} holds state: the offsets were deleted or expired. Set them where "
            f"reading should resume (kafka-consumer-groups.sh --group {group} --reset-offsets "
            "--to-datetime/--to-offset ... --execute; rewinding is safe: finished cases are "
            "remembered), or delete the changelog too to start the tally afresh"
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, tally: TransactionalTally) -> None:
        self.tally = tally

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.tally.release_all()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.tally.take_over({tp.partition for tp in assigned})


class TransactionalTally:
    """One tally worker. ``async with`` it, or ``start()``, ``run(stop)``, ``stop()``."""

    def __init__(self, settings: Settings, policies: Mapping[str, Policy]) -> None:
        self.settings = settings
        self.config = TallyConfig.from_settings(settings)  # what its parts take, read once
        self.names = self.config.names
        self.policies = policies
        self.backend = _backend(settings, self.names)
        # What the shared processor reads and writes: each running task's store, by partition.
        self.store = PartitionedCaseStore()
        self.processor = TallyProcessor.from_config(self.config, policies, self.store, brake=True)
        self.headers = [
            ("ratifier-worker", settings.worker_id.encode()),
            ("ratifier-engine", ENGINE.encode()),
        ]
        self.readiness = ReadinessFile(settings, ENGINE, self.names.tally_app_id)
        self._consumer: AIOKafkaConsumer = make_consumer(
            settings,
            group_id=self.names.tally_app_id,
            client_id=f"ratifier-tally-{settings.worker_id}",
            # Range assignment gives a worker the same partitions of both input topics: a case's
            # candidate and verdicts (co-partitioned by case id) meet in one worker.
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )
        self._changelog = ChangelogReader(self.config)
        self._tasks: dict[int, PartitionTask] = {}  # the partitions this worker runs
        # Partitions assigned but not running: the monotonic time their set-up is (re)tried at.
        self._recovering: dict[int, float] = {}
        self._lock = asyncio.Lock()  # one of: a batch, a tick, a commit, a rebalance step
        self._generation = 0  # bumped on every assignment: a batch fetched before is stale
        self._trimmer = HeapTrimmer(glibc_malloc_trim())
        self._last_commit = time.monotonic()
        self._last_tick = 0.0
        self._caught_up = False  # every owned input read to its last stable offset
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await check_topics(self.settings, self.policies)
        self.readiness.update(ready=False, partitions=())
        await self._changelog.start()
        try:
            self._consumer.subscribe(
                [self.names.candidates, self.names.verdicts], listener=_Rebalance(self)
            )
            await self._consumer.start()
        except BaseException:
            await self._changelog.stop()
            raise
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            await self.release_all()
            await self._consumer.stop()
        finally:
            await self._changelog.stop()
            self.backend.close()
            self.readiness.remove()

    async def __aenter__(self) -> TransactionalTally:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def _halted(self) -> bool:
        """The poison brake tripped: nothing more is committed (the batch in hand is half done)."""
        gate = self.processor.gate
        return gate is not None and gate.tripped is not None

    def observability(self) -> Observability:
        """Its /metrics series and /readyz (read at scrape time: no work per record)."""
        return tally_observability(self, self._consumer)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        interval_s = self.config.commit_interval_ms / 1000
        gc.freeze()  # start-up's objects live as long as the process (see docs/benchmarks.md)
        # The processor makes and drops a few containers per record (states, steps, votes) and
        # nothing on its path makes reference cycles, so CPython's default (a young-generation
        # collection every 700 net allocations) only costs time: 8% of the processor offline,
        # tally throughput +12% measured (docs/benchmarks.md). Cycles are still collected.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)  # the older generations: CPython's default
        while not stop.is_set():
            wait_s = min(interval_s, self.config.tick_interval_s)
            # Everything fetched, not max_records: aiokafka fills a capped poll from the same
            # partitions first, and under a backlog a case's verdicts would wait behind its
            # candidate's partition for longer than a hold. MAX_PARTITION_FETCH_BYTES bounds it.
            batches = await self._consumer.getmany(timeout_ms=int(wait_s * 1000))
            # Taken as the poll returns: records returned before a rebalance's take-over belong
            # to the old assignment; they are dropped, and the set-up's seek reads them again.
            generation = self._generation
            async with self._lock:
                await self._set_up_due()
                if batches and generation == self._generation:
                    await self._process(batches)
                await self._report_lag()
                await self._tick_when_due()
                if self._decisions_waiting_caught_up() or (
                    time.monotonic() - self._last_commit >= interval_s
                ):
                    await self._commit()

    # -- processing --------------------------------------------------------------------------

    async def _process(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        for partition, streams in per_partition(batches, self.names.candidates).items():
            task = self._tasks.get(partition)
            if task is None:
                continue  # being recovered: it is paused, and these records come again
            try:
                await task.process(streams)
            except PoisonLimitExceeded:
                # Stop with the open transactions uncommitted: after the fix, this input is
                # read again from the last commit (docs/delivery.md, "Bad input").
                raise
            except Exception as exc:
                await self._lose(partition, exc)

    async def _report_lag(self) -> None:
        """Tell the clocks which inputs have records waiting: those hold their partition's time."""
        caught_up = True
        for tp in self._consumer.assignment():
            task = self._tasks.get(tp.partition)
            if task is None:
                continue
            stable = self._consumer.last_stable_offset(tp)
            # No fetch answered yet: behind, so time waits for it.
            behind = stable is None or await self._consumer.position(tp) < stable
            task.lagging(tp, behind)
            caught_up = caught_up and not behind
        self._caught_up = caught_up

    def _decisions_waiting_caught_up(self) -> bool:
        """Commit now, not at the interval: a decision is visible only once committed, and with
        nothing left to read the interval would only add latency (under a backlog it batches)."""
        return self._caught_up and any(t.decisions_pending for t in self._tasks.values())

    async def _tick_when_due(self) -> None:
        now = time.monotonic()
        if now - self._last_tick < self.config.tick_interval_s:
            return
        self._last_tick = now
        for partition, task in list(self._tasks.items()):
            try:
                await task.tick()
            except Exception as exc:
                await self._lose(partition, exc)
        self._trimmer.maybe_trim(self.processor.stats.deleted)

    async def _commit(self) -> None:
        pending = [t for t in self._tasks.values() if t.pending]
        self._last_commit = time.monotonic()
        if not pending:
            return
        results = await asyncio.gather(*(t.commit() for t in pending), return_exceptions=True)
        for task, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                await self._lose(task.partition, result)

    # -- partitions --------------------------------------------------------------------------

    async def take_over(self, partitions: set[int]) -> None:
        """Newly assigned partitions: paused until the loop has set them up (rebalance listener).

        The set-up (fence, restore, seek) runs in the loop, not here: aiokafka sends no
        heartbeat until this callback returns, so a restore longer than the session timeout
        would get the worker expelled from the group while it still believes it owns them.
        """
        async with self._lock:
            self._generation += 1
            now = time.monotonic()
            self._recovering = dict.fromkeys(partitions, now)
            self.backend.keep_only(partitions)
            self._consumer.pause(*self._input_partitions(partitions))
            self.readiness.update(ready=False, partitions=partitions, recovering=partitions)

    async def release_all(self) -> None:
        """Commit what is open and give every partition up (rebalance listener, stop)."""
        async with self._lock:
            if not self._halted:
                await self._commit()
            for partition in list(self._tasks):
                await self._forget(partition)
            self._recovering.clear()
            self.readiness.update(ready=False, partitions=(), recovering=())

    def _task(self, partition: int) -> PartitionTask:
        transactions = PartitionTransactions(self.config, partition, self.headers)
        inputs = (self.names.candidates, self.names.verdicts)
        return PartitionTask(
            partition, inputs, transactions, self.backend, self.processor, self.store
        )

    async def _set_up(self, partitions: set[int]) -> None:
        """Open a task per partition, restore their states in one read, move the consumer."""
        if not partitions:
            self._update_readiness()
            return
        opened: dict[int, PartitionTask] = {}
        try:
            for partition in partitions:
                opened[partition] = self._task(partition)
            # Fence first: after this, the changelog and the committed offsets are final.
            # Every open is waited for, failed or not: a store opened after the clean-up below
            # would stay open (a RocksDB folder locked against the next set-up).
            results = await asyncio.gather(
                *(t.open() for t in opened.values()), return_exceptions=True
            )
            checkpoints = []
            for result in results:
                if isinstance(result, BaseException):
                    raise result
                checkpoints.append(result)
            plans = await self._changelog.plan(dict(zip(opened, checkpoints, strict=True)))
            for partition, plan in plans.items():
                opened[partition].begin_restore(plan)
            await self._changelog.read(plans, lambda p, entries: opened[p].restore(entries))
            for partition, plan in plans.items():
                opened[partition].restored(plan)
            await self._seek_to_committed(partitions, plans, opened)
        except UnsafeStart:
            await asyncio.gather(*(t.close() for t in opened.values()))
            raise
        except Exception as exc:
            logger.warning("could not set up partitions %s: %r", sorted(partitions), exc)
            await asyncio.gather(*(t.close() for t in opened.values()))
            for partition in partitions:
                self._recover_later(partition, RETRY_SETUP_S)
            self._update_readiness()
            return
        for partition, task in opened.items():
            task.start()
            self._tasks[partition] = task
        self._resume(partitions)
        logger.info("deadline index rebuilt: %d open cases", len(self.processor.index))
        logger.info(
            "worker %s owns partitions %s (%d open cases)",
            self.settings.worker_id,
            sorted(self._tasks),
            len(self.store),
        )
        self._update_readiness()

    async def _seek_to_committed(
        self,
        partitions: set[int],
        restored: Mapping[int, Restore],
        opened: Mapping[int, PartitionTask],
    ) -> None:
        """Move the consumer to the group's committed offsets, never silently to the beginning.

        An input with no committed offset starts from its beginning only on a first start, when
        its partition's changelog is empty too: the first transaction then commits that start
        for both inputs (so "no offset" never means "not read yet" afterwards). Otherwise the
        offsets were lost (deleted, expired, or an answer that failed to say), so the lookup is
        tried again a few times, then the worker stops (:class:`UnsafeStart`) rather than
        re-deciding everything from the beginning.
        """
        tps = self._input_partitions(partitions)
        committed = await self._committed(tps)
        missing = [tp for tp in tps if committed[tp] is None]
        with_history = [tp for tp in missing if restored[tp.partition].end > 0]
        for _ in range(COMMITTED_RETRIES):
            if not with_history:
                break
            await asyncio.sleep(RETRY_SETUP_S)
            committed.update(await self._committed(with_history))
            with_history = [tp for tp in with_history if committed[tp] is None]
        if with_history:
            raise UnsafeStart(self.names.tally_app_id, self.names.tally_changelog, with_history)
        fresh = [tp for tp in tps if committed[tp] is None]
        beginnings = await self._consumer.beginning_offsets(fresh) if fresh else {}
        for tp in tps:
            offset = committed[tp]
            if offset is None:
                offset = beginnings[tp]
                opened[tp.partition].start_from(tp, offset)
            # seek() rather than seek_to_beginning(): the latter waits for the fetcher's poll.
            self._consumer.seek(tp, offset)

    async def _committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        offsets = await asyncio.gather(*(self._consumer.committed(tp) for tp in tps))
        return dict(zip(tps, offsets, strict=True))

    async def _lose(self, partition: int, exc: BaseException) -> None:
        """A partition's transaction failed: drop its uncommitted work, set it up again later.

        Only a session timeout later, and only if no rebalance happened meanwhile: a worker
        cannot tell a broker hiccup from having been expelled from the group (paused, cut off)
        before its next heartbeat, and setting a partition up fences whoever owns it now. By
        then an expelled worker has been told so by a rebalance, which replaces this plan.
        """
        if isinstance(exc, FENCED_ERRORS):
            logger.warning("partition %d was taken over by another worker (fenced)", partition)
        else:
            logger.error("transaction of partition %d failed: %r", partition, exc)
        await self._forget(partition)
        self._recover_later(partition, SESSION_TIMEOUT_MS / 1000 + RETRY_SETUP_S)
        self._update_readiness()

    async def _forget(self, partition: int) -> None:
        task = self._tasks.pop(partition, None)
        if task is not None:
            await task.close()

    def _recover_later(self, partition: int, delay_s: float) -> None:
        self._recovering[partition] = time.monotonic() + delay_s
        assigned = self._consumer.assignment()
        self._consumer.pause(*(tp for tp in self._input_partitions((partition,)) if tp in assigned))

    async def _set_up_due(self) -> None:
        now = time.monotonic()
        due = {p for p, at in self._recovering.items() if at <= now}
        if not due:
            return
        assigned = {tp.partition for tp in self._consumer.assignment()}
        for partition in due:
            del self._recovering[partition]
        await self._set_up(due & assigned)

    def _resume(self, partitions: Iterable[int]) -> None:
        assigned = self._consumer.assignment()
        self._consumer.resume(*(tp for tp in self._input_partitions(partitions) if tp in assigned))

    def _input_partitions(self, partitions: Iterable[int]) -> list[TopicPartition]:
        topics = (self.names.candidates, self.names.verdicts)
        return [TopicPartition(topic, p) for p in partitions for topic in topics]

    def _update_readiness(self) -> None:
        recovering = set(self._recovering)
        self.readiness.update(
            ready=not recovering,
            partitions=set(self._tasks) | recovering,
            recovering=recovering,
        )
