"""Benchmark 2: decision latency at fixed offered rates, tally against the raw three hops.

Both sides run the same three hops through the broker: a candidate is produced, five
validators (in this process, one consumer group each, answering at once through one shared
producer) write verdicts, and the process under test (the tally, or the raw relay) writes a
decision, which a consumer here receives. Latency is candidate send -> decision received, both
on this process's perf_counter. Each rate runs on fresh topics, after a warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import harness
from ratifier.client import assign_all
from ratifier.config import Settings
from ratifier.kafka import make_consumer, make_producer
from ratifier.models import Candidate
from ratifier.schemas import codec
from ratifier.topics import TopicNames

WARMUP_CASES = 50


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


async def _phase(
    settings: Settings,
    out_topics: Sequence[str],
    start_target: Callable[[], Awaitable[str]],
    rate: float,
    duration_s: float,
    timeout_s: float,
) -> dict[str, float]:
    """One rate against one target (started by ``start_target``, returning its group)."""
    names = TopicNames.from_settings(settings)
    producer = make_producer(settings, client_id="bench-latency")
    await producer.start()
    consumers = [
        make_consumer(
            settings, names.candidates, group_id=names.validator_group(v), client_id=f"bench-{v}"
        )
        for v in harness.VALIDATORS
    ]
    receiver = make_consumer(settings, group_id=None, client_id="bench-receiver")
    tasks: list[asyncio.Task[None]] = []
    try:
        for consumer in consumers:
            await consumer.start()
        await receiver.start()
        await assign_all(receiver, out_topics, from_beginning=True)
        received: dict[bytes, float] = {}
        wake = asyncio.Event()
        tasks = [
            asyncio.create_task(_validator(c, producer, names.verdicts, v))
            for c, v in zip(consumers, harness.VALIDATORS, strict=True)
        ]
        tasks.append(asyncio.create_task(_receiver(receiver, received, wake)))
        group = await start_target()
        for v in harness.VALIDATORS:
            await harness.wait_assigned(settings, names.validator_group(v), 1, timeout_s)
        await harness.wait_assigned(settings, group, 1, timeout_s)

        async def offer(tag: str, count: int, per_s: float) -> dict[bytes, float]:
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
                await producer.send(names.candidates, codec.encode(cand), key=key)
            deadline = time.monotonic() + timeout_s
            while any(k not in received for k in sent) and time.monotonic() < deadline:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 0.5)
            return sent

        await offer("w", WARMUP_CASES, min(rate, 200.0))
        count = max(1, int(rate * duration_s))
        began = time.perf_counter()
        sent = await offer("m", count, rate)
        offered_s = time.perf_counter() - began
        latencies = sorted((received[k] - t) * 1000 for k, t in sent.items() if k in received)
        return {
            "rate": rate,
            "cases": count,
            "decided": len(latencies),
            "achieved_rate": count / offered_s,
            "p50_ms": harness.percentile(latencies, 50),
            "p99_ms": harness.percentile(latencies, 99),
            "p999_ms": harness.percentile(latencies, 99.9),
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for consumer in [*consumers, receiver]:
            await consumer.stop()
        await producer.stop()


async def latency(rates: Sequence[float], duration_s: float, timeout_s: float) -> dict[str, object]:
    rows: list[dict[str, object]] = []
    for rate in rates:
        row: dict[str, object] = {"rate": rate}
        for side in ("baseline", "tally"):
            settings = harness.base_settings(topic_prefix=harness.unique_prefix(f"lt{side[0]}"))
            names = TopicNames.from_settings(settings)
            out = f"{settings.topic_prefix}.relay-out"
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(harness.topics_for(settings, extra=[out]))
                if side == "baseline":
                    relay = harness.Relay(settings, f"{settings.topic_prefix}.relay", out)
                    await stack.enter_async_context(relay)

                    async def start_relay(r: harness.Relay = relay) -> str:
                        await r.start()
                        return r.group

                    row[side] = await _phase(
                        settings, [out], start_relay, rate, duration_s, timeout_s
                    )
                else:
                    tallies = harness.Tallies(settings, 1)
                    await stack.enter_async_context(tallies)

                    async def start_tally(t: harness.Tallies = tallies) -> str:
                        await t.start()
                        return t.group

                    row[side] = await _phase(
                        settings, [names.passed], start_tally, rate, duration_s, timeout_s
                    )
        base, tal = row["baseline"], row["tally"]
        assert isinstance(base, dict)
        assert isinstance(tal, dict)
        row["p99_ratio"] = tal["p99_ms"] / base["p99_ms"]
        row["p50_ratio"] = tal["p50_ms"] / base["p50_ms"]
        rows.append(row)
    return {"duration_s": duration_s, "rates": rows}
