"""Fetch a case's final outcome from its decision topic, given the reference a ``CASE_CLOSED``
dead letter carries (which decision, which topic, when).

Decisions are keyed by case id, so the record sits in the partition the key hashes to; the
broker's time index (``offsets_for_times``) finds where records of that time start, so the read
covers minutes of one partition, not the topic. The decision's record is stamped when the tally
sent it, never before it decided (its clock is the inputs' time), so reading from a little
before ``decided_at_ms`` finds it; clocks of other machines may disagree, hence the slack, and a
read of the whole partition when even that misses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from ratifier.core.config import Settings
from ratifier.core.errors import RatifierError, WireFormatError
from ratifier.core.models import EscalationPacket, FinalOutcomeRef, PassDecision
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer
from ratifier.io.partition_scan import first_match
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

FinalOutcome = PassDecision | EscalationPacket

# How far before the decision time the read starts: clock differences between machines.
CLOCK_SLACK_MS = 10 * 60 * 1000
_PARTITIONER = DefaultPartitioner()


class OutcomeUnavailable(RatifierError):
    """The case has a final decision, but its record is no longer on the decision topic
    (deleted by the topic's retention, or the topic was made anew)."""


def decision_topic(settings: Settings, ref: FinalOutcomeRef) -> str:
    names = TopicNames.from_settings(settings)
    return names.passed if ref.outcome == "pass" else names.escalate


async def fetch_final_outcome(
    settings: Settings,
    case_id: str,
    ref: FinalOutcomeRef,
    partitions: Collection[int],
    *,
    client_id: str,
) -> FinalOutcome:
    """The decision ``ref`` names, read from its topic (read_committed); ``partitions``: the
    partitions of :func:`decision_topic` (a producer's ``partitions_for`` knows them)."""
    topic = decision_topic(settings, ref)
    consumer = make_consumer(settings, group_id=None, client_id=client_id)
    await consumer.start()
    try:
        ordered = sorted(partitions)
        partition = _PARTITIONER(case_id.encode(), ordered, ordered)  # where send() put it
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        found = await _offsets_for(consumer, tp, ref.decided_at_ms - CLOCK_SLACK_MS)
        key = case_id.encode()
        for start in found:
            decision: FinalOutcome | None = await first_match(
                consumer, tp, start, key, _decision_named(ref)
            )
            if decision is not None:
                return decision
    finally:
        await consumer.stop()
    raise OutcomeUnavailable(
        f"case {case_id} was decided ({ref.outcome}, decision {ref.decision_id}), but that "
        f"decision is no longer on {topic}: check the topic's retention"
    )


async def _offsets_for(consumer: AIOKafkaConsumer, tp: TopicPartition, at_ms: int) -> list[int]:
    """Where to look: from the first record stamped ``at_ms`` or later, then from the start."""
    beginning = (await consumer.beginning_offsets([tp]))[tp]
    by_time = (await consumer.offsets_for_times({tp: max(at_ms, 0)}))[tp]
    starts = [] if by_time is None else [by_time.offset]
    if not starts or starts[0] > beginning:
        starts.append(beginning)  # the slack was not enough (or nothing that late): all of it
    return starts


def _decision_named(ref: FinalOutcomeRef) -> Callable[[bytes], FinalOutcome | None]:
    """The final decision ``ref`` names, out of a record of its case's decision topic."""

    def match(value: bytes) -> FinalOutcome | None:
        try:
            decision = codec.decode(value)
        except WireFormatError:
            return None
        if (
            isinstance(decision, PassDecision | EscalationPacket)
            and decision.decision_id == ref.decision_id
        ):
            return decision
        return None

    return match
