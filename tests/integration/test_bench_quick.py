"""``bench/run.py --quick`` runs end to end and writes well-formed figures.

Only completeness is checked (every key present, every figure a positive number, for every tally
engine measured and both raw relays), never speed: speed depends on the machine and belongs in
docs/benchmarks.md. ``--quick`` measures the configured engine (``RATIFIER_TALLY_ENGINE``, by
default transactional) to stay near a minute.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ratifier.ops.stack import StackStatus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

RUN_KEYS = ("cases", "seconds", "startup_s", "verdicts_per_s", "cases_per_s")
LATENCY_KEYS = ("rate", "cases", "decided", "achieved_rate", "p50_ms", "p99_ms", "p999_ms")


def _positive(figures: dict[str, object], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = figures.get(key)
        assert isinstance(value, int | float), f"{where}.{key} is {value!r}"
        assert math.isfinite(value), f"{where}.{key} is {value!r}"
        assert value > 0, f"{where}.{key} is {value!r}"


def test_quick_bench_writes_every_figure(stack: StackStatus, tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "throughput" in done.stdout  # the table was printed
    results = orjson.loads(out.read_bytes())

    assert set(results) == {"meta", "throughput", "latency", "memory", "scaling", "validators"}
    for run in results["validators"]["utilisation"]:
        _positive(run, ("concurrency", "utilisation", "useful", "calls_per_s"), "validators")
    assert {run["mode"] for run in results["validators"]["utilisation"]} == {"runtime", "barrier"}
    _positive(results["validators"]["rss"], ("backlog", "rss_idle_mb", "rss_peak_mb"), "rss")
    routing = {f["mode"]: f for f in results["validators"]["routing"]}
    assert routing["runtime"]["other_policy_calls"] == 0
    assert routing["runtime"]["own_policy_calls"] == routing["runtime"]["cases"]
    assert routing["barrier"]["other_policy_calls"] == routing["barrier"]["cases"]
    engines = results["meta"]["engines"]
    assert engines, "no tally engine measured"
    assert set(engines) <= {"transactional", "faust"}

    throughput = results["throughput"]
    _positive(throughput, ("cases", "records", "preload_records_per_s"), "throughput")
    _positive(throughput, ("raw_transactional_relay_ratio",), "throughput")
    relays = ["raw_relay", "raw_transactional_relay"]
    if "faust" in engines:  # faust's own ceiling, beside the faust engine only
        relays.append("faust_relay")
        _positive(throughput, ("faust_relay_ratio",), "throughput")
    for relay in relays:
        _positive(throughput[relay], RUN_KEYS, f"throughput.{relay}")
    assert set(throughput["engines"]) == set(engines)
    for engine, figures in throughput["engines"].items():
        where = f"throughput.engines.{engine}"
        _ran(figures, where)
        _positive(figures["tally"], RUN_KEYS, f"{where}.tally")
        ratios = ["vs_raw_relay", "vs_raw_transactional_relay"]
        _positive(figures, (*ratios, *(["vs_faust_relay"] if engine == "faust" else [])), where)

    latency = results["latency"]["engines"]
    assert set(latency) == set(engines)
    for engine, figures in latency.items():
        where = f"latency.engines.{engine}"
        _ran(figures, where)
        _positive(figures, ("duration_s",), where)
        search = figures["saturation"]
        _positive(search, ("saturation_cases_per_s",), f"{where}.saturation")
        assert search["limited_by"] in {"tally", "load generator", "search ceiling"}
        assert search["steps"], "the saturation search offered nothing"
        for step in search["steps"]:
            _positive(step, LATENCY_KEYS, f"{where}.saturation.steps")
        assert figures["rates"], "no latency rates measured"
        for row in figures["rates"]:
            _positive(row, ("rate", "p50_ratio", "p99_ratio"), f"{where}.rates")
            for side in ("baseline", "tally"):
                _positive(row[side], LATENCY_KEYS, f"{where}.rates.{side}")

    memory = results["memory"]["engines"]
    assert set(memory) == set(engines)
    for engine, figures in memory.items():
        _memory(figures["open"], figures["pruned"], f"memory.engines.{engine}")

    scaling = results["scaling"]
    _positive(scaling, ("cases", "partitions"), "scaling")
    assert set(scaling["engines"]) == set(engines)
    for engine, figures in scaling["engines"].items():
        _positive(figures, ("ratio",), f"scaling.engines.{engine}")
        for workers in ("workers_1", "workers_2"):
            _positive(figures[workers], RUN_KEYS, f"scaling.engines.{engine}.{workers}")


def _ran(figures: dict[str, object], where: str) -> None:
    # Which engine wrote the output (transaction markers or none), whatever was asked for.
    assert figures.get("engine_ran") in {"transactional", "faust"}, f"{where}.engine_ran"


def _memory(opened: dict[str, object], pruned: dict[str, object], where: str) -> None:
    _ran(opened, f"{where}.open")
    _ran(pruned, f"{where}.pruned")
    _positive(
        opened, ("open_windows", "rss_idle_mb", "rss_open_mb", "bytes_per_window"), f"{where}.open"
    )
    _positive(
        pruned,
        (
            "cases",
            "cases_per_s",
            "rss_idle_mb",
            "rss_peak_mb",
            "rss_after_first_wave_mb",
            "rss_after_prune_mb",
        ),
        f"{where}.pruned",
    )
    assert pruned["table_entries_after"] == 0, "decided cases were not pruned from the table"
    assert pruned["finished_markers_after"] == pruned["cases"], "a finished case left no marker"
    waves = pruned["rss_after_each_wave_mb"]
    assert isinstance(waves, list)
    assert len(waves) == pruned["waves"]
    for key in ("after_minus_idle_mb", "growth_after_first_wave_mb"):  # may be zero or negative
        assert isinstance(pruned[key], int | float), f"{where}.pruned.{key} is {pruned.get(key)!r}"


def test_finished_cases_bench_writes_every_figure(stack: StackStatus, tmp_path: Path) -> None:
    out = tmp_path / "finished.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "finished",
            "--only",
            "restart",
            "--markers",
            "2000",
            "--open-cases",
            "20",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ready after a clean stop" in done.stdout  # the table was printed
    restart = orjson.loads(out.read_bytes())["restart"]
    for start in ("empty_disk", "checkpoint", "after_kill", "memory_store"):
        _positive(restart[start], ("ready_s", "rss_mb"), start)
    _positive(restart, ("markers", "open_cases", "disk_bytes_per_marker", "idle_rss_mb"), "restart")
