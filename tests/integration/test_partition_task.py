"""A partition task's lifecycle through the real broker: open (fencing), restore, process, commit,
close; a revoke in the middle of a transaction drops its work, and the next owner restores only
the changelog's tail."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, now_ms
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.schemas import codec
from ratifier.streams.config import TallyConfig
from ratifier.streams.engines.transactional.changelog import ChangelogReader, Restore
from ratifier.streams.engines.transactional.partition import PartitionTransactions
from ratifier.streams.engines.transactional.preflight import check_topics
from ratifier.streams.engines.transactional.task import PartitionTask, TaskState
from ratifier.streams.local_state.base import Backend
from ratifier.streams.local_state.memory import MemoryBackend
from ratifier.streams.local_state.partitioned import PartitionedCaseStore
from ratifier.streams.processor import TallyProcessor

PARTITION = 0


def candidate(case_id: str) -> Candidate:
    return Candidate(
        case_id=case_id,
        attempt=1,
        candidate_id=f"{case_id}-cand-1",
        policy="default",
        category="general",
        query="What is 2 + 2?",
        content="4",
        producer="test",
        produced_at_ms=now_ms(),
        metadata={},
    )


async def produce_and_read(settings: Settings, case_ids: list[str]) -> list[ConsumerRecord]:
    """Write candidates to the input partition; read them back as the engine's consumer would."""
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="test-task-producer")
    await producer.start()
    try:
        for case_id in case_ids:
            value = codec.encode(candidate(case_id))
            await producer.send_and_wait(
                names.candidates, value, key=case_id.encode(), partition=PARTITION
            )
    finally:
        await producer.stop()
    tp = TopicPartition(names.candidates, PARTITION)
    consumer = make_consumer(settings, group_id=None, client_id="test-task-reader")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        for _ in range(60):
            records += (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
            if len(records) >= len(case_ids):
                break
    finally:
        await consumer.stop()
    return [r for r in records if r.key.decode() in case_ids]


class Worker:
    """What the engine gives its tasks: one processor, one store router, one backend."""

    def __init__(self, settings: Settings, backend: Backend) -> None:
        self.settings = settings
        self.config = TallyConfig.from_settings(settings)
        self.names = self.config.names
        self.backend = backend
        self.cases = PartitionedCaseStore()
        self.processor = TallyProcessor.from_config(self.config, load_policies(), self.cases)
        self.changelog = ChangelogReader(self.config)  # kept open, as the engine keeps it

    def task(self) -> PartitionTask:
        transactions = PartitionTransactions(self.config, PARTITION, [])
        inputs = (self.names.candidates, self.names.verdicts)
        return PartitionTask(
            PARTITION, inputs, transactions, self.backend, self.processor, self.cases
        )

    async def set_up(self, task: PartitionTask) -> Restore:
        """open / restore / start, as the engine runs them."""
        checkpoint = await task.open()
        assert task.state is TaskState.RESTORING
        plan = (await self.changelog.plan({PARTITION: checkpoint}))[PARTITION]
        task.begin_restore(plan)
        await self.changelog.read({PARTITION: plan}, lambda _, entries: task.restore(entries))
        task.restored(plan)
        task.start()
        assert task.state is TaskState.RUNNING
        return plan


@pytest.mark.timeout(40)
async def test_a_task_commits_its_work_and_a_revoke_mid_transaction_drops_it(
    settings: Settings,
) -> None:
    await check_topics(settings, load_policies())
    records = await produce_and_read(settings, ["case-1", "case-2"])
    first, second = records
    worker = Worker(settings, MemoryBackend())
    await worker.changelog.start()
    try:
        await run_the_lifecycle(worker, first, second)
    finally:
        await worker.changelog.stop()


async def run_the_lifecycle(worker: Worker, first: ConsumerRecord, second: ConsumerRecord) -> None:

    task = worker.task()
    plan = await worker.set_up(task)
    assert plan == Restore(0, 0, reset=True)  # nothing local, nothing in the changelog

    await task.process([[first]])
    assert task.store.get(b"case-1") is not None  # read-your-own-writes
    assert worker.cases.get(b"case-1", PARTITION) is not None  # what the processor sees
    assert task.store.committed.get(b"case-1") is None  # not committed yet
    assert len(task.deadlines) == 1  # its window's deadline
    await task.commit()
    assert task.store.committed.get(b"case-1") is not None
    checkpoint = task.store.checkpoint
    assert checkpoint is not None
    assert checkpoint.offset >= 1

    # Revoked in the middle of the next transaction: its work is void.
    await task.process([[second]])
    assert task.store.get(b"case-2") is not None
    await task.close()
    assert task.state is TaskState.CLOSED
    assert worker.cases.get(b"case-1", PARTITION) is None  # the processor no longer sees it
    assert len(worker.processor.index) == 0

    # The next owner (here this worker again) fences the old producer, restores only the tail.
    again = worker.task()
    plan = await worker.set_up(again)
    assert not plan.reset
    assert plan.start == checkpoint.offset  # the tail: nothing before the checkpoint re-read
    assert again.store.get(b"case-1") is not None
    assert again.store.get(b"case-2") is None  # the aborted transaction's state never came
    assert len(again.deadlines) == 1  # rebuilt from the restored state

    # The input offsets went with the first transaction only: case-2 is read again.
    assert again.transactions.pending is False
    await again.close()
