"""Inter-rater agreement: Cohen's kappa for a pair of validators, Fleiss' kappa for a group.

Kappa is agreement beyond chance: 1 is perfect agreement, 0 what independent raters with the
same vote shares would reach, below 0 systematic disagreement. The monitor computes it over the
attempts that failed, where independent validators agree only by chance on their mistakes, so
a high kappa there means validators sharing blind spots (docs/monitoring.md).

Both functions return ``nan`` where kappa is undefined: every vote in one category, so chance
agreement is already 1 and "beyond chance" has no meaning. Callers treat ``nan`` as "no evidence".
The formulas are those of statsmodels' ``cohens_kappa`` (unweighted) and ``fleiss_kappa``
(method ``fleiss``); the unit tests compare the two.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

__all__ = ["cohens_kappa", "fleiss_kappa", "fleiss_table", "pairwise_labels"]


def cohens_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> float:
    """Cohen's kappa of two raters, from their (label of rater 1, label of rater 2) per item."""
    joint: Counter[tuple[Hashable, Hashable]] = Counter(pairs)
    n = sum(joint.values())
    if n == 0:
        return math.nan
    first: Counter[Hashable] = Counter()
    second: Counter[Hashable] = Counter()
    agreed = 0
    for (a, b), count in joint.items():
        first[a] += count
        second[b] += count
        if a == b:
            agreed += count
    observed = agreed / n
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    if math.isclose(expected, 1.0):
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items x categories table of counts, each row the same total.

    Row i holds how many raters put item i in each category; every item needs the same number
    of raters (use :func:`fleiss_table` to build it from votes).
    """
    rows = [list(row) for row in table if sum(row)]
    if not rows:
        return math.nan
    raters = sum(rows[0])
    if raters < 2:
        return math.nan
    if any(sum(row) != raters for row in rows):
        raise ValueError("fleiss_kappa: every item needs the same number of ratings")
    items = len(rows)
    total = items * raters
    shares = [sum(row[j] for row in rows) / total for j in range(len(rows[0]))]
    per_item = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in rows]
    observed = sum(per_item) / items
    expected = sum(p * p for p in shares)
    if math.isclose(expected, 1.0):
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_table(
    items: Iterable[Mapping[str, Hashable]], raters: Sequence[str], categories: Sequence[Hashable]
) -> list[list[int]]:
    """Rows for :func:`fleiss_kappa`: the items on which every one of ``raters`` voted.

    ``items`` maps rater -> label per item; items missing a rater are left out, since Fleiss'
    kappa needs the same number of ratings per item.
    """
    index = {category: j for j, category in enumerate(categories)}
    rows = []
    for votes in items:
        if not all(rater in votes for rater in raters):
            continue
        row = [0] * len(categories)
        for rater in raters:
            row[index[votes[rater]]] += 1
        rows.append(row)
    return rows


def pairwise_labels(
    items: Iterable[Mapping[str, Hashable]], first: str, second: str
) -> list[tuple[Hashable, Hashable]]:
    """(label of ``first``, label of ``second``) for each item both rated."""
    return [(votes[first], votes[second]) for votes in items if first in votes and second in votes]
