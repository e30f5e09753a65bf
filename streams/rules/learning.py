"""Online reliability weighting: voters' weights learned from the tally's own decisions.

A policy with ``[reliability] learn = "online"`` does not take its voters' weights and
reliabilities from the file: each partition of the tally keeps an
:class:`~ratifier.core.calibration.OnlineReliability` model per such policy, and every decided
attempt (a pass, a retry request, an escalated last attempt) teaches it. The model gives each
voter's sensitivity and specificity; its reliability is their mean, its weight the log-odds of
that reliability (weighted majority is then the one-coin maximum a posteriori rule), and the
pass confidence uses the same reliability. Learning is the E step of an online Dawid-Skene: an
attempt's voter verdicts, counted and late, weighted by the model's posterior that its
candidate was acceptable given them (soft, not the hard pass/fail, which reinforces the
model's own mistakes). An attempt teaches once, when it is *settled* (``tally.Step.settled``):
when its last validator's verdict is in, or when the case is forgotten short of that. Learning
from the verdicts in at the (early) decision only would be biased: an early decision stops
exactly when the votes so far agree enough.

Policies that name the same ``[reliability] model`` share one model per partition.

This module is the statistics, pure: :func:`effective_policy` and :func:`learn`. Where the
models are kept (in the case store, per partition) is ``ratifier.streams.learned_models``.
"""

from __future__ import annotations

import dataclasses

from ratifier.core.calibration import OnlineReliability, reliability_weight
from ratifier.core.models import Vote
from ratifier.core.policy import Policy, Role
from ratifier.streams.rules.state import AttemptState

__all__ = ["effective_policy", "learn", "model_name", "new_model"]


def model_name(policy: Policy) -> str:
    """Policies that name the same ``[reliability] model`` share one model."""
    return policy.learned_model or policy.name


def new_model(policy: Policy) -> OnlineReliability:
    return OnlineReliability(policy.learned_prior, policy.learned_strength)


def effective_policy(policy: Policy, model: OnlineReliability) -> Policy:
    """``policy`` with every voter's weight and reliability taken from ``model``."""
    validators = tuple(
        dataclasses.replace(
            spec,
            weight=reliability_weight(model.reliability(spec.id)),
            reliability=model.reliability(spec.id),
            category_weights={},  # a learned weight holds for every category
        )
        if spec.role is Role.VOTER
        else spec
        for spec in policy.validators
    )
    return dataclasses.replace(policy, validators=validators)


def learn(model: OnlineReliability, policy: Policy, attempt: AttemptState) -> bool:
    """Teach ``model`` a settled attempt (every verdict in, counted or late; see
    ``tally.Step.settled``); False if it had nothing to teach."""
    voters = {spec.id for spec in policy.voters}
    votes = [
        (v.validator_id, v.vote is Vote.ACCEPT)
        for v in (*attempt.votes.values(), *attempt.late_verdicts)
        if v.validator_id in voters and v.vote is not Vote.ABSTAIN
    ]
    if not votes:
        return False
    model.update(votes, model.posterior(votes, policy.prior))
    return True
