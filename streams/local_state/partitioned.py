"""The transactional engine's case store: per input partition, its committed state (memory or
RocksDB) with the open transaction's changes on top.

Reads see the open transaction's own writes first (read-your-own-writes, as Quix Streams' and
Kafka Streams' transaction caches). Every put and delete is kept twice until it is settled:
once for the changelog (:meth:`take_changes`, written inside the transaction) and once in the
overlay, which reaches the committed state only when the transaction commits
(:meth:`commit`). A failed transaction drops the overlay (:meth:`abort`) and leaves a committed
state that is still exactly what the changelog holds up to its checkpoint, so recovering the
partition reads only the changelog's tail, not the whole of it; so does taking back a
partition this worker had before a rebalance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from ratifier.core.models import now_ms
from ratifier.streams.local_state.base import Backend, Change, Checkpoint, CommittedState
from ratifier.streams.rules.finished import is_marker_key

logger = logging.getLogger(__name__)


class _Partition:
    __slots__ = ("committed", "overlay", "unsent")

    def __init__(self, committed: CommittedState) -> None:
        self.committed = committed
        self.overlay: dict[bytes, bytes | None] = {}  # since the last commit
        self.unsent: dict[bytes, bytes | None] = {}  # since the last take_changes


class PartitionedCaseStore:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._partitions: dict[int, _Partition] = {}

    # -- the CaseStore the processor reads and writes -------------------------------------------

    def get(self, key: bytes, partition: int) -> bytes | None:
        state = self._partitions.get(partition)
        if state is None:
            return None
        overlay = state.overlay
        if key in overlay:
            return overlay[key]
        return state.committed.get(key)

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        state = self._partitions[partition]
        state.overlay[key] = entry
        state.unsent[key] = entry

    def delete(self, key: bytes, partition: int) -> None:
        state = self._partitions[partition]
        state.overlay[key] = None
        state.unsent[key] = None

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Every case entry (markers aside) of every partition, the overlay's over the rest."""
        for state in self._partitions.values():
            overlay = state.overlay
            for key, entry in state.committed.cases():
                if key not in overlay:
                    yield key, entry
            for key, changed in overlay.items():
                if changed is not None and not is_marker_key(key):
                    yield key, changed

    def __len__(self) -> int:
        return sum(state.committed.case_count() for state in self._partitions.values())

    def expired_markers(self, partition: int, before_ms: int, limit: int) -> list[bytes]:
        state = self._partitions.get(partition)
        if state is None:
            return []
        overlay = state.overlay
        # Those deleted in the open transaction are gone already; ask for as many more.
        expired = state.committed.expired_markers(before_ms, limit + len(overlay))
        return [key for key in expired if overlay.get(key, key) is not None][:limit]

    def markers(self) -> int:
        """Finished-case markers held (committed), all partitions."""
        return sum(state.committed.marker_count() for state in self._partitions.values())

    # -- the engine's side: partitions, transactions, restores ---------------------------------

    def open(self, partition: int) -> Checkpoint | None:
        """Make ``partition`` available; the checkpoint its committed state is at (None: empty)."""
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _Partition(self.backend.open(partition))
        state.overlay.clear()
        state.unsent.clear()
        return state.committed.checkpoint

    def restore(self, partition: int, records: Iterable[Change]) -> None:
        """Apply changelog records read from the checkpoint on (not changes: the changelog has
        them already). Until :meth:`restored`, the checkpoint stays where the read began: a
        crash meanwhile reads the same records again, which ends in the same state."""
        self._partitions[partition].committed.apply(records, None)

    def restored(self, partition: int, end_offset: int) -> None:
        """The changelog was read up to ``end_offset``: the state is at it."""
        self._partitions[partition].committed.apply((), Checkpoint(end_offset, now_ms()))

    def reset(self, partition: int) -> None:
        """Forget the committed state (a checkpoint the changelog cannot continue)."""
        self._partitions[partition].committed.clear()

    def take_changes(self, partition: int) -> dict[bytes, bytes | None]:
        """The latest entry (None: deleted) of each case changed since the last call."""
        state = self._partitions.get(partition)
        if state is None:
            return {}
        changes, state.unsent = state.unsent, {}
        return changes

    def commit(self, partition: int, changelog_end: int | None) -> None:
        """The partition's transaction committed: its changes are the committed state now.

        ``changelog_end`` is the offset after the last changelog record it wrote (None: it
        wrote none, and the checkpoint stays).
        """
        state = self._partitions[partition]
        checkpoint = None if changelog_end is None else Checkpoint(changelog_end, now_ms())
        if state.overlay or checkpoint is not None:
            state.committed.apply(state.overlay.items(), checkpoint)
        state.overlay = {}

    def abort(self, partition: int) -> None:
        """The transaction failed: its changes are void; the committed state stays."""
        state = self._partitions.get(partition)
        if state is not None:
            state.overlay.clear()
            state.unsent.clear()

    def close(self, partition: int) -> None:
        """Give ``partition`` up (revoked): uncommitted changes are dropped, the committed state
        is released (a disk store keeps it on disk for the next time)."""
        state = self._partitions.pop(partition, None)
        if state is not None:
            state.committed.close()

    def close_all(self) -> None:
        for partition in list(self._partitions):
            self.close(partition)
        self.backend.close()

    @property
    def partitions(self) -> set[int]:
        return set(self._partitions)
