"""Through the real broker: the tally's local state spares restores. A worker restarted on its
state folder, and a worker keeping partitions through a rebalance, read only the changelog's
tail; a worker on an empty folder reads it whole."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ratifier.core.config import Settings
from ratifier.io.client import Client
from ratifier.io.testing import wait_until, write_policy
from ratifier.ops.fleet import SIMULATED, ProcessSpec
from tests.integration.test_recovery_and_timeouts import start_fleet

pytestmark = pytest.mark.integration

RESTORED = re.compile(r"restored partitions \[([\d, ]*)\]: (\d+) changelog entries \(([^)]*)\)")


def restores(log: Path) -> list[tuple[list[int], int, str]]:
    """Each restore the log reports: partitions, entries read, and how (all / tail) per one."""
    found = []
    for match in RESTORED.finditer(log.read_text(errors="replace")):
        partitions = [int(p) for p in match.group(1).split(",") if p.strip()]
        found.append((partitions, int(match.group(2)), match.group(3)))
    return found


async def test_restart_and_rebalance_read_only_the_changelog_tail(
    settings: Settings, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policies"
    write_policy(policy_dir, "one", ["judge-a"], accepts=1, window_seconds=30, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=policy_dir, tick_interval_s=0.2)
    judge = ProcessSpec.validator("judge-a", SIMULATED, {"error_rate": 0.0, "seed": 1})
    fleet = await start_fleet(tuned, ProcessSpec.tally(), judge)
    log = fleet.log_dir / "tally.log"
    try:
        async with Client(tuned) as client:
            for i in range(8):
                await client.decide(f"answer {i}", policy="one", metadata={"truth": "accept"})
        # First start: every partition restored whole (it was empty).
        [(partitions, _, how)] = restores(log)
        assert sorted(partitions) == [0, 1, 2, 3]
        assert how.count("all") == 4

        # A clean restart on the same state folder: the tail only, and nothing in it.
        await fleet.stop_process("tally")
        await fleet.start(ProcessSpec.tally())
        await fleet.wait_tally_ready(tuned, "tally", 60)
        partitions, entries, how = restores(log)[-1]
        assert sorted(partitions) == [0, 1, 2, 3]
        assert how.count("tail") == 4, how
        assert entries == 0

        # A second worker joins: the first keeps half its partitions and reads nothing for them.
        await fleet.start(ProcessSpec.tally("tally-b"))

        async def rebalanced() -> bool:
            latest = restores(log)[-1][0]
            return len(latest) == 2

        await wait_until(rebalanced, 60, "the first worker set up with half the partitions")
        partitions, entries, how = restores(log)[-1]
        assert how.count("tail") == 2, how
        assert entries == 0
        # The newcomer has a state folder slot of its own, empty: it reads its partitions whole.
        await fleet.wait_tally_ready(tuned, "tally-b", 60)
        newcomer = restores(fleet.log_dir / "tally-b.log")[-1]
        assert "all" in newcomer[2]
        async with Client(tuned) as client:  # both still decide
            outcome = await client.decide("after", policy="one", metadata={"truth": "accept"})
        assert outcome.case_id
    finally:
        await fleet.stop()
