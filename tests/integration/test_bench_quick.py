"""``bench/run.py --quick`` runs end to end and writes well-formed figures.

Only completeness is checked (every key present, every figure a positive number), never speed:
speed depends on the machine and belongs in docs/benchmarks.md.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from ratifier.stack import StackStatus

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

    assert set(results) == {"meta", "throughput", "latency", "memory", "scaling"}
    throughput = results["throughput"]
    ratios = ("ratio", "faust_relay_ratio", "tally_vs_faust_relay")
    _positive(throughput, ("cases", "records", "preload_records_per_s", *ratios), "throughput")
    for side in ("baseline", "faust_relay", "tally"):
        _positive(throughput[side], RUN_KEYS, f"throughput.{side}")

    latency = results["latency"]
    _positive(latency, ("duration_s",), "latency")
    search = latency["saturation"]
    _positive(search, ("saturation_cases_per_s",), "latency.saturation")
    assert search["limited_by"] in {"tally", "load generator", "search ceiling"}
    assert search["steps"], "the saturation search offered nothing"
    for step in search["steps"]:
        _positive(step, LATENCY_KEYS, "latency.saturation.steps")
    assert latency["rates"], "no latency rates measured"
    for row in latency["rates"]:
        _positive(row, ("rate", "p50_ratio", "p99_ratio"), "latency.rates")
        for side in ("baseline", "tally"):
            _positive(row[side], LATENCY_KEYS, f"latency.rates.{side}")

    memory = results["memory"]
    _positive(
        memory["open"], ("open_windows", "rss_idle_mb", "rss_open_mb", "bytes_per_window"), "open"
    )
    pruned = memory["pruned"]
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
        "pruned",
    )
    assert pruned["table_entries_after"] == 0, "decided cases were not pruned from the table"
    assert len(pruned["rss_after_each_wave_mb"]) == pruned["waves"]
    for key in ("after_minus_idle_mb", "growth_after_first_wave_mb"):  # may be zero or negative
        assert isinstance(pruned[key], int | float), f"pruned.{key} is {pruned.get(key)!r}"

    scaling = results["scaling"]
    _positive(scaling, ("cases", "partitions", "ratio"), "scaling")
    for workers in ("workers_1", "workers_2"):
        _positive(scaling[workers], RUN_KEYS, f"scaling.{workers}")
