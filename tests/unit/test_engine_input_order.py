"""The order the transactional engine feeds a poll's records to the processor."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from ratifier.streams.engines.transactional.engine import per_partition
from ratifier.streams.engines.transactional.task import in_timestamp_order

CANDIDATES, VERDICTS = "x.candidates", "x.verdicts"


def record(topic: str, partition: int, offset: int, timestamp: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, timestamp, 0, b"k", b"v", None, 1, 1, ())


def order(
    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
) -> dict[int, list[tuple[str, int]]]:
    return {
        partition: [(r.topic, r.offset) for r in in_timestamp_order(streams)]
        for partition, streams in per_partition(batches, CANDIDATES).items()
    }


def test_a_candidate_goes_before_verdicts_of_its_millisecond_whatever_the_poll_order() -> None:
    # aiokafka may list the verdicts topic first: on equal timestamps, candidates still lead.
    batches = {
        TopicPartition(VERDICTS, 0): [record(VERDICTS, 0, 0, 10), record(VERDICTS, 0, 1, 10)],
        TopicPartition(CANDIDATES, 0): [record(CANDIDATES, 0, 0, 10), record(CANDIDATES, 0, 1, 11)],
    }
    assert order(batches) == {0: [(CANDIDATES, 0), (VERDICTS, 0), (VERDICTS, 1), (CANDIDATES, 1)]}


def test_timestamps_decide_before_topics_and_partitions_stay_apart() -> None:
    batches = {
        TopicPartition(CANDIDATES, 1): [record(CANDIDATES, 1, 5, 20)],
        TopicPartition(VERDICTS, 1): [record(VERDICTS, 1, 7, 19)],
        TopicPartition(VERDICTS, 0): [record(VERDICTS, 0, 3, 30)],
    }
    assert order(batches) == {1: [(VERDICTS, 7), (CANDIDATES, 5)], 0: [(VERDICTS, 3)]}
