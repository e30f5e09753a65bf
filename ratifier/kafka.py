"""aiokafka clients configured from :class:`Settings`: the one place their options are chosen."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from ratifier.config import Settings

logger = logging.getLogger(__name__)


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
