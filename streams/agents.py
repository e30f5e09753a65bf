"""Wires the tally processor into a faust app: the table, the agent, the deadline timer.

The agent consumes candidates and verdicts (co-partitioned by case id) with concurrency 1 —
faust may commit past an in-flight message with more (faust #606) — and the timer closes due
windows itself, since faust's windowed tables never close windows restored from a changelog.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faust

from ratifier.config import Settings
from ratifier.policy import Policy
from ratifier.streams.processor import Outgoing, TallyProcessor
from ratifier.streams.tally import TallySettings
from ratifier.topics import TopicNames

logger = logging.getLogger(__name__)


class FaustTableStore:
    """A :class:`~ratifier.streams.store.CaseStore` over a faust table.

    Writes go to the table's store and its changelog with an explicit partition, which is what
    lets the timer (outside any stream event) update cases; faust's ``table[key] = v`` cannot.
    """

    def __init__(self, table: faust.Table) -> None:
        self.table = table

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.table.data.get(key)
        return value

    def put(self, key: bytes, partition: int, entry: bytes) -> None:
        self.table.data[key] = entry
        self.table.send_changelog(partition, key, entry)

    def delete(self, key: bytes, partition: int) -> None:
        self.table.data.pop(key, None)
        self.table.send_changelog(partition, key, None, value_serializer="raw")

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.table.data.items()))

    def __len__(self) -> int:
        return len(self.table.data)


@dataclass
class TallyWiring:
    app: faust.App
    processor: TallyProcessor
    table: faust.Table


def install_tally(app: faust.App, settings: Settings, policies: dict[str, Policy]) -> TallyWiring:
    names = TopicNames.from_settings(settings)
    table = app.Table(
        "cases",
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="Voting windows and attempt history per case (header + encoded CaseState).",
    )
    processor = TallyProcessor(
        names,
        policies,
        FaustTableStore(table),
        TallySettings(
            hold_ms=settings.hold_ms,
            retention_ms=settings.retention_ms,
            retry_wait_ms=settings.retry_wait_ms,
        ),
    )
    inputs = app.topic(
        names.candidates,
        names.verdicts,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    recovered = False

    def active_partitions() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == names.candidates}

    async def publish(records: list[Outgoing]) -> None:
        producer = app.producer
        for record in records:
            # Not awaiting delivery here: faust flushes the producer before each offset commit,
            # so an input is never committed before what it caused is on the broker.
            await producer.send(record.topic, record.key, record.value, None, None, None)

    @app.agent(inputs, concurrency=1, name="tally")
    async def tally_agent(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            out = processor.handle(
                message.topic, message.partition, message.offset, message.key, message.value
            )
            if out:
                await publish(out)

    @table.on_recover
    async def rebuild_deadlines() -> None:
        nonlocal recovered
        processor.rebuild_index(active_partitions())
        recovered = True

    @app.timer(interval=settings.tick_interval_s, name="tally-deadlines")
    async def close_due_windows() -> None:
        if not recovered:
            return
        out = processor.tick(active_partitions())
        if out:
            await publish(out)

    return TallyWiring(app, processor, table)
