"""Where the tally keeps case state: a key-value store of bytes, one entry per case.

Each value carries a fixed header (source partition, next due time) ahead of the encoded case
state, so the deadline index can be rebuilt after recovery without decoding a single state, and
changelog writes go to the right partition even from the tally's timer (outside any stream event).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Protocol

_HEADER = struct.Struct(">Hq")  # partition, due_ms (-1: nothing due)
HEADER_SIZE = _HEADER.size


def pack_entry(partition: int, due_ms: int | None, state: bytes) -> bytes:
    return _HEADER.pack(partition, -1 if due_ms is None else due_ms) + state


def entry_header(entry: bytes) -> tuple[int, int | None]:
    partition, due_ms = _HEADER.unpack_from(entry)
    return partition, (None if due_ms < 0 else due_ms)


def entry_state(entry: bytes) -> bytes:
    return entry[HEADER_SIZE:]


class CaseStore(Protocol):
    def get(self, key: bytes, partition: int) -> bytes | None: ...

    def put(self, key: bytes, partition: int, entry: bytes) -> None: ...

    def delete(self, key: bytes, partition: int) -> None: ...

    def entries(self) -> Iterator[tuple[bytes, bytes]]: ...

    def __len__(self) -> int: ...


class DictCaseStore:
    """A plain in-process store: for unit tests and tools that replay history offline."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def get(self, key: bytes, partition: int | None = None) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        self._data[key] = entry

    def delete(self, key: bytes, partition: int) -> None:
        self._data.pop(key, None)

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)


class PartitionedCaseStore:
    """The transactional engine's store: one dict per input partition, changes kept for the
    changelog.

    Per partition, so a revoked partition's state is dropped at once and a restored one filled
    without touching the others. Every put and delete is remembered until :meth:`take_changes`,
    so each partition's transaction writes each changed case's latest entry once.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, dict[bytes, bytes]] = {}
        self._changes: dict[int, dict[bytes, bytes | None]] = {}

    def get(self, key: bytes, partition: int) -> bytes | None:
        data = self._partitions.get(partition)
        return None if data is None else data.get(key)

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        self._partitions.setdefault(partition, {})[key] = entry
        self._changes.setdefault(partition, {})[key] = entry

    def delete(self, key: bytes, partition: int) -> None:
        data = self._partitions.get(partition)
        if data is not None:
            data.pop(key, None)
        self._changes.setdefault(partition, {})[key] = None

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter([item for data in self._partitions.values() for item in data.items()])

    def __len__(self) -> int:
        return sum(len(data) for data in self._partitions.values())

    def take_changes(self, partition: int) -> dict[bytes, bytes | None]:
        """The latest entry (None: deleted) of each case changed since the last call."""
        return self._changes.pop(partition, {})

    def load(self, partition: int, records: Iterator[tuple[bytes, bytes | None]]) -> None:
        """Replace ``partition``'s state with a changelog's records, oldest first."""
        data: dict[bytes, bytes] = {}
        for key, entry in records:
            if entry is None:
                data.pop(key, None)  # a tombstone: the case was pruned
            else:
                data[key] = entry
        self._partitions[partition] = data
        self._changes.pop(partition, None)

    def drop(self, partition: int) -> None:
        """Forget ``partition`` (revoked, or its transaction failed): the changelog has it."""
        self._partitions.pop(partition, None)
        self._changes.pop(partition, None)
