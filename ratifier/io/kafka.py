"""aiokafka clients configured from :class:`Settings`: the one place their options are chosen."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

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
