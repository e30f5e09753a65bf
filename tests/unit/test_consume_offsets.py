"""The consumer runtime's pure parts: which offset a partition may commit, and the poison brake."""

from __future__ import annotations

import random

import pytest

from ratifier.io.consume import (
    OffsetTracker,
    PartitionOffsets,
    PoisonBrake,
    PoisonHandling,
    PoisonLimitExceeded,
)
from ratifier.io.consume.poison import BRAKE_MIN_RECORDS


def test_nothing_started_commits_nothing() -> None:
    assert PartitionOffsets().safe_offset() is None


def test_the_commit_stops_at_the_lowest_unfinished_offset() -> None:
    offsets = PartitionOffsets()
    for offset in range(10, 15):
        offsets.start(offset)
    offsets.complete(12)
    offsets.complete(14)
    assert offsets.safe_offset() == 10
    offsets.complete(10)
    assert offsets.safe_offset() == 11
    offsets.complete(11)
    assert offsets.safe_offset() == 13  # 12 was done already
    offsets.complete(13)
    assert offsets.safe_offset() == 15  # all done: one past the highest started


def test_gaps_in_offsets_are_not_waited_for() -> None:
    # read_committed skips transaction markers: offsets 3 and 4 never reach the consumer.
    offsets = PartitionOffsets()
    for offset in (1, 2, 5):
        offsets.start(offset)
    offsets.complete(1)
    offsets.complete(2)
    assert offsets.safe_offset() == 5
    offsets.complete(5)
    assert offsets.safe_offset() == 6


def test_a_commit_is_pending_only_when_the_safe_offset_moved() -> None:
    offsets = PartitionOffsets()
    offsets.start(0)
    offsets.start(1)
    assert offsets.pending_commit() == 0
    offsets.committed = 0
    assert offsets.pending_commit() is None
    offsets.complete(1)
    assert offsets.pending_commit() is None  # 0 still runs
    offsets.complete(0)
    assert offsets.pending_commit() == 2


def test_completing_an_unknown_or_repeated_offset_changes_nothing() -> None:
    offsets = PartitionOffsets()
    offsets.start(7)
    offsets.complete(3)
    offsets.complete(7)
    offsets.complete(7)
    assert (offsets.safe_offset(), len(offsets)) == (8, 0)


@pytest.mark.parametrize("seed", range(20))
def test_any_completion_order_commits_exactly_the_finished_prefix(seed: int) -> None:
    rng = random.Random(seed)
    started = sorted(rng.sample(range(200), 60))
    offsets = PartitionOffsets()
    for offset in started:
        offsets.start(offset)
    done: set[int] = set()
    for offset in rng.sample(started, len(started)):
        offsets.complete(offset)
        done.add(offset)
        unfinished = [o for o in started if o not in done]
        expected = unfinished[0] if unfinished else started[-1] + 1
        assert offsets.safe_offset() == expected


def test_the_tracker_commits_per_partition_and_forgets_revoked_ones() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in range(3):
        tracker.start("a", offset)
        tracker.start("b", offset)
    tracker.complete("a", 0)
    tracker.complete("b", 1)
    assert tracker.pending_commits() == {"a": 1, "b": 0}
    tracker.committed({"a": 1, "b": 0})
    assert tracker.pending_commits() == {}
    tracker.forget(["b"])
    tracker.complete("b", 0)  # finished after its revocation: nothing to commit
    assert (tracker.unfinished("b"), tracker.pending_commits(["a", "b"])) == (0, {})
    assert tracker.unfinished("a") == 2


def test_the_brake_trips_on_consecutive_invalid_records() -> None:
    brake = PoisonBrake(PoisonHandling(max_consecutive=3, max_ratio=None))
    for _ in range(3):
        brake.invalid("bad")
    brake.ok()  # a valid record resets the run
    for _ in range(3):
        brake.invalid("bad")
    with pytest.raises(PoisonLimitExceeded, match="4 invalid records in a row"):
        brake.invalid("the fourth")


def test_the_brake_trips_on_the_ratio_only_after_enough_records() -> None:
    brake = PoisonBrake(PoisonHandling(max_consecutive=None, max_ratio=0.5))
    for _ in range(BRAKE_MIN_RECORDS // 2 - 1):
        brake.invalid("bad")  # all invalid so far, but too few records to judge
    for _ in range(BRAKE_MIN_RECORDS // 2):
        brake.ok()
    brake.invalid("bad")  # exactly half: not above the ratio
    with pytest.raises(PoisonLimitExceeded, match=r"records invalid \(RATIFIER_POISON_MAX_RATIO"):
        brake.invalid("one more")


def test_a_brake_without_limits_never_trips() -> None:
    brake = PoisonBrake(PoisonHandling(max_consecutive=None, max_ratio=None))
    for _ in range(10 * BRAKE_MIN_RECORDS):
        brake.invalid("bad")
    assert brake.invalid_total == 10 * BRAKE_MIN_RECORDS


def test_records_read_again_below_the_commit_never_move_it_back() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.committed({"a": 10})  # known before any record (the monitor's resume offsets)
    for offset in (3, 4):
        tracker.start("a", offset)  # read again to rebuild state
        tracker.complete("a", offset)
    assert tracker.pending_commits() == {}
    tracker.start("a", 10)
    tracker.complete("a", 10)
    assert tracker.pending_commits() == {"a": 11}
