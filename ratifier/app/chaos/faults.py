"""Fault patterns: what one scenario does to the running pipeline, again and again.

A fault's ``apply(index)`` does its damage and returns once the pipeline has recovered from it
(a restarted worker is back in its consumer group, a broker answers again), so the next fault
hits a pipeline that is whole again rather than one still falling over from the last. It
returns a short note for the run's log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field, replace
from typing import ClassVar, Protocol

from ratifier.app.chaos.bad_input import BadInput
from ratifier.app.chaos.observe import Observer
from ratifier.core.config import Settings
from ratifier.core.models import DeadLetterReason
from ratifier.core.polling import wait_until
from ratifier.core.topics import TopicNames
from ratifier.io.admin import admin_client, set_group_offsets
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

TALLY = "tally"  # the name demo_processes gives the tally
SIM_A = "sim-a"  # the demo's validator group with two instances
REJOIN_TIMEOUT_S = 90.0
OUTCOMES = "outcomes"
# A SIGSTOPped worker stays stopped this long past the moment its group dropped it, so its
# successor has read and decided some of the partitions it owned before it wakes up.
PAUSE_PAST_TAKEOVER_S = 5.0
BROKER_DOWN_S = 5.0
# A stalled broker stays stopped past the tally's session timeout (10 s), so the group's members
# expire while it cannot answer.
BROKER_STALL_S = 13.0
LATE_REPLAY_SHARE = 0.10  # of the cases final (and pruned) by a fault: resubmitted
# brake-trip: the tally's brake limit, the flood that trips it, and how long each step may take.
BRAKE_LIMIT = 20
FLOOD_RECORDS = 200
BRAKE_TRIP_TIMEOUT_S = 60.0
FLOOD_DRAIN_TIMEOUT_S = 120.0
BRAKE_ON = (("RATIFIER_POISON_MAX_CONSECUTIVE", str(BRAKE_LIMIT)),)
# The operator's way through a flood once it is understood: dead-letter it all (docs/delivery.md).
BRAKE_OFF = (("RATIFIER_POISON_MAX_CONSECUTIVE", "0"), ("RATIFIER_POISON_MAX_RATIO", "0"))
STOPPING_LINE = b"stopping: "  # the brake's one log line (io/consume/poison.py)
# After a case's final decision, its state is pruned a retention later, at the next tick: wait
# this much more before resubmitting it, so the resubmission meets the marker alone.
PRUNE_MARGIN_S = 3.0


class Fault(Protocol):
    name: str

    @property
    def supervises(self) -> frozenset[str]:
        """The processes this fault stops and starts itself: the run's supervisor leaves them."""

    async def prepare(self) -> None:
        """Before the load: set up what the pattern needs (a second worker)."""

    async def apply(self, index: int) -> str:
        """Fault number ``index`` (0-based); returns once the pipeline has recovered."""

    async def finish(self) -> None:
        """After the last fault: leave nothing paused or stopped."""


async def stable_members(settings: Settings, group: str) -> frozenset[str] | None:
    """The member ids of ``group`` while it is stable; None while it rebalances or is away."""
    async with admin_client(settings) as admin:
        (response,) = await admin.describe_consumer_groups([group])
    _error, _group_id, state, *_rest, members = response.groups[0][:6]
    return frozenset(member[0] for member in members) if state == "Stable" else None


async def wait_members(
    settings: Settings,
    group: str,
    members: int,
    timeout_s: float,
    *,
    other_than: frozenset[str] = frozenset(),
) -> float:
    """Wait until ``group`` is stable with ``members`` members and, if ``other_than`` is given,
    not exactly those members (a SIGKILLed member still counts until its session expires, so
    only a new member id shows that the successor is in). Returns the seconds it took."""
    started = time.monotonic()
    while True:
        try:
            ids = await stable_members(settings, group)
            if ids is not None and len(ids) == members and ids != other_than:
                return time.monotonic() - started
        except Exception as exc:  # the coordinator may be away while a broker restarts
            logger.debug("group %s not described: %r", group, exc)
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"group {group} not stable with {members} member(s) in {timeout_s}s")
        await asyncio.sleep(0.5)


