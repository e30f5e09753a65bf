"""Benchmarks 1 and 4: tally throughput against the raw relay, and 1 vs 2 tally workers.

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
from dataclasses import asdict, dataclass

from bench import harness
from bench.relay import ENGINES
from ratifier.config import Settings
from ratifier.topics import TopicNames


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


async def run_tally(settings: Settings, cases: int, workers: int, timeout_s: float) -> Run:
    names = TopicNames.from_settings(settings)
    async with harness.Tallies(settings, workers) as tallies:
        spawned = await tallies.start()
        counter = asyncio.create_task(
            harness.count_records(settings, names.decisions, cases, timeout_s)
        )
        assigned = await harness.wait_assigned(settings, tallies.group, workers, timeout_s)
        arrivals = await counter
    return _figures(cases, spawned, assigned, arrivals)


async def run_relay(settings: Settings, cases: int, engine: str, timeout_s: float) -> Run:
    out = f"{settings.topic_prefix}.{engine}-relay-out"
    group = f"{settings.topic_prefix}.{engine}-relay"
    async with harness.Relay(settings, group, out, engine) as relay:
        spawned = await relay.start()
        counter = asyncio.create_task(harness.count_records(settings, [out], cases, timeout_s))
        assigned = await harness.wait_assigned(settings, group, 1, timeout_s)
        arrivals = await counter
    return _figures(cases, spawned, assigned, arrivals)


async def throughput(cases: int, timeout_s: float) -> dict[str, object]:
    """Baselines and tally read the same pre-loaded topics (separate consumer groups), in turn.

    Besides the raw baseline, the faust relay gives faust's own ceiling (bench/relay.py): how
    much of the gap to the raw loop is faust's consumer path rather than the tally's work.
    """
    settings = harness.base_settings(topic_prefix=harness.unique_prefix("tp"), partitions=4)
    outs = [f"{settings.topic_prefix}.{engine}-relay-out" for engine in ENGINES]
    async with harness.topics_for(settings, extra=outs):
        loaded = await harness.preload(settings, cases)
        baseline = await run_relay(settings, cases, "raw", timeout_s)
        faust_floor = await run_relay(settings, cases, "faust", timeout_s)
        tally = await run_tally(settings, cases, 1, timeout_s)
    return {
        "cases": cases,
        "records": loaded.records,
        "preload_records_per_s": loaded.records / loaded.seconds,
        "baseline": asdict(baseline),
        "faust_relay": asdict(faust_floor),
        "tally": asdict(tally),
        "ratio": tally.verdicts_per_s / baseline.verdicts_per_s,
        "faust_relay_ratio": faust_floor.verdicts_per_s / baseline.verdicts_per_s,
        "tally_vs_faust_relay": tally.verdicts_per_s / faust_floor.verdicts_per_s,
    }


async def scaling(
    cases: int, one_worker: dict[str, object] | None, timeout_s: float
) -> dict[str, object]:
    """Two tally workers sharing the 4 partitions, against one (reused from benchmark 1)."""
    runs: dict[str, Run] = {}
    for workers in (1, 2) if one_worker is None else (2,):
        settings = harness.base_settings(
            topic_prefix=harness.unique_prefix(f"sc{workers}"), partitions=4
        )
        async with harness.topics_for(settings):
            await harness.preload(settings, cases)
            runs[str(workers)] = await run_tally(settings, cases, workers, timeout_s)
    single = one_worker if one_worker is not None else asdict(runs["1"])
    double = asdict(runs["2"])
    single_rate = single["verdicts_per_s"]
    assert isinstance(single_rate, float)
    return {
        "cases": cases,
        "partitions": 4,
        "workers_1": single,
        "workers_2": double,
        "ratio": double["verdicts_per_s"] / single_rate,
    }
