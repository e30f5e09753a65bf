"""Client SDK: submit candidates, follow decisions, or submit and await the final outcome.

    async with Client() as client:
        outcome = await client.decide("Paris is the capital of France.", query="Capital of France?")

``decide`` needs a tally, the policy's validators and (for retries) a generator running. It
raises :class:`~ratifier.core.errors.CandidateRejected` at once when the tally dead-letters the
candidate, and every consumer raises :class:`~ratifier.core.errors.TopicsMissing` when its topics do
not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from ratifier.core.config import Settings
from ratifier.core.connection import KafkaConnection
from ratifier.core.errors import (
    CandidateRejected,
    ConfigError,
    StackError,
    TopicsMissing,
    WireFormatError,
)
from ratifier.core.models import (
    Candidate,
    DeadLetter,
    DeadLetterReason,
    Decision,
    EscalationPacket,
    FinalOutcomeRef,
    Outcome,
    PassDecision,
    now_ms,
)
from ratifier.core.signing import SignatureCheck, check_signature, decode_public_key
from ratifier.core.topics import TopicNames
from ratifier.io.final_outcomes import (
    FinalOutcome,
    OutcomeUnavailable,
    decision_topic,
    fetch_final_outcome,
)
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.schemas import codec

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ratifier.io.readmodels import CaseView

T = TypeVar("T")


# How long a topic may take to appear (one being created right now) before it counts as missing.
_TOPIC_WAIT_S = 3.0
# How long a consumer may take to learn the partitions of topics the broker says exist.
_METADATA_WAIT_S = 15.0


async def assign_all(
    consumer: AIOKafkaConsumer,
    topics: Iterable[str],
    *,
    from_beginning: bool,
    bootstrap_servers: str | None = None,
) -> None:
    """Assign every partition of ``topics`` (no consumer group) at the start or the end.

    Raises :class:`TopicsMissing` within seconds when a topic does not exist (a consumer assigned
    nothing would otherwise wait forever); ``bootstrap_servers`` is named in its message.
    """
    wanted = list(dict.fromkeys(topics))
    await _require_topics(consumer, wanted, bootstrap_servers)
    partitions = await _all_partitions(consumer, wanted)
    consumer.assign(partitions)
    if from_beginning:
        await consumer.seek_to_beginning(*partitions)
    else:
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now, before anything is submitted
            await consumer.position(tp)


async def read_from_beginning(
    source: KafkaConnection | Settings,
    topics: Iterable[str],
    *,
    client_id: str,
    idle_s: float | None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every committed record on ``topics`` from the beginning, as a group-less reader.

    Stops once none has arrived for ``idle_s``; with ``None``, follows the topics for good.
    """
    async with _reading_from_beginning(source, topics, client_id) as consumer:
        timeout_ms = 1_000 if idle_s is None else int(idle_s * 1000)
        while True:
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch and idle_s is not None:
                return
            for records in batch.values():
                for record in records:
                    yield record


async def read_to_end(
    source: KafkaConnection | Settings, topics: Iterable[str], *, client_id: str
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every committed record on ``topics`` up to each partition's end when the read began
    (read_committed: the last stable offset), as a group-less reader; a one-shot read, done
    when every partition's position reached its end however busy the topics are."""
    async with _reading_from_beginning(source, topics, client_id) as consumer:
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1_000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)


