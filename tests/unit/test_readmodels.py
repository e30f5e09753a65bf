"""The read models' documents (pure parts): case fields, the case view, scoreboard rows."""

from __future__ import annotations

from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.io.readmodels import case_fields, case_view, score_field, score_rows


def _candidate(attempt: int) -> Candidate:
    return Candidate("case-1", attempt, f"c{attempt}", "p", "billing", "q?", "answer", "gen", 10)


def _verdict(attempt: int, validator: str, vote: Vote) -> Verdict:
    return Verdict("case-1", attempt, f"c{attempt}", validator, "1", vote, 0.9, None, (), 12, 11)


def _retry() -> RetryRequest:
    votes = (_verdict(1, "a", Vote.REJECT),)
    return RetryRequest("d1", "case-1", 1, 2, _candidate(1), FailureReason.VETO, votes, (), votes,
                        "p", "v7", 20)  # fmt: skip


def _fields(*records: object) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for record in records:
        out |= {k.encode(): v for k, v in case_fields(record).items()}  # type: ignore[arg-type]
    return out


def test_the_same_record_always_writes_the_same_fields() -> None:
    assert case_fields(_retry()) == case_fields(_retry())
    assert list(case_fields(_verdict(2, "b", Vote.ACCEPT))) == ["attempt:2:verdict:b"]


def test_case_status_follows_its_records() -> None:
    assert case_view("case-1", {}) is None
    voting = case_view("case-1", _fields(_candidate(1), _verdict(1, "a", Vote.REJECT)))
    assert voting is not None
    assert (voting.status, voting.outcome, voting.policy, voting.policy_version) == (
        "voting", None, "p", None,
    )  # fmt: skip
    retrying = case_view("case-1", _fields(_candidate(1), _retry()))
    assert retrying is not None
    assert retrying.status == "retrying"
    assert retrying.policy_version == "v7"
    second = _candidate(2)
    passed = PassDecision("d2", "case-1", 2, second, 0.8, (_verdict(2, "a", Vote.ACCEPT),), "p",
                          "v7", OutcomeClass.CORRECTED, 30)  # fmt: skip
    done = case_view("case-1", _fields(_candidate(1), _retry(), second, passed))
    assert done is not None
    assert (done.status, done.outcome) == ("passed", "corrected")
    assert [a.attempt for a in done.attempts] == [1, 2]
    assert done.attempts[0].decision is not None
    assert done.attempts[0].decision["reason"] == "VETO"
    assert done.to_json()["attempts"][1]["candidate"]["content"] == "answer"


def test_an_escalated_case() -> None:
    packet = EscalationPacket(
        "d3", "case-1", (AttemptRecord(_candidate(1), (), FailureReason.VETO),),
        EscalationReason.VETO, "p", "v7", OutcomeClass.UNRESOLVED, 40,
    )  # fmt: skip
    view = case_view("case-1", _fields(_candidate(1), packet))
    assert view is not None
    assert (view.status, view.outcome) == ("escalated", "unresolved")


def test_scoreboard_rows_sum_the_fields() -> None:
    fields = {
        score_field("p", "a", "billing", "ACCEPT").encode(): b"3",
        score_field("p", "a", "billing", "REJECT").encode(): b"1",
        score_field("p", "a", "billing", "timeout").encode(): b"1",
        score_field("p", "a", "billing", "latency_ms").encode(): b"400",
        score_field("p", "b", "medical|x", "ABSTAIN").encode(): b"2",  # "|" in a category: kept
    }
    a, b = score_rows(fields)
    assert (a.validator, a.verdicts, a.rejection_ratio, a.mean_latency_ms) == ("a", 4, 0.25, 100)
    assert a.timeouts == 1
    assert (b.policy, b.validator, b.category, b.abstain) == ("p", "b", "medical|x", 2)
    assert b.mean_latency_ms == 0
    assert score_rows({}) == []
