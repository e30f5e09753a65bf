"""Committed state on disk (RocksDB, through rocksdict): a week of finished-case markers for a
busy stream does not fit in memory, and a restart with a local checkpoint restores only the
changelog's tail.

One database per input partition, in its own folder. Key spaces, by first byte:

    \\xfc checkpoint   the changelog offset the database reflects, and when it was written
    \\xfd + decided_at_ms (8 bytes, big-endian) + case key   time index of the markers (empty)
    \\xfe + case key   finished-case markers (``streams/finished.py``)
    anything else      case states and learned models, as the store entries they are

Case states (the open cases and those still in their short retention: thousands, not millions)
are also kept in a dict, loaded at open: the tally reads them on almost every record, and a dict
read costs a tenth of a RocksDB read. Markers are read from RocksDB, and only for a case with no
state (its first candidate, or a record after the state was pruned); bloom filters make the
usual miss cheap. Writes happen only after a transaction committed (``apply``), each commit as
one atomic write batch holding its checkpoint, so after a crash the database is a state the
changelog had, and its checkpoint says which.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options, Rdict, WriteBatch

from ratifier.streams.local_state.base import Change, Checkpoint
from ratifier.streams.local_state.slots import claim_slot
from ratifier.streams.rules.finished import MARKER_PREFIX, is_marker_key, marker_decided_at

_CHECKPOINT_KEY: Final = b"\xfc"
_TIME_INDEX: Final = b"\xfd"
# offset, written_at_ms, and the number of markers (counting them at open would read them all)
_CHECKPOINT: Final = struct.Struct(">qqq")
_TIME: Final = struct.Struct(">q")
# Cases sort below the reserved prefixes (UTF-8 never starts with 0xf8..0xff) or, learned models
# (streams/learned_models.py), at 0xff.
_RESERVED_LOW: Final = b"\xfc"
_MODELS: Final = b"\xff"

# Memory per worker, bounded whatever the number of markers (bench/state_backends.py and
# docs/benchmarks.md, "Finished cases"): per partition two 8 MiB write buffers; one 32 MiB block
# cache for all. Bloom filters are kept outside the cache: charged to it, a miss (the usual
# marker lookup, a new case) cost ~40 us instead of ~8 at 10 M markers; outside, they take
# ~3.5 bytes per marker.
WRITE_BUFFER_BYTES: Final = 8 * 1024 * 1024
BLOCK_CACHE_BYTES: Final = 32 * 1024 * 1024
BLOOM_BITS_PER_KEY: Final = 10
_CACHE = Cache(BLOCK_CACHE_BYTES)  # one for every partition of the process


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    options.set_level_compaction_dynamic_level_bytes(True)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_keep_log_file_num(2)
    table = BlockBasedOptions()
    table.set_block_cache(_CACHE)
    table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
    options.set_block_based_table_factory(table)
    return options


def _time_key(marker_key: bytes, marker: bytes) -> bytes:
    return _TIME_INDEX + _TIME.pack(marker_decided_at(marker)) + marker_key[len(MARKER_PREFIX) :]


class RocksDBState:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), _options())
        self._cases: dict[bytes, bytes] = {}
        self._markers = 0
        self._checkpoint: Checkpoint | None = None
        # Where the time index's live keys start: expiry seeks there, not over the deletes left
        # below it (until compaction drops them, stepping over them costs tens of ms a scan).
        # A partition's decision times never go back, so no marker is ever added below it.
        self._expiry_from = _TIME_INDEX
        self._load()

    def _load(self) -> None:
        raw = self._db.get(_CHECKPOINT_KEY)
        if raw is not None:
            offset, written_at_ms, self._markers = _CHECKPOINT.unpack(raw)
            self._checkpoint = Checkpoint(offset, written_at_ms)
        self._cases = dict(self._range(b"", _RESERVED_LOW))
        self._cases.update(self._range(_MODELS, None))

    def _range(self, start: bytes, stop: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=start):
            assert isinstance(key, bytes)  # raw mode
            if stop is not None and key >= stop:
                return
            yield key, value

    @property
    def checkpoint(self) -> Checkpoint | None:
        return self._checkpoint

    def get(self, key: bytes) -> bytes | None:
        if is_marker_key(key):
            value: bytes | None = self._db.get(key)
            return value
        return self._cases.get(key)

    def cases(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._cases.items()))

    def case_count(self) -> int:
        return len(self._cases)

    def marker_count(self) -> int:
        return self._markers

    def expired_markers(self, before_ms: int, limit: int) -> list[bytes]:
        stop = _TIME_INDEX + _TIME.pack(max(before_ms, 0))
        expired: list[bytes] = []
        for key, _ in self._range(self._expiry_from, MARKER_PREFIX):
            if not expired:
                self._expiry_from = key  # nothing lives below it
            if key >= stop or len(expired) >= limit:
                break
            expired.append(MARKER_PREFIX + key[len(_TIME_INDEX) + _TIME.size :])
        return expired

    def apply(self, changes: Iterable[Change], checkpoint: Checkpoint | None) -> None:
        batch = WriteBatch(raw_mode=True)
        cases: dict[bytes, bytes | None] = {}
        markers: dict[bytes, bytes | None] = {}  # this batch's, as the time index must see them
        for key, entry in changes:
            if is_marker_key(key):
                self._change_marker(batch, markers, key, entry)
            else:
                cases[key] = entry
                if entry is None:
                    batch.delete(key)
                else:
                    batch.put(key, entry)
        markers_before = self._markers
        if checkpoint is None:
            checkpoint = self._checkpoint
        if checkpoint is not None:
            fields = (checkpoint.offset, checkpoint.written_at_ms, self._markers)
            batch.put(_CHECKPOINT_KEY, _CHECKPOINT.pack(*fields))
        try:
            self._db.write(batch)
        except BaseException:
            self._markers = markers_before
            raise
        for key, entry in cases.items():  # only once the batch is written
            if entry is None:
                self._cases.pop(key, None)
            else:
                self._cases[key] = entry
        self._checkpoint = checkpoint

    def _change_marker(
        self,
        batch: WriteBatch,
        markers: dict[bytes, bytes | None],
        key: bytes,
        marker: bytes | None,
    ) -> None:
        old = markers[key] if key in markers else self._db.get(key)
        if old == marker:
            return  # a restore replaying what the database already has
        if old is not None:
            batch.delete(_time_key(key, old))
            self._markers -= 1
        if marker is None:
            batch.delete(key)
        else:
            time_key = _time_key(key, marker)
            batch.put(key, marker)
            batch.put(time_key, b"")
            self._markers += 1
            # Below the live keys only when a restore replays old markers: look from there.
            self._expiry_from = min(self._expiry_from, time_key)
        markers[key] = marker

    def clear(self) -> None:
        self._db.close()
        Rdict.destroy(str(self.path), _options())
        self._db = Rdict(str(self.path), _options())
        self._cases = {}
        self._markers = 0
        self._checkpoint = None
        self._expiry_from = _TIME_INDEX

    def close(self) -> None:
        self._db.close()


class RocksDBBackend:
    """Each partition's database in ``<folder>/<partition>``, the folder this worker's own.

    Several tally workers may share one state folder (one machine, one volume): each claims a
    slot, ``<state dir>/slot-N``, locked while the process lives (the lock goes with it, even on
    kill -9), so a restarted worker finds its own databases again and two never open the same.
    """

    name = "rocksdb"

    def __init__(self, state_dir: Path) -> None:
        self.folder, self._lock = claim_slot(state_dir)

    def open(self, partition: int) -> RocksDBState:
        return RocksDBState(self.folder / str(partition))

    def keep_only(self, partitions: set[int]) -> None:
        """Nothing to drop: the databases cost disk only, and spare a full restore if the
        partition comes back (their checkpoint says how much of the changelog to read)."""

    def close(self) -> None:
        self._lock.close()
