"""aiokafka clients configured from :class:`Settings`: the one place their options are chosen."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from ratifier.core.config import Settings

logger = logging.getLogger(__name__)

# How much a consumer fetches ahead per partition (aiokafka's and faust's default: 1 MiB). The
# prefetched records are the largest transient allocation of a busy worker: at 1 MiB the tally's
# RSS peaked ~30 MB higher while it read a backlog and did not come back down after (freed heap
# stays with the process), with no measurable gain in throughput (docs/benchmarks.md). Kafka
# still returns a record batch larger than this whole, so it caps no record size.
MAX_PARTITION_FETCH_BYTES = 256 * 1024


def make_producer(settings: Settings, *, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 1,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, client_id: str, **overrides: Any
) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def commit_processed(
    consumer: AIOKafkaConsumer,
    batches: Mapping[TopicPartition, Sequence[ConsumerRecord]],
) -> bool:
    """Commit past a processed batch; a rebalance in between is not an error.

    When the group rebalanced while the batch was being processed, the partitions' new owner
    starts from the last committed offset and handles those records again. That is the
    at-least-once contract, and the tally counts a repeated verdict once.
    """
    offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:
        logger.warning("commit skipped after a rebalance (records will be redelivered): %s", exc)
        return False
    return True


class ConsumeProduceWorker:
    """Lifecycle of a worker that consumes one topic set and produces to another.

    Subclasses set ``_consumer`` and ``_producer`` in ``__init__`` (inside the event loop) and
    implement ``run``. Use ``async with`` or ``start()`` / ``stop()``, as with aiokafka clients.
    """

    _consumer: AIOKafkaConsumer
    _producer: AIOKafkaProducer

    async def start(self) -> None:
        await self._producer.start()
        try:
            await self._consumer.start()
        except BaseException:
            await self._producer.stop()
            raise

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
