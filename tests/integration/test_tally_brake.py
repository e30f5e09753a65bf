"""Through the real broker: the poison brake on the transactional tally. A run of records it
cannot read stops it with one line and commits nothing past the last good transaction; once
restarted (the "fix"), every record is dead-lettered exactly once and decisions go on."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.core.models import DeadLetter, DeadLetterReason, PassDecision
from ratifier.core.topics import TopicNames
from ratifier.io.client import Client
from ratifier.io.kafka import make_producer
from ratifier.io.testing import read_records, wait_until, write_policy
from ratifier.ops.fleet import SIMULATED, ProcessSpec
from ratifier.schemas import codec
from tests.integration.test_recovery_and_timeouts import start_fleet

pytestmark = pytest.mark.integration

GARBAGE = 20
LIMIT = 5  # RATIFIER_POISON_MAX_CONSECUTIVE for the first tally


async def test_unreadable_input_stops_the_tally_and_nothing_is_lost_or_doubled(
    settings: Settings, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "pair", ["judge-a"], accepts=1, window_seconds=30, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)
    names = TopicNames.from_settings(tuned)
    braked = dataclasses.replace(
        ProcessSpec.tally(), env=(("RATIFIER_POISON_MAX_CONSECUTIVE", str(LIMIT)),)
    )
    judge = ProcessSpec.validator("judge-a", SIMULATED, {"error_rate": 0.0, "seed": 1})
    fleet = await start_fleet(tuned, braked, judge)
    try:
        async with Client(tuned) as client:
            first = await client.decide("before", policy="pair", metadata={"truth": "accept"})
        producer = make_producer(tuned, client_id="it-brake")
        await producer.start()
        try:
            for n in range(GARBAGE):
                await producer.send_and_wait(names.candidates, b"\x00garbage", key=b"junk-%d" % n)
        finally:
            await producer.stop()

        async def stopped() -> bool:
            return "tally" in fleet.exited()

        await wait_until(stopped, 60, "the braked tally to stop")
        log = (fleet.log_dir / "tally.log").read_text(errors="replace")
        assert fleet.exited()["tally"] != 0
        assert log.count("stopping:") == 1, log
        assert f"{LIMIT + 1} invalid records in a row" in log
        assert "Traceback" not in log

        await fleet.start(ProcessSpec.tally())  # default limits: the "fix"
        async with Client(tuned) as client:
            second = await client.decide("after", policy="pair", metadata={"truth": "accept"})
        letters = [
            codec.decode_as(r.value or b"", DeadLetter)
            for r in await read_records(tuned, [names.deadletter], 2.0)
        ]
    finally:
        await fleet.stop()
    assert isinstance(first, PassDecision)
    assert isinstance(second, PassDecision)
    malformed = Counter(
        (d.partition, d.offset) for d in letters if d.reason is DeadLetterReason.MALFORMED
    )
    # Every garbage record dead-lettered once: none lost with the stop, none twice after it.
    assert len(malformed) == GARBAGE
    assert set(malformed.values()) == {1}
