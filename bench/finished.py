"""Finished cases (docs/benchmarks.md, "Finished cases"): what remembering them costs.

Two measurements against the real broker, each with its baseline in the same run:

* ``restart``: a tally changelog holding N finished-case markers and M open cases (written
  straight to the changelog, as a week of a busy stream would leave it). A transactional tally
  on the RocksDB store starts on it three times: from an empty disk (the whole changelog read),
  after a clean stop (its local checkpoint: the tail only), and after kill -9. Reported: seconds
  from spawn to ready, the process's RSS once ready, bytes per marker on disk and in RSS. The
  in-memory store restores the same changelog once, for its RSS per marker.
* ``stores``: the tally's throughput (benchmark 1's pre-loaded input) and decision p99 at a fixed
  offered rate (benchmark 2's rig), RocksDB store against the in-memory store, rounds
  interleaved, as ratios.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench import harness, latency
from ratifier.core.config import Settings
from ratifier.core.models import now_ms
from ratifier.core.policy import load_policies
from ratifier.core.topics import TopicNames
from ratifier.io.admin import ensure_topics, set_group_offsets
from ratifier.io.kafka import make_producer
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.streams.engines.transactional.preflight import CHANGELOG_CONFIGS
from ratifier.streams.rules import tally
from ratifier.streams.rules.finished import Finished, encode_marker, marker_key
from ratifier.streams.rules.state import encode_state
from ratifier.streams.store import pack_entry

PARTITIONS = 4
STORES = ("memory", "rocksdb")
TALLY = "tally"
_SEND_CHUNK = 20_000


async def write_changelog(settings: Settings, markers: int, open_cases: int) -> float:
    """Fill the tally's changelog: ``markers`` finished cases and ``open_cases`` open windows
    (real states of the default policy), spread over the partitions. Returns seconds taken."""
    names = TopicNames.from_settings(settings)
    policy = load_policies()["default"]
    rules = tally.TallySettings(hold_ms=30_000, retention_ms=60_000, retry_wait_ms=600_000)
    producer = make_producer(
        settings, client_id="bench-changelog", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    decided_at = now_ms()
    # Random ids, as real case and decision ids are (sequential ones compress to nothing).
    rng = random.Random(19)
    try:
        pending: list[asyncio.Future[Any]] = []
        for i in range(markers):
            case = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
            decision = str(uuid.UUID(int=rng.getrandbits(128), version=5))
            marker = encode_marker(Finished(decision, "pass", 1, decided_at))
            pending.append(
                await producer.send(
                    names.tally_changelog, marker, key=marker_key(case), partition=i % PARTITIONS
                )
            )
            if len(pending) >= _SEND_CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
        for i in range(open_cases):
            cand = harness.candidate(f"open-{i:08d}")
            step = tally.on_candidate(None, cand, policy, decided_at, rules)
            assert step.state is not None
            entry = pack_entry(i % PARTITIONS, step.due_ms, encode_state(step.state))
            pending.append(
                await producer.send(
                    names.tally_changelog,
                    entry,
                    key=cand.case_id.encode(),
                    partition=i % PARTITIONS,
                )
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def _start_until_ready(fleet: Fleet, settings: Settings, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    await fleet.start(ProcessSpec.tally(TALLY))
    await fleet.wait_tally_ready(settings, TALLY, timeout_s)
    ready_s = time.perf_counter() - started
    pid = fleet.pid_of(TALLY)
    return {"ready_s": ready_s, "rss_mb": psutil.Process(pid).memory_info().rss / 1e6}


async def restart(markers: int, open_cases: int, timeout_s: float) -> dict[str, Any]:
    settings = harness.base_settings(
        topic_prefix=harness.unique_prefix("fin"), partitions=PARTITIONS, tally_store="rocksdb"
    )
    names = TopicNames.from_settings(settings)
    result: dict[str, Any] = {"markers": markers, "open_cases": open_cases}
    async with harness.topics_for(settings):
        await ensure_topics(settings, [names.tally_changelog], configs=CHANGELOG_CONFIGS)
        result["write_s"] = await write_changelog(settings, markers, open_cases)
        # The group has read nothing: offset 0, committed (a group with none and a changelog
        # with state refuses to start: engine.UnsafeStart).
        await set_group_offsets(settings, names.tally_app_id, (names.candidates, names.verdicts))
        state_dir = settings.state_dir / "bench-finished" / settings.topic_prefix
        disk = settings.with_overrides(state_dir=state_dir)
        fleet = Fleet(Fleet.env_for(disk), state_dir / "logs")
        try:
            result["empty_disk"] = await _start_until_ready(fleet, disk, timeout_s)
            await fleet.stop_process(TALLY)
            result["checkpoint"] = await _start_until_ready(fleet, disk, timeout_s)
            await fleet.kill_process(TALLY)
            result["after_kill"] = await _start_until_ready(fleet, disk, timeout_s)
            await fleet.stop_process(TALLY)
        finally:
            await fleet.stop()
        slot_bytes = _folder_bytes(state_dir / "tally")
        result["disk_bytes_per_marker"] = slot_bytes / max(markers, 1)
        memory = settings.with_overrides(state_dir=state_dir / "memory-store", tally_store="memory")
        fleet = Fleet(Fleet.env_for(memory), state_dir / "logs-memory")
        try:
            result["memory_store"] = await _start_until_ready(fleet, memory, timeout_s)
        finally:
            await fleet.stop()
        shutil.rmtree(state_dir / "tally", ignore_errors=True)  # the logs stay
        shutil.rmtree(state_dir / "memory-store" / "tally", ignore_errors=True)
    return result


async def _idle_rss(timeout_s: float) -> float:
    """A tally's RSS with nothing to restore: the baseline the per-marker figures subtract."""
    figures = await restart(0, 0, timeout_s)
    return float(figures["empty_disk"]["rss_mb"])


