"""Committed state in the process's memory: for small deployments and tests.

Markers are found for expiry in a queue by decision time: a partition's clock never goes back, so
they are added in that order, and the oldest are at the front. Expiry pops what was deleted
from the front (a watermark, as the RocksDB state's seek from its time index's first live key),
so it never steps over the holes of deleted markers again. A process restart loses it all; the
next owner restores the whole changelog.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator

from ratifier.streams.local_state.base import Change, Checkpoint
from ratifier.streams.rules.finished import is_marker_key, marker_decided_at


class MemoryState:
    def __init__(self) -> None:
        self._cases: dict[bytes, bytes] = {}
        self._markers: dict[bytes, bytes] = {}
        # (decided at, key) as markers were written; an entry whose key was deleted or written
        # again since is stale, and dropped when it reaches the front.
        self._expiry: deque[tuple[int, bytes]] = deque()
        self._checkpoint: Checkpoint | None = None

    @property
    def checkpoint(self) -> Checkpoint | None:
        return self._checkpoint

    def get(self, key: bytes) -> bytes | None:
        if is_marker_key(key):
            return self._markers.get(key)
        return self._cases.get(key)

    def cases(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._cases.items()))

    def case_count(self) -> int:
        return len(self._cases)

    def marker_count(self) -> int:
        return len(self._markers)

    def expired_markers(self, before_ms: int, limit: int) -> list[bytes]:
        queue = self._expiry
        while queue and not self._live(*queue[0]):
            queue.popleft()  # the watermark: nothing live is left before it
        expired: list[bytes] = []
        for decided_at_ms, key in queue:
            if len(expired) >= limit or decided_at_ms >= before_ms:
                break
            if self._live(decided_at_ms, key):
                expired.append(key)
        return list(dict.fromkeys(expired))  # a key deleted and written again is queued twice

    def _queue_for_expiry(self, decided_at_ms: int, key: bytes) -> None:
        queue = self._expiry
        if not queue or queue[-1][0] <= decided_at_ms:
            queue.append((decided_at_ms, key))
        else:  # an older marker (a restore replaying history): rare, so a sorted insert
            bisect.insort(queue, (decided_at_ms, key))

    def _live(self, decided_at_ms: int, key: bytes) -> bool:
        marker = self._markers.get(key)
        return marker is not None and marker_decided_at(marker) == decided_at_ms

    def apply(self, changes: Iterable[Change], checkpoint: Checkpoint | None) -> None:
        for key, entry in changes:
            if not is_marker_key(key):
                if entry is None:
                    self._cases.pop(key, None)
                else:
                    self._cases[key] = entry
            elif entry is None:
                self._markers.pop(key, None)
            elif self._markers.get(key) != entry:
                self._markers[key] = entry
                self._queue_for_expiry(marker_decided_at(entry), key)
        if checkpoint is not None:
            self._checkpoint = checkpoint

    def clear(self) -> None:
        self._cases = {}
        self._markers = {}
        self._expiry = deque()
        self._checkpoint = None

    def close(self) -> None:
        """Nothing to release: the entries stay for the next time the partition is assigned."""


class MemoryBackend:
    """States kept across rebalances while the worker owns their partition, dropped after."""

    name = "memory"

    def __init__(self) -> None:
        self._states: dict[int, MemoryState] = {}

    def open(self, partition: int) -> MemoryState:
        state = self._states.get(partition)
        if state is None:
            state = self._states[partition] = MemoryState()
        return state

    def keep_only(self, partitions: set[int]) -> None:
        for partition in set(self._states) - partitions:
            del self._states[partition]

    def close(self) -> None:
        self._states = {}
