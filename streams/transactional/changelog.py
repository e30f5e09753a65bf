"""Restore the tally's state from its changelog: the committed entries after a local checkpoint.

Read with read_committed up to each partition's end offset, which for such a reader is the last
stable offset: an aborted transaction's entries are never restored. Positions are compared with
end offsets, not records counted, because transaction markers occupy offsets too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from ratifier.core.config import Settings
from ratifier.core.models import now_ms
from ratifier.io.kafka import make_consumer
from ratifier.streams.local_state.base import Checkpoint

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 500

Entries = list[tuple[bytes, bytes | None]]
# A local checkpoint older than this is not trusted: the changelog's compaction drops tombstones
# delete.retention.ms after they were written (Kafka's default: 24 h), and a reader resuming from
# before that would never see a case deleted since. Half of it, for clocks and slow restores.
MAX_CHECKPOINT_AGE_MS = 12 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Restored:
    """One partition's changelog read from where its local state was: its records, oldest
    first, the offset the local state is at after them, and whether the local state must be
    emptied first (its checkpoint was unusable: the changelog starts anew from ``start``)."""

    entries: Entries
    start: int
    end: int
    reset: bool


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

    async def read(self, checkpoints: Mapping[int, Checkpoint | None]) -> dict[int, Restored]:
        """Every committed ``(key, entry)`` of each partition after its checkpoint (None: from
        the beginning), oldest first (None: a tombstone)."""
        started = time.monotonic()
        if not checkpoints:
            return {}
        tps = {p: TopicPartition(self.topic, p) for p in checkpoints}
        self._consumer.assign(list(tps.values()))
        beginnings = await self._consumer.beginning_offsets(list(tps.values()))
        ends = await self._consumer.end_offsets(list(tps.values()))
        plans: dict[int, Restored] = {}
        for partition, tp in tps.items():
            start, reset = _start_of(checkpoints[partition], beginnings[tp], ends[tp])
            if reset and checkpoints[partition] is not None:
                logger.warning(
                    "local state of changelog partition %d (checkpoint %s) cannot be continued "
                    "from the changelog (offsets %d..%d): restoring it whole",
                    partition,
                    checkpoints[partition],
                    beginnings[tp],
                    ends[tp],
                )
            plans[partition] = Restored([], start, ends[tp], reset)
            self._consumer.seek(tp, start)  # not seek_to_beginning: no fetch wait
        remaining = {tp for p, tp in tps.items() if ends[tp] > plans[p].start}
        while remaining:
            batch = await self._consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            for tp, records in batch.items():
                plans[tp.partition].entries.extend((r.key or b"", r.value) for r in records)
            for tp in list(remaining):
                if await self._consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        self._consumer.assign([])
        logger.info(
            "restored partitions %s: %d changelog entries (%s) in %.2f s",
            sorted(checkpoints),
            sum(len(plan.entries) for plan in plans.values()),
            ", ".join(
                f"{p}: {'all' if plan.reset or checkpoints[p] is None else 'tail'} "
                f"{plan.start}..{plan.end}"
                for p, plan in sorted(plans.items())
            ),
            time.monotonic() - started,
        )
        return plans


def _start_of(checkpoint: Checkpoint | None, beginning: int, end: int) -> tuple[int, bool]:
    """Where to read a partition's changelog from, and whether the local state must go."""
    if checkpoint is None:
        return beginning, True
    too_old = now_ms() - checkpoint.written_at_ms > MAX_CHECKPOINT_AGE_MS
    # Before the log's start (records deleted since), or after its end (the topic was made
    # anew): the local state is not a state of this changelog.
    if too_old or not beginning <= checkpoint.offset <= end:
        return beginning, True
    return checkpoint.offset, False