@dataclass
class FleetFault:
    """A fault on the fleet's processes; ``settings`` are the run's (prefix, brokers)."""

    settings: Settings
    fleet: Fleet
    supervises: ClassVar[frozenset[str]] = frozenset()

    @property
    def names(self) -> TopicNames:
        return TopicNames.from_settings(self.settings)

    async def prepare(self) -> None:
        return None

    async def finish(self) -> None:
        return None


@dataclass
class ProcessKill(FleetFault):
    """kill -9 a process (``victims`` in turn), start it again at once with the same spec: a
    successor, in the consumer group once the fault returns."""

    victims: tuple[str, ...] = (TALLY,)
    name: str = "tally-kill"

    async def apply(self, index: int) -> str:
        victim = self.victims[index % len(self.victims)]
        spec = self.fleet.spec_of(victim)
        group = spec.group(self.names)
        members = sum(
            1 for n in self.fleet.running() if self.fleet.spec_of(n).group(self.names) == group
        )
        before = await stable_members(self.settings, group) or frozenset()
        await self.fleet.kill_process(victim)
        await self.fleet.start(spec)
        took = await wait_members(
            self.settings, group, members, REJOIN_TIMEOUT_S, other_than=before
        )
        return f"{victim} killed and restarted; group whole after {took:.1f}s"


@dataclass
class TallyScale(FleetFault):
    """1 -> 2 -> 1 tally workers: start a second, wait until both are in, stop the older one."""

    name: str = "tally-scale"
    current: str = TALLY

    async def apply(self, index: int) -> str:
        group = self.names.tally_app_id
        newcomer = f"tally-{index + 2}"
        await self.fleet.start(ProcessSpec.tally(newcomer))
        await wait_members(self.settings, group, 2, REJOIN_TIMEOUT_S)
        await self.fleet.stop_process(self.current)  # SIGTERM: a clean hand-over
        took = await wait_members(self.settings, group, 1, REJOIN_TIMEOUT_S)
        stopped, self.current = self.current, newcomer
        return f"{newcomer} joined, {stopped} stopped; one worker again after {took:.1f}s"


@dataclass
class TallyPause(FleetFault):
    """With two tally workers: SIGSTOP one past its session timeout, then SIGCONT it.

    The group drops the stopped worker and its partner takes its partitions over; on SIGCONT
    the stopped one wakes up believing it still owns them, with whatever it had in flight.
    """

    name: str = "tally-pause"
    workers: tuple[str, str] = (TALLY, "tally-b")

    async def prepare(self) -> None:
        await self.fleet.start(ProcessSpec.tally(self.workers[1]))
        await wait_members(self.settings, self.names.tally_app_id, 2, REJOIN_TIMEOUT_S)

    async def apply(self, index: int) -> str:
        group = self.names.tally_app_id
        paused = self.workers[index % 2]
        self.fleet.pause_process(paused)
        try:
            taken_over = await wait_members(self.settings, group, 1, REJOIN_TIMEOUT_S)
            await asyncio.sleep(PAUSE_PAST_TAKEOVER_S)
        finally:
            self.fleet.resume_process(paused)
        back = await wait_members(self.settings, group, 2, REJOIN_TIMEOUT_S)
        return (
            f"{paused} stopped; partner alone after {taken_over:.1f}s; "
            f"resumed, both in after {back:.1f}s"
        )


@dataclass
class BrokerRestart(FleetFault):
    """Stop the local single-node broker (cleanly) and start it again.

    Only the broker of the local stack at these settings (its pid file under the state dir):
    the run refuses to start this scenario unless told the broker may be restarted.
    """

    name: str = "broker-restart"

    async def prepare(self) -> None:
        from ratifier.ops.stack import kafka

        if not kafka.status(self.settings).running:
            raise RuntimeError(
                f"no local stack broker runs for state dir {self.settings.state_dir}; "
                "broker-restart can only restart a broker `ratifier stack up` started"
            )

    async def apply(self, index: int) -> str:
        from ratifier.ops.stack import kafka

        started = time.monotonic()
        await asyncio.to_thread(kafka.stop, self.settings)
        await asyncio.sleep(BROKER_DOWN_S)
        await asyncio.to_thread(kafka.start, self.settings)
        return f"broker stopped and started again in {time.monotonic() - started:.1f}s"


