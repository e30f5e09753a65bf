"""The transactional engine's state: per partition, committed state under an overlay of the open
transaction, on either backend; only committed changes ever reach the backend. The processor's
store routes to the partitions' stores attached to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratifier.core.errors import ConfigError
from ratifier.streams.local_state import slots
from ratifier.streams.local_state.base import Backend, Checkpoint
from ratifier.streams.local_state.memory import MemoryBackend, MemoryState
from ratifier.streams.local_state.partition import PartitionStore
from ratifier.streams.local_state.partitioned import PartitionedCaseStore
from ratifier.streams.local_state.rocksdb import RocksDBBackend, RocksDBState
from ratifier.streams.local_state.slots import claim_slot
from ratifier.streams.rules.finished import Finished, encode_marker, marker_key


@pytest.fixture(params=["memory", "rocksdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made: Backend = MemoryBackend() if request.param == "memory" else RocksDBBackend(tmp_path)
    yield made
    made.close()


def marker(decided_at_ms: int) -> bytes:
    return encode_marker(Finished(str(uuid.uuid4()), "pass", 1, decided_at_ms))


def open_store(backend: Backend, partition: int) -> PartitionStore:
    """As the partition's task opens it."""
    return PartitionStore(partition, backend.open(partition))


def test_changes_hold_each_keys_latest_entry_once_per_partition(backend: Backend) -> None:
    first, second = open_store(backend, 0), open_store(backend, 1)
    cases = PartitionedCaseStore()
    cases.attach(first)
    cases.attach(second)
    cases.put(b"a", 0, b"1")
    cases.put(b"a", 0, b"2")
    cases.put(b"b", 1, b"x")
    cases.delete(b"b", 1)
    assert first.take_changes() == {b"a": b"2"}
    assert second.take_changes() == {b"b": None}  # a tombstone for the changelog
    assert first.take_changes() == {}
    assert cases.get(b"a", 0) == b"2"  # read-your-own-writes before the commit
    assert cases.get(b"a", 1) is None
    cases.detach(1)
    assert cases.get(b"b", 1) is None  # a detached partition is no longer seen


def test_an_aborted_transaction_leaves_the_committed_state(backend: Backend) -> None:
    store = open_store(backend, 0)
    store.put(b"a", b"1")
    store.commit(5)
    store.put(b"a", b"2")
    store.put(b"b", b"3")
    store.abort()
    assert store.get(b"a") == b"1"
    assert store.get(b"b") is None
    assert store.take_changes() == {}


def test_a_closed_partition_comes_back_at_its_checkpoint(backend: Backend) -> None:
    store = open_store(backend, 0)
    assert store.checkpoint is None
    store.put(b"a", b"1")
    store.commit(7)
    store.put(b"b", b"uncommitted")
    store.close()  # revoked: the open transaction's work is void
    store = open_store(backend, 0)
    checkpoint = store.checkpoint
    assert checkpoint is not None
    assert checkpoint.offset == 7
    assert store.get(b"a") == b"1"
    assert store.get(b"b") is None


def test_restore_applies_the_changelog_tail_and_moves_the_checkpoint(backend: Backend) -> None:
    store = open_store(backend, 0)
    store.restore([(b"a", b"1"), (b"b", b"2")])
    assert store.checkpoint is None  # no checkpoint until the read is over
    store.restore([(b"a", b"3"), (b"b", None)])
    store.restored(12)
    assert dict(store.entries()) == {b"a": b"3"}
    assert store.take_changes() == {}  # restored state is not a change
    checkpoint = store.checkpoint
    assert checkpoint is not None
    assert checkpoint.offset == 12
    store.reset()
    assert store.checkpoint is None
    assert dict(store.entries()) == {}


def test_markers_are_not_entries_and_expire_oldest_first(backend: Backend) -> None:
    store = open_store(backend, 0)
    store.put(b"case", b"state")
    keys = [marker_key(f"done-{i}".encode()) for i in range(4)]
    for i, key in enumerate(keys):
        store.put(key, marker(1_000 + i))
    store.commit(10)
    assert dict(store.entries()) == {b"case": b"state"}
    assert store.marker_count() == 4
    assert store.expired_markers(1_002, 10) == keys[:2]
    assert store.expired_markers(1_004, 3) == keys[:3]
    store.delete(keys[0])  # deleted in the open transaction: not offered again
    assert store.expired_markers(1_002, 10) == keys[1:2]
    store.commit(11)
    assert store.marker_count() == 3


