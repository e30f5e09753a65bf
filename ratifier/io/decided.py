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
import contextlib
import logging
from collections import OrderedDict

from ratifier.core.config import Settings
from ratifier.core.errors import WireFormatError
from ratifier.core.models import Decision
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_consumer
from ratifier.schemas import codec

__all__ = ["DecidedAttempts"]

logger = logging.getLogger(__name__)


class DecidedAttempts:
    """A bounded set of decided (case id, attempt), filled in the background while started."""

    def __init__(self, settings: Settings, *, client_id: str, capacity: int = 200_000) -> None:
        names = TopicNames.from_settings(settings)
        # No group: every process reads every decision, from the end (older ones are decided
        # cases whose candidates this validator has long judged).
        self._consumer = make_consumer(
            settings, *names.decisions, group_id=None, client_id=client_id,
            auto_offset_reset="latest",
        )  # fmt: skip
        self._topics = set(names.decisions)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._capacity = capacity
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add(self, case_id: str, attempt: int) -> None:
        self._seen[(case_id, attempt)] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow())

    async def positioned(self) -> bool:
        """Whether every decision partition is assigned and its start offset (the end at that
        moment) resolved: from then on no decision is missed. For tests and readiness checks."""
        assignment = self._consumer.assignment()
        if {tp.topic for tp in assignment} != self._topics:
            return False
        for tp in assignment:
            await self._consumer.position(tp)  # waits for the offset reset to finish
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=1024)
            for records in batches.values():
                for record in records:
                    try:
                        decision = codec.decode(record.value or b"")
                    except WireFormatError as exc:
                        logger.warning("unreadable decision at offset %d: %s", record.offset, exc)
                        continue
                    if isinstance(decision, Decision):
                        self.add(decision.case_id, decision.attempt)
