"""``bench/state_backends.py`` still runs, for the chosen backend, on 20 000 markers.

The benchmark itself (10 million markers, every backend, ~40 minutes) is run on purpose, never in
the test suite; this keeps its code from rotting. ``measure`` runs both phases in child processes
and checks every answer on the way (each get, the expired count, the states after the restart),
so a wrong store fails here. Only completeness is asserted, never speed.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
LOAD_KEYS = (
    "write_markers_per_s",
    "write_states_per_s",
    "get_miss_us",
    "get_hit_us",
    "expire_markers_per_s",
    "oldest_seek_us",
    "watermark_seek_us",
    "close_s",
    "disk_bytes_per_marker",
)
REOPEN_KEYS = ("ready_s", "iterate_states_s", "cold_get_hit_us")


def _bench() -> ModuleType:
    # Loaded from its file: bench/ is not an installed package (see bench/run.py).
    spec = importlib.util.spec_from_file_location(
        "bench_state_backends", ROOT / "bench" / "state_backends.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _positive(figures: dict[str, object], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = figures.get(key)
        assert isinstance(value, int | float), f"{where}.{key} is {value!r}"
        assert math.isfinite(value), f"{where}.{key} is {value!r}"
        assert value > 0, f"{where}.{key} is {value!r}"


def test_chosen_backend_measures_on_a_small_store(tmp_path: Path) -> None:
    bench = _bench()
    figures = bench.measure(bench.CHOSEN, 20_000, tmp_path)

    _positive(figures["load"], LOAD_KEYS, "load")
    _positive(figures["reopen"], REOPEN_KEYS, "reopen")
    for phase, memory in (
        ("load", figures["load"]["rss_loaded"]),
        ("reopen", figures["reopen"]["rss"]),
    ):
        _positive(memory, ("rss", "rss_anon", "rss_peak"), f"{phase}.rss")
    assert not (tmp_path / bench.CHOSEN).exists(), "the store's directory is left behind"
    rendered = bench.table({bench.CHOSEN: figures}, 20_000, 30_000)
    assert bench.CHOSEN in rendered.splitlines()[0]


def test_rocksdb_store_finds_the_oldest_key_and_reopens(tmp_path: Path) -> None:
    bench = _bench()
    store = bench.RocksStore(tmp_path, bench.rocksdb_options())
    markers = [bench.marker(i, 10) for i in range(10)]
    store.write([pair for key, value, t in markers for pair in ((key, value), (t, b""))], ())
    store.write((), [markers[0][2], markers[0][0]])
    end = bench.TIME_INDEX + b"\xff" * 8

    assert store.keys(bench.TIME_INDEX, end, 2) == [markers[1][2], markers[2][2]]
    assert store.get(markers[0][0]) is None
    store.close()
    reopened = bench.RocksStore(tmp_path, bench.rocksdb_options())
    assert reopened.get(markers[9][0]) == markers[9][1]
    assert [key for key, _ in reopened.items(bench.TIME_INDEX, end)] == [m[2] for m in markers[1:]]
    reopened.close()
