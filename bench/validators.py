"""Validator utilisation and memory (issue 20): the consumer runtime against the batch barrier.

Utilisation = judge-slot time busy / (slots x measured time), over a window while a backlog
remains (so the end of a finite backlog, when slots must idle, is not counted). The judge sleeps
a lognormal time (median 0.3 s, sigma 1.0, like an LLM API); with ``hang`` one call in 200 hangs
until the runtime's timeout. A hung call's slot counts as busy (it waits for its timeout, as it
must); ``useful`` leaves that time out. The baseline is the validator loop before the runtime,
kept here: fetch up to 256 candidates, judge them all, wait for every call, commit, fetch again.

RSS: one ``ratifier validator run`` process with a backlog of candidates, sampled while it works.

Routing: two policies listing disjoint validators (``alpha``: a1, ``beta``: b1), one instance of
each, half the candidates under each policy: the judge calls spent on the other policy's
candidates (0 on the runtime; the barrier loop judged every candidate under the prefix).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil
from aiokafka import TopicPartition

from bench import harness
from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Candidate, Judgement, Vote
from ratifier.core.polling import wait_until
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.testing import write_policy
from ratifier.ops.fleet import Fleet, ProcessSpec
from ratifier.schemas import codec
from ratifier.validators.runtime import ValidatorWorker, judge_safely, to_verdict

MEDIAN_S = 0.3
SIGMA = 1.0
MEAN_S = MEDIAN_S * math.exp(SIGMA**2 / 2)
HANG_EVERY = 200
VALIDATOR = "bench-v"
BARRIER_BATCH = 256  # the old loop's max_batch
RSS_SAMPLE_S = 0.5
ROUTED = {"alpha": "a1", "beta": "b1"}  # policy -> its one validator (disjoint)


@dataclass(frozen=True, slots=True)
class Plan:
    concurrencies: tuple[int, ...]
    warmup_s: float
    window_s: float
    timeout_s: float  # the validator's --timeout (a hung call's length)
    rss_backlog: int
    rss_run_s: float
    routing_cases: int


QUICK = Plan((16,), 0.5, 2.0, 1.0, 2_000, 3.0, 200)  # completeness only (tests/integration)
FULL = Plan((16, 64, 256), 3.0, 20.0, 5.0, 100_000, 30.0, 2_000)


class BusyMeter:
    """Integrates the number of judge calls running (and of hung ones) over time."""

    def __init__(self) -> None:
        self.active = 0
        self.hung = 0
        self.calls = 0
        self.first_call = asyncio.Event()
        self.area = 0.0
        self.hung_area = 0.0
        self._last = time.perf_counter()

    def _advance(self) -> float:
        now = time.perf_counter()
        self.area += self.active * (now - self._last)
        self.hung_area += self.hung * (now - self._last)
        self._last = now
        return now

    def enter(self, hung: bool) -> None:
        self._advance()
        self.active += 1
        self.hung += hung
        self.calls += 1
        self.first_call.set()

    def exit(self, hung: bool) -> None:
        self._advance()
        self.active -= 1
        self.hung -= hung

    def snapshot(self) -> tuple[float, float, float]:
        now = self._advance()
        return now, self.area, self.hung_area


class LognormalJudge:
    def __init__(self, meter: BusyMeter, *, hang_every: int | None, hang_s: float) -> None:
        self.meter = meter
        self.hang_every = hang_every
        self.hang_s = hang_s
        self.rng = random.Random(20)

    async def __call__(self, candidate: Candidate) -> Judgement:
        hung = self.hang_every is not None and self.rng.random() < 1 / self.hang_every
        delay = self.hang_s if hung else self.rng.lognormvariate(math.log(MEDIAN_S), SIGMA)
        self.meter.enter(hung)
        try:
            await asyncio.sleep(delay)
        finally:
            self.meter.exit(hung)
        return Judgement(Vote.ACCEPT, 0.9)


class PolicyCounter:
    """A judge that answers at once and counts its calls by the candidate's policy."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def __call__(self, candidate: Candidate) -> Judgement:
        self.calls[candidate.policy] += 1
        return Judgement(Vote.ACCEPT, 0.9)


Judge = Callable[[Candidate], Awaitable[Judgement]]


class Runner(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self, stop: asyncio.Event | None = None) -> None: ...