async def finished(markers: int, open_cases: int, timeout_s: float) -> dict[str, Any]:
    idle_mb = await _idle_rss(timeout_s)
    result = await restart(markers, open_cases, timeout_s)
    result["idle_rss_mb"] = idle_mb
    per = max(markers, 1)
    result["rocksdb_rss_bytes_per_marker"] = (result["checkpoint"]["rss_mb"] - idle_mb) * 1e6 / per
    result["memory_rss_bytes_per_marker"] = (result["memory_store"]["rss_mb"] - idle_mb) * 1e6 / per
    return result


async def _decision_rate(settings: Settings, cases: int, timeout_s: float) -> float:
    """Verdicts per second from the tally's first decision to its last: the restore before the
    first (1M markers: seconds, and longer for the memory store's whole changelog than for a
    disk store's) is a restart's cost, measured by ``restart``, not the stores' throughput."""
    names = TopicNames.from_settings(settings)
    async with harness.Tallies(settings, 1) as tallies:
        await tallies.start()
        arrivals = await harness.watched(
            tallies, harness.count_records(settings, names.decisions, cases, timeout_s)
        )
    done_at_first = arrivals.count_at(arrivals.first)
    seconds = max(arrivals.last - arrivals.first, 1e-6)
    return (cases - done_at_first) * harness.VERDICTS_PER_CASE / seconds


