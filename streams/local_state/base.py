"""What a committed-state backend offers: one input partition's entries as its changelog has
them up to the checkpoint. Only committed changes reach a backend, so whatever it holds, and
whatever it reloads after a crash, is a state the changelog also had.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

Change = tuple[bytes, bytes | None]  # key, entry (None: deleted)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The changelog offset a partition's local state reflects: every record before it is in.

    ``written_at_ms`` lets a restore tell a checkpoint too old to trust: compaction drops a
    tombstone ``delete.retention.ms`` after it was written, and a reader resuming from before
    that would never see the delete.
    """

    offset: int
    written_at_ms: int


class CommittedState(Protocol):
    """One partition's committed entries: case states and markers (``streams/finished.py``)."""

    @property
    def checkpoint(self) -> Checkpoint | None: ...

    def get(self, key: bytes) -> bytes | None: ...

    def cases(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry but the finished-case markers."""
        ...

    def case_count(self) -> int: ...

    def marker_count(self) -> int: ...

    def expired_markers(self, before_ms: int, limit: int) -> list[bytes]:
        """Marker keys of cases decided before ``before_ms``, oldest first, at most ``limit``."""
        ...

    def apply(self, changes: Iterable[Change], checkpoint: Checkpoint | None) -> None:
        """Apply committed changes in order, atomically with the new checkpoint."""
        ...

    def clear(self) -> None:
        """Forget everything, checkpoint included (the next restore reads the whole changelog)."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Where a worker's committed states live: memory or a folder on disk."""

    name: str

    def open(self, partition: int) -> CommittedState:
        """The partition's committed state as this worker last left it (empty if never)."""
        ...

    def keep_only(self, partitions: set[int]) -> None:
        """The worker owns only ``partitions`` now: a backend may drop the others' states."""
        ...

    def close(self) -> None: ...
