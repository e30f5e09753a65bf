"""Human review, the pure part: resolutions, their validation, reviewers and agreement.

No I/O here. The queue (``ratifier.features.review.io.queue``) stores items and resolutions in
Redis; the outcomes feature turns resolutions into outcomes (``ratifier.features.outcomes.core``).
Reviewer tokens are ``ratifier.core.tokens`` (the HTTP gateway's clients use the same files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ratifier.core.errors import InvalidResolution
from ratifier.core.models import (
    AUTO_REVIEWER,
    EscalationPacket,
    Outcome,
    OutcomeClass,
    Vote,
)
from ratifier.core.tokens import Reviewers, load_tokens

__all__ = [
    "Action",
    "Agreement",
    "Resolution",
    "agreement",
    "load_reviewers",
    "tally_agreements",
    "validate_resolution",
]

# Longest correction or note a reviewer may write: an outcome is one Kafka record.
MAX_TEXT_CHARS = 100_000


class Action(StrEnum):
    CONFIRM = "confirm"  # one of the packet's candidates is right as it is
    CORRECT = "correct"  # the reviewer writes the right answer, with a note
    UNRESOLVED = "unresolved"  # the reviewer cannot settle it, and says why


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a reviewer decided for one escalated case."""

    case_id: str
    action: Action
    reviewer: str
    resolved_at_ms: int
    candidate_id: str | None = None  # confirm: the candidate confirmed
    text: str | None = None  # correct: the right answer
    note: str | None = None  # correct/confirm: a note; unresolved: the reason


def validate_resolution(
    packet: EscalationPacket,
    action: Action | str,
    *,
    candidate_id: str | None = None,
    text: str | None = None,
    note: str | None = None,
) -> tuple[Action, str | None, str | None, str | None]:
    """Check a resolution against its packet; (action, candidate id, text, note), cleaned.

    Raises :class:`InvalidResolution` naming what is wrong: an unknown action, a confirmation of
    a candidate the packet does not hold, an empty correction, an unresolved without a reason.
    """
    try:
        action = Action(action)
    except ValueError:
        choices = ", ".join(a.value for a in Action)
        raise InvalidResolution(f"unknown action {action!r}: use one of {choices}") from None
    note = (note or "").strip() or None
    text = (text or "").strip() or None
    for label, value in (("note", note), ("correction", text)):
        if value is not None and len(value) > MAX_TEXT_CHARS:
            raise InvalidResolution(f"the {label} is longer than {MAX_TEXT_CHARS} characters")
    if action is Action.CONFIRM:
        known = [a.candidate.candidate_id for a in packet.attempts]
        if not candidate_id:
            raise InvalidResolution("confirm needs the candidate id of the attempt confirmed")
        if candidate_id not in known:
            raise InvalidResolution(
                f"case {packet.case_id} has no candidate {candidate_id!r} (it has "
                f"{', '.join(known)})"
            )
        return action, candidate_id, None, note
    if action is Action.CORRECT:
        if text is None:
            raise InvalidResolution("a correction needs the corrected text; it is empty")
        if note is None:
            raise InvalidResolution("a correction needs a note saying what was wrong")
        return action, None, text, note
    if note is None:
        raise InvalidResolution("unresolved needs a reason")
    return action, None, None, note


@dataclass(frozen=True, slots=True)
class Agreement:
    """How the automatic judgements of a reviewed case compare with the reviewer's answer.

    Per attempt: the tally rejected every attempt of an escalated case, so it agreed with the
    reviewer on an attempt unless the reviewer confirmed that attempt's candidate. Per validator
    vote: ACCEPT agrees when the reviewer confirmed that candidate, REJECT when they did not
    (ABSTAIN compares nothing). Unresolved cases have no human answer and compare nothing.
    """

    attempts: int = 0
    attempts_agreed: int = 0
    votes: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # id -> (agreed, n)


def agreement(packet: EscalationPacket, outcome: Outcome) -> Agreement:
    if outcome.kind is OutcomeClass.UNRESOLVED or outcome.reviewer == AUTO_REVIEWER:
        return Agreement()
    attempts = agreed = 0
    votes: dict[str, tuple[int, int]] = {}
    for record in packet.attempts:
        human_accepts = record.candidate.candidate_id == outcome.candidate_id
        attempts += 1
        agreed += not human_accepts  # the tally rejected it
        for verdict in record.verdicts:
            if verdict.vote is Vote.ABSTAIN:
                continue
            same = (verdict.vote is Vote.ACCEPT) == human_accepts
            hits, n = votes.get(verdict.validator_id, (0, 0))
            votes[verdict.validator_id] = (hits + same, n + 1)
    return Agreement(attempts, agreed, votes)


def tally_agreements(items: Iterable[Agreement]) -> Agreement:
    """The sum of several cases' agreements."""
    attempts = agreed = 0
    votes: dict[str, tuple[int, int]] = {}
    for item in items:
        attempts += item.attempts
        agreed += item.attempts_agreed
        for validator, (hits, n) in item.votes.items():
            old_hits, old_n = votes.get(validator, (0, 0))
            votes[validator] = (old_hits + hits, old_n + n)
    return Agreement(attempts, agreed, votes)


def load_reviewers(path: Path | None) -> Reviewers:
    """The reviewer list of ``RATIFIER_REVIEW_TOKENS_FILE``; ConfigError if unset or invalid."""
    return load_tokens(path, variable="RATIFIER_REVIEW_TOKENS_FILE", holder="reviewer")
