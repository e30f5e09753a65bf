"""The tally's disk store, chosen by measurement: finished-case markers in each candidate backend.

    .venv/bin/python bench/state_backends.py                 # 10 million markers (~40 min)
    .venv/bin/python bench/state_backends.py --quick         # 1 million, a smoke run (~3 min)
    .venv/bin/python bench/state_backends.py --markers 3000000 --only dict,rocksdb

A marker is ``b"\\xfe" + case id`` (a 36-character UUID) -> 27 bytes (``>16sBHq``: decision id,
outcome, attempt, decided_at_ms), with a time-index twin ``b"\\xfd" + decided_at_ms (8 bytes,
big-endian) + case id`` -> ``b""`` so that the oldest markers are found by one ordered seek.
Case states (~1 KB) are keyed by the bare case id, so they sort before both (ASCII < 0xfd).

Per backend, in a fresh child process (so one does not pollute another's RSS):

- *write*: N markers in write batches of 2 000 (each marker with its time key; one atomic
  batch each, as one transaction commit), then 10 000 case states in batches of 1 000, twenty
  times over;
- *get miss* / *get hit*: random absent / present marker keys, µs per call;
- *expire*: the oldest 1 % removed through the time index, in ten rounds that each seek from
  the start of the index again (as a periodic expiry does; tombstones in front are part of it),
  then the cost of that seek once they are gone;
- RSS (VmRSS, its anonymous part, and the peak), bytes on disk per marker;

then, in a second fresh process on the same directory (a restart with a local store): time to
open it and answer a get, to iterate the 10 000 case states, RSS, and the first gets (cold).

The baseline is a plain dict in the same run (``dict``): markers, time keys and states in three
insertion-ordered dicts; its restart reads a local ``marshal`` snapshot (the fastest an in-memory
store could restart without the changelog). The table gives each figure and its ratio to it.
``tally est.`` turns the measured costs into the tally's throughput ratio: per case one marker
lookup (a miss), one marker written and later expired, two state writes; the tally itself spends
1/``--tally-rate`` s per record, six records per case.
"""

from __future__ import annotations

import argparse
import marshal
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

MARKER = b"\xfe"
TIME_INDEX = b"\xfd"
VALUE = struct.Struct(">16sBHq")
STAMP = struct.Struct(">q")
T0 = 1_800_000_000_000
SPAN_MS = 7 * 86_400_000  # the horizon the markers cover, whatever N is
BATCH = 2_000
STATES = 10_000
STATE_BATCH = 1_000
STATE_ROUNDS = 20  # 200 MB: more than any memtable budget here, so flushes are measured
STATE_BYTES = 1_024
PROBES = 100_000
EXPIRE_ROUNDS = 10
RECORDS_PER_CASE = 6  # a candidate and five verdicts
# Case ids are a bijection of the index (an odd multiplier mod 2**128), so any marker's key can
# be rebuilt from its number without keeping 10 million strings around.
_MULT = 0x9E3779B97F4A7C15F39CC0605CEDC835
_MASK = (1 << 128) - 1
_PRESENT, _ABSENT, _DECISION = 0x1234, 0xFACE_0000_0000_0000_0000_0000_0000_0000, 0xD0


def case_id(i: int, salt: int = _PRESENT) -> bytes:
    return str(uuid.UUID(int=(i * _MULT + salt) & _MASK)).encode()


def decided_at(i: int, n: int) -> int:
    return T0 + i * SPAN_MS // n


def marker(i: int, n: int) -> tuple[bytes, bytes, bytes]:
    """Marker key, its value and its time-index key for finished case ``i`` of ``n``."""
    cid = case_id(i)
    at = decided_at(i, n)
    value = VALUE.pack(uuid.UUID(int=(i * _MULT + _DECISION) & _MASK).bytes, 1, 1, at)
    return MARKER + cid, value, TIME_INDEX + STAMP.pack(at) + cid