class BarrierValidator:
    """The validator loop before the consumer runtime (the baseline), reduced to its algorithm."""

    def __init__(
        self,
        settings: Settings,
        judge: Judge,
        concurrency: int,
        timeout_s: float,
        validator_id: str = VALIDATOR,
    ) -> None:
        names = TopicNames.from_settings(settings)
        self._topic = names.verdicts
        self._judge = judge
        self._timeout_s = timeout_s
        self._validator_id = validator_id
        self._limit = asyncio.Semaphore(concurrency)
        group = names.validator_group(validator_id)
        self._consumer = make_consumer(
            settings, names.candidates, group_id=group, client_id="bench-barrier",
            max_poll_records=BARRIER_BATCH,
        )  # fmt: skip
        self._producer = make_producer(settings, client_id="bench-barrier")

    async def start(self) -> None:
        await self._producer.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._producer.stop()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=BARRIER_BATCH)
            if batches:
                await self._process(batches)

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        pending = []
        for records in batches.values():
            for record in records:
                try:
                    pending.append(self._one(codec.decode_as(record.value or b"", Candidate)))
                except WireFormatError:
                    continue
        deliveries = await asyncio.gather(*pending)  # the barrier: every call of the batch
        await asyncio.gather(*deliveries)
        await self._consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs})

    async def _one(self, candidate: Candidate) -> asyncio.Future[Any]:
        async with self._limit:
            started = time.perf_counter()
            judgement = await judge_safely(self._judge, candidate, self._timeout_s)
            latency_ms = int((time.perf_counter() - started) * 1000)
        verdict = to_verdict(candidate, judgement, validator_id=self._validator_id,
                             validator_version="bench", latency_ms=latency_ms)  # fmt: skip
        delivery: asyncio.Future[Any] = await self._producer.send(
            self._topic, codec.encode(verdict), key=candidate.case_id.encode()
        )
        return delivery


def _policy_settings(policy_dir: Path, tag: str) -> Settings:
    write_policy(policy_dir, "default", [VALIDATOR], accepts=1, window_seconds=60, max_attempts=1)
    return harness.base_settings(topic_prefix=harness.unique_prefix(tag), policy_dir=policy_dir)


async def utilisation(mode: str, concurrency: int, hang: bool, plan: Plan) -> dict[str, Any]:
    """One run: ``mode`` runtime or barrier, ``concurrency`` slots, with or without hangs."""
    # A backlog that outlasts warm-up and window by half again (at full utilisation).
    cases = int(concurrency / MEAN_S * (plan.warmup_s + plan.window_s) * 1.5) + 8 * concurrency
    with tempfile.TemporaryDirectory(prefix="ratifier-bench-policy-") as tmp:
        settings = _policy_settings(Path(tmp), "vu")
        async with harness.topics_for(settings):
            await harness.preload(settings, cases, verdicts=False)
            meter = BusyMeter()
            hang_s = plan.timeout_s + 60  # cut at the timeout by the runtime
            judge = LognormalJudge(meter, hang_every=HANG_EVERY if hang else None, hang_s=hang_s)
            worker: Runner
            if mode == "runtime":
                worker = ValidatorWorker(
                    settings, VALIDATOR, judge, concurrency=concurrency, timeout_s=plan.timeout_s
                )
            else:
                worker = BarrierValidator(settings, judge, concurrency, plan.timeout_s)
            await worker.start()
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            try:
                await meter.first_call.wait()
                await asyncio.sleep(plan.warmup_s)
                t0, area0, hung0 = meter.snapshot()
                calls0 = meter.calls
                await asyncio.sleep(plan.window_s)
                t1, area1, hung1 = meter.snapshot()
                calls = meter.calls - calls0
            finally:
                stop.set()
                await task
                await worker.stop()
    slot_time = concurrency * (t1 - t0)
    return {
        "mode": mode,
        "concurrency": concurrency,
        "hang_every": HANG_EVERY if hang else None,
        "utilisation": (area1 - area0) / slot_time,
        "useful": (area1 - area0 - (hung1 - hung0)) / slot_time,
        "calls_per_s": calls / (t1 - t0),
        "ideal_calls_per_s": concurrency / MEAN_S,
    }


async def rss(plan: Plan, concurrency: int) -> dict[str, Any]:
    """Peak RSS of one validator process working through ``plan.rss_backlog`` candidates."""
    with tempfile.TemporaryDirectory(prefix="ratifier-bench-policy-") as tmp:
        settings = _policy_settings(Path(tmp), "vm")
        names = TopicNames.from_settings(settings)
        async with harness.topics_for(settings):
            fleet = Fleet(Fleet.env_for(settings), settings.state_dir / "bench-logs" / "vm")
            spec = ProcessSpec(
                "validator-rss",
                ("validator", "run", "ratifier.validators.builtin.simulated:SimulatedValidator",
                 "--id", VALIDATOR, "--param", f"latency_ms={MEDIAN_S * 1000:g}",
                 "--concurrency", str(concurrency), "--timeout", str(plan.timeout_s)),
            )  # fmt: skip
            me = psutil.Process()
            before = {p.pid for p in me.children()}
            async with fleet:
                await fleet.start(spec)
                await harness.wait_assigned(
                    settings, names.validator_group(VALIDATOR), 1, plan.rss_run_s + 60
                )
                (process,) = [p for p in me.children() if p.pid not in before]
                idle = process.memory_info().rss
                await harness.preload(settings, plan.rss_backlog, verdicts=False)
                peak = idle
                deadline = time.monotonic() + plan.rss_run_s
                while time.monotonic() < deadline:
                    peak = max(peak, process.memory_info().rss)
                    await asyncio.sleep(RSS_SAMPLE_S)
                done = await harness.committed(
                    settings, names.validator_group(VALIDATOR), names.candidates
                )
    return {
        "backlog": plan.rss_backlog,
        "concurrency": concurrency,
        "judged_while_sampled": done,
        "rss_idle_mb": idle / 2**20,
        "rss_peak_mb": peak / 2**20,
    }