def test_the_disk_state_survives_a_restart_with_its_checkpoint(tmp_path: Path) -> None:
    backend = RocksDBBackend(tmp_path)
    store = open_store(backend, 2)
    store.put(b"case", b"state")
    store.put(marker_key(b"done"), marker(5))
    store.commit(42)
    store.close()
    backend.close()
    backend = RocksDBBackend(tmp_path)
    again = open_store(backend, 2)
    checkpoint = again.checkpoint
    assert checkpoint is not None
    assert checkpoint.offset == 42
    assert again.get(b"case") == b"state"
    assert again.get(marker_key(b"done")) is not None
    assert again.marker_count() == 1
    again.close()
    backend.close()


def test_a_replayed_tail_over_a_newer_disk_state_converges(tmp_path: Path) -> None:
    """After a crash between a commit and its checkpoint, the restore replays records the
    database has already: full-value writes in order end in the same state."""
    state = RocksDBState(tmp_path / "0")
    done = marker_key(b"done")
    state.apply([(b"a", b"1"), (done, marker(5))], Checkpoint(3, 0))
    state.apply([(b"a", b"2"), (done, None)], None)  # newer than the checkpoint says
    state.apply([(b"a", b"1"), (done, marker(5)), (b"a", b"2"), (done, None)], Checkpoint(9, 0))
    assert state.get(b"a") == b"2"
    assert state.get(done) is None
    assert state.marker_count() == 0
    assert state.expired_markers(10, 10) == []
    state.close()


def test_two_workers_on_one_state_folder_get_slots_of_their_own(tmp_path: Path) -> None:
    first, first_lock = claim_slot(tmp_path)
    second, second_lock = claim_slot(tmp_path)
    assert first != second
    first_lock.close()  # the worker ended: its slot is free for its restart
    again, again_lock = claim_slot(tmp_path)
    assert again == first
    second_lock.close()
    again_lock.close()


def test_expiry_seeks_past_deleted_markers_and_still_finds_a_replayed_old_one(
    tmp_path: Path,
) -> None:
    state = RocksDBState(tmp_path / "0")
    keys = [marker_key(f"c{i}".encode()) for i in range(3)]
    state.apply([(key, marker(100 + i)) for i, key in enumerate(keys)], Checkpoint(1, 0))
    assert state.expired_markers(102, 10) == keys[:2]
    state.apply([(keys[0], None), (keys[1], None)], None)
    assert state.expired_markers(200, 10) == keys[2:]
    replayed = marker_key(b"replayed")
    state.apply([(replayed, marker(50))], None)  # a restore re-reading an older marker
    assert state.expired_markers(200, 10) == [replayed, keys[2]]
    state.close()


def test_all_slots_locked_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slots, "MAX_SLOTS", 1)
    _, lock = slots.claim_slot(tmp_path)
    with pytest.raises(ConfigError, match=r"state slots .* are locked"):
        slots.claim_slot(tmp_path)
    lock.close()


def test_memory_expiry_skips_what_was_deleted_and_keeps_decision_order() -> None:
    state = MemoryState()
    keys = [marker_key(f"done-{i}".encode()) for i in range(6)]
    state.apply([(key, marker(1_000 + i)) for i, key in enumerate(keys[1:], start=1)], None)
    state.apply([(keys[0], marker(1_000))], None)  # replayed out of order: still oldest first
    assert state.expired_markers(1_003, 10) == keys[:3]
    state.apply([(key, None) for key in keys[:3]], None)  # expired and deleted
    assert state.expired_markers(1_005, 10) == keys[3:5]
    state.apply([(keys[3], marker(2_000))], None)  # written again, later: found at its new time
    assert state.expired_markers(1_005, 10) == keys[4:5]
    assert state.expired_markers(2_001, 1) == keys[4:5]
    assert state.expired_markers(2_001, 10) == [keys[4], keys[5], keys[3]]
