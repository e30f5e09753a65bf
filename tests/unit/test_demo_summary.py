"""The demo's scoring and its scripted generator."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ratifier.app.demo.generator import DemoGenerator, chance
from ratifier.app.demo.summary import DemoSummary, summarize
from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    Decision,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    Reason,
    RetryRequest,
    Verdict,
    Vote,
)
from ratifier.runtimes.generator import Revision


def cand(case_id: str, attempt: int = 1, truth: str = "accept", **meta: str) -> Candidate:
    return Candidate(
        case_id=case_id,
        attempt=attempt,
        candidate_id=f"{case_id}-{attempt}",
        policy="default",
        category="general",
        query="q",
        content=f"answer {attempt}",
        producer="test",
        produced_at_ms=0,
        metadata={"truth": truth, **meta},
    )


def passed(
    case_id: str, attempt: int = 1, truth: str = "accept", decision_id: str | None = None
) -> PassDecision:
    return PassDecision(
        decision_id=decision_id or f"{case_id}/{attempt}",
        case_id=case_id,
        attempt=attempt,
        candidate=cand(case_id, attempt, truth),
        confidence=1.0,
        votes=(),
        policy="default",
        policy_version="1",
        outcome=OutcomeClass.CONFIRMED if attempt == 1 else OutcomeClass.CORRECTED,
        decided_at_ms=0,
    )


def dissent(code: str) -> Verdict:
    return Verdict(
        "c", 1, "c-1", f"v-{code}", "1", Vote.REJECT, 1.0, None, (Reason(code, "m"),), 0, 0
    )


def retried(
    case_id: str,
    attempt: int = 1,
    *,
    content: str = "answer",
    codes: tuple[str, ...] = (),
    **meta: str,
) -> RetryRequest:
    candidate = cand(case_id, attempt, "reject", **meta)
    return RetryRequest(
        decision_id=f"{case_id}/{attempt}",
        case_id=case_id,
        attempt=attempt,
        next_attempt=attempt + 1,
        candidate=replace(candidate, content=content),
        reason=FailureReason.THRESHOLD_UNREACHABLE,
        dissent=tuple(dissent(code) for code in codes),
        missing_validators=(),
        votes=(),
        policy="default",
        policy_version="1",
        decided_at_ms=0,
    )


def escalated(case_id: str, attempts: int = 3) -> EscalationPacket:
    return EscalationPacket(
        decision_id=f"{case_id}/{attempts}",
        case_id=case_id,
        attempts=tuple(
            AttemptRecord(cand(case_id, n, "reject"), (), FailureReason.THRESHOLD_UNREACHABLE)
            for n in range(1, attempts + 1)
        ),
        reason=EscalationReason.MAX_ATTEMPTS_EXHAUSTED,
        policy="default",
        policy_version="1",
        outcome=OutcomeClass.UNRESOLVED,
        decided_at_ms=0,
    )


# --- summarize ---------------------------------------------------------------------------------


def test_summary_of_a_clean_run() -> None:
    decisions: list[Decision] = [
        passed("a"),
        retried("b"),
        passed("b", 2, truth="reject"),  # a wrong answer published
        retried("c", 1),
        retried("c", 2),
        escalated("c", 3),
        passed("d"),
        passed("elsewhere"),  # not one of this run's cases: ignored
    ]
    summary = summarize(["a", "b", "c", "d"], decisions)
    assert summary == DemoSummary(
        cases=4,
        passed=3,
        retried=2,
        escalated=1,
        first_attempt_consensus_rate=2 / 4,
        mean_attempts=(1 + 2 + 3 + 1) / 4,
        escalation_rate=1 / 4,
        published_error_rate=1 / 3,
        no_final_outcome=0,
        more_than_one_final_outcome=0,
    )


@pytest.mark.parametrize(
    ("truth", "error_rate"),
    [("accept", 0.0), ("reject", 1.0), ("unknown", 1.0)],
)
def test_error_rate_uses_truth_metadata(truth: str, error_rate: float) -> None:
    summary = summarize(["a"], [passed("a", truth=truth)])
    assert summary.published_error_rate == error_rate


def test_truthless_pass_counts_as_an_error() -> None:
    decision = passed("a")
    bare = replace(decision, candidate=replace(decision.candidate, metadata={}))
    assert summarize(["a"], [bare]).published_error_rate == 1.0


def test_redelivered_decision_is_counted_once() -> None:
    summary = summarize(["a", "b"], [passed("a"), passed("a"), retried("b"), retried("b")])
    assert (summary.passed, summary.retried) == (1, 1)
    assert summary.first_attempt_consensus_rate == 0.5
    assert summary.mean_attempts == 1.0
    assert (summary.no_final_outcome, summary.more_than_one_final_outcome) == (1, 0)


def test_two_distinct_final_decisions_for_a_case_are_flagged() -> None:
    decisions: list[Decision] = [
        passed("a", decision_id="first"),
        passed("a", decision_id="second"),
        passed("b", 2),
        escalated("b", 3),  # a pass and an escalation: two final outcomes
        passed("c"),
    ]
    summary = summarize(["a", "b", "c", "d"], decisions)
    assert summary.more_than_one_final_outcome == 2
    assert summary.no_final_outcome == 1
    assert (summary.cases, summary.passed, summary.escalated) == (4, 3, 1)
    # A case is one case however many decisions it got: two passes of "a" are not two cases.
    assert summary.first_attempt_consensus_rate == 2 / 4


def test_empty_run() -> None:
    summary = summarize([], [passed("a")])
    assert summary.as_dict() == {
        "cases": 0,
        "passed": 0,
        "retried": 0,
        "escalated": 0,
        "first_attempt_consensus_rate": 0.0,
        "mean_attempts": 0.0,
        "escalation_rate": 0.0,
        "published_error_rate": 0.0,
        "no_final_outcome": 0,
        "more_than_one_final_outcome": 0,
    }


def test_rows_format_rates_as_percentages() -> None:
    summary = summarize(["a", "b", "c"], [passed("a"), retried("b"), passed("b", 2)])
    rows = dict(summary.rows())
    assert rows["cases"] == "3"
    assert rows["first-attempt consensus rate"] == "33.3%"
    assert rows["mean attempts"] == "1.50"
    assert rows["cases with no final outcome"] == "1"
    assert len(summary.rows()) == len(summary.as_dict())


# --- the demo generator ------------------------------------------------------------------------


@pytest.mark.parametrize("good_rate", [0.0, 1.0])
@pytest.mark.parametrize("pinned", ["accept", "reject"])
async def test_next_truth_pins_the_revision(good_rate: float, pinned: str) -> None:
    revision = await DemoGenerator(good_rate)(retried("a", next_truth=pinned))
    assert revision.metadata == {"truth": pinned}


@pytest.mark.parametrize(("good_rate", "truth"), [(0.0, "reject"), (1.0, "accept")])
async def test_good_rate_extremes(good_rate: float, truth: str) -> None:
    for n in range(20):
        revision = await DemoGenerator(good_rate)(retried(f"case-{n}"))
        assert revision.metadata["truth"] == truth


async def test_generator_is_deterministic_and_roughly_good_rate() -> None:
    generator = DemoGenerator(0.7)
    retries = [retried(f"case-{n}", 1 + n % 2) for n in range(2_000)]
    first = [await generator(r) for r in retries]
    again = [await DemoGenerator(0.7)(r) for r in retries]
    assert first == again
    accepted = sum(r.metadata["truth"] == "accept" for r in first) / len(first)
    assert 0.65 < accepted < 0.75


@pytest.mark.parametrize(
    ("content", "codes", "expected"),
    [
        ("Paris", (), "Paris [revision 2: addresses THRESHOLD_UNREACHABLE]"),
        ("Paris", ("b.code", "a.code", "b.code"), "Paris [revision 2: addresses a.code, b.code]"),
        ("Paris [revision 2: addresses x]", ("y",), "Paris [revision 2: addresses y]"),
    ],
)
async def test_revision_content_names_what_it_addresses(
    content: str, codes: tuple[str, ...], expected: str
) -> None:
    revision = await DemoGenerator()(retried("a", content=content, codes=codes))
    assert isinstance(revision, Revision)
    assert revision.content == expected


def test_chance_is_reproducible_and_in_range() -> None:
    draws = [chance("x", n) for n in range(1_000)]
    assert draws == [chance("x", n) for n in range(1_000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert chance("a", 1) != chance("a", 2)
    assert 0.4 < sum(draws) / len(draws) < 0.6
