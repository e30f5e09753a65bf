"""Time to decision (ratifier.core.time_to_decision) per policy and outcome, as histogram counts
the tally's ``/metrics`` reads when scraped (streams/metrics.py).

:meth:`DecisionTimes.observe` runs once per decision on the tally's hot path: a type check, a
bisect over 16 bounds and two additions, well under a microsecond.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from ratifier.core.models import Decision
from ratifier.core.time_to_decision import outcome_of, seconds_to_decision

__all__ = ["BUCKETS_S", "DecisionTimes", "HistogramCounts"]

# Upper bounds in seconds (Prometheus "le"): an inline pass takes milliseconds, a timed-out
# window the policy's window (30 s by default), a retry-timeout escalation minutes.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class HistogramCounts:
    """One series: observations per bucket (the last one past every bound), their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.total = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: (le, observations at most le), ending with +Inf."""
        out, running = [], 0
        for bound, count in zip((*map(str, BUCKETS_S), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class DecisionTimes:
    """Time-to-decision histograms keyed by (policy, outcome)."""

    __slots__ = ("_series",)

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], HistogramCounts] = {}

    def observe(self, decision: Decision) -> None:
        seconds = seconds_to_decision(decision)
        if seconds is None:
            return
        key = (decision.policy, outcome_of(decision))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = HistogramCounts()
        series.counts[bisect_left(BUCKETS_S, seconds)] += 1
        series.total += seconds

    def __iter__(self) -> Iterator[tuple[tuple[str, str], HistogramCounts]]:
        return iter(sorted(self._series.items()))
