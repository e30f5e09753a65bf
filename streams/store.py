"""Where the tally keeps case state: a key-value store of bytes, one entry per case.

Each value carries a fixed header (source partition, next due time) ahead of the encoded case
state, so the deadline index can be rebuilt after recovery without decoding a single state, and
changelog writes go to the right partition even from the tally's timer (outside any stream event).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Protocol

from ratifier.streams.local_state.memory import MemoryState
from ratifier.streams.rules.finished import is_marker_key

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
    """Case states and finished-case markers (``streams/finished.py``), by key and partition."""

    def get(self, key: bytes, partition: int) -> bytes | None: ...

    def put(self, key: bytes, partition: int, entry: bytes) -> None: ...

    def delete(self, key: bytes, partition: int) -> None: ...

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry but the markers (those have no entry header)."""
        ...

    def __len__(self) -> int: ...

    def expired_markers(self, partition: int, before_ms: int, limit: int) -> list[bytes]:
        """Marker keys of ``partition``'s cases decided before ``before_ms``, oldest first."""
        ...


class DictCaseStore:
    """A plain in-process store: for unit tests and tools that replay history offline."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._markers = MemoryState()  # every partition's: offline there is one stream

    def get(self, key: bytes, partition: int | None = None) -> bytes | None:
        if is_marker_key(key):
            return self._markers.get(key)
        return self._data.get(key)

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        if is_marker_key(key):
            self._markers.apply([(key, entry)], None)
        else:
            self._data[key] = entry

    def delete(self, key: bytes, partition: int) -> None:
        if is_marker_key(key):
            self._markers.apply([(key, None)], None)
        else:
            self._data.pop(key, None)

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    def markers(self) -> int:
        return self._markers.marker_count()

    def expired_markers(self, partition: int, before_ms: int, limit: int) -> list[bytes]:
        return self._markers.expired_markers(before_ms, limit)
