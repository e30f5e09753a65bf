"""Which offset a partition may commit while its records complete out of order (pure).

As in Confluent's Parallel Consumer: records are handed to handlers as they arrive and may finish
in any order, so the offset committed for a partition is the lowest one still unfinished (the
next record to read again after a crash), or one past the highest started when none is. Offsets
need not be contiguous: a read_committed consumer never sees transaction markers or aborted
records, and this counts only offsets it was given.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["OffsetTracker", "PartitionOffsets"]

P = TypeVar("P", bound=Hashable)


class PartitionOffsets:
    """The unfinished offsets of one partition, and what it last committed."""

    __slots__ = ("_heap", "_next", "_unfinished", "committed")

    def __init__(self) -> None:
        self._unfinished: set[int] = set()
        self._heap: list[int] = []  # the unfinished offsets, lowest first (stale ones popped late)
        self._next: int | None = None  # one past the highest offset started
        self.committed: int | None = None

    def __len__(self) -> int:
        return len(self._unfinished)

    def start(self, offset: int) -> None:
        self._unfinished.add(offset)
        heapq.heappush(self._heap, offset)
        if self._next is None or offset >= self._next:
            self._next = offset + 1

    def complete(self, offset: int) -> None:
        """Mark ``offset`` done; an offset never started (or done already) changes nothing."""
        self._unfinished.discard(offset)
        while self._heap and self._heap[0] not in self._unfinished:
            heapq.heappop(self._heap)

    def safe_offset(self) -> int | None:
        """The offset to commit: the lowest unfinished, else one past the highest started."""
        if self._heap:
            return self._heap[0]
        return self._next

    def pending_commit(self) -> int | None:
        """``safe_offset`` when it moved past what was committed, else None."""
        safe = self.safe_offset()
        if safe is None or (self.committed is not None and safe <= self.committed):
            return None
        return safe


class OffsetTracker(Generic[P]):
    """:class:`PartitionOffsets` for every partition a consumer holds."""

    def __init__(self) -> None:
        self._partitions: dict[P, PartitionOffsets] = {}

    def start(self, partition: P, offset: int) -> None:
        self._partitions.setdefault(partition, PartitionOffsets()).start(offset)

    def complete(self, partition: P, offset: int) -> None:
        offsets = self._partitions.get(partition)
        if offsets is not None:  # else the partition was revoked meanwhile: nothing to commit
            offsets.complete(offset)

    def unfinished(self, partition: P) -> int:
        offsets = self._partitions.get(partition)
        return 0 if offsets is None else len(offsets)

    def pending_commits(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """The offsets to commit now, for ``partitions`` (default: all) that moved."""
        chosen = self._partitions.keys() if partitions is None else partitions
        out: dict[P, int] = {}
        for partition in chosen:
            offsets = self._partitions.get(partition)
            offset = None if offsets is None else offsets.pending_commit()
            if offset is not None:
                out[partition] = offset
        return out

    def committed(self, commits: dict[P, int]) -> None:
        """Record what is committed for these partitions (also before any record started)."""
        for partition, offset in commits.items():
            self._partitions.setdefault(partition, PartitionOffsets()).committed = offset

    def forget(self, partitions: Iterable[P]) -> None:
        """Drop revoked partitions: their new owner resumes from the last commit."""
        for partition in partitions:
            self._partitions.pop(partition, None)
