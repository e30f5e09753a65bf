"""Which attempts the tally has already decided, as seen by a validator process.

For sequential consensus (docs/validators.md, "Waves"): a validator that starts later than
others checks whether the attempt was decided meanwhile and then skips the call to its model.
The signal is the tally's own decision topics (pass, retry, escalate), read from their end with
``read_committed``: every decision names its case and attempt, nothing new is published, and a
decision the tally never commits is never taken for one. It is a hint: a validator that has not
seen a decision yet judges as usual, and the tally counts a verdict for a decided attempt as
late (recorded, changes nothing).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from aiokafka import ConsumerRecord

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import DeadLetterReason, Decision
from ratifier.core.topics import TopicNames
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    PoisonHandling,
    PoisonMode,
    RuntimeWorker,
)
from ratifier.io.kafka import make_consumer
from ratifier.schemas import codec

__all__ = ["DecidedAttempts"]


class DecidedAttempts(RuntimeWorker):
    """A bounded set of decided (case id, attempt), filled in the background while started."""

    def __init__(self, settings: Settings, *, client_id: str, capacity: int = 200_000) -> None:
        names = TopicNames.from_settings(settings)
        # No group: every process reads every decision, from the end (older ones are decided
        # cases whose candidates this validator has long judged). Nothing to commit.
        self._consumer = make_consumer(
            settings, group_id=None, client_id=client_id, auto_offset_reset="latest"
        )
        # A hint reader: an unreadable decision is skipped, and never stops the validator.
        self.runtime = ConsumerRuntime(
            self._consumer,
            names.decisions,
            self._handle,
            limits=Limits(max_in_flight=1024),
            poison=PoisonHandling(PoisonMode.SKIP, max_consecutive=None, max_ratio=None),
            commits=False,
        )
        self._topics = set(names.decisions)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._capacity = capacity
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add(self, case_id: str, attempt: int) -> None:
        self._seen[(case_id, attempt)] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    async def on_start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.run(self._stop))

    async def positioned(self) -> bool:
        """Whether every decision partition is assigned and its start offset (the end at that
        moment) resolved: from then on no decision is missed. For tests and readiness checks."""
        assignment = self._consumer.assignment()
        if {tp.topic for tp in assignment} != self._topics:
            return False
        for tp in assignment:
            await self._consumer.position(tp)  # waits for the offset reset to finish
        return True

    async def on_stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _handle(self, record: ConsumerRecord) -> None:
        try:
            decision = codec.decode(record.value or b"")
        except WireFormatError as exc:
            raise InvalidRecord(DeadLetterReason.MALFORMED, f"unreadable decision: {exc}") from None
        if isinstance(decision, Decision):
            self.add(decision.case_id, decision.attempt)