async def stores(
    cases: int, rounds: int, rate: float, duration_s: float, timeout_s: float, markers: int
) -> dict[str, Any]:
    """Throughput and p99 of each store, rounds interleaved; RocksDB's as a ratio to memory's.

    The throughput runs start on a changelog already holding ``markers`` finished cases, so
    every new case's marker lookup is a miss among that many (the disk store's usual read).
    """
    runs: dict[str, dict[str, list[float]]] = {
        s: {"verdicts_per_s": [], "p99_ms": []} for s in STORES
    }
    for _ in range(rounds):
        for store in STORES:
            settings = harness.base_settings(
                topic_prefix=harness.unique_prefix(f"st{store[0]}"),
                partitions=PARTITIONS,
                tally_store=store,
            )
            names = TopicNames.from_settings(settings)
            async with harness.topics_for(settings):
                await ensure_topics(settings, [names.tally_changelog], configs=CHANGELOG_CONFIGS)
                await write_changelog(settings, markers, 0)
                await set_group_offsets(
                    settings, names.tally_app_id, (names.candidates, names.verdicts)
                )
                await harness.preload(settings, cases)
                rate_now = await _decision_rate(settings, cases, timeout_s)
            runs[store]["verdicts_per_s"].append(rate_now)
            settings = harness.base_settings(
                topic_prefix=harness.unique_prefix(f"sl{store[0]}"), tally_store=store
            )
            async with latency.rig(settings, "tally", timeout_s) as the_rig:
                step = await the_rig.offer("m", max(1, int(rate * duration_s)), rate)
            runs[store]["p99_ms"].append(step.p99_ms)
    medians = {
        store: {name: statistics.median(values) for name, values in figures.items()}
        for store, figures in runs.items()
    }
    return {
        "cases": cases,
        "markers_held": markers,
        "rounds": rounds,
        "rate": rate,
        "runs": runs,
        "median": medians,
        "throughput_ratio": medians["rocksdb"]["verdicts_per_s"]
        / medians["memory"]["verdicts_per_s"],
        "p99_ratio": medians["rocksdb"]["p99_ms"] / medians["memory"]["p99_ms"],
    }


def as_rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's lines: (what, figure)."""
    rows: list[tuple[str, str]] = []
    if "restart" in figures:
        r = figures["restart"]
        rows += [
            (f"changelog: {r['markers']:,} markers + {r['open_cases']:,} open cases", ""),
            ("  ready from an empty disk (whole changelog)", f"{r['empty_disk']['ready_s']:.1f} s"),
            (
                "  ready after a clean stop (local checkpoint)",
                f"{r['checkpoint']['ready_s']:.1f} s",
            ),
            ("  ready after kill -9 (checkpoint)", f"{r['after_kill']['ready_s']:.1f} s"),
            ("  RSS once ready (rocksdb store)", f"{r['checkpoint']['rss_mb']:.0f} MB"),
            ("  RSS once ready (memory store)", f"{r['memory_store']['rss_mb']:.0f} MB"),
            ("  idle tally RSS (nothing restored)", f"{r['idle_rss_mb']:.0f} MB"),
            ("  bytes per marker on disk (rocksdb)", f"{r['disk_bytes_per_marker']:.0f}"),
            ("  RSS bytes per marker (rocksdb)", f"{r['rocksdb_rss_bytes_per_marker']:.1f}"),
            ("  RSS bytes per marker (memory)", f"{r['memory_rss_bytes_per_marker']:.0f}"),
        ]
    if "stores" in figures:
        s = figures["stores"]
        median = s["median"]
        rows += [
            (
                f"stores: {s['cases']:,} cases on {s['markers_held']:,} markers x "
                f"{s['rounds']} rounds, p99 at {s['rate']:g}/s",
                "",
            ),
            (
                "  throughput rocksdb / memory",
                f"{median['rocksdb']['verdicts_per_s']:,.0f} / "
                f"{median['memory']['verdicts_per_s']:,.0f} verdicts/s = "
                f"{s['throughput_ratio']:.2f}x",
            ),
            (
                "  decision p99 rocksdb / memory",
                f"{median['rocksdb']['p99_ms']:.1f} / {median['memory']['p99_ms']:.1f} ms = "
                f"{s['p99_ratio']:.2f}x",
            ),
        ]
    return rows


def main(
    only: list[str],
    markers: int,
    open_cases: int,
    cases: int,
    rounds: int,
    rate: float,
    duration_s: float,
    timeout_s: float,
    out: Path | None,
    stores_markers: int = 1_000_000,
) -> int:
    figures: dict[str, Any] = {}
    if "restart" in only:
        figures["restart"] = asyncio.run(finished(markers, open_cases, timeout_s))
    if "stores" in only:
        figures["stores"] = asyncio.run(
            stores(cases, rounds, rate, duration_s, timeout_s, stores_markers)
        )
    width = max((len(what) for what, _ in as_rows(figures)), default=0)
    for what, figure in as_rows(figures):
        print(f"{what.ljust(width)}  {figure}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return 0
