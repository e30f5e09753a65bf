"""A live view of the pipeline during a run: which cases are final, what was dead-lettered.

The runner uses it to know when the pipeline is done and quiet; the bad-input injector uses
its verdict and decision streams to re-send verdicts and to send late ones. The final check
does not rely on it: :func:`ratifier.app.chaos.checker.read_outputs` reads everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from ratifier.app.chaos.checker import SourceRef
from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import (
    DeadLetter,
    Decision,
    EscalationPacket,
    Outcome,
    PassDecision,
    RetryRequest,
)
from ratifier.core.topics import TopicNames
from ratifier.io.client import assign_all
from ratifier.io.kafka import make_consumer
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

# Header on every record the suite writes itself, so the observer can tell them from the load's.
INJECTED_HEADER = "ratifier-chaos"


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    partition: int
    offset: int
    key: bytes
    value: bytes


@dataclass
class Observer:
    settings: Settings
    finals: set[str] = field(default_factory=set)  # case ids with a pass or an escalation
    passed: set[str] = field(default_factory=set)  # case ids with a pass
    with_outcome: set[str] = field(default_factory=set)  # case ids on <prefix>.outcomes
    dead_lettered: set[SourceRef] = field(default_factory=set)
    last_record_at: float = field(default_factory=time.monotonic)
    # The load's verdicts and every decision, for the bad-input injector (unbounded: a run's
    # worth of records is small).
    verdicts: asyncio.Queue[VerdictRecord] = field(default_factory=asyncio.Queue)
    decisions: asyncio.Queue[Decision] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    @property
    def quiet_for_s(self) -> float:
        return time.monotonic() - self.last_record_at

    async def __aenter__(self) -> Observer:
        names = TopicNames.from_settings(self.settings)
        consumer = make_consumer(self.settings, group_id=None, client_id="ratifier-chaos-observer")
        await consumer.start()
        try:
            await assign_all(
                consumer,
                (names.verdicts, *names.decisions, names.deadletter, names.outcomes),
                from_beginning=True,
            )
        except BaseException:
            await consumer.stop()
            raise

        async def run() -> None:
            try:
                while True:
                    try:
                        async for record in consumer:
                            self._take(names, record)
                    except KafkaError as exc:  # e.g. while a broker restarts: read on
                        logger.warning("observer: %r; reading on", exc)
                        await asyncio.sleep(1.0)
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _take(self, names: TopicNames, record: ConsumerRecord) -> None:
        self.last_record_at = time.monotonic()
        value: bytes = record.value or b""
        if record.topic == names.verdicts:
            if not any(key == INJECTED_HEADER for key, _ in record.headers or ()):
                self.verdicts.put_nowait(
                    VerdictRecord(record.partition, record.offset, record.key or b"", value)
                )
            return
        try:
            decoded = codec.decode(value)
        except WireFormatError:
            return  # the checker reports unreadable outputs
        if isinstance(decoded, Outcome):
            self.with_outcome.add(decoded.case_id)
        elif isinstance(decoded, DeadLetter):
            source = SourceRef(decoded.source_topic, decoded.partition, decoded.offset)
            self.dead_lettered.add(source)
        elif isinstance(decoded, PassDecision | RetryRequest | EscalationPacket):
            if not isinstance(decoded, RetryRequest):
                self.finals.add(decoded.case_id)
            if isinstance(decoded, PassDecision):
                self.passed.add(decoded.case_id)
            self.decisions.put_nowait(decoded)
