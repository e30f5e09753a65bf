"""The baselines: the least a tally must do, without the tally.

Every relay reads candidates and verdicts, decodes every record, and writes one record per case
(the candidate's bytes) once the same votes are in that make the default policy pass a bench
case: three accepting simulated voters and the red team (bench/pass_watcher.py). They differ only
in the Kafka machinery underneath:

- ``raw``: a plain aiokafka consumer-to-producer loop with Ratifier's client settings
  (``ratifier.io.kafka``). It flushes its producer before each offset commit, once a second, which
  is the faust tally's at-least-once contract. Every tally is measured against it.
- ``raw-transactional``: the same loop in the transactional tally's protocol, one transaction
  per input partition committed every ``commit_interval_ms`` (bench/transactional_relay.py).
  Every tally is measured against it too: it is the ceiling of any exactly-once tally here.
- ``faust``: the same rule as a faust agent in an app built by the tally's own ``create_app`` and
  fed the way the tally's agent is fed (``take_events`` batches). It measures what faust's
  consumer path costs before any tally code runs: the ceiling of any faust-based tally.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

from bench.pass_watcher import PassWatcher
from bench.transactional_relay import transactional_relay
from ratifier.core.config import Settings
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer, make_producer

COMMIT_INTERVAL_S = 1.0
RAW, RAW_TRANSACTIONAL, FAUST = "raw", "raw-transactional", "faust"
ENGINES = (RAW, RAW_TRANSACTIONAL, FAUST)


async def raw_relay(settings: Settings, group: str, out_topic: str, stop: asyncio.Event) -> None:
    names = TopicNames.from_settings(settings)
    consumer = make_consumer(
        settings, names.candidates, names.verdicts, group_id=group, client_id="bench-relay"
    )
    producer = make_producer(settings, client_id="bench-relay")
    await producer.start()
    await consumer.start()
    watcher = PassWatcher()
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    passed = watcher.feed(record.value)
                    if passed is not None:
                        await producer.send(out_topic, passed, key=record.key)
            if time.monotonic() - last_commit >= COMMIT_INTERVAL_S:
                await producer.flush()
                await consumer.commit()
                last_commit = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            await producer.flush()
            await consumer.commit()
        await consumer.stop()
        await producer.stop()


def faust_relay(settings: Settings, group: str, out_topic: str) -> None:
    """Block running the faust relay as a faust worker (the tally's process model) until SIGTERM."""
    import faust

    from ratifier.streams.engines.faust.agents import BATCH_MAX, BATCH_WAIT_S
    from ratifier.streams.engines.faust.app import create_app, input_topic
    from ratifier.streams.engines.faust.worker import run_worker

    app = create_app(settings, app_id=group)
    inputs = input_topic(app, settings)
    watcher = PassWatcher()

    @app.agent(inputs, concurrency=1, name="relay")  # type: ignore[untyped-decorator]
    async def relay_agent(stream: faust.StreamT[Any]) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WAIT_S):
            for event in events:
                passed = watcher.feed(event.message.value)
                if passed is not None:
                    key = event.message.key
                    await app.producer.send(out_topic, key, passed, None, None, None)

    run_worker(app, settings)


def main(engine: str, group: str, out_topic: str) -> int:
    settings = Settings.from_env()
    if engine == FAUST:
        faust_relay(settings, group, out_topic)
        return 0
    relay = transactional_relay if engine == RAW_TRANSACTIONAL else raw_relay

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await relay(settings, group, out_topic, stop)

    asyncio.run(run())
    return 0
