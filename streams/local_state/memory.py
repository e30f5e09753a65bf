"""Committed state in the process's memory: for small deployments and tests.

Markers are kept in insertion order, which is their decision order within a partition (a
partition's clock never goes back), so the oldest are found at the front. A process restart
loses it all; the next owner restores the whole changelog.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ratifier.streams.local_state.base import Change, Checkpoint
from ratifier.streams.rules.finished import is_marker_key, marker_decided_at


class MemoryState:
    def __init__(self) -> None:
        self._cases: dict[bytes, bytes] = {}
        self._markers: dict[bytes, bytes] = {}
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
        expired: list[bytes] = []
        for key, marker in self._markers.items():
            if len(expired) >= limit or marker_decided_at(marker) >= before_ms:
                break
            expired.append(key)
        return expired

    def apply(self, changes: Iterable[Change], checkpoint: Checkpoint | None) -> None:
        for key, entry in changes:
            data = self._markers if is_marker_key(key) else self._cases
            if entry is None:
                data.pop(key, None)
            else:
                data[key] = entry
        if checkpoint is not None:
            self._checkpoint = checkpoint

    def clear(self) -> None:
        self._cases = {}
        self._markers = {}
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
