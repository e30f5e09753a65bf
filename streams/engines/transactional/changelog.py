"""Restore the tally's state from its changelog: the committed entries after a local checkpoint.

Read with read_committed up to each partition's end offset, which for such a reader is the last
stable offset: an aborted transaction's entries are never restored. Positions are compared with
end offsets, not records counted, because transaction markers occupy offsets too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from ratifier.core.models import now_ms
from ratifier.io.kafka import make_consumer
from ratifier.streams.config import TallyConfig
from ratifier.streams.local_state.base import Checkpoint

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_MS = 500

Entries = list[tuple[bytes, bytes | None]]
# A local checkpoint older than this is not trusted: the changelog's compaction drops tombstones
# delete.retention.ms after they were written (Kafka's default: 24 h), and a reader resuming from
# before that would never see a case deleted since. Half of it, for clocks and slow restores.
MAX_CHECKPOINT_AGE_MS = 12 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Restore:
    """How one partition's local state catches up: read its changelog from ``start`` to
    ``end``; with ``reset``, empty the local state first (its checkpoint was unusable, or there
    was none: the changelog is read whole)."""

    start: int
    end: int
    reset: bool


Sink = Callable[[int, Entries], None]  # partition, a batch of its records in order


class ChangelogReader:
    """A group-less consumer of the changelog topic, kept open for every restore."""

    def __init__(self, config: TallyConfig) -> None:
        self.topic = config.names.tally_changelog
        self._consumer: AIOKafkaConsumer = make_consumer(
            config.connection,
            group_id=None,
            client_id=f"ratifier-tally-{config.worker_id}-restore",
            # A restore reads whole partitions: fetch more per request than live consumers do.
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def plan(self, checkpoints: Mapping[int, Checkpoint | None]) -> dict[int, Restore]:
        """Where each partition's read starts (its checkpoint, if usable) and ends."""
        tps = [TopicPartition(self.topic, p) for p in checkpoints]
        if not tps:
            return {}
        beginnings = await self._consumer.beginning_offsets(tps)
        ends = await self._consumer.end_offsets(tps)
        plans = {}
        for tp in tps:
            checkpoint = checkpoints[tp.partition]
            start, reset = _start_of(checkpoint, beginnings[tp], ends[tp])
            if reset and checkpoint is not None:
                logger.warning(
                    "local state of changelog partition %d (checkpoint %s) cannot be continued "
                    "from the changelog (offsets %d..%d): restoring it whole",
                    tp.partition,
                    checkpoint,
                    beginnings[tp],
                    ends[tp],
                )
            plans[tp.partition] = Restore(start, ends[tp], reset)
        return plans

    async def read(self, plans: Mapping[int, Restore], sink: Sink) -> None:
        """Every committed ``(key, entry)`` of each planned range (None: a tombstone), oldest
        first, handed to ``sink`` batch by batch: a restore never holds a whole partition."""
        started = time.monotonic()
        tps = {p: TopicPartition(self.topic, p) for p in plans}
        self._consumer.assign(list(tps.values()))
        for partition, tp in tps.items():
            self._consumer.seek(tp, plans[partition].start)  # not seek_to_beginning: no wait
        remaining = {tp for p, tp in tps.items() if plans[p].end > plans[p].start}
        read = 0
        while remaining:
            batch = await self._consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)
            for tp, records in batch.items():
                sink(tp.partition, [(r.key or b"", r.value) for r in records])
                read += len(records)
            for tp in list(remaining):
                if await self._consumer.position(tp) >= plans[tp.partition].end:
                    remaining.discard(tp)
        self._consumer.assign([])
        logger.info(
            "restored partitions %s: %d changelog entries (%s) in %.2f s",
            sorted(plans),
            read,
            ", ".join(
                f"{p}: {'all' if plan.reset else 'tail'} {plan.start}..{plan.end}"
                for p, plan in sorted(plans.items())
            ),
            time.monotonic() - started,
        )


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
