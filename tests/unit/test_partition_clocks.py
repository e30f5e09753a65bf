"""Each partition's time: how far its inputs have been read, or the wall clock once quiet."""

from __future__ import annotations

from ratifier.streams.rules.clock import PartitionClocks

T0 = 1_700_000_000_000
TOPICS = ("c", "v")


class Wall:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def make() -> tuple[PartitionClocks, Wall]:
    wall = Wall()
    return PartitionClocks(TOPICS, idle_ms=1_000, wall=wall), wall


def test_a_backlog_holds_time_at_the_oldest_topic_read() -> None:
    clocks, wall = make()
    wall.now = T0 + 60_000  # restarted a minute later, both topics full of older records
    clocks.observe("c", 0, T0 + 40_000)  # candidates read far ahead ...
    clocks.observe("v", 0, T0 + 5_000)  # ... of their verdicts
    assert clocks.now(0) == T0 + 5_000
    wall.now += 500
    clocks.observe("v", 0, T0 + 20_000)
    assert clocks.now(0) == T0 + 20_000


def test_a_quiet_topic_lets_time_run_with_the_wall_clock() -> None:
    clocks, wall = make()
    wall.now = T0 + 5_000
    clocks.observe("c", 0, T0 + 4_990)
    clocks.observe("v", 0, T0 + 4_995)
    assert clocks.now(0) == T0 + 4_990
    wall.now = T0 + 40_000  # no validator answered: the window must still close
    assert clocks.now(0) == T0 + 40_000


def test_time_never_goes_back() -> None:
    clocks, wall = make()
    wall.now = T0 + 10_000
    for topic in TOPICS:
        clocks.observe(topic, 0, T0 + 9_000)
    assert clocks.now(0) == T0 + 9_000
    clocks.observe("v", 1, T0)  # another partition's old records change nothing here
    assert clocks.now(1) == T0  # partition 1 is its own
    wall.now += 100
    clocks.observe("v", 0, T0 + 2_000)  # a producer with a slow clock
    assert clocks.now(0) == T0 + 9_000  # an older timestamp does not move time back


def test_nothing_read_yet_holds_time_briefly_after_start() -> None:
    clocks, wall = make()
    assert clocks.now(0) == T0
    wall.now = T0 + 500
    assert clocks.now(0) == T0  # inputs may not have been fetched yet
    wall.now = T0 + 1_500
    assert clocks.now(0) == T0 + 1_500  # nothing came: the partition is quiet
    assert clocks.now(0) <= wall.now


def test_a_record_is_handled_at_its_own_time_when_the_partition_lags() -> None:
    clocks, wall = make()
    wall.now = T0 + 60_000
    clocks.observe("v", 0, T0 + 5_000)
    clocks.observe("c", 0, T0 + 40_000)
    assert clocks.at(0, T0 + 40_000) == T0 + 40_000  # the candidate's window opens at its time
    assert clocks.at(0, T0 + 1_000) == T0 + 5_000  # never before the partition's time
    assert clocks.at(0, T0 + 90_000) == T0 + 60_000  # never after the wall clock


def test_a_lagging_topic_holds_time_however_long_its_poll_took() -> None:
    # A worker that reports lag is never fooled by a slow poll: the idle guess is not used.
    clocks, wall = make()
    wall.now = T0 + 60_000
    clocks.lagging("c", 0, False)
    clocks.lagging("v", 0, True)
    clocks.observe("c", 0, T0 + 40_000)
    clocks.observe("v", 0, T0 + 5_000)
    wall.now += 30_000  # far past idle_ms without a record
    assert clocks.now(0) == T0 + 5_000
    clocks.lagging("v", 0, False)  # caught up: the wall clock again
    assert clocks.now(0) == wall.now


def test_a_lagging_topic_with_nothing_read_yet_stops_time() -> None:
    clocks, wall = make()
    wall.now = T0 + 60_000
    clocks.lagging("c", 0, True)
    clocks.lagging("v", 0, True)
    assert clocks.now(0) < T0  # no window can close before the first record is read
    clocks.observe("c", 0, T0 + 1_000)
    assert clocks.at(0, T0 + 1_000) == T0 + 1_000  # a record is handled at its own time
