"""One input partition's transactions through the real broker: batched sends land where a plain
``producer.send`` would put them, in order, with the worker's headers, and only once committed."""

from __future__ import annotations

from ratifier.core.config import Settings
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.streams.config import TallyConfig
from ratifier.streams.engines.transactional.partition import MAX_BATCH_BYTES, PartitionTransactions
from ratifier.streams.engines.transactional.preflight import check_topics
from ratifier.streams.processor import Outgoing

HEADERS = [("ratifier-worker", b"test-worker")]


async def read_all(
    settings: Settings, topic: str, expected: int
) -> list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
    """(partition, key, value, headers) of every committed record of ``topic``."""
    consumer = make_consumer(
        settings, topic, group_id=None, client_id="test-read", auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[tuple[int, bytes, bytes, list[tuple[str, bytes]]]] = []
    try:
        for _ in range(100):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    out.append((r.partition, r.key, r.value, list(r.headers)))
            if len(out) >= expected and not batches:
                break
    finally:
        await consumer.stop()
    return out


async def plain_partitions(settings: Settings, topic: str, keys: list[bytes]) -> dict[bytes, int]:
    """Where ``producer.send`` puts each key: the placement batched sends must match."""
    producer = make_producer(settings, client_id="test-plain")
    await producer.start()
    try:
        return {key: (await (await producer.send(topic, b"x", key=key))).partition for key in keys}
    finally:
        await producer.stop()


async def test_batched_sends_keep_partitioning_order_headers_and_the_transaction(
    settings: Settings,
) -> None:
    await check_topics(settings, load_policies())  # makes the changelog, as the engine does
    names = TopicNames.from_settings(settings)
    keys = [f"case-{i}".encode() for i in range(40)]
    big = b"b" * (MAX_BATCH_BYTES + 10_000)  # larger than a batch: sent alone, whole
    decisions = [
        Outgoing(names.passed, key, f"decision {i}".encode()) for i, key in enumerate(keys)
    ]
    decisions.insert(7, Outgoing(names.passed, keys[3], big))
    changes: dict[bytes, bytes | None] = {
        key: b"state" * 30_000 for key in keys[:12]
    }  # 150 KB each
    changes[keys[12]] = None  # a tombstone

    transactions = PartitionTransactions(TallyConfig.from_settings(settings), 1, HEADERS)
    await transactions.open()
    try:
        await transactions.send(decisions)
        await transactions.write_changelog(changes)
        assert transactions.decisions_pending == len(decisions)
        # Nothing is visible to read_committed readers before the commit.
        assert await read_all(settings, names.passed, 0) == []
        await transactions.commit()
    finally:
        await transactions.close()

    passed = await read_all(settings, names.passed, len(decisions))
    assert sorted(value for _, _, value, _ in passed) == sorted(d.value for d in decisions)
    assert all(headers == HEADERS for *_, headers in passed)
    expected_partition = await plain_partitions(settings, names.passed, keys)
    assert {key: partition for partition, key, _, _ in passed} == expected_partition
    for partition in {p for p, *_ in passed}:  # within a partition, in the order sent
        sent = [d.value for d in decisions if expected_partition[d.key] == partition]
        assert [v for p, _, v, _ in passed if p == partition] == sent

    changelog = await read_all(settings, names.tally_changelog, len(changes))
    # All on the input partition's own changelog partition, in order, the tombstone included.
    assert [(p, k, v) for p, k, v, _ in changelog] == [(1, k, v) for k, v in changes.items()]