@contextlib.asynccontextmanager
async def _reading_from_beginning(
    source: KafkaConnection | Settings, topics: Iterable[str], client_id: str
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started group-less consumer with every partition of ``topics`` at its beginning."""
    consumer = make_consumer(source, group_id=None, client_id=client_id)
    await consumer.start()
    try:
        await assign_all(
            consumer, topics, from_beginning=True, bootstrap_servers=source.bootstrap_servers
        )
        yield consumer
    finally:
        await consumer.stop()


async def _require_topics(
    consumer: AIOKafkaConsumer, topics: list[str], bootstrap_servers: str | None
) -> None:
    deadline = time.monotonic() + _TOPIC_WAIT_S
    while True:
        existing = await consumer.topics()  # always a fresh metadata request to the cluster
        missing = [topic for topic in topics if topic not in existing]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TopicsMissing(missing, bootstrap_servers)
        await asyncio.sleep(0.2)


async def _all_partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    deadline = time.monotonic() + _METADATA_WAIT_S
    known = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    if not all(known.values()):
        # The consumer's metadata predates topics made since it started. Assigning partition 0
        # (every topic has one) makes it track them, which refreshes its metadata: aiokafka has
        # no public call for the refresh alone.
        consumer.assign([TopicPartition(topic, 0) for topic in topics])
    while not all(known.values()):
        if time.monotonic() >= deadline:
            unknown = [topic for topic, found in known.items() if not found]
            raise StackError(f"no partition metadata for {', '.join(unknown)}")
        await asyncio.sleep(0.05)
        known = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    return [TopicPartition(topic, p) for topic in topics for p in sorted(known[topic] or ())]


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


Source = tuple[str, int, int]  # where a record was written: topic, partition, offset


class _Rejections:
    """Matches the tally's dead letters to the candidates ``decide`` sent.

    A dead letter names its source (topic, partition, offset), which the producer's
    acknowledgement gives for the candidate. That works for every reason, even ``TOO_LARGE``,
    whose dead letter keeps only an excerpt that does not decode. The tally may answer before
    the acknowledgement reaches ``decide``, so dead letters nobody expects yet are kept (the
    latest ``capacity``, without their bytes) for a later :meth:`expect` to claim.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._expected: dict[Source, Callable[[DeadLetter], None]] = {}
        self._unclaimed: OrderedDict[Source, DeadLetter] = OrderedDict()
        self._capacity = capacity

    def expect(self, source: Source, on_rejected: Callable[[DeadLetter], None]) -> None:
        letter = self._unclaimed.pop(source, None)
        if letter is not None:
            on_rejected(letter)
        else:
            self._expected[source] = on_rejected

    def forget(self, source: Source) -> None:
        self._expected.pop(source, None)

    def arrived(self, letter: DeadLetter) -> None:
        source = (letter.source_topic, letter.partition, letter.offset)
        on_rejected = self._expected.pop(source, None)
        if on_rejected is not None:
            on_rejected(letter)
            return
        self._unclaimed[source] = replace(letter, original=b"")
        if len(self._unclaimed) > self._capacity:
            self._unclaimed.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Decided:
    """A case's final outcome as :meth:`Client.decide_case` got it: ``earlier`` when it is not
    this submission's but the case's existing one (its id had an outcome, or was in progress)."""

    outcome: FinalOutcome
    candidate: Candidate  # the candidate this call sent
    earlier: bool


class Client:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        producer: str = "client",
        tally_public_key: str | bytes | None = None,
    ) -> None:
        """``tally_public_key`` (raw bytes or base64; default RATIFIER_TALLY_PUBLIC_KEY): when
        set, decisions not signed by that key are never taken for the tally's (signing.md)."""
        self.settings = settings or Settings.from_env()
        key = self.settings.tally_public_key if tally_public_key is None else tally_public_key
        self.tally_public_key = _raw_public_key(key)
        self.unverified_decisions = 0  # decisions set aside: not signed by the tally's key
        self.topics = TopicNames.from_settings(self.settings)
        self.producer_name = producer
        self._producer = make_producer(self.settings, client_id=f"ratifier-{producer}")
        self._waiters: dict[str, asyncio.Future[FinalOutcome]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._watcher_ready: asyncio.Event | None = None
        self._rejections = _Rejections()

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
        await self._publish(candidate)

    async def _publish(self, candidate: Candidate) -> Source:
        written = await self._producer.send_and_wait(
            self.topics.candidates, codec.encode(candidate), key=candidate.case_id.encode()
        )
        return (written.topic, written.partition, written.offset)

    async def submit(self, content: str, **fields: Any) -> Candidate:
        """Publish a first-attempt candidate for a new case; returns it (with its case id)."""
        candidate = self.candidate(content, **fields)
        await self.send(candidate)
        return candidate

    def check_decision(self, decision: Decision) -> SignatureCheck:
        """Whether ``decision`` is signed by the tally's key (the client must know that key)."""
        if self.tally_public_key is None:
            raise ConfigError("no tally public key to verify with (RATIFIER_TALLY_PUBLIC_KEY)")
        return check_signature(decision, self.tally_public_key)

    def _trusted(self, decision: Decision) -> bool:
        """True without a tally key; with one, only decisions it signed (others are logged)."""
        if self.tally_public_key is None:
            return True
        check = self.check_decision(decision)
        if check is SignatureCheck.VALID:
            return True
        self.unverified_decisions += 1
        logger.warning(
            "ignoring decision %s for case %s: signature %s",
            decision.decision_id,
            decision.case_id,
            check.value,
        )
        return False

    async def decisions(
        self, *, from_beginning: bool = False, include_unverified: bool = False
    ) -> AsyncIterator[Decision]:
        """Pass, retry and escalate decisions as they are published (each decision id once).

        Given the tally's public key, only decisions it signed are yielded, unless
        ``include_unverified`` (then check each with :meth:`check_decision`); an unverified
        decision never hides the genuine one with the same id.
        """
        consumer = make_consumer(
            self.settings, group_id=None, client_id=f"ratifier-{self.producer_name}-watch"
        )
        await consumer.start()
        seen = _SeenIds()
        try:
            await assign_all(
                consumer,
                self.topics.decisions,
                from_beginning=from_beginning,
                bootstrap_servers=self.settings.bootstrap_servers,
            )
            async for record in consumer:
                try:
                    decision = codec.decode(record.value or b"")
                except WireFormatError:
                    continue  # not ours to judge; the tally never writes such records
                if not isinstance(decision, Decision):
                    continue
                if not self._trusted(decision):
                    if include_unverified:
                        yield decision
                    continue
                if seen.add(decision.decision_id):
                    yield decision
        finally:
            await consumer.stop()

    async def trusted_answer(self, case_id: str, *, verify: bool = False) -> Outcome | None:
        """The case's trusted answer: its confirmed or corrected outcome, with provenance.

        None while the case is pending or in review, when it ended unresolved, or is unknown.
        Read from the trusted answers store (Redis), which the outcomes runtime keeps. With
        RATIFIER_OUTCOMES_PUBLIC_KEY (required by ``verify``) its signature is checked:
        ``UntrustedOutcome`` when it does not hold (docs/security.md).
        """
        from ratifier.io.redis_client import connect  # only callers of this method need Redis
        from ratifier.io.trusted_store import TrustedStore

        redis = connect(self.settings)
        try:
            return await TrustedStore.from_settings(redis, self.settings).get(
                case_id, verify=verify
            )
        finally:
            await redis.aclose()

    async def case(self, case_id: str) -> CaseView | None:
        """What happened to the case: status, attempts, verdicts, decisions, policy version.

        None for a case the monitor has not seen. Read from the monitor's read models (Redis,
        docs/monitoring.md), so ``ratifier monitor run`` must be running.
        """
        from ratifier.io.readmodels import ReadModels  # only callers of this method need Redis

        async with ReadModels.from_settings(self.settings) as models:
            return await models.case(case_id)

    async def decide(
        self, content: str, *, timeout_s: float = 300.0, **fields: Any
    ) -> FinalOutcome:
        """Submit a case and wait for its final outcome: a pass or an escalation.

        Idempotent by case id: given the id of a case that already has its final outcome, that
        outcome is returned (no new case is opened); a case still in progress is waited for.
        :meth:`decide_case` also says which of the two happened. Raises
        :class:`CandidateRejected` as soon as the tally dead-letters the candidate for any other
        reason (an unknown policy, too large...): no outcome would ever come.
        """
        return (await self.decide_case(content, timeout_s=timeout_s, **fields)).outcome

    async def decide_case(
        self, content: str, *, timeout_s: float = 300.0, **fields: Any
    ) -> Decided:
        """:meth:`decide`, saying whether the outcome is this submission's or an earlier one's."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        await self._ensure_watcher()
        candidate = self.candidate(content, **fields)
        case_id = candidate.case_id
        waiter: asyncio.Future[FinalOutcome] = asyncio.get_running_loop().create_future()
        rejected: asyncio.Future[DeadLetter] = asyncio.get_running_loop().create_future()
        self._waiters[case_id] = waiter
        source: Source | None = None
        try:
            source = await self._publish(candidate)
            self._rejections.expect(source, functools.partial(_settle, rejected))
            either: list[asyncio.Future[Any]] = [waiter, rejected]
            await asyncio.wait(
                either,
                timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if waiter.done():
                outcome = waiter.result()
                return Decided(outcome, candidate, earlier=not _decides(outcome, candidate))
            if not rejected.done():
                raise TimeoutError(f"no final outcome for case {case_id} within {timeout_s:g} s")
            letter = rejected.result()
            if letter.reason is DeadLetterReason.CASE_CLOSED and letter.closed_by is not None:
                outcome = await self._earlier_outcome(case_id, letter.closed_by)
                return Decided(outcome, candidate, earlier=True)
            if letter.reason is DeadLetterReason.WRONG_ATTEMPT and candidate.attempt == 1:
                # The case exists and is not final yet: its outcome is the one to wait for.
                remaining = max(0.0, deadline - asyncio.get_running_loop().time())
                outcome = await asyncio.wait_for(waiter, remaining)
                return Decided(outcome, candidate, earlier=True)
            raise CandidateRejected(case_id, letter.reason.value, letter.detail, source)
        finally:
            self._waiters.pop(case_id, None)
            if source is not None:
                self._rejections.forget(source)

    async def _earlier_outcome(self, case_id: str, ref: FinalOutcomeRef) -> FinalOutcome:
        partitions = await self._producer.partitions_for(decision_topic(self.settings, ref))
        outcome = await fetch_final_outcome(
            self.settings,
            case_id,
            ref,
            partitions,
            client_id=f"ratifier-{self.producer_name}-lookup",
        )
        if not self._trusted(outcome):
            raise OutcomeUnavailable(
                f"case {case_id} was decided (decision {ref.decision_id}), but the record found "
                "is not signed by the tally's key"
            )
        return outcome

    async def _ensure_watcher(self) -> None:
        if self._watcher is None:
            self._watcher_ready = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch_final_outcomes(self._watcher_ready))
        assert self._watcher_ready is not None
        ready = asyncio.create_task(self._watcher_ready.wait())
        await asyncio.wait({ready, self._watcher}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._watcher.done():
            failed, self._watcher = self._watcher, None  # the next decide() tries again
            failed.result()  # re-raise why the watcher could not start or stopped

    async def _watch_final_outcomes(self, ready: asyncio.Event) -> None:
        consumer = make_consumer(
            self.settings, group_id=None, client_id=f"ratifier-{self.producer_name}-decide"
        )
        await consumer.start()
        try:
            await assign_all(
                consumer,
                (self.topics.passed, self.topics.escalate, self.topics.deadletter),
                from_beginning=False,
                bootstrap_servers=self.settings.bootstrap_servers,
            )
            ready.set()
            async for record in consumer:
                if record.topic == self.topics.deadletter:
                    self._on_dead_letter(record.value or b"")
                else:
                    self._on_final_outcome(record.key or b"", record.value or b"")
        finally:
            await consumer.stop()

    def _on_final_outcome(self, key: bytes, value: bytes) -> None:
        waiter = self._waiters.get(key.decode())
        if waiter is None or waiter.done():
            return
        try:
            outcome = codec.decode(value)
        except WireFormatError as exc:
            waiter.set_exception(exc)
            return
        if isinstance(outcome, PassDecision | EscalationPacket) and self._trusted(outcome):
            waiter.set_result(outcome)

    def _on_dead_letter(self, value: bytes) -> None:
        try:
            letter = codec.decode_as(value, DeadLetter)
        except WireFormatError:
            return  # not the tally's; nothing to match
        if letter.source_topic == self.topics.candidates:
            self._rejections.arrived(letter)


def _raw_public_key(key: str | bytes) -> bytes | None:
    if isinstance(key, bytes):
        return key or None
    return decode_public_key(key) if key else None


def _decides(outcome: FinalOutcome, candidate: Candidate) -> bool:
    """Whether ``outcome`` is the outcome of the case ``candidate`` opened (its first attempt)."""
    if isinstance(outcome, PassDecision):
        first = outcome.candidate if outcome.attempt == 1 else None
    else:
        first = outcome.attempts[0].candidate if outcome.attempts else None
    return first is None or first.candidate_id == candidate.candidate_id


def _settle(rejected: asyncio.Future[DeadLetter], letter: DeadLetter) -> None:
    if not rejected.done():
        rejected.set_result(letter)


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
