"""Benchmarks 1 and 4: tally throughput against the raw relays, and 1 vs 2 tally workers.

K cases (a candidate and five verdicts each) are pre-loaded onto fresh topics; then the
process under test starts and the clock runs until all K decisions are on its output topic.

When does the clock start? At the moment the consumer group is first seen Stable with every
worker assigned (polled 20 times a second), not at spawn: faust's start-up (~several seconds of
imports, topic checks and group joins) is reported separately as ``startup_s``. Decisions already
out at that moment are not counted as work done in the timed span. If the first decision beats
the poll, the first decision's arrival is the start instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import harness, signing
from bench.engines import FAUST, engine_ran
from bench.relay import RAW, RAW_TRANSACTIONAL
from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames
from ratifier.io.testing import read_topics

# Where each relay's figures go in the results.
RELAY_KEYS = {
    RAW: "raw_relay",
    RAW_TRANSACTIONAL: "raw_transactional_relay",
    FAUST: "faust_relay",
}


@dataclass(frozen=True, slots=True)
class Run:
    cases: int
    seconds: float  # assigned -> last decision
    startup_s: float  # spawn -> assigned
    verdicts_per_s: float
    cases_per_s: float


def _figures(cases: int, spawned: float, assigned: float, arrivals: harness.Arrivals) -> Run:
    if assigned < arrivals.first:
        start, done_before = assigned, arrivals.count_at(assigned)
    else:
        start, done_before = arrivals.first, 0
    seconds = max(arrivals.last - start, 1e-6)
    work = cases - done_before
    return Run(
        cases=cases,
        seconds=seconds,
        startup_s=start - spawned,
        verdicts_per_s=work * harness.VERDICTS_PER_CASE / seconds,
        cases_per_s=work / seconds,
    )


async def _assigned_then_done(
    settings: Settings,
    group: str,
    members: int,
    outputs: Sequence[str],
    cases: int,
    timeout_s: float,
) -> tuple[float, harness.Arrivals]:
    """When ``group`` was assigned, and when ``cases`` outputs arrived (counted from the start)."""
    counter = asyncio.create_task(harness.count_records(settings, outputs, cases, timeout_s))
    try:
        assigned = await harness.wait_assigned(settings, group, members, timeout_s)
        return assigned, await counter
    finally:
        if not counter.done():
            counter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counter


async def run_tally(settings: Settings, cases: int, workers: int, timeout_s: float) -> Run:
    names = TopicNames.from_settings(settings)
    async with harness.Tallies(settings, workers) as tallies:
        spawned = await tallies.start()
        assigned, arrivals = await harness.watched(
            tallies,
            _assigned_then_done(
                settings, tallies.group, workers, names.decisions, cases, timeout_s
            ),
        )
    return _figures(cases, spawned, assigned, arrivals)


def relay_out(settings: Settings, engine: str) -> str:
    return f"{settings.topic_prefix}.{engine}-relay-out"


async def run_relay(settings: Settings, cases: int, engine: str, timeout_s: float) -> Run:
    out = relay_out(settings, engine)
    group = f"{settings.topic_prefix}.{engine}-relay"
    async with harness.Relay(settings, group, out, engine) as relay:
        spawned = await relay.start()
        assigned, arrivals = await harness.watched(
            relay, _assigned_then_done(settings, group, 1, [out], cases, timeout_s)
        )
    return _figures(cases, spawned, assigned, arrivals)


async def throughput(
    cases: int, tally_engines: Sequence[str], timeout_s: float, *, signatures: bool = False
) -> dict[str, Any]:
    """Baselines and tallies read the same pre-loaded input (separate consumer groups), in turn.

    Every tally is measured against both raw relays: at-least-once (the least any tally's Kafka
    work costs) and transactional (the same, exactly-once). With the faust engine the faust
    relay gives faust's own ceiling too (bench/relay.py): how much of the gap to the raw loop is
    faust's consumer path rather than the tally's work.

    With ``signatures``, the first engine runs once more on signed verdicts under a policy that
    requires them (bench/signing.py), reported next to its unsigned figure.
    """
    settings = harness.base_settings(topic_prefix=harness.unique_prefix("tp"), partitions=4)
    relays = [RAW, RAW_TRANSACTIONAL, *([FAUST] if FAUST in tally_engines else [])]
    result: dict[str, Any] = {"cases": cases, "engines": {}}
    first, *others = tally_engines
    async with harness.topics_for(settings, extra=[relay_out(settings, r) for r in relays]):
        loaded = await harness.preload(settings, cases)
        result["records"] = loaded.records
        result["preload_records_per_s"] = loaded.records / loaded.seconds
        for relay in relays:
            result[RELAY_KEYS[relay]] = asdict(await run_relay(settings, cases, relay, timeout_s))
        tally_settings = settings.with_overrides(tally_engine=first)
        result["engines"][first] = await _tally(tally_settings, cases, timeout_s)
    # Every engine runs as the tally's one consumer group and writes its one changelog, so a
    # second engine gets a fresh copy of the same input under a prefix of its own.
    for engine in others:
        tally_settings = harness.base_settings(
            topic_prefix=harness.unique_prefix(f"tp{engine[0]}"), partitions=4, tally_engine=engine
        )
        async with harness.topics_for(tally_settings):
            await harness.preload(tally_settings, cases)
            result["engines"][engine] = await _tally(tally_settings, cases, timeout_s)
    if signatures:
        result["signed"] = await _signed_tally(first, cases, timeout_s)
        unsigned = result["engines"][first]["tally"]["verdicts_per_s"]
        result["signed"]["vs_unsigned"] = result["signed"]["tally"]["verdicts_per_s"] / unsigned
    raw = result["raw_relay"]["verdicts_per_s"]
    raw_txn = result["raw_transactional_relay"]["verdicts_per_s"]
    result["raw_transactional_relay_ratio"] = raw_txn / raw
    if FAUST in tally_engines:
        result["faust_relay_ratio"] = result["faust_relay"]["verdicts_per_s"] / raw
    for engine, figures in result["engines"].items():
        rate = figures["tally"]["verdicts_per_s"]
        figures["vs_raw_relay"] = rate / raw
        figures["vs_raw_transactional_relay"] = rate / raw_txn
        if engine == FAUST:
            figures["vs_faust_relay"] = rate / result["faust_relay"]["verdicts_per_s"]
    return result


async def _signed_tally(engine: str, cases: int, timeout_s: float) -> dict[str, Any]:
    """``engine``'s tally on signed verdicts, signatures required, its decisions signed too."""
    keys = signing.signers()
    settings = harness.base_settings(
        topic_prefix=harness.unique_prefix(f"ts{engine[0]}"), partitions=4, tally_engine=engine
    )
    with tempfile.TemporaryDirectory() as folder:
        settings = signing.signed_settings(settings, Path(folder), keys)
        async with harness.topics_for(settings) as names:
            await harness.preload(settings, cases, signers=keys)
            figures = await _tally(settings, cases, timeout_s)
            # Every signed verdict verified: none was set aside (an unsigned or unverifiable
            # one would be, with signatures required), so the figure is of real verification.
            dead_letters = len(await read_topics(settings, [names.deadletter], 1.0))
            if dead_letters:
                raise RuntimeError(
                    f"signed run: {dead_letters} records dead-lettered; the figure would not be "
                    "of verified verdicts (see the tally's log)"
                )
            figures["dead_letters"] = dead_letters
    figures["engine"] = engine
    figures["verification"] = signing.verification_cost()
    return figures


