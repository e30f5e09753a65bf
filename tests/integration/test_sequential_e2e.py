"""Sequential consensus through the broker: a first wave of three validators judges at once, a
second wave of two waits and skips attempts the tally has decided meanwhile (docs/validators.md,
"Waves"). Every case still ends in one final outcome, with fewer validator calls."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.models import EscalationPacket, PassDecision
from ratifier.io.client import Client
from ratifier.io.testing import wait_until, write_policy
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.validators.builtin.simulated import SimulatedValidator
from ratifier.validators.runtime import ValidatorWorker

CASES = 60
WAVES = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.5, "e": 1.5}


@pytest.mark.timeout(300)
async def test_second_wave_skips_decided_attempts(settings: Settings, tmp_path: Path) -> None:
    write_policy(tmp_path, "seq", list(WAVES), accepts=3, window_seconds=20, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path, tick_interval_s=0.2)
    fleet = Fleet(Fleet.env_for(tuned), tuned.state_dir / "it-sequential" / tuned.topic_prefix)
    workers = [
        ValidatorWorker(
            tuned,
            validator_id,
            SimulatedValidator(error_rate=0.1, seed=index),
            delay_s=delay,
            skip_decided=delay > 0,
        )
        for index, (validator_id, delay) in enumerate(WAVES.items())
    ]
    stop = asyncio.Event()
    finals: dict[str, PassDecision | EscalationPacket] = {}
    try:
        await fleet.start(ProcessSpec.tally())
        await fleet.wait_ready(tuned)
        for worker in workers:
            await worker.start()
        tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
        async with Client(tuned) as client:

            async def collect() -> None:
                async for decision in client.decisions(from_beginning=True):
                    if isinstance(decision, PassDecision | EscalationPacket):
                        finals[decision.case_id] = decision

            reader = asyncio.create_task(collect())
            # The wave-2 validators' decision readers start at the end: wait until they are
            # positioned, or decisions published before then would never reach them.
            readers = [w.decided for w in workers if w.decided is not None]
            assert readers

            async def positioned() -> bool:
                return all([await r.positioned() for r in readers])

            await wait_until(positioned, 30, "the decision readers positioned")
            rng = random.Random(3)
            for _ in range(CASES):
                truth = "accept" if rng.random() < 0.7 else "reject"
                await client.send(
                    client.candidate("an answer", policy="seq", metadata={"truth": truth})
                )

            async def all_final() -> bool:
                assert not fleet.exited(), f"tally died ({fleet.log_dir})"
                return len(finals) >= CASES

            await wait_until(all_final, 60, "a final outcome for every case")

            async def all_handled() -> bool:  # the second wave finishes what it started
                return sum(w.judged + w.skipped_decided for w in workers) >= len(WAVES) * CASES

            await wait_until(all_handled, 30, "every candidate judged or skipped by every wave")
            reader.cancel()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        stop.set()
        for worker in workers:
            await worker.stop()
        await fleet.stop()

    assert len(finals) == CASES
    calls = sum(worker.judged for worker in workers)
    parallel = len(WAVES) * CASES  # every validator on every (single) attempt
    skipped = {w.validator_id: w.skipped_decided for w in workers}
    print(f"validator calls: {calls} sequential vs {parallel} parallel; skipped: {skipped}")
    assert calls + sum(skipped.values()) == parallel  # each candidate judged or skipped, once
    assert skipped["a"] == skipped["b"] == skipped["c"] == 0  # the first wave never waits
    assert skipped["d"] > CASES // 2  # most attempts are decided by the first wave
    assert calls < parallel
