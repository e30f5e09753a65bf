"""Runs scenarios: fresh topics, the demo's processes, load and faults, settle, check."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ratifier.app.chaos.bad_input import POLICY_VALIDATORS, BadInput, following
from ratifier.app.chaos.checker import check, read_outputs
from ratifier.app.chaos.forged import Forger
from ratifier.app.chaos.load import Load, LoadGate
from ratifier.app.chaos.observe import Observer
from ratifier.app.chaos.policies import (
    debating,
    default_policy_text,
    governed,
    install_policy,
)
from ratifier.app.chaos.report import ScenarioRow
from ratifier.app.chaos.scenarios import FULL_CASES, QUICK_CASES, FaultContext, Scenario
from ratifier.app.demo.runner import demo_processes
from ratifier.core.config import Settings
from ratifier.core.polling import in_background
from ratifier.io.admin import admin_client, delete_topics, ensure_topics
from ratifier.io.client import Client
from ratifier.ops.fleet import Fleet, ProcessSpec

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
QUIET_S = 5.0  # no new output for this long: the pipeline is done
START_TIMEOUT_S = 120.0  # the demo's eight processes starting on a busy 2-core machine


@dataclass(frozen=True, slots=True)
class RunOptions:
    quick: bool = False
    cases: int | None = None  # default: FULL_CASES, or QUICK_CASES with quick
    engine: str = "transactional"
    brokers: int = 1
    rate_per_s: float = 30.0  # cases sent per second while a chunk of the load goes out
    settle_timeout_s: float | None = None  # after the load; default 300 s, 120 s with quick
    keep_topics: bool = False
    policy: str = "default"  # or "governed" (policies.py)

    @property
    def case_count(self) -> int:
        if self.cases is not None:
            return self.cases
        return QUICK_CASES if self.quick else FULL_CASES

    @property
    def settle_timeout(self) -> float:
        if self.settle_timeout_s is not None:
            return self.settle_timeout_s
        return 120.0 if self.quick else 300.0


def run_settings(base: Settings, scenario: Scenario, options: RunOptions) -> Settings:
    prefix = f"chaos-{scenario.name}-{uuid.uuid4().hex[:8]}"
    settings = base.with_overrides(
        topic_prefix=prefix, tally_engine=options.engine, **scenario.settings
    )
    if options.brokers == 3:
        from ratifier.ops.stack.cluster import Cluster

        settings = Cluster.of(settings).settings  # every node's address, replication 3
    return settings


async def run_suite(
    base: Settings, scenarios: Sequence[Scenario], options: RunOptions, progress: Progress = print
) -> list[ScenarioRow]:
    rows = []
    for scenario in scenarios:
        progress(f"== {scenario.name}: {scenario.summary}")
        row = await run_scenario(base, scenario, options, progress)
        progress(f"== {scenario.name}: {'ok' if row.ok else 'FAILED'} in {row.seconds:.0f}s")
        rows.append(row)
    return rows


async def run_scenario(
    base: Settings, scenario: Scenario, options: RunOptions, progress: Progress = print
) -> ScenarioRow:
    started = time.monotonic()
    settings = run_settings(base, scenario, options)
    forger = Forger(POLICY_VALIDATORS) if scenario.bad_input else None
    # With forgeries, the policy lists the validators' keys (forged.py); governed adds state.
    text = forger.policy_text() if forger is not None else default_policy_text()
    policy = scenario.policy or options.policy
    if policy == "governed":
        text = governed(text)
    elif policy == "debate":
        text = debating(text)
    if forger is not None or policy != "default":
        folder = settings.state_dir / "chaos" / settings.topic_prefix / "policies"
        settings = install_policy(settings, folder, text)
    fleet = Fleet(Fleet.env_for(settings), settings.state_dir / "chaos" / settings.topic_prefix)
    faults = scenario.fault_count(options.quick)
    applied: list[str] = []
    notes: list[str] = []
    progress(f"   topics {settings.topic_prefix}.*, logs in {fleet.log_dir}")
    try:
        await ensure_topics(settings)
        async with Observer(settings) as observer, Client(settings, producer="chaos") as client:
            gate = LoadGate(faults)
            load = Load(client, options.case_count, options.rate_per_s, gate)
            bad = BadInput(client, lambda: load.case_set, forger=forger)
            await bad.start()
            try:
                outcomes = [ProcessSpec.outcomes()] if scenario.outcomes else []
                await fleet.start(*demo_processes(), *outcomes)
                await fleet.wait_ready(settings, START_TIMEOUT_S)
                context = FaultContext(settings, fleet, options.brokers, bad, observer)
                fault = scenario.make_fault(context)
                await fault.prepare()
                async with contextlib.AsyncExitStack() as stack:
                    await stack.enter_async_context(
                        supervising(fleet, notes, progress, leave=fault.supervises)
                    )
                    if scenario.bad_input:
                        await stack.enter_async_context(following(bad, observer))

                    async def strike() -> None:
                        for index in range(faults):
                            await gate.before_fault(index)
                            applied.append(await fault.apply(index))
                            progress(f"   fault {index + 1}/{faults}: {applied[-1]}")
                        await fault.finish()

                    # A task group: if a fault fails, the load stops too (and vice versa).
                    async with asyncio.TaskGroup() as group:
                        group.create_task(load.run())
                        group.create_task(strike())
                    progress(f"   load of {len(load.case_ids)} cases sent; settling")
                    settled = await settle(
                        observer, load.case_set, bad, settings, options, progress,
                        outcomes=scenario.outcomes,
                    )  # fmt: skip
                    if not settled:
                        notes.append(f"not settled within {options.settle_timeout:.0f}s")
            finally:
                await bad.stop()
                await fleet.stop()
            if load.send_retries:
                notes.append(f"{load.send_retries} load sends repeated (broker away)")
            if bad.send_failures:
                notes.append(f"{bad.send_failures} bad records could not be written")
        outputs = await read_outputs(settings, outcomes=scenario.outcomes)
    except Exception as exc:
        logger.exception("scenario %s could not run", scenario.name)
        while isinstance(exc, ExceptionGroup):  # from the task group: say what failed
            exc = exc.exceptions[0]
        await fleet.stop()
        if not options.keep_topics:
            with contextlib.suppress(Exception):  # the broker may be what failed
                await _delete_run_topics(settings)
        return ScenarioRow.failed_to_run(
            scenario.name,
            engine_label(options.engine, fleet.log_dir),
            options.brokers,
            f"{type(exc).__name__}: {exc}",
            len(applied),
            time.monotonic() - started,
        )
    result = check(
        load.case_ids,
        outputs,
        bad.injected,
        bad.bad_case_ids,
        replayed_inputs=scenario.replays_inputs,
        closed_candidate_ids=bad.closed_candidate_ids,
        outcomes_checked=scenario.outcomes,
    )
    if not options.keep_topics:
        await _delete_run_topics(settings)
    return ScenarioRow.of(
        scenario.name,
        engine_label(options.engine, fleet.log_dir),
        options.brokers,
        result,
        len(applied),
        time.monotonic() - started,
        notes,
    )


async def settle(
    observer: Observer,
    cases: set[str],
    bad: BadInput,
    settings: Settings,
    options: RunOptions,
    progress: Progress,
    *,
    outcomes: bool = False,
) -> bool:
    """Wait until every case is final, every expected dead letter is out, and all is quiet.

    A dead letter that never comes (a tally that does not know a reason yet) must not hold the
    run up forever: once every case is final and nothing was written for longer than a held
    verdict can wait, the run is over and the check will say what is missing. With
    ``outcomes``, every passed case's outcome must be written too.
    """
    deadline = time.monotonic() + options.settle_timeout
    held_s = settings.hold_ms / 1000
    next_report = time.monotonic()
    while True:
        final = len(observer.finals & cases)
        expected = {r.source for r in bad.injected if r.expected_reason is not None}
        pending = len(expected - observer.dead_lettered)
        quiet = observer.quiet_for_s
        unwritten = len((observer.passed & cases) - observer.with_outcome) if outcomes else 0
        if (
            final == len(cases)
            and not unwritten
            and quiet >= QUIET_S
            and (not pending or quiet >= held_s + QUIET_S)
        ):
            return True
        if time.monotonic() > deadline:
            return False
        if time.monotonic() >= next_report:
            progress(
                f"   final {final}/{len(cases)}, dead letters pending {pending}"
                + (f", outcomes unwritten {unwritten}" if outcomes else "")
            )
            next_report += 10.0
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def supervising(
    fleet: Fleet, notes: list[str], progress: Progress, leave: frozenset[str] = frozenset()
) -> AsyncIterator[None]:
    """Start again any process that ends on its own, as a deployment's supervisor would.

    A process that dies of a fault (a broker away too long) is itself a finding: noted. The
    processes in ``leave`` are the fault's to stop and start (brake-trip's tally).
    """

    async def watch() -> None:
        while True:
            for name, code in fleet.exited().items():
                if name in leave:
                    continue
                spec = fleet.spec_of(name)
                await fleet.kill_process(name)  # reaps it; it is gone already
                await fleet.start(spec)
                notes.append(f"{name} exited ({code}) and was restarted")
                progress(f"   {notes[-1]}")
            await asyncio.sleep(1.0)

    async with in_background(watch()):
        yield


def engine_label(asked: str, log_dir: Path) -> str:
    """The engine asked for, and the one the tally's logs show if that is another."""
    ran = "faust" if _faust_ran(log_dir) else asked
    return asked if ran == asked else f"{asked} (ran {ran})"


def _faust_ran(log_dir: Path) -> bool:
    for log in log_dir.glob("tally*.log"):
        with contextlib.suppress(OSError), log.open("rb") as fh:
            if b"[^FaustWorker]" in fh.read(200_000):
                return True
    return False


async def _delete_run_topics(settings: Settings) -> None:
    prefix = settings.topic_prefix
    async with admin_client(settings) as admin:
        ours = [t for t in await admin.list_topics() if t.startswith((f"{prefix}.", f"{prefix}-"))]
    await delete_topics(settings, ours)
