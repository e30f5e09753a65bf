"""The quick chaos set through the real broker: every rule of the checker must hold.

Each quick scenario starts the demo's processes on fresh topics, sends 250 cases while its
fault strikes (the tally killed twice; one tally worker SIGSTOPped past its session timeout
while a second takes over; rounds of bad input beside the load), and checks every output.
The broker-restart scenario is not here: it stops the broker, which this suite shares.
"""

from __future__ import annotations

import pytest

from ratifier.app.chaos.report import format_details, format_table
from ratifier.app.chaos.runner import RunOptions, run_scenario
from ratifier.app.chaos.scenarios import Scenario, select
from ratifier.core.config import Settings
from ratifier.ops.stack import StackStatus

pytestmark = pytest.mark.integration

QUICK = select(None, quick=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", QUICK, ids=[s.name for s in QUICK])
async def test_quick_chaos_scenario_keeps_every_rule(
    stack: StackStatus, base_settings: Settings, scenario: Scenario
) -> None:
    assert not scenario.restarts_broker
    options = RunOptions(quick=True, engine=base_settings.tally_engine)
    row = await run_scenario(base_settings, scenario, options, progress=print)
    print(format_table([row]))
    assert row.ok, f"\n{format_table([row])}\n{format_details([row])}"
    assert row.faults_applied == scenario.fault_count(quick=True)
    assert row.final_outcomes == row.cases == options.case_count
