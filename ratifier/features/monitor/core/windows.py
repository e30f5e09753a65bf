"""Sliding windows and the small statistics the monitor computes over them (pure, no I/O).

A :class:`SlidingWindow` keeps the most recent items by time (``span_ms``) and by count
(``max_items``), whichever is stricter: "the last hour, at most the last 10 000 cases". Time is
the records' own timestamps, not the wall clock, so replaying a topic gives the same windows.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "SlidingWindow",
    "TwoProportionTest",
    "quantile",
    "ratio",
    "two_proportion_z_test",
]

T = TypeVar("T")


class SlidingWindow(Generic[T]):
    """Items with timestamps, newest last; older than ``span_ms`` or beyond ``max_items`` drop.

    ``span_ms=None`` keeps items by count alone, ``max_items=None`` by time alone. Items may
    arrive slightly out of time order (several partitions); eviction goes by the newest
    timestamp seen, from the oldest end.
    """

    def __init__(self, *, span_ms: int | None = None, max_items: int | None = None) -> None:
        if span_ms is None and max_items is None:
            raise ValueError("a window needs span_ms, max_items or both")
        if span_ms is not None and span_ms <= 0:
            raise ValueError(f"span_ms must be > 0, got {span_ms}")
        if max_items is not None and max_items <= 0:
            raise ValueError(f"max_items must be > 0, got {max_items}")
        self.span_ms = span_ms
        self.max_items = max_items
        self._items: deque[tuple[int, T]] = deque(maxlen=max_items)
        self._newest_ms: int | None = None

    def add(self, at_ms: int, item: T) -> None:
        self._items.append((at_ms, item))
        if self._newest_ms is None or at_ms > self._newest_ms:
            self._newest_ms = at_ms
        self.advance(self._newest_ms)

    def advance(self, now_ms: int) -> None:
        """Drop what is older than ``span_ms`` before ``now_ms`` (time passes without items too)."""
        if self.span_ms is None:
            return
        oldest = now_ms - self.span_ms
        items = self._items
        while items and items[0][0] <= oldest:
            items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for _, item in self._items)

    def clear(self) -> None:
        self._items.clear()
        self._newest_ms = None


def ratio(part: float, whole: float) -> float:
    """``part / whole``; ``nan`` for an empty whole (a rate of nothing is unknown, not 0)."""
    return part / whole if whole else math.nan


@dataclass(frozen=True, slots=True)
class TwoProportionTest:
    z: float  # positive: the second proportion is the higher one
    p_value: float  # two-sided
    first: float
    second: float


def two_proportion_z_test(
    successes_1: int, trials_1: int, successes_2: int, trials_2: int
) -> TwoProportionTest:
    """Two-sided z-test of p1 = p2 with the pooled variance (statsmodels' proportions_ztest).

    Used for drift: a validator's rejection rate now (2) against its own baseline (1). With no
    variance (both 0% or both 100%) z is 0 and p is 1: no evidence of a change.
    """
    if trials_1 <= 0 or trials_2 <= 0:
        raise ValueError("two_proportion_z_test needs at least one trial on each side")
    p1 = successes_1 / trials_1
    p2 = successes_2 / trials_2
    pooled = (successes_1 + successes_2) / (trials_1 + trials_2)
    variance = pooled * (1 - pooled) * (1 / trials_1 + 1 / trials_2)
    if variance <= 0:
        return TwoProportionTest(0.0, 1.0, p1, p2)
    z = (p2 - p1) / math.sqrt(variance)
    p_value = math.erfc(abs(z) / math.sqrt(2))  # = 2 * (1 - Phi(|z|))
    return TwoProportionTest(z, p_value, p1, p2)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between order statistics (numpy's default).

    ``values`` need not be sorted; ``nan`` when empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
