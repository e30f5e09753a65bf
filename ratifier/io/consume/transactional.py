"""The commit step of consume-transform-produce: a batch's output and its input offsets in one
Kafka transaction (exactly once, as Parallel Consumer's transactional mode).

A :class:`~.runtime.ConsumerRuntime` given a :class:`TransactionalCommits` runs its batch
handler one batch at a time; what the handler sends through :meth:`TransactionalCommits.send`
(and the batch's dead letters) goes into a transaction that the runtime's commit step ends with
the batch's offsets (``send_offsets_to_transaction``) and ``commit_transaction``. The consumer
group's offsets are never committed any other way. If the handler or the commit fails, the
transaction is aborted: none of the batch's output is visible to read_committed readers and its
records are read again. Work outside Kafka that must follow the commit (acknowledging a Redis
stream, in-memory bookkeeping) is registered with :meth:`TransactionalCommits.after_commit`.

The producer must have a transactional id, fixed per role, so that a restarted or second
instance fences the earlier one (``ProducerFenced``: the earlier one can commit nothing more).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiokafka import AIOKafkaProducer, TopicPartition

from ratifier.core.models import DeadLetter
from ratifier.io.consume.poison import dead_letter_key
from ratifier.schemas import codec

__all__ = ["TransactionalCommits"]

logger = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


class TransactionalCommits:
    """One transaction per batch on ``producer``; offsets committed for ``group_id``."""

    def __init__(self, producer: AIOKafkaProducer, group_id: str) -> None:
        self._producer = producer
        self._group_id = group_id
        self._open = False
        self._after: list[AfterCommit] = []
        self.transactions = 0

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send inside the batch's transaction (begun by the first send)."""
        await self._begin()
        await self._producer.send(topic, value, key=key, headers=list(headers or ()) or None)

    def dead_letter_sink(self, topic: str) -> Callable[[DeadLetter], Awaitable[None]]:
        """The runtime's dead-letter sink: letters join the batch's transaction."""

        async def send(letter: DeadLetter) -> None:
            await self.send(topic, codec.encode(letter), key=dead_letter_key(letter))

        return send

    def after_commit(self, action: AfterCommit) -> None:
        """Run ``action`` once the batch's transaction committed (dropped if it aborts)."""
        self._after.append(action)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """End the batch: its offsets into the transaction, commit, then the after-commit work.
        A batch that sent nothing and has no offsets commits no transaction."""
        if offsets:
            await self._begin()
            await self._producer.send_offsets_to_transaction(dict(offsets), self._group_id)
        if self._open:
            await self._producer.commit_transaction()
            self._open = False
            self.transactions += 1
        after, self._after = self._after, []
        for action in after:
            await action()

    async def abort(self) -> None:
        """Drop the batch: abort its transaction (if one is open) and its after-commit work."""
        self._after = []
        if not self._open:
            return
        self._open = False
        try:
            await self._producer.abort_transaction()
        except Exception:  # a fenced producer cannot abort: its successor already did
            logger.warning("aborting the transaction failed; the broker times it out")

    async def _begin(self) -> None:
        if not self._open:
            await self._producer.begin_transaction()
            self._open = True
