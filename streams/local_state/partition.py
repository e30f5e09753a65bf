"""One input partition's case store: its committed state (memory or RocksDB) with the open
transaction's changes on top.

Reads see the open transaction's own writes first (read-your-own-writes, as Quix Streams' and
Kafka Streams' transaction caches). Every put and delete is kept twice until it is settled:
once for the changelog (:meth:`PartitionStore.take_changes`, written inside the transaction)
and once in the overlay, which reaches the committed state only when the transaction commits
(:meth:`PartitionStore.commit`). A failed transaction drops the overlay
(:meth:`PartitionStore.abort`) and leaves a committed state that is still exactly what the
changelog holds up to its checkpoint, so recovering the partition reads only the changelog's
tail, not the whole of it; so does taking back a partition this worker had before a rebalance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ratifier.core.models import now_ms
from ratifier.streams.local_state.base import Change, Checkpoint, CommittedState
from ratifier.streams.rules.finished import is_marker_key


class PartitionStore:
    """Owned by the partition's task: opened with it, given back when it closes."""

    __slots__ = ("committed", "overlay", "partition", "unsent")

    def __init__(self, partition: int, committed: CommittedState) -> None:
        self.partition = partition
        self.committed = committed
        self.overlay: dict[bytes, bytes | None] = {}  # since the last commit
        self.unsent: dict[bytes, bytes | None] = {}  # since the last take_changes

    # -- what the processor reads and writes ----------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        overlay = self.overlay
        if key in overlay:
            return overlay[key]
        return self.committed.get(key)

    def put(self, key: bytes, entry: bytes) -> None:
        self.overlay[key] = entry
        self.unsent[key] = entry

    def delete(self, key: bytes) -> None:
        self.overlay[key] = None
        self.unsent[key] = None

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Every case entry (markers aside), the overlay's over the committed ones."""
        overlay = self.overlay
        for key, entry in self.committed.cases():
            if key not in overlay:
                yield key, entry
        for key, changed in overlay.items():
            if changed is not None and not is_marker_key(key):
                yield key, changed

    def case_count(self) -> int:
        """Cases committed (the open transaction's aside)."""
        return self.committed.case_count()

    def marker_count(self) -> int:
        """Finished-case markers committed."""
        return self.committed.marker_count()

    def expired_markers(self, before_ms: int, limit: int) -> list[bytes]:
        overlay = self.overlay
        # Those deleted in the open transaction are gone already; ask for as many more.
        expired = self.committed.expired_markers(before_ms, limit + len(overlay))
        return [key for key in expired if overlay.get(key, key) is not None][:limit]

    # -- the task's side: restores and transactions ----------------------------------------------

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The changelog offset the committed state is at (None: empty)."""
        return self.committed.checkpoint

    def restore(self, records: Iterable[Change]) -> None:
        """Apply changelog records read from the checkpoint on (not changes: the changelog has
        them already). Until :meth:`restored`, the checkpoint stays where the read began: a
        crash meanwhile reads the same records again, which ends in the same state."""
        self.committed.apply(records, None)

    def restored(self, end_offset: int) -> None:
        """The changelog was read up to ``end_offset``: the state is at it."""
        self.committed.apply((), Checkpoint(end_offset, now_ms()))

    def reset(self) -> None:
        """Forget the committed state (a checkpoint the changelog cannot continue)."""
        self.committed.clear()

    def take_changes(self) -> dict[bytes, bytes | None]:
        """The latest entry (None: deleted) of each case changed since the last call."""
        changes, self.unsent = self.unsent, {}
        return changes

    def commit(self, changelog_end: int | None) -> None:
        """The transaction committed: its changes are the committed state now.

        ``changelog_end`` is the offset after the last changelog record it wrote (None: it
        wrote none, and the checkpoint stays).
        """
        checkpoint = None if changelog_end is None else Checkpoint(changelog_end, now_ms())
        if self.overlay or checkpoint is not None:
            self.committed.apply(self.overlay.items(), checkpoint)
        self.overlay = {}

    def abort(self) -> None:
        """The transaction failed: its changes are void; the committed state stays."""
        self.overlay.clear()
        self.unsent.clear()

    def close(self) -> None:
        """Give the partition up: uncommitted changes are dropped, the committed state is
        released (a disk store keeps it on disk for the next time)."""
        self.abort()
        self.committed.close()
