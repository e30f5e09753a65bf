"""The one case store the shared processor reads and writes, over the partitions' own stores.

The processor serves every partition a worker owns and names the partition on each call; this
routes the call to that partition's :class:`~.partition.PartitionStore`. It owns nothing: a
partition's store is attached by whoever opened it (the transactional engine's partition task)
and detached when it is closed.
"""

from __future__ import annotations

from collections.abc import Iterator

from ratifier.streams.local_state.partition import PartitionStore


class PartitionedCaseStore:
    """A :class:`~ratifier.streams.store.CaseStore` over the attached partitions' stores."""

    def __init__(self) -> None:
        self._stores: dict[int, PartitionStore] = {}

    def attach(self, store: PartitionStore) -> None:
        self._stores[store.partition] = store

    def detach(self, partition: int) -> None:
        self._stores.pop(partition, None)

    def get(self, key: bytes, partition: int) -> bytes | None:
        store = self._stores.get(partition)
        return None if store is None else store.get(key)

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        self._stores[partition].put(key, entry)

    def delete(self, key: bytes, partition: int) -> None:
        self._stores[partition].delete(key)

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Every case entry (markers aside) of every partition, the overlay's over the rest."""
        for store in list(self._stores.values()):
            yield from store.entries()

    def __len__(self) -> int:
        return sum(store.case_count() for store in self._stores.values())

    def expired_markers(self, partition: int, before_ms: int, limit: int) -> list[bytes]:
        store = self._stores.get(partition)
        return [] if store is None else store.expired_markers(before_ms, limit)

    def markers(self) -> int:
        """Finished-case markers held (committed), all partitions."""
        return sum(store.marker_count() for store in self._stores.values())
