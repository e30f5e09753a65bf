"""Benchmark 2: decision latency at fixed offered rates, tally against the raw three hops.

Both sides run the same three hops through the broker: a candidate is produced, five
validators (in this process, one consumer group each, answering at once through one shared
producer) write verdicts, and the process under test (the tally, or the raw relay) writes a
decision, which a consumer here receives. Latency is candidate send -> decision received, both
on this process's perf_counter. Each (rate, side) runs on fresh topics, after a warm-up.

The rates are fractions of the *live* saturation rate, found first by :func:`saturation`: one
tally under this very rig, offered rising rates until it no longer keeps up. (Benchmark 1's
rate is no guide: there the tally has the machine to itself, here it shares two cores with the
broker, the validators and the load generator.)

The tally runs with the engine asked for (``Settings.tally_engine``), and its saturation and
rates are its own. The baseline is the same for every engine, the raw at-least-once relay as
the third hop: a transactional tally's decision becomes visible only when its transaction
commits, and that wait is part of what the ratio should show.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import harness
from bench.engines import FAUST, engine_ran
from ratifier.core.config import Settings
from ratifier.core.models import Candidate
from ratifier.core.topics import TopicNames
from ratifier.io.client import assign_all
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.schemas import codec

WARMUP_CASES = 50
# A step keeps up when its last decision arrives within this long of its last candidate (at
# saturation the backlog, and so the lag, grows for as long as the step lasts).
KEEP_UP_LAG_S = 0.5
# The load generator kept the offered rate if it sent at least this share of it.
RATE_KEPT = 0.95


@dataclass(frozen=True, slots=True)
class Step:
    rate: float
    cases: int
    decided: int
    achieved_rate: float  # what the load generator actually offered
    lag_s: float  # last decision received - last candidate sent
    p50_ms: float
    p99_ms: float
    p999_ms: float

    @property
    def kept_up(self) -> bool:
        return self.decided == self.cases and self.lag_s <= KEEP_UP_LAG_S

    @property
    def rate_kept(self) -> bool:
        return self.achieved_rate >= RATE_KEPT * self.rate


async def _validator(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str, validator_id: str
) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=100)
        for records in batch.values():
            for record in records:
                cand = codec.decode_as(record.value or b"", Candidate)
                value = codec.encode(harness.verdict(cand, validator_id))
                await producer.send(topic, value, key=record.key)
        if batch:
            await consumer.commit()


async def _receiver(
    consumer: AIOKafkaConsumer, received: dict[bytes, float], wake: asyncio.Event
) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=100)
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                if record.key is not None:
                    received.setdefault(record.key, now)
        if batch:
            wake.set()


class Rig:
    """The load generator, the five validators and the decision receiver around one target."""

    def __init__(self, settings: Settings, producer: AIOKafkaProducer, timeout_s: float) -> None:
        self.names = TopicNames.from_settings(settings)
        self.producer = producer
        self.timeout_s = timeout_s
        self.received: dict[bytes, float] = {}
        self.wake = asyncio.Event()
        self.target: harness.Target | None = None  # the process under test, once started

    async def offer(self, tag: str, count: int, per_s: float) -> Step:
        """Send ``count`` candidates at ``per_s``; wait for their decisions (up to the timeout)."""
        assert self.target is not None
        return await harness.watched(self.target, self._offer(tag, count, per_s))

    async def _offer(self, tag: str, count: int, per_s: float) -> Step:
        sent: dict[bytes, float] = {}
        began = time.perf_counter()
        for i in range(count):
            due = began + i / per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            cand = harness.candidate(f"{tag}{i:07d}")
            key = cand.case_id.encode()
            sent[key] = time.perf_counter()
            await self.producer.send(self.names.candidates, codec.encode(cand), key=key)
        offered_s = max(time.perf_counter() - began, 1e-6)
        deadline = time.monotonic() + self.timeout_s
        while any(k not in self.received for k in sent) and time.monotonic() < deadline:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.5)
        arrived = [(self.received[k], t) for k, t in sent.items() if k in self.received]
        latencies = sorted((got - at) * 1000 for got, at in arrived)
        last_sent = max(sent.values())
        return Step(
            rate=per_s,
            cases=count,
            decided=len(latencies),
            achieved_rate=count / offered_s if count > 1 else per_s,
            lag_s=max((got for got, _ in arrived), default=float("inf")) - last_sent,
            p50_ms=harness.percentile(latencies, 50),
            p99_ms=harness.percentile(latencies, 99),
            p999_ms=harness.percentile(latencies, 99.9),
        )


@contextlib.asynccontextmanager
async def rig(settings: Settings, side: str, timeout_s: float) -> AsyncIterator[Rig]:
    """Fresh topics, the target (``tally`` or ``baseline``) and the rig, warmed up and ready."""
    names = TopicNames.from_settings(settings)
    out = f"{settings.topic_prefix}.relay-out"
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(harness.topics_for(settings, extra=[out]))
        producer = make_producer(settings, client_id="bench-latency")
        await producer.start()
        stack.push_async_callback(producer.stop)
        consumers = [
            make_consumer(
                settings, names.candidates, group_id=names.validator_group(v), client_id=f"bv-{v}"
            )
            for v in harness.VALIDATORS
        ]
        receiver = make_consumer(settings, group_id=None, client_id="bench-receiver")
        for consumer in [*consumers, receiver]:
            await consumer.start()
            stack.push_async_callback(consumer.stop)
        the_rig = Rig(settings, producer, timeout_s)
        tasks = [
            asyncio.create_task(_validator(c, producer, names.verdicts, v))
            for c, v in zip(consumers, harness.VALIDATORS, strict=True)
        ]
        tasks.append(asyncio.create_task(_receiver(receiver, the_rig.received, the_rig.wake)))
        stack.push_async_callback(_cancel, tasks)
        if side == "baseline":
            target: harness.Tallies | harness.Relay
            target = harness.Relay(settings, f"{settings.topic_prefix}.relay", out)
            outputs = [out]
        else:
            target, outputs = harness.Tallies(settings, 1), [names.passed]
        await stack.enter_async_context(target)
        await assign_all(receiver, outputs, from_beginning=True)
        await target.start()
        the_rig.target = target
        for v in harness.VALIDATORS:
            await harness.wait_assigned(settings, names.validator_group(v), 1, timeout_s)
        await harness.watched(target, harness.wait_assigned(settings, target.group, 1, timeout_s))
        await the_rig.offer("w", WARMUP_CASES, 100.0)
        yield the_rig


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Saturation:
    cases_per_s: float  # the highest rate that kept up
    limited_by: str  # "tally", "load generator" or "search ceiling"
    steps: tuple[Step, ...]
    engine_ran: str

    def as_dict(self) -> dict[str, object]:
        return {
            "saturation_cases_per_s": self.cases_per_s,
            "limited_by": self.limited_by,
            "engine_ran": self.engine_ran,
            "steps": [asdict(step) for step in self.steps],
        }


async def saturation(
    engine: str, start_rate: float, factor: float, step_s: float, max_steps: int, timeout_s: float
) -> Saturation:
    """Offer one tally of ``engine`` rising rates (``step_s`` each) until a step falls behind.

    Saturation is the highest rate that kept up: every decision in, the last within
    KEEP_UP_LAG_S of the last candidate. A step where the load generator could not offer its
    rate ends the search too (the rig, not the tally, is then the limit; the figures say so).
    """
    settings = harness.base_settings(topic_prefix=harness.unique_prefix("lts"), tally_engine=engine)
    steps: list[Step] = []
    kept: float | None = None
    async with rig(settings, "tally", timeout_s) as the_rig:
        rate = start_rate
        for i in range(max_steps):
            step = await the_rig.offer(f"s{i}-", max(2, int(rate * step_s)), rate)
            steps.append(step)
            if not (step.kept_up and step.rate_kept):
                break
            kept = rate
            rate *= factor
        ran = await engine_ran(settings, [the_rig.names.passed])
    last = steps[-1]
    if not last.rate_kept:
        limited_by = "load generator"
    elif not last.kept_up:
        limited_by = "tally"
    else:
        limited_by = "search ceiling"
    return Saturation(kept if kept is not None else start_rate, limited_by, tuple(steps), ran)


async def latency(
    engine: str, rates: Sequence[float], duration_s: float, timeout_s: float
) -> dict[str, object]:
    """At each rate, the raw three hops and then a tally of ``engine``, each on fresh topics.

    The baseline is measured again beside each engine's tally, at the same absolute rate, so
    both sides of a ratio share the machine's state of the moment.
    """
    rows: list[dict[str, object]] = []
    ran: list[str] = []
    for rate in rates:
        row: dict[str, object] = {"rate": rate}
        for side in ("baseline", "tally"):
            settings = harness.base_settings(
                topic_prefix=harness.unique_prefix(f"lt{side[0]}"), tally_engine=engine
            )
            async with rig(settings, side, timeout_s) as the_rig:
                step = await the_rig.offer("m", max(1, int(rate * duration_s)), rate)
                if side == "tally":
                    ran.append(await engine_ran(settings, [the_rig.names.passed]))
            row[side] = asdict(step)
        base, tal = row["baseline"], row["tally"]
        assert isinstance(base, dict)
        assert isinstance(tal, dict)
        row["p99_ratio"] = tal["p99_ms"] / base["p99_ms"]
        row["p50_ratio"] = tal["p50_ms"] / base["p50_ms"]
        rows.append(row)
    # One engine per run: any tally that wrote no markers means the engine asked for did not run.
    engine_seen = FAUST if FAUST in ran else (ran[0] if ran else engine)
    return {"duration_s": duration_s, "engine_ran": engine_seen, "rates": rows}
