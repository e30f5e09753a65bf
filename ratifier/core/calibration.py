"""Statistics for choosing a policy from history: labelled datasets, reference aggregators, an
online reliability model, the binomial closed form and a validator simulator. Pure, no I/O
beyond reading a dataset file the caller names.

- :func:`read_standardized_tsv` reads crowd labels with gold answers (the "standardized" TSV of
  Snow et al. 2008 and SQUARE: annotation id, worker id, item id, response, gold).
- :func:`majority_vote` and :func:`dawid_skene` are the batch references: plain majority (ties
  to the negative label) and the two-coin Dawid-Skene EM started from the majority.
- :class:`OnlineReliability` learns each validator's sensitivity and specificity online, one
  decided case at a time (a one-pass, soft-count version of the same EM): the weights of the
  ``online`` mode.
- :func:`binomial_tail` and :func:`simulate` give the false-pass rate of an M-of-N rule for
  validators that err with probability p, independently (closed form) or with a shared error
  (correlation ``rho``: with probability rho a case's validators all follow one draw).

The replay of a dataset through the tally's rules is in ``ratifier.app.calibration_replay``.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DawidSkene",
    "LabelledItem",
    "LabelledSet",
    "OnlineReliability",
    "SimulationResult",
    "accuracy",
    "binomial_tail",
    "dawid_skene",
    "majority_vote",
    "read_standardized_tsv",
    "reliability_weight",
    "simulate",
]

# Reliabilities are kept inside (0.5, 1): at 0.5 a validator carries no evidence, at 1 one vote
# would decide alone (and its log-odds weight would be infinite).
_LOW, _HIGH = 0.501, 0.999


@dataclass(frozen=True, slots=True)
class LabelledItem:
    item_id: str
    gold: str
    labels: tuple[tuple[str, str], ...]  # (worker / validator id, label), in file order


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """Binary labelled history: ``positive`` is the label a candidate proposes on attempt 1."""

    name: str
    items: tuple[LabelledItem, ...]
    positive: str
    negative: str

    @property
    def validators(self) -> tuple[str, ...]:
        return tuple(sorted({w for item in self.items for w, _ in item.labels}))

    def head(self, count: int) -> LabelledSet:
        return LabelledSet(self.name, self.items[:count], self.positive, self.negative)


def read_standardized_tsv(path: str | Path, positive: str | None = None) -> LabelledSet:
    """Items in order of first appearance. ``positive`` defaults to the larger of the two labels
    (RTE: 1 = entailed; TEMP: 2), so that ties go to the smaller one, as the usual references do.
    """
    path = Path(path)
    labels: dict[str, list[tuple[str, str]]] = {}
    gold: dict[str, str] = {}
    with path.open(newline="", encoding="ascii") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, None)
        if header is None or len(header) < 5:
            raise ValueError(f"{path}: not a standardized TSV (5 columns with a header line)")
        for number, row in enumerate(rows, start=2):
            if len(row) != 5:
                raise ValueError(f"{path}:{number}: expected 5 tab-separated columns")
            _, worker, item, response, answer = row
            if gold.setdefault(item, answer) != answer:
                raise ValueError(f"{path}:{number}: item {item} has two gold labels")
            labels.setdefault(item, []).append((worker, response))
    classes = sorted({*gold.values(), *(lab for ls in labels.values() for _, lab in ls)})
    if len(classes) != 2:
        raise ValueError(f"{path}: binary labels expected, found {classes}")
    pos = classes[1] if positive is None else positive
    if pos not in classes:
        raise ValueError(f"{path}: positive label {pos!r} is not one of {classes}")
    neg = classes[0] if pos == classes[1] else classes[1]
    items = tuple(LabelledItem(i, gold[i], tuple(ls)) for i, ls in labels.items())
    return LabelledSet(path.name.split(".")[0], items, pos, neg)


def accuracy(predicted: Mapping[str, str], data: LabelledSet) -> float:
    return sum(predicted[item.item_id] == item.gold for item in data.items) / len(data.items)


def majority_vote(data: LabelledSet) -> dict[str, str]:
    """The label most workers gave; a tie goes to the negative label."""
    out = {}
    for item in data.items:
        yes = sum(1 for _, label in item.labels if label == data.positive)
        out[item.item_id] = data.positive if 2 * yes > len(item.labels) else data.negative
    return out


@dataclass(frozen=True, slots=True)
class DawidSkene:
    labels: dict[str, str]  # item -> estimated label (posterior > 0.5, else negative)
    reliabilities: dict[str, float]  # worker -> (sensitivity + specificity) / 2


def dawid_skene(data: LabelledSet, iterations: int = 50, smoothing: float = 0.01) -> DawidSkene:
    """Batch two-coin Dawid-Skene EM, started from the majority vote; ties to negative."""
    posterior = {
        item.item_id: 1.0 if label == data.positive else 0.0
        for item, label in zip(data.items, majority_vote(data).values(), strict=True)
    }
    for _ in range(iterations):
        prior = sum(posterior.values()) / len(posterior)
        # counts[worker] = [positive truth: says pos, says neg, negative truth: says pos, neg]
        counts: dict[str, list[float]] = {}
        for item in data.items:
            p = posterior[item.item_id]
            for worker, label in item.labels:
                c = counts.setdefault(worker, [smoothing] * 4)
                says_pos = label == data.positive
                c[0 if says_pos else 1] += p
                c[2 if says_pos else 3] += 1.0 - p
        for item in data.items:
            log_pos, log_neg = math.log(prior), math.log(1.0 - prior)
            for worker, label in item.labels:
                c = counts[worker]
                if label == data.positive:
                    log_pos += math.log(c[0] / (c[0] + c[1]))
                    log_neg += math.log(c[2] / (c[2] + c[3]))
                else:
                    log_pos += math.log(c[1] / (c[0] + c[1]))
                    log_neg += math.log(c[3] / (c[2] + c[3]))
            posterior[item.item_id] = _logistic(log_pos - log_neg)
    labels = {i: data.positive if p > 0.5 else data.negative for i, p in posterior.items()}
    reliabilities = {
        w: (c[0] / (c[0] + c[1]) + c[3] / (c[2] + c[3])) / 2.0 for w, c in counts.items()
    }
    return DawidSkene(labels, reliabilities)


def reliability_weight(reliability: float) -> float:
    """The log-odds weight of a validator of this reliability (weighted majority is then the
    one-coin maximum a posteriori rule)."""
    r = min(max(reliability, _LOW), _HIGH)
    return math.log(r / (1.0 - r))


@dataclass
class OnlineReliability:
    """Per-validator sensitivity P(accept | acceptable) and specificity P(reject | not), learned
    from decided cases one at a time: soft counts plus a prior of ``strength`` pseudo-votes at
    ``prior_reliability``. :meth:`reliability` is their mean, the one-coin reliability the tally
    weights by. Serialisable with :meth:`to_json` / :meth:`from_json` (plain lists and floats).
    """

    prior_reliability: float = 0.8
    strength: float = 2.0
    # validator -> [accepted when acceptable, acceptable, rejected when not, not acceptable]
    counts: dict[str, list[float]] = field(default_factory=dict)

    def sensitivity(self, validator: str) -> float:
        c = self.counts.get(validator)
        prior = self.prior_reliability * self.strength
        return prior / self.strength if c is None else (c[0] + prior) / (c[1] + self.strength)

    def specificity(self, validator: str) -> float:
        c = self.counts.get(validator)
        prior = self.prior_reliability * self.strength
        return prior / self.strength if c is None else (c[2] + prior) / (c[3] + self.strength)

    def reliability(self, validator: str) -> float:
        r = (self.sensitivity(validator) + self.specificity(validator)) / 2.0
        return min(max(r, _LOW), _HIGH)

    def posterior(self, votes: Iterable[tuple[str, bool]], prior: float = 0.5) -> float:
        """P(acceptable | votes) under the two-coin model; votes are (validator, accepted)."""
        z = math.log(prior / (1.0 - prior))
        for validator, accepted in votes:
            se = min(max(self.sensitivity(validator), 1e-3), 1 - 1e-3)
            sp = min(max(self.specificity(validator), 1e-3), 1 - 1e-3)
            z += math.log(se / (1 - sp)) if accepted else math.log((1 - se) / sp)
        return _logistic(z)

    def update(self, votes: Iterable[tuple[str, bool]], acceptable: float) -> None:
        """Learn from one decided case: ``acceptable`` is 1.0, 0.0 or a probability."""
        for validator, accepted in votes:
            c = self.counts.setdefault(validator, [0.0, 0.0, 0.0, 0.0])
            c[1] += acceptable
            c[3] += 1.0 - acceptable
            if accepted:
                c[0] += acceptable
            else:
                c[2] += 1.0 - acceptable

    def to_json(self) -> dict[str, object]:
        return {
            "prior_reliability": self.prior_reliability,
            "strength": self.strength,
            "counts": {k: list(v) for k, v in sorted(self.counts.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> OnlineReliability:
        counts = data.get("counts", {})
        if not isinstance(counts, dict):
            raise ValueError("counts must be an object")
        prior = data.get("prior_reliability", 0.8)
        strength = data.get("strength", 2.0)
        if not isinstance(prior, int | float) or not isinstance(strength, int | float):
            raise ValueError("prior_reliability and strength must be numbers")
        return cls(
            float(prior),
            float(strength),
            {str(k): [float(x) for x in v] for k, v in counts.items()},
        )


# --- the closed form and the simulator ---------------------------------------------------------


def binomial_tail(n: int, m: int, p: float) -> float:
    """P(X >= m) for X ~ Binomial(n, p): the chance that at least m of n independent validators,
    each wrong with probability p, accept a bad candidate (an M-of-N false pass)."""
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(m, n + 1))


@dataclass(frozen=True, slots=True)
class SimulationResult:
    n: int
    m: int
    p: float
    rho: float
    cases: int
    false_passes: int  # bad candidates that reached M accepts
    closed_form: float  # the independent-validator value, binomial_tail(n, m, p)

    @property
    def false_pass_rate(self) -> float:
        return self.false_passes / self.cases

    @property
    def standard_error(self) -> float:
        """The binomial sampling error of the simulated rate, at the closed-form rate."""
        return math.sqrt(self.closed_form * (1 - self.closed_form) / self.cases)


def simulate(
    n: int, m: int, p: float, cases: int, *, rho: float = 0.0, seed: int = 0
) -> SimulationResult:
    """Bad candidates judged by n validators that each accept one wrongly with probability p.

    With ``rho`` > 0 a case is, with probability rho, "shared": every validator follows one
    draw (all err or none does), which keeps each validator's error rate at p and gives a
    pairwise error correlation of rho. With rho = 0 the rate converges to the binomial tail.
    """
    if not (1 <= m <= n and 0 <= p <= 1 and 0 <= rho <= 1 and cases > 0):
        raise ValueError("need 1 <= m <= n, 0 <= p <= 1, 0 <= rho <= 1 and cases > 0")
    rng = random.Random(seed)
    false_passes = 0
    for _ in range(cases):
        if rho and rng.random() < rho:
            wrong = n if rng.random() < p else 0
        else:
            wrong = sum(1 for _ in range(n) if rng.random() < p)
        false_passes += wrong >= m
    return SimulationResult(n, m, p, rho, cases, false_passes, binomial_tail(n, m, p))


def _logistic(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
