"""How far a rate measured on a small history can be trusted, and how alike validators err.

- :func:`wilson_interval`: the Wilson score interval of a binomial proportion (the one
  statsmodels' ``proportion_confint(method="wilson")`` gives; the unit tests compare the two). It
  stays inside [0, 1] and is honest at 0 of n, where the normal interval collapses to a point:
  0 wrong passes of 60 is still "up to 6 %".
- :func:`error_correlations`: for every pair of validators, the correlation (phi) of their
  errors over the items both labelled, and :func:`fitted_rho`, their mean weighted by shared
  items: the ``rho`` of ``ratifier.core.calibration.simulate``, whose pairwise error
  correlation is exactly rho.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

from ratifier.core.calibration import LabelledSet

__all__ = [
    "PairCorrelation",
    "error_correlations",
    "false_accept_rate",
    "fitted_rho",
    "strongest",
    "wilson_interval",
]


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` / ``trials``; (0, 1) when there are no trials."""
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 (or n) of n the bound is exactly 0 (or 1); the float formula leaves a rounding there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True, slots=True)
class PairCorrelation:
    first: str
    second: str
    shared: int  # items both labelled
    phi: float  # correlation of their error indicators over those items; nan if undefined


def error_correlations(data: LabelledSet, min_shared: int = 10) -> list[PairCorrelation]:
    """Every pair of validators with at least ``min_shared`` items in common, by validator ids.

    Each validator's error on an item is 1 when its label differs from gold. phi is undefined
    (nan) when either validator was always right, or always wrong, on the shared items.
    """
    # (a, b) -> [both right, a wrong only, b wrong only, both wrong]
    tables: dict[tuple[str, str], list[int]] = {}
    for item in data.items:
        wrong = {worker: label != item.gold for worker, label in item.labels}
        for a, b in combinations(sorted(wrong), 2):
            cell = tables.setdefault((a, b), [0, 0, 0, 0])
            cell[wrong[a] + 2 * wrong[b]] += 1
    return [
        PairCorrelation(a, b, sum(cells), _phi(*cells))
        for (a, b), cells in sorted(tables.items())
        if sum(cells) >= min_shared
    ]


def _phi(right: int, a_only: int, b_only: int, both: int) -> float:
    a_wrong, a_right = a_only + both, right + b_only
    b_wrong, b_right = b_only + both, right + a_only
    product = a_wrong * a_right * b_wrong * b_right
    if product == 0:
        return math.nan
    return (both * right - a_only * b_only) / math.sqrt(product)


def fitted_rho(pairs: Iterable[PairCorrelation]) -> float:
    """The shared-error weight of the simulation that matches ``pairs``: their phi, averaged
    with the shared item counts as weights, at least 0 (the simulator cannot anti-correlate).
    0 when no pair has a defined phi."""
    total = weighted = 0.0
    for pair in pairs:
        if not math.isnan(pair.phi):
            total += pair.shared
            weighted += pair.shared * pair.phi
    return max(0.0, weighted / total) if total else 0.0


def false_accept_rate(data: LabelledSet) -> tuple[int, int]:
    """(labels that accept a bad candidate, labels on bad candidates): over items whose gold is
    the negative label, how often a validator gave the positive one (the simulation's p)."""
    wrong = total = 0
    for item in data.items:
        if item.gold == data.negative:
            total += len(item.labels)
            wrong += sum(1 for _, label in item.labels if label == data.positive)
    return wrong, total


def strongest(pairs: Sequence[PairCorrelation], count: int) -> list[PairCorrelation]:
    """The ``count`` pairs with the highest defined phi (ties: more shared items first)."""
    defined = [pair for pair in pairs if not math.isnan(pair.phi)]
    return sorted(defined, key=lambda pair: (-pair.phi, -pair.shared, pair.first))[:count]
