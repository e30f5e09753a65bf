"""The pure side of review: outcomes from passes and resolutions, validation, agreement, tokens."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from ratifier.core.errors import ConfigError, InvalidResolution, UnknownReviewer
from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    Verdict,
    Vote,
)
from ratifier.core.tokens import Reviewers
from ratifier.features.outcomes.core import (
    outcome_from_pass,
    outcome_from_resolution,
    outcome_id_for,
)
from ratifier.features.review.core import (
    Action,
    Agreement,
    Resolution,
    agreement,
    tally_agreements,
    validate_resolution,
)


def _candidate(attempt: int) -> Candidate:
    return Candidate("case-1", attempt, f"c{attempt}", "p", "qa", "2+2?", f"answer {attempt}",
                     "gen", 1)  # fmt: skip


def _vote(attempt: int, validator: str, vote: Vote) -> Verdict:
    return Verdict("case-1", attempt, f"c{attempt}", validator, "1", vote, 1.0, None, (), 1, 1)


def _packet() -> EscalationPacket:
    attempts = tuple(
        AttemptRecord(
            _candidate(n),
            (_vote(n, "a", Vote.REJECT), _vote(n, "b", Vote.ACCEPT), _vote(n, "c", Vote.ABSTAIN)),
            FailureReason.VETO,
        )
        for n in (1, 2)
    )
    return EscalationPacket("esc-1", "case-1", attempts, EscalationReason.VETO, "p", "v3",
                            OutcomeClass.UNRESOLVED, 10)  # fmt: skip


@pytest.mark.parametrize(
    ("attempt", "kind"), [(1, OutcomeClass.CONFIRMED), (2, OutcomeClass.CORRECTED)]
)
def test_a_pass_is_an_automatic_outcome(attempt: int, kind: OutcomeClass) -> None:
    decision = PassDecision("d-1", "case-1", attempt, _candidate(attempt), 0.9, (), "p", "v3",
                            kind, 42)  # fmt: skip
    outcome = outcome_from_pass(decision)
    assert (outcome.kind, outcome.reviewer, outcome.attempt) == (kind, "auto", attempt)
    assert outcome.content == f"answer {attempt}"
    assert outcome.resolves == ("d-1",)
    assert (outcome.policy, outcome.policy_version, outcome.decided_at_ms) == ("p", "v3", 42)
    assert outcome.outcome_id == outcome_id_for("case-1") != outcome_id_for("case-2")


def test_resolutions_become_outcomes_with_provenance() -> None:
    p = _packet()
    confirm = Resolution("case-1", Action.CONFIRM, "ann", 99, candidate_id="c2", note="fine")
    outcome = outcome_from_resolution(p, confirm)
    assert (outcome.kind, outcome.reviewer, outcome.attempt) == (OutcomeClass.CONFIRMED, "ann", 2)
    assert (outcome.content, outcome.note, outcome.resolves) == ("answer 2", "fine", ("esc-1",))
    correct = Resolution("case-1", Action.CORRECT, "bob", 99, text="4", note="both wrong")
    outcome = outcome_from_resolution(p, correct)
    assert (outcome.kind, outcome.content, outcome.attempt, outcome.candidate_id) == (
        OutcomeClass.CORRECTED, "4", None, None,
    )  # fmt: skip
    unresolved = Resolution("case-1", Action.UNRESOLVED, "bob", 99, note="unclear")
    outcome = outcome_from_resolution(p, unresolved)
    assert (outcome.kind, outcome.content, outcome.note) == (
        OutcomeClass.UNRESOLVED,
        None,
        "unclear",
    )
    assert outcome.query == "2+2?"
    assert outcome.policy_version == "v3"


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("confirm", {}, "needs the candidate id"),
        ("confirm", {"candidate_id": "c9"}, "has no candidate 'c9'"),
        ("correct", {"text": " \n", "note": "x"}, "corrected text; it is empty"),
        ("correct", {"text": "4"}, "needs a note"),
        ("unresolved", {"note": "  "}, "needs a reason"),
        ("delete", {}, "unknown action 'delete'"),
        ("correct", {"text": "x" * 100_001, "note": "n"}, "longer than"),
    ],
)
def test_invalid_resolutions_say_what_is_wrong(
    action: str, fields: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidResolution, match=message):
        validate_resolution(_packet(), action, **fields)


def test_valid_resolutions_are_cleaned() -> None:
    assert validate_resolution(_packet(), "correct", text=" 4 ", note=" typo ") == (
        Action.CORRECT, None, "4", "typo",
    )  # fmt: skip
    assert validate_resolution(_packet(), "confirm", candidate_id="c1", text="ignored") == (
        Action.CONFIRM, "c1", None, None,
    )  # fmt: skip


def test_agreement_compares_each_attempt_and_vote_with_the_reviewer() -> None:
    p = _packet()
    confirmed_2 = outcome_from_resolution(
        p, Resolution("case-1", Action.CONFIRM, "ann", 1, candidate_id="c2")
    )
    result = agreement(p, confirmed_2)
    # Attempt 1 rejected and not confirmed: agreed. Attempt 2 rejected but confirmed: not.
    assert (result.attempts, result.attempts_agreed) == (2, 1)
    assert result.votes == {"a": (1, 2), "b": (1, 2)}  # "c" abstained: nothing compared
    corrected = outcome_from_resolution(
        p, Resolution("case-1", Action.CORRECT, "ann", 1, text="4", note="n")
    )
    assert agreement(p, corrected) == Agreement(2, 2, {"a": (2, 2), "b": (0, 2)})
    unresolved = dataclasses.replace(corrected, kind=OutcomeClass.UNRESOLVED)
    assert agreement(p, unresolved) == Agreement()
    total = tally_agreements([agreement(p, confirmed_2), agreement(p, corrected)])
    assert total == Agreement(4, 3, {"a": (3, 4), "b": (1, 4)})


def test_reviewer_tokens() -> None:
    reviewers = Reviewers.parse(
        "# team\nann  tok-ann-0123456789abc\n\nbob tok-bob-0123456789abc # x\n"
    )
    assert reviewers.ids == {"ann", "bob"}
    assert reviewers.identify("tok-bob-0123456789abc") == "bob"
    for wrong in ("", None, "tok-bob-0123456789ab", "tok-bob-0123456789abcd"):
        with pytest.raises(UnknownReviewer, match="no reviewer has that token"):
            reviewers.identify(wrong)
    assert reviewers.check("ann") == "ann"
    with pytest.raises(UnknownReviewer, match="'eve' is not on the reviewer list"):
        reviewers.check("eve")
    assert "tok-" not in repr(reviewers)


def test_reviewer_tokens_are_kept_hashed_and_may_be_listed_hashed() -> None:
    digest = hashlib.sha256(b"tok-ann-0123456789abc").hexdigest()
    reviewers = Reviewers.parse(f"ann sha256:{digest}\nbob tok-bob-0123456789abc\n")
    assert reviewers.identify("tok-ann-0123456789abc") == "ann"
    assert reviewers.identify("tok-bob-0123456789abc") == "bob"
    assert "tok-bob" not in str(vars(reviewers))  # only digests are kept
    with pytest.raises(ConfigError, match="64 hex digits"):
        Reviewers.parse("ann sha256:abc\n")
    with pytest.raises(ConfigError, match="a token is used twice"):
        Reviewers.parse(f"ann sha256:{digest}\nbob tok-ann-0123456789abc\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ann\n", "line 1: expected 'reviewer-id token'"),
        ("ann short\n", "shorter than 16"),
        ("auto tok-0123456789abcdef\n", "not 'auto'"),
        ("a b tok-0123456789abcdef\n", "expected"),
        ("ann tok-0123456789abcdef\nbob tok-0123456789abcdef\n", "line 2: a token is used twice"),
    ],
)
def test_bad_token_files_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Reviewers.parse(text)
    assert "tok-0123456789abcdef" not in str(caught.value)  # never a token in an error


def test_review_settings() -> None:
    from ratifier.core.config import Settings

    settings = Settings.from_env(
        {"RATIFIER_REVIEW_TOKENS_FILE": "reviewers.txt", "RATIFIER_REVIEW_CLAIM_S": "90"}
    )
    assert settings.review_tokens_file is not None
    assert settings.review_tokens_file.is_absolute()
    assert settings.review_claim_s == 90.0
    assert Settings.from_env({}).review_claim_s == 600.0
    for raw, message in (("0", "must be > 0"), ("soon", "must be a number")):
        with pytest.raises(ConfigError, match=f"RATIFIER_REVIEW_CLAIM_S {message}"):
            Settings.from_env({"RATIFIER_REVIEW_CLAIM_S": raw})
