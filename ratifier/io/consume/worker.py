"""The lifecycle of a worker: ``start()`` / ``stop()`` / ``async with``.

:class:`WorkerLifecycle` is the lifecycle alone (clients started producer first, so that a
transactional producer fences its predecessors before anything is read; stopped consumer
first), for a worker with a loop of its own (the transactional tally); :class:`RuntimeWorker`
adds ``run`` on the consumer runtime. A worker builds its consumer (and producer, if it
writes) and a :class:`ConsumerRuntime` in ``__init__`` (inside the event loop), and overrides
:meth:`on_start` / :meth:`on_stop` for what else it holds (a Redis queue, a second reader).
``run(stop)`` is the runtime's loop; the one place that runs workers until SIGTERM is
``ratifier.app.cli._runner.serve``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ratifier.core.models import DeadLetter
from ratifier.io.consume.poison import dead_letter_key
from ratifier.io.consume.runtime import ConsumerRuntime
from ratifier.schemas import codec

__all__ = ["RuntimeWorker", "WorkerLifecycle", "dead_letter_sender"]


class WorkerLifecycle:
    _consumer: AIOKafkaConsumer
    _producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        """After the clients started (and before ``run``)."""

    async def on_stop(self) -> None:
        """Before the clients stop; runs even if ``start`` failed part way."""

    async def start(self) -> None:
        if self._producer is not None:
            await self._producer.start()
        try:
            await self._consumer.start()
            await self.on_start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        try:
            await self.on_stop()
        finally:
            try:
                await self._consumer.stop()
            finally:
                if self._producer is not None:
                    await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class RuntimeWorker(WorkerLifecycle):
    runtime: ConsumerRuntime

    async def run(self, stop: asyncio.Event | None = None) -> None:
        await self.runtime.run(stop or asyncio.Event())


def dead_letter_sender(
    producer: AIOKafkaProducer, topic: str
) -> Callable[[DeadLetter], Awaitable[None]]:
    """A runtime's dead-letter sink: ``letter`` to ``topic``, keyed by where it came from."""

    async def send(letter: DeadLetter) -> None:
        await producer.send_and_wait(topic, codec.encode(letter), key=dead_letter_key(letter))

    return send
