"""The transactional engine's state: per partition, with the changes its changelog must get."""

from __future__ import annotations

from ratifier.streams.store import PartitionedCaseStore


def test_changes_hold_each_keys_latest_entry_once_per_partition() -> None:
    store = PartitionedCaseStore()
    store.put(b"a", 0, b"1")
    store.put(b"a", 0, b"2")
    store.put(b"b", 1, b"x")
    store.delete(b"b", 1)
    assert store.take_changes(0) == {b"a": b"2"}
    assert store.take_changes(1) == {b"b": None}  # a tombstone for the changelog
    assert store.take_changes(0) == {}
    assert store.get(b"a", 0) == b"2"
    assert store.get(b"a", 1) is None


def test_load_replays_a_changelog_and_drop_forgets_one_partition() -> None:
    store = PartitionedCaseStore()
    store.put(b"other", 1, b"kept")
    store.load(0, iter([(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"b", None)]))
    assert dict(store.entries()) == {b"a": b"3", b"other": b"kept"}
    assert store.take_changes(0) == {}  # restored state is not a change
    store.drop(1)
    assert dict(store.entries()) == {b"a": b"3"}
    assert store.get(b"other", 1) is None
