"""Client SDK: submit candidates, follow decisions, or submit and await the final outcome.

    async with Client() as client:
        outcome = await client.decide("Paris is the capital of France.", query="Capital of France?")

``decide`` needs a tally, the policy's validators and (for retries) a generator running.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from ratifier.config import Settings
from ratifier.errors import WireFormatError
from ratifier.kafka import make_consumer, make_producer
from ratifier.models import Candidate, Decision, EscalationPacket, PassDecision, now_ms
from ratifier.schemas import codec
from ratifier.topics import TopicNames

T = TypeVar("T")
FinalOutcome = PassDecision | EscalationPacket


async def assign_all(
    consumer: AIOKafkaConsumer, topics: Iterable[str], *, from_beginning: bool
) -> None:
    """Assign every partition of ``topics`` (no consumer group) at the start or the end."""
    partitions: list[TopicPartition] = []
    for topic in topics:
        found = consumer.partitions_for_topic(topic)
        for _ in range(50):
            if found:
                break
            await consumer._client.force_metadata_update()  # aiokafka has no public equivalent
            found = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.1)
        partitions.extend(TopicPartition(topic, p) for p in sorted(found or ()))
    consumer.assign(partitions)
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now, before anything is submitted
            await consumer.position(tp)


class _SeenIds:
    """A bounded set of decision ids: hides a decision re-published after a tally crash."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, decision_id: str) -> bool:
        if decision_id in self._ids:
            return False
        self._ids[decision_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


class Client:
    def __init__(self, settings: Settings | None = None, *, producer: str = "client") -> None:
        self.settings = settings or Settings.from_env()
        self.topics = TopicNames.from_settings(self.settings)
        self.producer_name = producer
        self._producer = make_producer(self.settings, client_id=f"ratifier-{producer}")
        self._waiters: dict[str, asyncio.Future[FinalOutcome]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._watcher_ready: asyncio.Event | None = None

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for waiter in self._waiters.values():
            waiter.cancel()
        await self._producer.stop()

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def candidate(
        self,
        content: str,
        *,
        query: str = "",
        policy: str = "default",
        category: str = "general",
        case_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Candidate:
        """A first-attempt candidate for a new case (nothing is sent)."""
        return Candidate(
            case_id=case_id or str(uuid.uuid4()),
            attempt=1,
            candidate_id=str(uuid.uuid4()),
            policy=policy,
            category=category,
            query=query,
            content=content,
            producer=self.producer_name,
            produced_at_ms=now_ms(),
            metadata=dict(metadata or {}),
        )

    async def send(self, candidate: Candidate) -> None:
        """Publish a candidate (any attempt) and wait for the broker's acknowledgement."""
        await self._producer.send_and_wait(
            self.topics.candidates, codec.encode(candidate), key=candidate.case_id.encode()
        )

    async def submit(self, content: str, **fields: Any) -> Candidate:
        """Publish a first-attempt candidate for a new case; returns it (with its case id)."""
        candidate = self.candidate(content, **fields)
        await self.send(candidate)
        return candidate

    async def decisions(self, *, from_beginning: bool = False) -> AsyncIterator[Decision]:
        """Pass, retry and escalate decisions as they are published (each decision id once)."""
        consumer = make_consumer(
            self.settings, group_id=None, client_id=f"ratifier-{self.producer_name}-watch"
        )
        await consumer.start()
        seen = _SeenIds()
        try:
            await assign_all(consumer, self.topics.decisions, from_beginning=from_beginning)
            async for record in consumer:
                try:
                    decision = codec.decode(record.value or b"")
                except WireFormatError:
                    continue  # not ours to judge; the tally never writes such records
                if isinstance(decision, Decision) and seen.add(decision.decision_id):
                    yield decision
        finally:
            await consumer.stop()

    async def decide(
        self, content: str, *, timeout_s: float = 300.0, **fields: Any
    ) -> FinalOutcome:
        """Submit a new case and wait for its final outcome: a pass or an escalation."""
        await self._ensure_watcher()
        candidate = self.candidate(content, **fields)
        waiter: asyncio.Future[FinalOutcome] = asyncio.get_running_loop().create_future()
        self._waiters[candidate.case_id] = waiter
        try:
            await self.send(candidate)
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.pop(candidate.case_id, None)

    async def _ensure_watcher(self) -> None:
        if self._watcher is None:
            self._watcher_ready = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch_final_outcomes(self._watcher_ready))
        assert self._watcher_ready is not None
        ready = asyncio.create_task(self._watcher_ready.wait())
        await asyncio.wait({ready, self._watcher}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._watcher.done():
            self._watcher.result()  # re-raise why the watcher could not start

    async def _watch_final_outcomes(self, ready: asyncio.Event) -> None:
        consumer = make_consumer(
            self.settings, group_id=None, client_id=f"ratifier-{self.producer_name}-decide"
        )
        await consumer.start()
        try:
            await assign_all(
                consumer, (self.topics.passed, self.topics.escalate), from_beginning=False
            )
            ready.set()
            async for record in consumer:
                waiter = self._waiters.get((record.key or b"").decode())
                if waiter is None or waiter.done():
                    continue
                try:
                    outcome = codec.decode(record.value or b"")
                except WireFormatError as exc:
                    waiter.set_exception(exc)
                    continue
                if isinstance(outcome, PassDecision | EscalationPacket):
                    waiter.set_result(outcome)
        finally:
            await consumer.stop()


class SyncClient:
    """A blocking wrapper around :class:`Client` for scripts and notebooks."""

    def __init__(self, settings: Settings | None = None, *, producer: str = "client") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = self._run(self._started_client(settings, producer))

    @staticmethod
    async def _started_client(settings: Settings | None, producer: str) -> Client:
        # Built inside the loop thread: aiokafka clients bind to the running loop when created,
        # and the caller's thread usually has none (or another one).
        client = Client(settings, producer=producer)
        await client.start()
        return client

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(self, content: str, **fields: Any) -> Candidate:
        return self._run(self._client.submit(content, **fields))

    def decide(self, content: str, *, timeout_s: float = 300.0, **fields: Any) -> FinalOutcome:
        return self._run(self._client.decide(content, timeout_s=timeout_s, **fields))

    def close(self) -> None:
        self._run(self._client.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