async def _tally(settings: Settings, cases: int, timeout_s: float) -> dict[str, Any]:
    tally = await run_tally(settings, cases, 1, timeout_s)
    ran = await engine_ran(settings, TopicNames.from_settings(settings).decisions)
    return {"engine_ran": ran, "tally": asdict(tally)}


async def scaling(
    cases: int,
    tally_engines: Sequence[str],
    one_worker: dict[str, dict[str, Any]],
    timeout_s: float,
) -> dict[str, Any]:
    """Two tally workers sharing the 4 partitions, against one (reused from benchmark 1).

    ``one_worker`` holds benchmark 1's one-worker run per engine, where it ran.
    """
    result: dict[str, Any] = {"cases": cases, "partitions": 4, "engines": {}}
    for engine in tally_engines:
        runs: dict[int, dict[str, Any]] = {}
        if engine in one_worker:
            runs[1] = one_worker[engine]
        for workers in (1, 2):
            if workers in runs:
                continue
            settings = harness.base_settings(
                topic_prefix=harness.unique_prefix(f"sc{workers}"),
                partitions=4,
                tally_engine=engine,
            )
            async with harness.topics_for(settings):
                await harness.preload(settings, cases)
                runs[workers] = asdict(await run_tally(settings, cases, workers, timeout_s))
        result["engines"][engine] = {
            "workers_1": runs[1],
            "workers_2": runs[2],
            "ratio": runs[2]["verdicts_per_s"] / runs[1]["verdicts_per_s"],
        }
    return result
