"""When the tally hands freed heap back: after many deletions, or when a burst of them ends."""

from __future__ import annotations

from ratifier.streams.heap import HeapTrimmer, glibc_malloc_trim


class FakeTrim:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pad: int) -> int:
        assert pad == 0
        self.calls += 1
        return 1


def test_trims_every_n_deletions_while_a_burst_goes_on() -> None:
    trim = FakeTrim()
    trimmer = HeapTrimmer(trim, every_deletes=100, after_burst=10)
    for total in range(0, 350, 50):  # deleting 50 per tick, never pausing
        trimmer.maybe_trim(total)
    assert trim.calls == 3  # at 100, 200 and 300


def test_trims_once_when_a_burst_ends() -> None:
    trim = FakeTrim()
    trimmer = HeapTrimmer(trim, every_deletes=100, after_burst=10)
    assert not trimmer.maybe_trim(40)
    assert trimmer.maybe_trim(40)  # nothing deleted since: the burst is over
    assert not trimmer.maybe_trim(40)  # and nothing new to give back
    assert trim.calls == 1


def test_a_small_burst_is_not_worth_a_trim() -> None:
    trim = FakeTrim()
    trimmer = HeapTrimmer(trim, every_deletes=100, after_burst=10)
    for total in (5, 5, 5, 9, 9):
        assert not trimmer.maybe_trim(total)
    assert trim.calls == 0


def test_without_malloc_trim_it_only_keeps_count() -> None:
    trimmer = HeapTrimmer(None, every_deletes=10, after_burst=1)
    assert not trimmer.maybe_trim(50)
    assert trimmer.trims == 0


def test_glibc_trim_is_callable_here() -> None:
    trim = glibc_malloc_trim()  # the CI machine runs glibc
    assert trim is not None
    assert trim(0) in (0, 1)
