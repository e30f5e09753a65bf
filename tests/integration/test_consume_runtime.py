"""The consumer runtime through the real broker (ratifier.io.consume): records finish out of order
while commits stay contiguous, backpressure pauses fetching, revocation drains, per-key order
holds, and the poison brake stops a worker that would dead-letter everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ratifier.core.config import Settings
from ratifier.core.models import DeadLetter, DeadLetterReason
from ratifier.core.topics import TopicNames
from ratifier.io.consume import (
    ConsumerRuntime,
    Handler,
    InvalidRecord,
    Limits,
    PoisonHandling,
    PoisonLimitExceeded,
    PoisonMode,
    dead_letter_sender,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.testing import read_records, wait_until
from ratifier.schemas import codec

pytestmark = pytest.mark.timeout(120)

Where = tuple[int, int]  # (partition, offset)


async def produce(settings: Settings, topic: str, per_partition: int) -> None:
    producer = make_producer(settings, client_id="test-producer")
    await producer.start()
    try:
        for partition in range(settings.partitions):
            for n in range(per_partition):
                key = f"k{n % 3}".encode()
                await producer.send(
                    topic, f"{partition}-{n}".encode(), key=key, partition=partition
                )
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def running(
    settings: Settings, group: str, handler: Handler | None = None, **options: object
) -> AsyncIterator[tuple[ConsumerRuntime, AIOKafkaConsumer, asyncio.Task[None]]]:
    topic = TopicNames.from_settings(settings).candidates
    consumer = make_consumer(settings, group_id=group, client_id=group)
    runtime = ConsumerRuntime(consumer, [topic], handler, **options)  # type: ignore[arg-type]
    await consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        yield runtime, consumer, task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
        await consumer.stop()


async def committed(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    result: int | None = await consumer.committed(tp)
    return result


async def test_out_of_order_completion_commits_only_the_finished_prefix(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=6)
    gate = asyncio.Event()
    done: list[Where] = []

    async def handler(record: ConsumerRecord) -> None:
        if (record.partition, record.offset) == (0, 2):
            await gate.wait()  # the third record of partition 0 is slow
        done.append((record.partition, record.offset))

    limits = Limits(commit_interval_s=0.05, max_in_flight=64)
    async with running(settings, unique_group("ooo"), handler, limits=limits) as (runtime, c, _):
        p0 = TopicPartition(topic, 0)
        await wait_until(
            lambda: _true(len(done) == 4 * 6 - 1), 30, "every record but the slow one done"
        )
        await runtime.commit()
        assert await committed(c, p0) == 2  # 3, 4, 5 are done, but 2 is not
        for partition in range(1, 4):
            assert await committed(c, TopicPartition(topic, partition)) == 6
        gate.set()

        async def all_committed() -> bool:
            return await committed(c, p0) == 6

        await wait_until(all_committed, 10, "partition 0 committed past the slow record")
        assert done.index((0, 2)) > done.index((0, 5))  # it really finished last


async def _true(value: bool) -> bool:
    return value


async def test_in_flight_is_bounded_and_fetching_pauses(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=10)
    gate = asyncio.Event()
    started: list[Where] = []

    async def handler(record: ConsumerRecord) -> None:
        started.append((record.partition, record.offset))
        await gate.wait()

    limits = Limits(max_in_flight=5)
    async with running(settings, unique_group("bp"), handler, limits=limits) as (runtime, c, _):
        await wait_until(lambda: _true(len(started) == 5), 30, "five records running")
        await wait_until(lambda: _true(bool(c.paused())), 10, "the partitions paused")
        assert (runtime.in_flight, len(started)) == (5, 5)
        gate.set()
        await wait_until(lambda: _true(len(started) == 40), 30, "the rest after resuming")
        assert runtime.pauses >= 1


async def test_records_of_one_key_run_one_at_a_time_in_offset_order(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=12)
    order: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    running_now: Counter[tuple[int, bytes]] = Counter()
    overlaps = 0

    async def handler(record: ConsumerRecord) -> None:
        nonlocal overlaps
        key = (record.partition, record.key or b"")
        running_now[key] += 1
        overlaps += running_now[key] > 1
        await asyncio.sleep(0.01 * (record.offset % 4))  # later records would overtake
        order[key].append(record.offset)
        running_now[key] -= 1

    limits = Limits(order_by_key=True)
    async with running(settings, unique_group("key"), handler, limits=limits):
        await wait_until(
            lambda: _true(sum(map(len, order.values())) == 48), 30, "every record handled"
        )
    assert overlaps == 0
    assert all(offsets == sorted(offsets) for offsets in order.values())
    assert len(order) == 4 * 3


async def test_revocation_drains_and_commits_only_finished_records(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=5)
    handled: Counter[Where] = Counter()
    hung = (0, 2)

    async def handler(record: ConsumerRecord) -> None:
        where = (record.partition, record.offset)
        handled[where] += 1
        if where == hung and handled[where] == 1:
            await asyncio.Event().wait()  # hangs the first time: cancelled by the drain

    group = unique_group("drain")
    limits = Limits(drain_timeout_s=1.0, commit_interval_s=60)  # no commit but the drain's
    async with running(settings, group, handler, limits=limits) as (first, _, _):
        await wait_until(lambda: _true(sum(handled.values()) == 20), 30, "all read by one")
        async with running(settings, group, handler, limits=limits) as (second, c2, _):
            await wait_until(
                lambda: _true(sum(handled.values()) == 23), 60, "partition 0's tail read again"
            )
            await wait_until(
                lambda: _true(first.in_flight + second.in_flight == 0), 10, "nothing running"
            )
            await first.commit()
            await second.commit()
            offsets = [await committed(c2, TopicPartition(topic, p)) for p in range(4)]
            assert offsets == [5, 5, 5, 5]
    # Finished records were committed on revocation and not handled again; on partition 0 the
    # records after the hung one were not committable, so they were read again.
    again = {where for where, n in handled.items() if n > 1}
    assert again == {(0, 2), (0, 3), (0, 4)}
    assert first.completed + second.completed == 22  # 23 handled, the hung one cancelled


async def test_the_brake_stops_a_worker_that_would_dead_letter_everything(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    names = TopicNames.from_settings(settings)
    await produce(settings, names.candidates, per_partition=4)

    async def handler(record: ConsumerRecord) -> None:
        raise InvalidRecord(DeadLetterReason.MALFORMED, f"bad {record.value!r}")

    producer = make_producer(settings, client_id="test-dlq")
    await producer.start()
    try:
        poison = PoisonHandling(PoisonMode.DEAD_LETTER, max_consecutive=5, max_ratio=None)
        options = {"poison": poison, "dead_letter": dead_letter_sender(producer, names.deadletter),
                   "limits": Limits(max_in_flight=1)}  # fmt: skip
        async with running(settings, unique_group("brake"), handler, **options) as (rt, _, task):
            with pytest.raises(PoisonLimitExceeded, match="6 invalid records in a row"):
                await asyncio.wait_for(task, 30)
            assert (rt.invalid, rt.dead_lettered, rt.completed) == (6, 5, 5)
    finally:
        await producer.stop()
    letters = [codec.decode_as(r.value or b"", DeadLetter) for r in
               await read_records(settings, [names.deadletter], idle_s=1.0)]  # fmt: skip
    assert len(letters) == 5
    assert {letter.reason for letter in letters} == {DeadLetterReason.MALFORMED}
    assert all(letter.detail.startswith("bad b'") for letter in letters)


async def test_the_brake_logs_its_stop_once_however_many_records_are_in_flight(
    settings: Settings, unique_group: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """20 garbage records all in flight when the brake trips at the 4th: one "stopping" line;
    the others are neither counted, logged, nor committed (read again after the fix)."""
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=5)
    started: list[Where] = []
    all_started = asyncio.Event()

    async def handler(record: ConsumerRecord) -> None:
        started.append((record.partition, record.offset))
        if len(started) == 20:
            all_started.set()
        await all_started.wait()
        raise InvalidRecord(DeadLetterReason.MALFORMED, f"garbage {record.value!r}")

    poison = PoisonHandling(PoisonMode.SKIP, max_consecutive=3, max_ratio=None)
    options = {"poison": poison, "limits": Limits(max_in_flight=64, commit_interval_s=0.05)}
    with caplog.at_level(logging.INFO, logger="ratifier.io.consume"):
        async with running(settings, unique_group("brake-once"), handler, **options) as (
            rt, c, task,
        ):  # fmt: skip
            with pytest.raises(PoisonLimitExceeded, match="4 invalid records in a row"):
                await asyncio.wait_for(task, 30)
            assert (rt.invalid, rt.completed, rt.in_flight) == (4, 3, 0)
            offsets = [await committed(c, TopicPartition(topic, p)) for p in range(4)]
    stopping = [r for r in caplog.records if r.getMessage().startswith("stopping:")]
    assert len(stopping) == 1
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipped invalid")]
    assert len(skipped) == 3
    # Only a finished prefix may be committed: at most the three skipped records in all.
    assert sum(o or 0 for o in offsets) <= 3


async def test_skip_mode_counts_and_commits_past_invalid_records(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=3)

    async def handler(record: ConsumerRecord) -> None:
        if record.offset == 1:
            raise InvalidRecord(DeadLetterReason.MALFORMED, "unreadable")

    options = {"poison": PoisonHandling(PoisonMode.SKIP), "limits": Limits(commit_interval_s=0.05)}
    async with running(settings, unique_group("skip"), handler, **options) as (rt, c, _):

        async def all_committed() -> bool:
            offsets = [await committed(c, TopicPartition(topic, p)) for p in range(4)]
            return offsets == [3, 3, 3, 3]

        await wait_until(all_committed, 30, "committed past the skipped records")
        assert (rt.invalid, rt.dead_lettered, rt.completed) == (4, 0, 12)


async def test_dead_letter_mode_needs_a_sink(settings: Settings) -> None:
    consumer = make_consumer(settings, group_id="unused", client_id="unused")
    try:
        with pytest.raises(ValueError, match="dead-letter sink"):
            ConsumerRuntime(consumer, ["t"], _noop, poison=PoisonHandling(PoisonMode.DEAD_LETTER))
    finally:
        await consumer.stop()


async def _noop(record: ConsumerRecord) -> None:
    return None


async def test_stopping_drains_running_records_and_commits_only_finished_ones(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=3)
    release = asyncio.Event()
    started: list[Where] = []

    async def handler(record: ConsumerRecord) -> None:
        started.append((record.partition, record.offset))
        if record.partition == 0 and record.offset == 1:
            await asyncio.Event().wait()  # never finishes: cancelled at the drain deadline
        else:
            await release.wait()  # finishes during the drain

    group = unique_group("stop")
    consumer = make_consumer(settings, group_id=group, client_id=group)
    limits = Limits(drain_timeout_s=2.0, commit_interval_s=60)
    runtime = ConsumerRuntime(consumer, [topic], handler, limits=limits)
    await consumer.start()
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await wait_until(lambda: _true(len(started) == 12), 30, "every record running")
        stop.set()  # as SIGTERM does
        release.set()
        await asyncio.wait_for(task, 10)
        assert (runtime.completed, runtime.in_flight) == (11, 0)
        offsets = [await committed(consumer, TopicPartition(topic, p)) for p in range(4)]
        assert offsets == [1, 3, 3, 3]  # partition 0 stops before the cancelled record
    finally:
        await consumer.stop()


async def test_batch_mode_commits_a_batch_only_once_it_is_handled(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=5)
    group = unique_group("batch")

    async def failing(batch: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        raise RuntimeError("boom")  # a bug: the runtime stops, nothing of the batch committed

    seen: list[Where] = []
    runtimes: list[ConsumerRuntime] = []

    async def handling(batch: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        for records in batch.values():
            for record in records:
                seen.append((record.partition, record.offset))
                if record.offset == 0:
                    runtimes[0].note_invalid(record, InvalidRecord(DeadLetterReason.MALFORMED, "x"))

    async with running(settings, group, batch_handler=failing) as (_, c, task):
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(task, 30)
        offsets = [await committed(c, TopicPartition(topic, p)) for p in range(4)]
        assert set(offsets) <= {None, 0}  # at most the start: nothing of the batch
    limits = Limits(commit_interval_s=0.05)
    async with running(settings, group, batch_handler=handling, limits=limits) as (rt, c, _):
        runtimes.append(rt)

        async def all_committed() -> bool:
            offsets = [await committed(c, TopicPartition(topic, p)) for p in range(4)]
            return offsets == [5, 5, 5, 5]

        await wait_until(all_committed, 30, "every batch committed")
        assert sorted(seen) == [(p, o) for p in range(4) for o in range(5)]
        assert (rt.invalid, rt.completed) == (4, 20)


async def test_a_dead_letter_that_cannot_be_sent_stops_the_runtime(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=1)

    async def handler(record: ConsumerRecord) -> None:
        raise InvalidRecord(DeadLetterReason.MALFORMED, "bad")

    async def unreachable(letter: DeadLetter) -> None:
        raise ConnectionError("dead-letter topic unreachable")

    poison = PoisonHandling(PoisonMode.DEAD_LETTER)
    options = {"poison": poison, "dead_letter": unreachable}
    async with running(settings, unique_group("dlq-down"), handler, **options) as (rt, c, task):
        with pytest.raises(ConnectionError, match="unreachable"):
            await asyncio.wait_for(task, 30)
        assert rt.completed == 0  # nothing skipped without its dead letter
        offsets = [await committed(c, TopicPartition(topic, p)) for p in range(4)]
        assert set(offsets) <= {None, 0}


async def test_in_flight_bytes_are_bounded_too(
    settings: Settings, unique_group: Callable[[str], str]
) -> None:
    topic = TopicNames.from_settings(settings).candidates
    await produce(settings, topic, per_partition=10)  # 5 bytes each: "0-0" and key "k0"
    gate = asyncio.Event()
    started: list[Where] = []

    async def handler(record: ConsumerRecord) -> None:
        started.append((record.partition, record.offset))
        await gate.wait()

    limits = Limits(max_in_flight=100, max_in_flight_bytes=10)
    async with running(settings, unique_group("bytes"), handler, limits=limits) as (rt, c, _):
        await wait_until(lambda: _true(bool(c.paused())), 30, "paused at the byte limit")
        # Each fetch brings what fits at the records' average size: two records of five bytes.
        assert (rt.in_flight_bytes, len(started)) == (10, 2)
        running_now = len(started)
        gate.set()
        await wait_until(lambda: _true(len(started) == 40), 30, "the rest after resuming")
        assert running_now < 40