async def routing(mode: str, cases: int) -> dict[str, Any]:
    """Judge calls of one validator per policy (disjoint) over ``cases`` candidates, half under
    each policy; ``mode`` runtime or barrier (every candidate judged, the baseline)."""
    with tempfile.TemporaryDirectory(prefix="ratifier-bench-policy-") as tmp:
        for policy, validator_id in ROUTED.items():
            write_policy(
                Path(tmp), policy, [validator_id], accepts=1, window_seconds=60, max_attempts=1
            )
        settings = harness.base_settings(
            topic_prefix=harness.unique_prefix("vr"), policy_dir=Path(tmp)
        )
        names = TopicNames.from_settings(settings)
        async with harness.topics_for(settings):
            await _send_routed(settings, cases)
            judges = {validator_id: PolicyCounter() for validator_id in ROUTED.values()}
            workers: list[Runner] = []
            for validator_id, judge in judges.items():
                if mode == "runtime":
                    workers.append(ValidatorWorker(settings, validator_id, judge, concurrency=16))
                else:
                    workers.append(BarrierValidator(settings, judge, 16, 5.0, validator_id))
            stop = asyncio.Event()
            for worker in workers:
                await worker.start()
            tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]

            async def all_read() -> bool:
                done = [
                    await harness.committed(settings, names.validator_group(vid), names.candidates)
                    for vid in ROUTED.values()
                ]
                return all(n >= cases for n in done)

            try:
                await wait_until(all_read, 300, "every candidate read by both validators")
            finally:
                stop.set()
                await asyncio.gather(*tasks)
                for worker in workers:
                    await worker.stop()
    own = sum(judges[vid].calls[policy] for policy, vid in ROUTED.items())
    total = sum(sum(judge.calls.values()) for judge in judges.values())
    return {
        "mode": mode,
        "cases": cases,
        "own_policy_calls": own,
        "other_policy_calls": total - own,
    }


async def _send_routed(settings: Settings, cases: int) -> None:
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="bench-routing")
    await producer.start()
    try:
        policies = list(ROUTED)
        for n in range(cases):
            cand = dataclasses.replace(
                harness.candidate(f"r{n:08d}"), policy=policies[n % len(policies)]
            )
            await producer.send(names.candidates, codec.encode(cand), key=cand.case_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def run(quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL
    runs = []
    for hang in (False, True):
        for concurrency in plan.concurrencies:
            for mode in ("runtime", "barrier"):
                figures = await utilisation(mode, concurrency, hang, plan)
                print(f"[bench] validators {_row(figures)}", flush=True)
                runs.append(figures)
    memory = await rss(plan, max(plan.concurrencies))
    routed = [await routing(mode, plan.routing_cases) for mode in ("runtime", "barrier")]
    for figures in routed:
        print(f"[bench] validators routing {figures}", flush=True)
    return {"utilisation": runs, "rss": memory, "routing": routed}


def _row(f: dict[str, Any]) -> str:
    hang = f"1/{f['hang_every']} hang" if f["hang_every"] else "no hang"
    return (
        f"{f['mode']:>7} c={f['concurrency']:<3} {hang:<10} utilisation {f['utilisation']:.3f} "
        f"useful {f['useful']:.3f} calls/s {f['calls_per_s']:.0f} of {f['ideal_calls_per_s']:.0f}"
    )


def table(results: dict[str, Any]) -> str:
    """Runtime against barrier per (concurrency, hang), as a ratio; then the RSS line."""
    rows = ["validator utilisation (busy slot time / slot time), runtime vs batch barrier:"]
    by = {(f["mode"], f["concurrency"], f["hang_every"]): f for f in results["utilisation"]}
    for (mode, concurrency, hang), f in by.items():
        if mode != "runtime":
            continue
        base = by[("barrier", concurrency, hang)]
        rows.append(
            f"  c={concurrency:<3} {f'1/{hang} hang' if hang else 'no hang':<10} "
            f"runtime {f['utilisation']:.3f} (useful {f['useful']:.3f})  barrier "
            f"{base['utilisation']:.3f}  ratio {f['utilisation'] / base['utilisation']:.2f}x"
        )
    m = results["rss"]
    rows.append(
        f"validator RSS, backlog {m['backlog']}, c={m['concurrency']}: idle "
        f"{m['rss_idle_mb']:.1f} MB, peak {m['rss_peak_mb']:.1f} MB"
    )
    by_mode = {f["mode"]: f for f in results["routing"]}
    runtime, barrier = by_mode["runtime"], by_mode["barrier"]
    rows.append(
        f"judge calls for another policy's candidates (two policies, disjoint validators, "
        f"{runtime['cases']} candidates): runtime {runtime['other_policy_calls']} "
        f"(own {runtime['own_policy_calls']}), barrier {barrier['other_policy_calls']} "
        f"(own {barrier['own_policy_calls']})"
    )
    return "\n".join(rows)
