"""The consumer runtime every worker but the transactional tally runs on.

Records are handed to the worker's handler as soon as there is room, each in a task of its own,
and may finish in any order (Confluent's Parallel Consumer): a slow record never idles the
others. Per partition the committed offset is the lowest record not yet finished
(:mod:`.offsets`), committed every ``commit_interval_s``; after a crash the unfinished records
and those after them are read again (at least once, as before).

Room is bounded by count and bytes (``max_in_flight``, ``max_in_flight_bytes``): when either is
reached the assigned partitions are paused, so the client stops fetching ahead, and resumed as
records finish. With ``order_by_key`` the records of one key (one case) are handled one after
the other, in offset order; other keys go on meanwhile.

On revocation the revoked partitions' records get up to ``drain_timeout_s`` to finish, then the
rest are cancelled and only finished offsets are committed; stopping (SIGTERM) does the same for
every partition. A handler's :class:`~.poison.InvalidRecord` is dead-lettered or skipped
(:mod:`.poison`), any other exception stops the runtime (a bug: the record is read again after
the fix rather than lost), as does the poison brake.

A worker that must see its records together (the monitor writes a batch's read models to Redis
in one round trip and merges partitions by time) gives a ``batch_handler`` instead: each fetch
(up to ``max_in_flight`` records) is handled whole, one batch after the other, and committed
after it like single records. ``before_fetch``, ``on_assigned`` and ``on_revoked`` let such a
worker restore its state after a rebalance; :meth:`ConsumerRuntime.resume_from` tells the
runtime which offsets are committed already, so records read again below them (to rebuild
state) never move a commit back.

With ``transaction`` (:mod:`.transactional`) a batch worker is exactly once: each batch's
output, dead letters and offsets are committed in one Kafka transaction right after the batch,
and nothing else commits the group's offsets. ``empty_batches`` hands the handler fetches that
brought nothing too (a worker with a second input outside Kafka, as the outcomes writer's
resolutions in Redis).

After the poison brake trips or a handler fails, records still in flight finish without being
counted, logged or dead-lettered: they stay uncommitted and are read again after the fix, and
the stop is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

from ratifier.core.models import DeadLetter
from ratifier.io.consume.offsets import OffsetTracker
from ratifier.io.consume.poison import (
    InvalidRecord,
    PoisonGate,
    PoisonHandling,
    PoisonLimitExceeded,
    PoisonMode,
    dead_letter_for,
)
from ratifier.io.consume.transactional import TransactionalCommits

__all__ = ["Batch", "BatchHandler", "ConsumerRuntime", "Handler", "Limits"]

logger = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord], Awaitable[None]]
Batch = Mapping[TopicPartition, list[ConsumerRecord]]
BatchHandler = Callable[[Batch], Awaitable[None]]
PartitionsHook = Callable[[Collection[TopicPartition]], None]
DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Limits:
    max_in_flight: int = 256  # records read and not finished (running or waiting for their key)
    max_in_flight_bytes: int = 16 * 1024 * 1024  # their keys and values
    commit_interval_s: float = 1.0
    drain_timeout_s: float = 10.0  # on revocation and stop
    poll_timeout_ms: int = 200  # how long a fetch waits when nothing is there
    order_by_key: bool = False

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.max_in_flight_bytes < 1:
            raise ValueError("max_in_flight and max_in_flight_bytes must be >= 1")


class ConsumerRuntime:
    """Runs ``handler`` over the records of ``topics``; see the module docstring.

    Subscribes ``consumer`` (not started yet, created without topics) with its rebalance
    listener. ``commits`` is False for a consumer without a group (nothing to commit).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: Sequence[str],
        handler: Handler | None = None,
        *,
        batch_handler: BatchHandler | None = None,
        limits: Limits | None = None,
        poison: PoisonHandling | None = None,
        dead_letter: DeadLetterSink | None = None,
        commits: bool = True,
        before_fetch: Callable[[], Awaitable[None]] | None = None,
        on_assigned: PartitionsHook | None = None,
        on_revoked: PartitionsHook | None = None,
        transaction: TransactionalCommits | None = None,
        empty_batches: bool = False,
    ) -> None:
        self.limits = limits or Limits()
        self.poison = poison or PoisonHandling(
            PoisonMode.SKIP if dead_letter is None else PoisonMode.DEAD_LETTER
        )
        if self.poison.mode is PoisonMode.DEAD_LETTER and dead_letter is None:
            raise ValueError("poison mode dead-letter needs a dead-letter sink")
        if (handler is None) == (batch_handler is None):
            raise ValueError("give a handler or a batch_handler, not both")
        if (transaction is not None or empty_batches) and batch_handler is None:
            raise ValueError("transaction and empty_batches need a batch_handler")
        self._consumer = consumer
        self._handler = handler
        self._batch_handler = batch_handler
        self._before_fetch = before_fetch
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self._dead_letter = dead_letter
        self._commits = commits
        self._transaction = transaction
        self._empty_batches = empty_batches
        self._batch_letters: list[tuple[DeadLetter, InvalidRecord]] = []
        self._gate = PoisonGate(self.poison)
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        # Per-key ordering: the records waiting behind the one of their key that runs.
        self._waiting: dict[tuple[TopicPartition, bytes], deque[ConsumerRecord]] = {}
        self._finished = asyncio.Event()
        self._failure: BaseException | None = None
        self._paused = False
        self._record_size: float | None = None  # running average, for the byte limit
        self._last_commit = time.monotonic()
        self.in_flight = 0
        self.in_flight_bytes = 0
        self.completed = 0
        self.dead_lettered = 0
        self.pauses = 0
        consumer.subscribe(topics=list(topics), listener=_Rebalance(self))

    # --- the loop -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and dispatch until ``stop`` is set or a handler fails; then drain and commit."""
        try:
            while not stop.is_set() and self._failure is None:
                if self._before_fetch is not None:
                    await self._before_fetch()
                if self._batch_handler is not None:
                    await self._fetch_batch(self._batch_handler, stop)
                    await self._commit_when_due()
                    continue
                room = self._room()
                if room > 0:
                    self._resume()
                    batches = await self._consumer.getmany(
                        timeout_ms=self.limits.poll_timeout_ms, max_records=room
                    )
                    for tp, records in batches.items():
                        for record in records:
                            self._dispatch(tp, record)
                else:
                    self._pause()
                    await self._wait_for_a_finish(self.limits.poll_timeout_ms / 1000)
                await self._commit_when_due()
        finally:
            await self.drain(None)
        if self._failure is not None:
            raise self._failure

    async def _commit_when_due(self) -> None:
        if time.monotonic() - self._last_commit >= self.limits.commit_interval_s:
            await self.commit()

    async def _fetch_batch(self, handler: BatchHandler, stop: asyncio.Event) -> None:
        batch = await self._consumer.getmany(
            timeout_ms=self.limits.poll_timeout_ms, max_records=self.limits.max_in_flight
        )
        if stop.is_set() or not (batch or self._empty_batches):
            return
        records = [(tp, record.offset) for tp, rs in batch.items() for record in rs]
        for tp, offset in records:
            self._offsets.start(tp, offset)
        self.in_flight = len(records)
        invalid_before = self.invalid
        self._batch_letters = []
        try:
            await handler(batch)  # any exception stops the runtime; the batch is not committed
            for letter, error in self._batch_letters:  # before the commit (in its transaction)
                await self._send_dead_letter(letter, error)
            for tp, offset in records:
                self._offsets.complete(tp, offset)
            if self._transaction is not None:
                offsets = self._offsets.pending_commits({tp for tp, _ in records})
                await self._transaction.commit(offsets)
                self._offsets.committed(offsets)
        except BaseException:
            if self._transaction is not None:
                await self._transaction.abort()
            raise
        finally:
            self.in_flight = 0
            self._batch_letters = []
        self.completed += len(records)
        self._gate.ok(len(records) - (self.invalid - invalid_before))

    @property
    def invalid(self) -> int:
        """Invalid records counted (by the brake: not those after it tripped)."""
        return self._gate.invalid

    def note_invalid(self, record: ConsumerRecord, error: InvalidRecord) -> None:
        """For a batch handler: ``record`` cannot be used. The brake is applied (raises
        :class:`PoisonLimitExceeded` past a limit); then it is skipped (counted, logged) or, in
        dead-letter mode, dead-lettered once the handler returns, before the batch's commit."""
        if not self._gate.reject(_where(record), error):
            return
        letter = dead_letter_for(
            record.value or b"", record.topic, record.partition, record.offset, error
        )
        self._batch_letters.append((letter, error))

    async def _send_dead_letter(self, letter: DeadLetter, error: InvalidRecord) -> None:
        assert self._dead_letter is not None  # dead-letter mode is refused without a sink
        await self._dead_letter(letter)
        self.dead_lettered += 1
        logger.error("dead-lettered %s (%s): %s", _where_letter(letter), error.reason, error.detail)

    def resume_from(self, offsets: Mapping[TopicPartition, int]) -> None:
        """These offsets are committed already: never commit below them."""
        self._offsets.committed(dict(offsets))

    def _room(self) -> int:
        """Records the next fetch may bring: within the count, and within the bytes at the
        records' average size so far (one record to learn it)."""
        free_bytes = self.limits.max_in_flight_bytes - self.in_flight_bytes
        if free_bytes <= 0:
            return 0
        free = self.limits.max_in_flight - self.in_flight
        if self._record_size is None:
            return min(free, 1)
        return min(free, max(1, int(free_bytes / self._record_size)))

    def _pause(self) -> None:
        if not self._paused:
            self._consumer.pause(*self._consumer.assignment())
            self._paused = True
            self.pauses += 1

    def _resume(self) -> None:
        if self._paused:
            self._consumer.resume(*self._consumer.paused())
            self._paused = False

    async def _wait_for_a_finish(self, timeout_s: float) -> None:
        self._finished.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()

    # --- one record -----------------------------------------------------------------------------

    def _dispatch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        self._offsets.start(tp, record.offset)
        size = _size(record)
        self.in_flight += 1
        self.in_flight_bytes += size
        average = self._record_size
        self._record_size = size if average is None else average + (size - average) / 16
        if self.limits.order_by_key and record.key is not None:
            waiting = self._waiting.get((tp, record.key))
            if waiting is not None:
                waiting.append(record)
                return
            self._waiting[(tp, record.key)] = deque()
        self._launch(tp, record)

    def _launch(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        task = asyncio.create_task(self._handle(tp, record))
        tasks = self._tasks.setdefault(tp, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        finished = False
        assert self._handler is not None  # records are dispatched one by one only with it
        try:
            try:
                await self._handler(record)
                self._gate.ok()
                finished = True
            except InvalidRecord as exc:
                finished = await self._poisoned(record, exc)
        except Exception as exc:  # a bug, or the dead letter failed: stop, read it again later
            logger.exception("handler failed on %s[%d]@%d", tp.topic, tp.partition, record.offset)
            self._fail(exc)
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= _size(record)
            if finished:
                self._offsets.complete(tp, record.offset)
                self.completed += 1
            self._next_of_key(tp, record, go_on=finished)
            self._finished.set()

    async def _poisoned(self, record: ConsumerRecord, exc: InvalidRecord) -> bool:
        """Skip or dead-letter ``record``; False (not finished) when the runtime is stopping."""
        if self._failure is not None:  # stopping (the brake, a bug): read again after the fix
            return False
        try:
            dead_letter = self._gate.reject(_where(record), exc)
        except PoisonLimitExceeded as limit:
            self._fail(limit)
            return False
        if not dead_letter:
            return True
        letter = dead_letter_for(
            record.value or b"", record.topic, record.partition, record.offset, exc
        )
        await self._send_dead_letter(letter, exc)
        return True

    def _next_of_key(self, tp: TopicPartition, record: ConsumerRecord, *, go_on: bool) -> None:
        if not self.limits.order_by_key or record.key is None:
            return
        waiting = self._waiting.get((tp, record.key))
        if waiting is None:
            return
        if waiting and go_on and self._failure is None:
            self._launch(tp, waiting.popleft())
        else:
            # Failed (the later records of this key must not overtake it) or none left.
            self._drop_waiting([(tp, record.key)])

    def _drop_waiting(self, keys: Collection[tuple[TopicPartition, bytes]]) -> None:
        for key in keys:
            for record in self._waiting.pop(key, ()):
                self.in_flight -= 1
                self.in_flight_bytes -= _size(record)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._finished.set()

    # --- commits, revocation, stop --------------------------------------------------------------

    async def commit(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Commit the finished prefix of ``partitions`` (default: every assigned one)."""
        self._last_commit = time.monotonic()
        if not self._commits or self._transaction is not None:
            return  # transactional: offsets are committed with each batch's transaction only
        assigned = self._consumer.assignment()
        chosen = assigned if partitions is None else [tp for tp in partitions if tp in assigned]
        offsets = self._offsets.pending_commits(chosen)
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            logger.warning(
                "commit skipped after a rebalance (records will be redelivered): %s", exc
            )
            return
        self._offsets.committed(offsets)

    async def drain(self, partitions: Collection[TopicPartition] | None) -> None:
        """Let the records of ``partitions`` (None: all) finish, up to the drain timeout; cancel
        the rest, commit what finished, and forget those partitions."""
        chosen = list(self._tasks) if partitions is None else list(partitions)
        self._drop_waiting([key for key in self._waiting if key[0] in chosen])
        tasks = [task for tp in chosen for task in self._tasks.get(tp, ())]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.limits.drain_timeout_s)
            for task in late:
                task.cancel()
            if late:
                logger.warning("cancelled %d records still running after the drain", len(late))
                await asyncio.gather(*late, return_exceptions=True)
        await self.commit(chosen if partitions is not None else None)
        self._offsets.forget(chosen)
        for tp in chosen:
            self._tasks.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: ConsumerRuntime) -> None:
        self._runtime = runtime

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        runtime = self._runtime
        await runtime.drain(revoked)
        if runtime.on_revoked is not None:
            runtime.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        runtime = self._runtime
        runtime._paused = False  # a new assignment starts unpaused
        if runtime.on_assigned is not None:
            runtime.on_assigned(assigned)


def _where(record: ConsumerRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def _where_letter(letter: DeadLetter) -> str:
    return f"{letter.source_topic}[{letter.partition}]@{letter.offset}"


def _size(record: ConsumerRecord) -> int:
    return len(record.value or b"") + len(record.key or b"")
