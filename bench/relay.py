"""The raw baseline: a plain aiokafka consume-decode-produce loop doing the least a tally must.

It reads candidates and verdicts with the same client settings as the rest of Ratifier
(``ratifier.kafka``), decodes every record, and writes one record per case (the candidate's
bytes) once the same votes are in that make the default policy pass a bench case: three
accepting simulated voters and the red team. Like the tally it flushes its producer before each
offset commit, once a second, so both sides keep the same at-least-once contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from ratifier.config import Settings
from ratifier.kafka import make_consumer, make_producer
from ratifier.models import Candidate, Verdict, Vote
from ratifier.schemas import codec
from ratifier.topics import TopicNames

RED_TEAM = "redteam"
COMMIT_INTERVAL_S = 1.0


class _Case:
    __slots__ = ("accepts", "candidate", "red_team")

    def __init__(self) -> None:
        self.candidate: bytes | None = None
        self.accepts = 0
        self.red_team = False


async def relay(settings: Settings, group: str, out_topic: str, stop: asyncio.Event) -> None:
    names = TopicNames.from_settings(settings)
    consumer = make_consumer(
        settings, names.candidates, names.verdicts, group_id=group, client_id="bench-relay"
    )
    producer = make_producer(settings, client_id="bench-relay")
    await producer.start()
    await consumer.start()
    open_cases: dict[str, _Case] = {}
    done: set[str] = set()
    last_commit = time.monotonic()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    value = record.value or b""
                    decoded = codec.decode(value)
                    if isinstance(decoded, (Candidate, Verdict)):
                        case_id = decoded.case_id
                    else:
                        continue
                    if case_id in done:
                        continue
                    case = open_cases.get(case_id)
                    if case is None:
                        case = open_cases[case_id] = _Case()
                    if isinstance(decoded, Candidate):
                        case.candidate = value
                    elif decoded.validator_id == RED_TEAM:
                        case.red_team = True
                    elif decoded.vote is Vote.ACCEPT:
                        case.accepts += 1
                    if case.candidate is not None and case.red_team and case.accepts >= 3:
                        await producer.send(out_topic, case.candidate, key=record.key)
                        del open_cases[case_id]
                        done.add(case_id)
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


def main(group: str, out_topic: str) -> int:
    settings = Settings.from_env()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await relay(settings, group, out_topic, stop)

    asyncio.run(run())
    return 0
