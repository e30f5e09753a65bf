"""Benchmark 3: tally resident memory (psutil RSS of the worker process).

* open windows: RSS idle, then with N candidates whose windows stay open (a bench policy with
  a 10-hour window, no verdicts); bytes per open window = the difference / N.
* decided and pruned: a fresh tally with a short retention decides and prunes W waves of M
  cases; RSS after each wave (every input committed, every case past its retention) is
  compared with the tally's own idle figure, and the peak on the way is reported. Growth from
  the first wave to the last is what a leak would show.

"Consumed" means the tally's group has committed every input offset (the faust engine commits
once a second, the transactional one with each transaction), then the process is left a moment
to settle before RSS is read. Each engine (``Settings.tally_engine``) gets its own fresh tally
and topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from bench import harness
from bench.engines import engine_ran
from ratifier.core.topics import TopicNames
from ratifier.io.testing import write_policy
from ratifier.streams.rules.finished import is_marker_key

SETTLE_S = 2.0
PRUNE_RETENTION_MS = 500
VERDICTS = harness.VERDICTS_PER_CASE


async def open_windows(engine: str, count: int, timeout_s: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ratifier-bench-policy-") as tmp:
        # The built-in default policy's voters and red team, with windows that never close.
        policy_dir = Path(tmp)
        write_policy(
            policy_dir,
            "default",
            harness.VALIDATORS[:-1],
            red_team=harness.VALIDATORS[-1:],
            accepts=3,
            window_seconds=36_000,
            max_attempts=3,
        )
        settings = harness.base_settings(
            topic_prefix=harness.unique_prefix("mo"), policy_dir=policy_dir, tally_engine=engine
        )
        names = TopicNames.from_settings(settings)
        async with harness.topics_for(settings), harness.Tallies(settings) as tallies:
            await tallies.start()
            await harness.watched(
                tallies, harness.wait_assigned(settings, tallies.group, 1, timeout_s)
            )
            await asyncio.sleep(SETTLE_S)
            idle = tallies.rss()
            await harness.preload(settings, count, verdicts=False)
            await harness.watched(
                tallies,
                harness.wait_committed(settings, tallies.group, names.candidates, count, timeout_s),
            )
            await asyncio.sleep(SETTLE_S)
            loaded = tallies.rss()
            # No decisions here: each open window's state write on the changelog tells.
            ran = await engine_ran(settings, [names.tally_changelog])
    return {
        "engine_ran": ran,
        "open_windows": count,
        "rss_idle_mb": idle / 2**20,
        "rss_open_mb": loaded / 2**20,
        "bytes_per_window": (loaded - idle) / count,
    }


async def pruned(engine: str, count: int, waves: int, timeout_s: float) -> dict[str, object]:
    settings = harness.base_settings(
        topic_prefix=harness.unique_prefix("mp"),
        tally_engine=engine,
        retention_ms=PRUNE_RETENTION_MS,
        tick_interval_s=0.2,
    )
    names = TopicNames.from_settings(settings)
    async with harness.topics_for(settings), harness.Tallies(settings) as tallies:
        await tallies.start()
        await harness.watched(tallies, harness.wait_assigned(settings, tallies.group, 1, timeout_s))
        await asyncio.sleep(SETTLE_S)
        idle = peak = tallies.rss()

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, tallies.rss())
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        after: list[int] = []
        try:
            began = time.perf_counter()
            # Wave after wave: RSS after the first shows the allocator's high-water mark; later
            # waves must not add to it, or something is kept per case (a leak).
            for wave in range(waves):
                total = count * (wave + 1)
                counter = asyncio.create_task(
                    harness.count_records(settings, names.decisions, total, timeout_s)
                )
                await harness.preload(settings, count, tag=f"p{wave}-")
                await harness.watched(tallies, counter)
                # Decided is not done: the tally still reads the verdicts that came after each
                # pass (late ones are recorded) and prunes each case a retention time later.
                await harness.watched(
                    tallies,
                    harness.wait_committed(
                        settings, tallies.group, names.verdicts, total * VERDICTS, timeout_s
                    ),
                )
                await asyncio.sleep(PRUNE_RETENTION_MS / 1000 + SETTLE_S)
                after.append(tallies.rss())
            seconds = time.perf_counter() - began
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        # The table itself, as a restarting worker would rebuild it: every case's state must be
        # gone; what stays is each finished case's 27-byte marker (streams/finished.py).
        live, markers = await harness.live_keys(
            settings, names.tally_changelog, marked=is_marker_key
        )
        ran = await engine_ran(settings, names.decisions)
    return {
        "engine_ran": ran,
        "table_entries_after": live,
        "finished_markers_after": markers,
        "cases": count * waves,
        "waves": waves,
        "cases_per_s": count * waves / seconds,
        "rss_idle_mb": idle / 2**20,
        "rss_peak_mb": peak / 2**20,
        "rss_after_each_wave_mb": [rss / 2**20 for rss in after],
        "rss_after_first_wave_mb": after[0] / 2**20,
        "rss_after_prune_mb": after[-1] / 2**20,
        "after_minus_idle_mb": (after[-1] - idle) / 2**20,
        "growth_after_first_wave_mb": (after[-1] - after[0]) / 2**20,
    }
