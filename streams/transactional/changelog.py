"""Restore the tally's state from its changelog: every committed entry of some partitions.

Read with read_committed up to each partition's end offset, which for such a reader is the last
stable offset: an aborted transaction's entries are never restored. Positions are compared with
end offsets, not records counted, because transaction markers occupy offsets too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from aiokafka import AIOKafkaConsumer, TopicPartition

from ratifier.core.config import Settings
from ratifier.io.kafka import make_consumer

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 500

Entries = list[tuple[bytes, bytes | None]]


class ChangelogReader:
    """A group-less consumer of the changelog topic, kept open for every restore."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._consumer: AIOKafkaConsumer = make_consumer(
            settings,
            group_id=None,
            client_id=f"ratifier-tally-{settings.worker_id}-restore",
            # A restore reads whole partitions: fetch more per request than live consumers do.
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def read(self, partitions: Collection[int]) -> dict[int, Entries]:
        """Every committed ``(key, entry)`` of ``partitions``, oldest first (None: tombstone)."""
        started = time.monotonic()
        entries: dict[int, Entries] = {p: [] for p in partitions}
        if not partitions:
            return entries
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(tps)
        beginnings = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        for tp in tps:
            self._consumer.seek(tp, beginnings[tp])  # not seek_to_beginning: no fetch wait
        remaining = {tp for tp in tps if ends[tp] > beginnings[tp]}
        while remaining:
            batch = await self._consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            for tp, records in batch.items():
                entries[tp.partition].extend((r.key or b"", r.value) for r in records)
            for tp in list(remaining):
                if await self._consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        self._consumer.assign([])
        logger.info(
            "restored partitions %s: %d changelog entries in %.2f s",
            sorted(partitions),
            sum(len(e) for e in entries.values()),
            time.monotonic() - started,
        )
        return entries
