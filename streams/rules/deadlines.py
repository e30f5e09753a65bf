"""When does each open case next need attention: a heap of due times with lazy invalidation.

faust's windowed tables close windows by wall clock from an in-memory heap that recovery never
refills (see shared notes), so the tally keeps its own index: filled as cases change, rebuilt from
the table after every recovery, and drained by the tally's timer.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator


class DeadlineIndex:
    """Maps a case key to its next due time (ms); yields keys whose time has come."""

    __slots__ = ("_due", "_heap")

    def __init__(self) -> None:
        self._due: dict[bytes, tuple[int, int]] = {}  # key -> (due_ms, partition)
        self._heap: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._due)

    def schedule(self, key: bytes, partition: int, due_ms: int | None) -> None:
        """Record (or clear, with ``None``) when ``key`` is next due."""
        if due_ms is None:
            self._due.pop(key, None)
            return
        current = self._due.get(key)
        if current is not None and current[0] == due_ms:
            return
        self._due[key] = (due_ms, partition)
        heapq.heappush(self._heap, (due_ms, key))
        # Stale heap entries are skipped on pop; compact when they dominate so memory stays bounded.
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def pop_due(self, now_ms: int) -> Iterator[tuple[bytes, int]]:
        """Remove and yield ``(key, partition)`` for every key due at or before ``now_ms``."""
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            due_ms, key = heapq.heappop(heap)
            current = self._due.get(key)
            if current is None or current[0] != due_ms:
                continue  # superseded by a later schedule() or cleared
            del self._due[key]
            yield key, current[1]

    def next_due_ms(self) -> int | None:
        while self._heap:
            due_ms, key = self._heap[0]
            current = self._due.get(key)
            if current is not None and current[0] == due_ms:
                return due_ms
            heapq.heappop(self._heap)
        return None

    def rebuild(self, entries: Iterable[tuple[bytes, int, int | None]]) -> None:
        """Replace the index with ``(key, partition, due_ms)`` entries, e.g. after recovery."""
        self._due = {key: (due, partition) for key, partition, due in entries if due is not None}
        self._compact()

    def _compact(self) -> None:
        self._heap = [(due, key) for key, (due, _) in self._due.items()]
        heapq.heapify(self._heap)


class PartitionDeadlines:
    """One :class:`DeadlineIndex` per partition, so each partition is ticked by its own clock."""

    __slots__ = ("_by_partition",)

    def __init__(self) -> None:
        self._by_partition: dict[int, DeadlineIndex] = {}

    def __len__(self) -> int:
        return sum(len(index) for index in self._by_partition.values())

    def schedule(self, key: bytes, partition: int, due_ms: int | None) -> None:
        index = self._by_partition.get(partition)
        if index is None:
            if due_ms is None:
                return
            index = self._by_partition[partition] = DeadlineIndex()
        index.schedule(key, partition, due_ms)

    def pop_due(self, partition: int, now_ms: int) -> Iterator[tuple[bytes, int]]:
        index = self._by_partition.get(partition)
        return iter(()) if index is None else index.pop_due(now_ms)

    def attach(self, partition: int, index: DeadlineIndex) -> None:
        """Schedule ``partition``'s cases in ``index`` (one its partition task owns)."""
        self._by_partition[partition] = index

    def drop(self, partition: int) -> None:
        """Forget ``partition``'s cases (revoked, or its state is being rebuilt)."""
        self._by_partition.pop(partition, None)

    def next_due_ms(self) -> int | None:
        dues = [d for i in self._by_partition.values() if (d := i.next_due_ms()) is not None]
        return min(dues, default=None)

    def rebuild(self, entries: Iterable[tuple[bytes, int, int | None]]) -> None:
        by_partition: dict[int, list[tuple[bytes, int, int | None]]] = {}
        for key, partition, due_ms in entries:
            by_partition.setdefault(partition, []).append((key, partition, due_ms))
        self._by_partition = {}
        for partition, partition_entries in by_partition.items():
            index = self._by_partition[partition] = DeadlineIndex()
            index.rebuild(partition_entries)
