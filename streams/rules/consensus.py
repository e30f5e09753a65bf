"""How sure a set of votes makes us: the posterior probability that a candidate is acceptable.

Pure arithmetic, no I/O, shared by the tally's rules (``ratifier.streams.rules.tally``) and the
calibration tools. The model is the one-coin model of Dawid and Skene: validator ``i`` votes
correctly with probability ``r_i`` (its *reliability*), independently of the others given the
truth. With a prior ``pi`` that a candidate is acceptable, Bayes' rule in log-odds form is::

    logit P(acceptable | votes) = logit(pi) + sum_i  s_i * m_i * logit(q_i)

where ``s_i`` is +1 for ACCEPT, -1 for REJECT and 0 for ABSTAIN (an abstention carries no
evidence either way), ``q_i = 1/2 + (r_i - 1/2) * c_i`` is the reliability shrunk toward a coin
flip by the validator's own reported confidence ``c_i`` in [0, 1], and ``m_i`` is its policy
weight divided by the mean voter weight (a weight-2 validator counts as two independent votes;
scaling every weight alike changes nothing).

Every term of an accepting vote is >= 0 and of a rejecting vote <= 0, so one more accepting vote,
or a rejection turned into an acceptance, never lowers the posterior.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ratifier.core.fastinit import fast_init

__all__ = [
    "MAX_RELIABILITY",
    "MIN_RELIABILITY",
    "Evidence",
    "log_odds",
    "posterior",
    "vote_log_odds",
]

# A reliability of 1 would make one vote infinitely decisive; cap it (and its log-odds, 6.9).
MAX_RELIABILITY = 0.999
MIN_RELIABILITY = 0.5  # below a coin flip the vote would count for the other side


@fast_init
@dataclass(frozen=True, slots=True)
class Evidence:
    """One counted vote as the posterior sees it."""

    sign: int  # +1 accept, -1 reject, 0 abstain
    reliability: float  # probability the validator votes correctly, (0.5, 1)
    confidence: float  # the validator's reported confidence, [0, 1]
    multiplicity: float = 1.0  # weight / mean voter weight


def vote_log_odds(reliability: float, confidence: float) -> float:
    """The evidence (in log-odds) one vote of this reliability and reported confidence carries."""
    # _clamp inlined: this runs for every vote of every decision (a NaN carries no evidence).
    r = MIN_RELIABILITY if reliability != reliability else reliability
    r = MIN_RELIABILITY if r < MIN_RELIABILITY else MAX_RELIABILITY if r > MAX_RELIABILITY else r
    c = 0.0 if confidence != confidence else confidence
    c = 0.0 if c < 0.0 else 1.0 if c > 1.0 else c
    q = 0.5 + (r - 0.5) * c
    return math.log(q / (1.0 - q))


def log_odds(prior: float, evidence: Iterable[Evidence]) -> float:
    """logit of the posterior; summed in the order given (callers use policy order)."""
    p = _clamp(prior, 1.0 - MAX_RELIABILITY, MAX_RELIABILITY)
    total = math.log(p / (1.0 - p))
    for item in evidence:
        if item.sign:
            evidence_ = vote_log_odds(item.reliability, item.confidence)
            total += item.sign * item.multiplicity * evidence_
    return total


def posterior(prior: float, evidence: Iterable[Evidence]) -> float:
    """P(acceptable | votes), in [0, 1]."""
    z = log_odds(prior, evidence)
    # The logistic function, written to avoid overflow for large |z|.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _clamp(value: float, low: float, high: float) -> float:
    if math.isnan(value):
        return low  # a NaN confidence or reliability carries no evidence
    return min(max(value, low), high)
