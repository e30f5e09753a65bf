"""The catalogue: each scenario's fault pattern, how often it strikes, and the load's size."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ratifier.app.chaos.bad_input import BadInput
from ratifier.app.chaos.faults import (
    OUTCOMES,
    SIM_A,
    BadInputRounds,
    BrakeTrip,
    BrokerRestart,
    BrokerStallRebalance,
    ClusterBounce,
    Fault,
    LateReplay,
    OffsetRewind,
    ProcessKill,
    TallyPause,
    TallyScale,
)
from ratifier.app.chaos.observe import Observer
from ratifier.core.config import Settings
from ratifier.ops.fleet import Fleet

FULL_CASES = 1500
QUICK_CASES = 250
# Scenarios about finished cases prune their states soon, so replays meet the markers alone.
SHORT_RETENTION_MS = 2_000


@dataclass(frozen=True, slots=True)
class FaultContext:
    settings: Settings
    fleet: Fleet
    brokers: int
    bad_input: BadInput
    observer: Observer


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    make_fault: Callable[[FaultContext], Fault]
    faults: int  # in the full suite
    quick_faults: int = 0  # 0: not in the default --quick set (one fault when named)
    bad_input: bool = False  # also re-send and send late verdicts beside the load
    restarts_broker: bool = False
    # The scenario reads inputs again on purpose: CASE_CLOSED dead letters of the load's own
    # records, naming the case's final decision, are expected (checker.check, replayed_inputs).
    replays_inputs: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)  # overrides for its processes
    # Also run the outcomes writer, and check one outcome per passed case (checker.check).
    outcomes: bool = False
    policy: str | None = None  # the tally's policy (policies.py); None: the run's --policy

    def fault_count(self, quick: bool) -> int:
        return (self.quick_faults or 1) if quick else self.faults


def _broker_fault(ctx: FaultContext) -> Fault:
    if ctx.brokers == 1:
        return BrokerRestart(ctx.settings, ctx.fleet)
    return ClusterBounce(ctx.settings, ctx.fleet)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "tally-kill",
        "kill -9 the tally, restarted at once",
        lambda ctx: ProcessKill(ctx.settings, ctx.fleet),
        faults=10,
        quick_faults=2,
    ),
    Scenario(
        "tally-scale",
        "1 -> 2 -> 1 tally workers (start a second, wait for both, stop the older)",
        lambda ctx: TallyScale(ctx.settings, ctx.fleet),
        faults=5,
    ),
    Scenario(
        "tally-pause",
        "two tally workers; SIGSTOP one past its session timeout, then SIGCONT",
        lambda ctx: TallyPause(ctx.settings, ctx.fleet),
        faults=3,
        quick_faults=1,
    ),
    Scenario(
        "broker-restart",
        "single node: stop and start the broker; cluster: bounce a broker, the controller, "
        "an input partition's leader",
        _broker_fault,
        faults=3,
        restarts_broker=True,
    ),
    Scenario(
        "validator-kill",
        "kill -9 one instance of sim-a (two instances), restarted at once",
        lambda ctx: ProcessKill(
            ctx.settings,
            ctx.fleet,
            (f"validator-{SIM_A}-0", f"validator-{SIM_A}-1"),
            "validator-kill",
        ),
        faults=5,
    ),
    Scenario(
        "bad-input",
        "rounds of malformed, unknown, orphan and oversized records; 20% re-sent verdicts, "
        "late verdicts and forged signed verdicts throughout",
        lambda ctx: BadInputRounds(ctx.bad_input),
        faults=10,
        quick_faults=3,
        bad_input=True,
    ),
    Scenario(
        "debate-tally-kill",
        "kill -9 the tally under a [debate] policy (2 to 3 rounds), restarted at once "
        "(transactional engine only)",
        lambda ctx: ProcessKill(ctx.settings, ctx.fleet),
        faults=10,
        policy="debate",
    ),
    Scenario(
        "late-replay",
        "resubmit ~10% of the finished cases with other content after their state was pruned "
        "(retention 2 s)",
        lambda ctx: LateReplay(ctx.settings, ctx.fleet, ctx.bad_input, ctx.observer),
        faults=5,
        quick_faults=2,
        settings={"retention_ms": SHORT_RETENTION_MS},
    ),
    Scenario(
        "offset-rewind",
        "stop the tally under load, rewind its consumer group to offset 0, restart it",
        lambda ctx: OffsetRewind(ctx.settings, ctx.fleet),
        faults=3,
        quick_faults=1,
        replays_inputs=True,
        settings={"retention_ms": SHORT_RETENTION_MS},
    ),
    Scenario(
        "outcomes-kill",
        "kill -9 the outcomes writer under load, restarted at once; every passed case must get "
        "exactly one outcome",
        lambda ctx: ProcessKill(ctx.settings, ctx.fleet, (OUTCOMES,), "outcomes-kill"),
        faults=5,
        quick_faults=2,
        outcomes=True,
    ),
    Scenario(
        "brake-trip",
        "a flood of 200 unreadable candidates trips the tally's poison brake (limit 20 in a "
        "row); the tally is started with the brake off to dead-letter it, then with it on "
        "(transactional engine only)",
        lambda ctx: BrakeTrip(ctx.settings, ctx.fleet, ctx.bad_input, ctx.observer),
        faults=3,
    ),
    Scenario(
        "broker-stall",
        "SIGSTOP the broker past the session timeout while a tally worker joins or leaves",
        lambda ctx: BrokerStallRebalance(ctx.settings, ctx.fleet, brokers=ctx.brokers),
        faults=4,
        restarts_broker=True,
    ),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def select(names: list[str] | None, quick: bool) -> list[Scenario]:
    """The named scenarios; by default all of them, or with ``quick`` the quick set."""
    if names:
        return [BY_NAME[name] for name in names]
    return [s for s in SCENARIOS if s.quick_faults or not quick]