@dataclass
class ClusterBounce(FleetFault):
    """On the 3-node cluster, in turn: bounce a broker, the active controller, the leader of a
    tally input partition (candidates partition 0). One node is down at a time."""

    name: str = "broker-restart"

    async def apply(self, index: int) -> str:
        from ratifier.ops.stack.cluster import Cluster

        cluster = Cluster.of(self.settings)
        started = time.monotonic()
        role = ("broker", "controller", "input leader")[index % 3]
        if role == "controller":
            node = await cluster.controller_id()
        elif role == "input leader":
            node = await cluster.leader_of(self.names.candidates, 0)
        else:
            node = cluster.node_ids[(index // 3) % len(cluster.node_ids)]
        await cluster.stop_node(node)
        await asyncio.sleep(BROKER_DOWN_S)
        await cluster.start_node(node)
        return f"node {node} ({role}) stopped and back in sync in {time.monotonic() - started:.1f}s"


@dataclass
class BadInputRounds:
    """The bad-input scenario's "fault": one round of bad records (see bad_input.py)."""

    bad: BadInput
    name: str = "bad-input"
    supervises: ClassVar[frozenset[str]] = frozenset()

    async def prepare(self) -> None:
        return None

    async def apply(self, index: int) -> str:
        return await self.bad.round()

    async def finish(self) -> None:
        return None


@dataclass
class OffsetRewind(FleetFault):
    """Stop the tally under load, rewind its consumer group to offset 0, start it again.

    Every input is read again; the finished-case memory must keep every case's outcome: the
    replayed candidates and verdicts of finished cases are dead-lettered CASE_CLOSED, those of
    open cases count once, and nothing is decided twice.
    """

    name: str = "offset-rewind"

    async def apply(self, index: int) -> str:
        group = self.names.tally_app_id
        await self.fleet.stop_process(TALLY)
        await set_group_offsets(self.settings, group, (self.names.candidates, self.names.verdicts))
        await self.fleet.start(ProcessSpec.tally(TALLY))
        took = await wait_members(self.settings, group, 1, REJOIN_TIMEOUT_S)
        return f"tally stopped, group {group} rewound to 0, restarted; in after {took:.1f}s"


@dataclass
class LateReplay(FleetFault):
    """Resubmit ~10% of the finished cases, with other content, once their state was pruned
    (the scenario runs with a short retention): each must be dead-lettered CASE_CLOSED naming
    the case's final decision, and no case may get a second outcome."""

    bad: BadInput
    observer: Observer
    name: str = "late-replay"
    final_since: dict[str, float] = field(default_factory=dict)  # case -> first seen final
    replayed: set[str] = field(default_factory=set)

    async def apply(self, index: int) -> str:
        final_since, replayed = self.final_since, self.replayed
        now = time.monotonic()
        for case_id in self.observer.finals:
            final_since.setdefault(case_id, now)
        pruned_after = self.settings.retention_ms / 1000 + PRUNE_MARGIN_S
        oldest = [c for c, at in final_since.items() if c not in replayed]
        if oldest:  # wait until the earliest of them is surely pruned
            await asyncio.sleep(max(0.0, min(final_since[c] for c in oldest) + pruned_after - now))
        due = sorted(c for c in oldest if time.monotonic() - final_since[c] >= pruned_after)
        picked = due[: max(1, round(len(due) * LATE_REPLAY_SHARE))] if due else []
        for case_id in picked:
            candidate = self.bad.client.candidate(f"a late resubmission {index}", case_id=case_id)
            self.bad.closed_candidate_ids.add(candidate.candidate_id)
            await self.bad.write(
                "late-resubmission",
                self.names.candidates,
                case_id.encode(),
                codec.encode(candidate),
                DeadLetterReason.CASE_CLOSED.value,
            )
            replayed.add(case_id)
        return f"{len(picked)} finished cases resubmitted with other content"


@dataclass
class BrokerStallRebalance(FleetFault):
    """SIGSTOP the broker (on the cluster: the leader of candidates partition 0) past the
    session timeout while tally workers join (even faults) or leave (odd faults), then SIGCONT
    it: fetches of committed offsets, heartbeats and transactions all fail mid-rebalance."""

    name: str = "broker-stall"
    brokers: int = 1
    extra: str = ""

    async def apply(self, index: int) -> str:
        group = self.names.tally_app_id
        pid = await self._broker_pid()
        if index % 2 == 0:
            self.extra = f"tally-stall-{index}"
            await self.fleet.start(ProcessSpec.tally(self.extra))
            change: asyncio.Task[None] | None = None
        else:
            change = asyncio.create_task(self.fleet.stop_process(self.extra))
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(BROKER_STALL_S)
        finally:
            os.kill(pid, signal.SIGCONT)
        if change is not None:
            await change
        members = 2 if index % 2 == 0 else 1
        took = await wait_members(self.settings, group, members, REJOIN_TIMEOUT_S)
        moved = "joined" if index % 2 == 0 else "left"
        return (
            f"broker pid {pid} stalled {BROKER_STALL_S:.0f}s while a tally {moved}; "
            f"{members} in after {took:.1f}s"
        )

    async def finish(self) -> None:
        if self.extra and self.extra in self.fleet.running():
            await self.fleet.stop_process(self.extra)

    async def _broker_pid(self) -> int:
        from ratifier.ops.stack import kafka
        from ratifier.ops.stack.cluster import Cluster
        from ratifier.ops.stack.process import read_pid

        if self.brokers == 1:
            node = kafka.single_node(self.settings)
        else:
            cluster = Cluster.of(self.settings)
            node = cluster.node(await cluster.leader_of(self.names.candidates, 0))
        pid = read_pid(node.paths.pid_file)
        if pid is None:
            raise RuntimeError(f"no pid file for broker {node.name}: is the local stack up?")
        return pid


@dataclass
class BrakeTrip(FleetFault):
    """A flood of unreadable candidates trips the tally's poison brake; the operator drains it.

    The tally runs with a brake limit of ``BRAKE_LIMIT`` unreadable records in a row. Each fault
    writes ``FLOOD_RECORDS`` random records back to back on one candidates partition. The tally
    must stop (non-zero, one ``stopping:`` line) without committing them; a tally started with
    the brake off must dead-letter each exactly once (the checker's rule), and the next one,
    brake on again, carries on with the load. The supervisor leaves the tally to this fault.
    """

    bad: BadInput
    observer: Observer
    name: str = "brake-trip"
    supervises: ClassVar[frozenset[str]] = frozenset({TALLY})

    async def prepare(self) -> None:
        await self.fleet.stop_process(TALLY)
        await self._start(BRAKE_ON)

    async def apply(self, index: int) -> str:
        log = self.fleet.log_dir / f"{TALLY}.log"
        lines_before = log.read_bytes().count(STOPPING_LINE)
        flood = await self.bad.flood(
            "flood-candidate",
            self.names.candidates,
            f"chaos-flood-{index}".encode(),
            FLOOD_RECORDS,
            DeadLetterReason.MALFORMED.value,
        )
        code: dict[str, int] = {}

        async def stopped() -> bool:
            code.update(self.fleet.exited())
            return TALLY in code

        tripped = await wait_until(stopped, BRAKE_TRIP_TIMEOUT_S, "the brake to stop the tally")
        lines = log.read_bytes().count(STOPPING_LINE) - lines_before
        if code[TALLY] == 0 or lines != 1:
            raise RuntimeError(
                f"the tally exited {code[TALLY]} with {lines} '{STOPPING_LINE.decode()}' line(s)"
                f" for a flood of {len(flood)}; expected non-zero and one line (see {log})"
            )
        await self.fleet.kill_process(TALLY)  # reaps it; it is gone already
        await self.fleet.start(_tally(BRAKE_OFF))

        async def drained() -> bool:
            return flood <= self.observer.dead_lettered

        took = await wait_until(drained, FLOOD_DRAIN_TIMEOUT_S, "the flood dead-lettered")
        await self.fleet.stop_process(TALLY)
        back = await self._start(BRAKE_ON)
        return (
            f"{len(flood)} unreadable candidates: the brake stopped the tally in {tripped:.1f}s "
            f"(exit {code[TALLY]}); brake off, dead-lettered in {took:.1f}s; brake on, "
            f"in after {back:.1f}s"
        )

    async def _start(self, env: tuple[tuple[str, str], ...]) -> float:
        await self.fleet.start(_tally(env))
        return await wait_members(self.settings, self.names.tally_app_id, 1, REJOIN_TIMEOUT_S)


def _tally(env: tuple[tuple[str, str], ...]) -> ProcessSpec:
    return replace(ProcessSpec.tally(TALLY), env=env)
