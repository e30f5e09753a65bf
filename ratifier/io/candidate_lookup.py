"""Find one candidate on ``<prefix>.candidates`` by case id and candidate id.

A validator answering a debate round (docs/debate.md) needs the candidate the round is about;
it keeps the candidates it judged in a small cache (validators/runtime.py) and, on a miss (a
restart, another instance judged round 1), reads the case's partition from a little before the
round opened up to its end. Rounds are rare next to candidates, so a read per miss is cheap
enough; the time bound keeps it from reading a partition's whole history.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import TopicPartition

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Candidate
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer
from ratifier.io.partition_scan import first_match
from ratifier.schemas import codec

__all__ = ["find_candidate"]

# A lookup that has not reached the partition's end by then gives up (the round's window is
# the validator's real limit; a missing candidate is reported, not waited for).
_LOOKUP_S = 10.0


async def find_candidate(
    settings: Settings, partition: int, case_id: str, candidate_id: str, since_ms: int
) -> Candidate | None:
    """The candidate, read from ``partition`` (a case's records share it) starting at the first
    record at or after ``since_ms``; None if it is not there."""
    topic = TopicNames.from_settings(settings).candidates
    tp = TopicPartition(topic, partition)
    key = case_id.encode()
    consumer = make_consumer(settings, group_id=None, client_id="ratifier-candidate-lookup")
    await consumer.start()
    try:
        consumer.assign([tp])
        found = (await consumer.offsets_for_times({tp: max(0, since_ms)}))[tp]
        if found is None:
            return None  # nothing on the partition since then
        return await first_match(
            consumer, tp, found.offset, key, _candidate_named(candidate_id), give_up_s=_LOOKUP_S
        )
    finally:
        await consumer.stop()


def _candidate_named(candidate_id: str) -> Callable[[bytes], Candidate | None]:
    def match(value: bytes) -> Candidate | None:
        try:
            candidate = codec.decode_as(value, Candidate)
        except WireFormatError:
            return None
        return candidate if candidate.candidate_id == candidate_id else None

    return match
