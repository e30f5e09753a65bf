"""The tally's time per partition: how far its inputs have been read, or the wall clock.

Voting windows close at a deadline, and a validator that never answers must not hold a window
open forever, so time cannot stop when a partition goes quiet. But wall-clock time alone is
wrong whenever the tally lags behind its inputs (after a restart, under a burst): a window
opened from a backlog would close before the verdicts already waiting in Kafka were read, and
those cases would be retried although their votes were there. (The 1M-case benchmark showed it:
~30 % of the cases were retried when candidates, five times fewer records than verdicts, were
read far ahead of their verdicts.)

So each partition's clock is the smallest of, over the input topics (candidates, verdicts):
the newest record timestamp read from that topic's partition, or the wall clock once that
topic-partition is caught up. It never moves backwards. Whether a topic-partition is caught up
is known exactly where the consumer reports its lag (:meth:`PartitionClock.lagging`: the
transactional engine compares its position with the last stable offset after every poll);
otherwise it is guessed: caught up once it has delivered nothing for ``idle_ms`` (the faust
adapter). A guess by wall time alone misleads a worker whose poll takes longer than
``idle_ms`` to process: every topic looks idle at once, and a backlog's windows close.
Kafka Streams makes the same choice with stream time and ``max.task.idle.ms``; faust has
neither, hence this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ratifier.core.models import now_ms

# A topic-partition that delivered nothing for this long no longer holds its partition's clock.
IDLE_MS = 1_000


class PartitionClock:
    """One partition's time (the transactional engine's partition task owns one)."""

    __slots__ = ("_lagging", "_last", "_read", "_started_ms", "idle_ms", "topics", "wall")

    def __init__(
        self,
        topics: Sequence[str],
        idle_ms: int = IDLE_MS,
        wall: Callable[[], int] = now_ms,
        started_ms: int | None = None,
    ) -> None:
        self.topics = tuple(topics)
        self.idle_ms = idle_ms
        self.wall = wall
        self._started_ms = wall() if started_ms is None else started_ms
        self._read: dict[str, tuple[int, int]] = {}  # topic -> (newest timestamp, seen at)
        self._lagging: dict[str, bool] = {}  # reported by the consumer, where known
        self._last: int | None = None

    def observe(self, topic: str, timestamp_ms: int) -> None:
        """A record of ``topic`` with this (producer) timestamp was read."""
        # Called for every record the engine reads: comparisons, not min/max calls.
        seen = self._read.get(topic)
        if seen is not None and seen[0] > timestamp_ms:
            timestamp_ms = seen[0]
        self._read[topic] = (timestamp_ms, self.wall())

    def lagging(self, topic: str, behind: bool) -> None:
        """The consumer knows: ``topic`` has records not yet read (or not)."""
        self._lagging[topic] = behind

    def now(self) -> int:
        """The partition's time (ms): never later than the wall clock, never going back."""
        # Called for every record the engine reads (through at): locals and comparisons, not
        # attribute lookups and min/max calls; the same result.
        wall = self.wall()
        now = wall
        read, lagging, last = self._read, self._lagging, self._last
        for topic in self.topics:
            seen = read.get(topic)
            behind = lagging.get(topic)
            if behind is not None:
                if behind:  # hold time where this topic's records have got to
                    held = (last or 0) if seen is None else seen[0]
                    if held < now:
                        now = held
                continue
            if seen is None:
                # Nothing read yet: hold time until the topic-partition has had time to deliver.
                if wall - self._started_ms < self.idle_ms:
                    held = self._started_ms if last is None else last
                    if held < now:
                        now = held
                continue
            newest, seen_at = seen
            if wall - seen_at < self.idle_ms and newest < now:
                now = newest
        if last is not None and last > now:  # never back
            now = last
        self._last = now
        return now

    def at(self, timestamp_ms: int) -> int:
        """The time to handle a record stamped ``timestamp_ms`` at.

        Its own timestamp when the partition's time is behind it (a window opens when its
        candidate was produced, not when a lagging tally reads it), never later than the wall
        clock and never earlier than the partition's time.
        """
        now = self.now()
        wall = self.wall()
        if timestamp_ms > wall:
            timestamp_ms = wall
        return now if now > timestamp_ms else timestamp_ms


class PartitionClocks:
    """A :class:`PartitionClock` per partition, made on first use (the faust adapter's)."""

    def __init__(
        self,
        topics: Sequence[str],
        idle_ms: int = IDLE_MS,
        wall: Callable[[], int] = now_ms,
    ) -> None:
        self.topics = tuple(topics)
        self.idle_ms = idle_ms
        self.wall = wall
        self._started_ms = wall()
        self._clocks: dict[int, PartitionClock] = {}

    def clock(self, partition: int) -> PartitionClock:
        clock = self._clocks.get(partition)
        if clock is None:
            clock = PartitionClock(self.topics, self.idle_ms, self.wall, self._started_ms)
            self._clocks[partition] = clock
        return clock

    def observe(self, topic: str, partition: int, timestamp_ms: int) -> None:
        """A record of ``topic`` on ``partition`` with this (producer) timestamp was read."""
        self.clock(partition).observe(topic, timestamp_ms)

    def lagging(self, topic: str, partition: int, behind: bool) -> None:
        """The consumer knows: ``topic``'s ``partition`` has records not yet read (or not)."""
        self.clock(partition).lagging(topic, behind)

    def now(self, partition: int) -> int:
        """``partition``'s time (ms): never later than the wall clock, never going back."""
        return self.clock(partition).now()

    def at(self, partition: int, timestamp_ms: int) -> int:
        """The time to handle a record stamped ``timestamp_ms`` on ``partition`` at."""
        return self.clock(partition).at(timestamp_ms)