class Store(Protocol):
    """What the tally needs of a backend; every write is one atomic batch."""

    def write(self, puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes]) -> None: ...

    def get(self, key: bytes) -> bytes | None: ...

    def keys(self, lo: bytes, hi: bytes, limit: int) -> list[bytes]:
        """Up to ``limit`` keys in [lo, hi), in order."""
        ...

    def items(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def close(self) -> None: ...


# --- the backends -----------------------------------------------------------------------------


class DictStore:
    """The baseline: three dicts by key prefix, the time index ordered by insertion (the tally
    writes markers in decision order). Close writes a ``marshal`` snapshot, open reads it."""

    def __init__(self, path: Path) -> None:
        self._file = path / "snapshot.marshal"
        self._markers: dict[bytes, bytes] = {}
        self._times: dict[bytes, bytes] = {}
        self._states: dict[bytes, bytes] = {}
        if self._file.exists():
            with self._file.open("rb") as f:
                self._markers, self._times, self._states = marshal.load(f)

    def _dict(self, key: bytes) -> dict[bytes, bytes]:
        first = key[:1]
        return self._markers if first == MARKER else self._times if first == TIME_INDEX else (
            self._states
        )  # fmt: skip

    def write(self, puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes]) -> None:
        for key, value in puts:
            self._dict(key)[key] = value
        for key in deletes:
            self._dict(key).pop(key, None)

    def get(self, key: bytes) -> bytes | None:
        return self._dict(key).get(key)

    def keys(self, lo: bytes, hi: bytes, limit: int) -> list[bytes]:
        # Only the time index is asked for in order, and it is insertion-ordered already.
        found: list[bytes] = []
        for key in self._dict(lo):
            if key >= hi or len(found) == limit:
                break
            if key >= lo:
                found.append(key)
        return found

    def items(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        return ((k, v) for k, v in self._dict(lo).items() if lo <= k < hi)

    def close(self) -> None:
        with self._file.open("wb") as f:
            marshal.dump((self._markers, self._times, self._states), f)


def rocksdb_options(
    *,
    bounded: bool = True,
    cache_index_and_filters: bool = False,
    write_buffer_mb: int = 32,
) -> Any:
    """The RocksDB options measured here; ``bounded`` is the recommendation (docs/benchmarks.md).

    Memory is the memtables (write_buffer_size x max_write_buffer_number), the block cache, and,
    unless they are charged to the cache, every open table's index and bloom filter.
    """
    import rocksdict

    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    if not bounded:
        return options
    options.set_write_buffer_size(write_buffer_mb << 20)
    options.set_max_write_buffer_number(2)
    options.set_max_background_jobs(2)
    options.set_level_compaction_dynamic_level_bytes(True)
    options.set_compression_type(rocksdict.DBCompressionType.lz4())
    options.set_keep_log_file_num(2)
    table = rocksdict.BlockBasedOptions()
    table.set_block_cache(rocksdict.Cache(64 << 20))
    # Whole-key bloom filters (10 bits/key, ~1 % false positives): a miss, the common case for a
    # candidate, usually reads no data block at all.
    table.set_bloom_filter(10, False)
    if cache_index_and_filters:
        # Charged to the cache, a whole-file filter (hundreds of KB) is evicted by data blocks
        # and read back for the next miss (~95 µs a get at 1M markers, measured): partitioned
        # index and filters are loaded 4 KB at a time, their small top levels pinned.
        table.set_cache_index_and_filter_blocks(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_metadata_block_size(4096)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    return options


class RocksStore:
    def __init__(self, path: Path, options: Any) -> None:
        import rocksdict

        self._rocksdict = rocksdict
        self._db = rocksdict.Rdict(str(path / "db"), options)

    def write(self, puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes]) -> None:
        batch = self._rocksdict.WriteBatch(raw_mode=True)
        for key, value in puts:
            batch.put(key, value)
        for key in deletes:
            batch.delete(key)
        self._db.write(batch)

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def keys(self, lo: bytes, hi: bytes, limit: int) -> list[bytes]:
        found: list[bytes] = []
        if limit <= 0:
            return found
        for key in self._db.keys(from_key=lo, read_opt=self._bounded(hi)):
            assert isinstance(key, bytes)
            found.append(key)
            if len(found) == limit:
                break
        return found

    def items(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._db.items(from_key=lo, read_opt=self._bounded(hi)):
            assert isinstance(key, bytes)
            yield key, value

    def _bounded(self, hi: bytes) -> Any:
        # The upper bound lets RocksDB stop at hi instead of stepping over what lies beyond.
        read = self._rocksdict.ReadOptions()
        read.set_iterate_upper_bound(hi)
        return read

    def close(self) -> None:
        self._db.close()


class LmdbStore:
    def __init__(self, path: Path) -> None:
        import lmdb

        # map_size is address space, not memory; sync off like RocksDB's unsynced WAL (the
        # changelog is the source of truth; see docs/benchmarks.md for what a crash costs).
        self._env = lmdb.open(
            str(path), map_size=1 << 38, sync=False, metasync=False, readahead=False
        )

    def write(self, puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes]) -> None:
        with self._env.begin(write=True) as txn:
            for key, value in puts:
                txn.put(key, value)
            for key in deletes:
                txn.delete(key)

    def get(self, key: bytes) -> bytes | None:
        with self._env.begin() as txn:
            return txn.get(key)

    def keys(self, lo: bytes, hi: bytes, limit: int) -> list[bytes]:
        found: list[bytes] = []
        with self._env.begin() as txn:
            cursor = txn.cursor()
            if not cursor.set_range(lo):
                return found
            for key in cursor.iternext(keys=True, values=False):
                if key >= hi or len(found) == limit:
                    break
                found.append(key)
        return found

    def items(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._env.begin() as txn:
            cursor = txn.cursor()
            if cursor.set_range(lo):
                for key, value in cursor.iternext():
                    if key >= hi:
                        break
                    yield key, value

    def close(self) -> None:
        self._env.close()


class SqliteStore:
    def __init__(self, path: Path) -> None:
        import sqlite3

        self._db = sqlite3.connect(path / "state.sqlite", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )

    def write(self, puts: Sequence[tuple[bytes, bytes]], deletes: Sequence[bytes]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", puts)
        self._db.executemany("DELETE FROM kv WHERE k = ?", ((key,) for key in deletes))
        self._db.execute("COMMIT")

    def get(self, key: bytes) -> bytes | None:
        row = self._db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def keys(self, lo: bytes, hi: bytes, limit: int) -> list[bytes]:
        rows = self._db.execute(
            "SELECT k FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?", (lo, hi, limit)
        )
        return [bytes(row[0]) for row in rows]

    def items(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, bytes]]:
        rows = self._db.execute("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k", (lo, hi))
        return ((bytes(k), bytes(v)) for k, v in rows)

    def close(self) -> None:
        self._db.close()


BACKENDS: dict[str, Callable[[Path], Store]] = {
    "dict": DictStore,
    "rocksdb": lambda path: RocksStore(path, rocksdb_options()),
    "rocksdb-wb16": lambda path: RocksStore(path, rocksdb_options(write_buffer_mb=16)),
    "rocksdb-charged": lambda path: RocksStore(
        path, rocksdb_options(cache_index_and_filters=True, write_buffer_mb=16)
    ),
    "rocksdb-charged-wb64": lambda path: RocksStore(
        path, rocksdb_options(cache_index_and_filters=True, write_buffer_mb=64)
    ),
    "rocksdb-defaults": lambda path: RocksStore(path, rocksdb_options(bounded=False)),
    "lmdb": LmdbStore,
    "sqlite": SqliteStore,
}
CHOSEN = "rocksdb"


# --- the measurements -------------------------------------------------------------------------


def memory() -> dict[str, int]:
    """VmRSS, its anonymous part and the peak (VmHWM), in bytes, from /proc/self/status."""
    wanted = {"VmRSS": "rss", "RssAnon": "rss_anon", "VmHWM": "rss_peak"}
    found: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in wanted:
            found[wanted[name]] = int(rest.split()[0]) * 1024
    return found


def disk_bytes(path: Path) -> int:
    """Blocks actually allocated (LMDB's map and RocksDB's preallocation are sparse)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def _timed(calls: Callable[[], object]) -> float:
    start = time.perf_counter()
    calls()
    return time.perf_counter() - start


def _probe(store: Store, keys: list[bytes], present: bool) -> float:
    """µs per get over ``keys``; every answer is checked."""
    get = store.get
    start = time.perf_counter()
    answers = [get(key) for key in keys]
    elapsed = time.perf_counter() - start
    wrong = sum((answer is None) == present for answer in answers)
    if wrong:
        raise AssertionError(f"{wrong} of {len(keys)} gets answered wrongly (present={present})")
    return elapsed / len(keys) * 1e6


def _state_key(i: int) -> bytes:
    return case_id(i, salt=0x5)


def load(backend: str, n: int, path: Path) -> dict[str, Any]:
    """Fill a fresh store with ``n`` markers and the case states, then measure it."""
    rng = random.Random(19)
    store = BACKENDS[backend](path)
    figures: dict[str, Any] = {"rss_empty": memory()["rss"]}

    spent = 0.0
    for first in range(0, n, BATCH):
        puts: list[tuple[bytes, bytes]] = []
        for i in range(first, min(first + BATCH, n)):
            key, value, time_key = marker(i, n)
            puts += ((key, value), (time_key, b""))
        start = time.perf_counter()
        store.write(puts, ())
        spent += time.perf_counter() - start
    figures["write_markers_per_s"] = n / spent

    state = rng.randbytes(STATE_BYTES // 2) * 2  # half repeats: case states compress somewhat
    spent = 0.0
    for _ in range(STATE_ROUNDS):  # each state rewritten, as a case's state is at each commit
        for first in range(0, STATES, STATE_BATCH):
            puts = [(_state_key(i), state) for i in range(first, first + STATE_BATCH)]
            start = time.perf_counter()
            store.write(puts, ())
            spent += time.perf_counter() - start
    figures["write_states_per_s"] = STATES * STATE_ROUNDS / spent
    figures["rss_loaded"] = memory()

    probes = min(PROBES, n)
    misses = [MARKER + case_id(rng.randrange(n), salt=_ABSENT) for _ in range(probes)]
    hits = [MARKER + case_id(rng.randrange(n)) for _ in range(probes)]
    figures["get_miss_us"] = _probe(store, misses, present=False)
    figures["get_hit_us"] = _probe(store, hits, present=True)
    figures["rss_after_gets"] = memory()

    expired, spent = 0, 0.0
    for round_ in range(1, EXPIRE_ROUNDS + 1):
        horizon = TIME_INDEX + STAMP.pack(decided_at(n * round_ // (100 * EXPIRE_ROUNDS), n))
        start = time.perf_counter()
        while due := store.keys(TIME_INDEX, horizon, BATCH):
            store.write((), [k for time_key in due for k in (time_key, MARKER + time_key[9:])])
            expired += len(due)
        spent += time.perf_counter() - start
    if expired != n // 100:
        raise AssertionError(f"expired {expired} markers, expected {n // 100}")
    figures["expire_markers_per_s"] = expired / spent
    end = TIME_INDEX + b"\xff" * 8
    seeks = 200
    elapsed = _timed(lambda: [store.keys(TIME_INDEX, end, 1) for _ in range(seeks)])
    figures["oldest_seek_us"] = elapsed / seeks * 1e6
    # The same seek from the last expiry horizon (a watermark the tally can keep): it starts
    # past the tombstones instead of stepping over them.
    elapsed = _timed(lambda: [store.keys(horizon, end, 1) for _ in range(seeks)])
    figures["watermark_seek_us"] = elapsed / seeks * 1e6

    figures["close_s"] = _timed(store.close)
    figures["rss_final"] = memory()
    figures["disk_bytes_per_marker"] = disk_bytes(path) / n
    return figures


def reopen(backend: str, n: int, path: Path) -> dict[str, Any]:
    """A restart on the store :func:`load` left: ready when the first get is answered."""
    rng = random.Random(20)
    start = time.perf_counter()
    store = BACKENDS[backend](path)
    survivor = n - 1  # the newest marker, never expired
    if store.get(MARKER + case_id(survivor)) is None:
        raise AssertionError("the reopened store lost a marker")
    figures: dict[str, Any] = {"ready_s": time.perf_counter() - start}
    start = time.perf_counter()
    count = sum(1 for _ in store.items(b"", TIME_INDEX))
    figures["iterate_states_s"] = time.perf_counter() - start
    if count != STATES:
        raise AssertionError(f"iterated {count} case states, expected {STATES}")
    cold = [MARKER + case_id(rng.randrange(n // 100, n)) for _ in range(min(1_000, n))]
    figures["cold_get_hit_us"] = _probe(store, cold, present=True)
    figures["rss"] = memory()
    store.close()
    return figures


def measure(backend: str, n: int, path: Path) -> dict[str, Any]:
    """Both phases in fresh child processes on a fresh directory under ``path``."""
    directory = path / backend
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    figures = {}
    for phase in ("load", "reopen"):
        command = [sys.executable, "-P", __file__, "--child", phase, "--only", backend]
        command += ["--markers", str(n), "--dir", str(directory)]
        done = subprocess.run(command, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{backend} {phase} failed:\n{done.stderr.decode()[-3000:]}")
        figures[phase] = orjson.loads(done.stdout.splitlines()[-1])
    shutil.rmtree(directory, ignore_errors=True)
    return figures


# --- the table --------------------------------------------------------------------------------

Row = tuple[str, Callable[[dict[str, Any]], float], Callable[[float], str]]


def _mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


def _rate(value: float) -> str:
    return f"{value / 1e3:.0f}k/s"


def _us(value: float) -> str:
    return f"{value:.2f} µs"


def _s(value: float) -> str:
    return f"{value:.3f} s"


def _tally_ratio(tally_rate: float) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    def estimate(figures: dict[str, Any], base: dict[str, Any]) -> float:
        def per_case(f: dict[str, Any]) -> float:
            load = f["load"]
            return float(
                load["get_miss_us"] / 1e6
                + 1 / load["write_markers_per_s"]
                + 1 / load["expire_markers_per_s"]
                + 2 / load["write_states_per_s"]
            )

        record = 1 / tally_rate
        extra = (per_case(figures) - per_case(base)) / RECORDS_PER_CASE
        return record / (record + extra)

    return estimate


ROWS: list[Row] = [
    ("write (markers/s)", lambda f: f["load"]["write_markers_per_s"], _rate),
    ("write case states (1 KB, /s)", lambda f: f["load"]["write_states_per_s"], _rate),
    ("get miss", lambda f: f["load"]["get_miss_us"], _us),
    ("get hit", lambda f: f["load"]["get_hit_us"], _us),
    ("expire oldest 1 % (markers/s)", lambda f: f["load"]["expire_markers_per_s"], _rate),
    ("seek oldest after expiry, from start", lambda f: f["load"]["oldest_seek_us"], _us),
    ("seek from the expiry watermark", lambda f: f["load"]["watermark_seek_us"], _us),
    ("RSS loaded", lambda f: f["load"]["rss_loaded"]["rss"], _mb),
    ("  of which anonymous", lambda f: f["load"]["rss_loaded"]["rss_anon"], _mb),
    ("RSS after gets", lambda f: f["load"]["rss_after_gets"]["rss"], _mb),
    ("RSS peak", lambda f: f["load"]["rss_final"]["rss_peak"], _mb),
    ("disk bytes per marker", lambda f: f["load"]["disk_bytes_per_marker"], lambda v: f"{v:.0f}"),
    ("restart: open to first get", lambda f: f["reopen"]["ready_s"], _s),
    ("restart: iterate 10k states", lambda f: f["reopen"]["iterate_states_s"], _s),
    ("restart: cold get hit", lambda f: f["reopen"]["cold_get_hit_us"], _us),
    ("restart: RSS", lambda f: f["reopen"]["rss"]["rss"], _mb),
]


def table(results: dict[str, dict[str, Any]], n: int, tally_rate: float) -> str:
    names = list(results)
    base = results.get("dict")
    header = [f"{n:,} markers", *names]
    rows = [header]
    for label, figure, shown in ROWS:
        row = [label]
        for name in names:
            value = figure(results[name])
            cell = shown(value)
            if base is not None and name != "dict" and figure(base):
                cell += f" ({value / figure(base):.2f}x)"
            row.append(cell)
        rows.append(row)
    if base is not None:
        estimate = _tally_ratio(tally_rate)
        rows.append(
            [f"tally est. at {tally_rate / 1e3:.0f}k rec/s (x dict)"]
            + [f"{estimate(results[name], base):.3f}" for name in names]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/state_backends.py", description=__doc__)
    parser.add_argument("--markers", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1 million markers")
    parser.add_argument("--only", default=",".join(BACKENDS), help="comma-separated backends")
    parser.add_argument("--dir", type=Path, help="where the stores go (default: a temp dir)")
    parser.add_argument("--tally-rate", type=float, default=30_000, help="records/s per worker")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--table", type=Path, help="print the table of an earlier --json file")
    parser.add_argument("--child", choices=("load", "reopen"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = 1_000_000 if args.quick else args.markers
    backends = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}; known: {', '.join(BACKENDS)}")
    if args.table:
        saved = orjson.loads(args.table.read_bytes())
        print(table(saved["backends"], saved["markers"], args.tally_rate))
        return 0
    if args.child:
        phase = load if args.child == "load" else reopen
        print(orjson.dumps(phase(backends[0], n, args.dir)).decode())
        return 0
    if n < 1_000:
        parser.error("--markers must be at least 1000")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        results: dict[str, dict[str, Any]] = {}
        for name in backends:
            print(f"{name}: {n:,} markers ...", file=sys.stderr, flush=True)
            results[name] = measure(name, n, Path(scratch))
            if args.json:  # after each backend, so a long run interrupted keeps what it has
                args.json.write_bytes(orjson.dumps({"markers": n, "backends": results}))
    print(table(results, n, args.tally_rate))
    print(
        f"load average (1 min) at the start {load_before:.1f}, at the end {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
