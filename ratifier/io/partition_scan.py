"""Find one keyed record on one partition: the lookups that fetch a single record by its case.

A case's records share a partition (keyed by case id), so a record that is no longer in any
process's memory (a finished case's decision, a debate round's candidate) is found by reading
that partition from a starting offset up to its end, keeping the first record of the key that
``match`` accepts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["first_match"]

T = TypeVar("T")

_POLL_MS = 500


async def first_match(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int,
    key: bytes,
    match: Callable[[bytes], T | None],
    *,
    give_up_s: float | None = None,
) -> T | None:
    """The first record of ``tp`` (assigned to ``consumer``) from ``start`` up to the
    partition's end, as the scan began, whose key is ``key`` and which ``match`` turns into a
    value (None: not this one); None if there is none, or once ``give_up_s`` has passed."""
    end = (await consumer.end_offsets([tp]))[tp]
    consumer.seek(tp, start)
    deadline = None if give_up_s is None else time.monotonic() + give_up_s
    while await consumer.position(tp) < end:
        if deadline is not None and time.monotonic() >= deadline:
            return None
        batch = await consumer.getmany(tp, timeout_ms=_POLL_MS)
        for record in batch.get(tp, ()):
            if record.key != key or record.value is None:
                continue
            found = match(record.value)
            if found is not None:
                return found
    return None
