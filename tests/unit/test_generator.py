"""Building the next attempt's candidate from a retry request."""

from __future__ import annotations

import uuid

import pytest

from ratifier.core.models import Candidate, FailureReason, RetryRequest, now_ms
from ratifier.runtimes.generator import Revision, candidate_id_for, next_candidate

FAILED = Candidate(
    case_id="case-3",
    attempt=2,
    candidate_id="cand-2",
    policy="strict",
    category="legal",
    query="Is this allowed?",
    content="Yes.",
    producer="first-model",
    produced_at_ms=5,
    previous_candidate_ids=("cand-1",),
    metadata={"truth": "reject", "tenant": "acme"},
)


def retry_for(candidate: Candidate = FAILED, next_attempt: int = 3) -> RetryRequest:
    return RetryRequest(
        decision_id="d-1",
        case_id=candidate.case_id,
        attempt=candidate.attempt,
        next_attempt=next_attempt,
        candidate=candidate,
        reason=FailureReason.THRESHOLD_UNREACHABLE,
        dissent=(),
        missing_validators=(),
        votes=(),
        policy=candidate.policy,
        policy_version="v1",
        decided_at_ms=10,
    )


def test_next_candidate_builds_the_next_attempt() -> None:
    before = now_ms()
    made = next_candidate(retry_for(), Revision("No.", {"truth": "accept"}), producer="gen:x")
    after = now_ms()
    assert made == Candidate(
        case_id="case-3",
        attempt=3,
        candidate_id=candidate_id_for("case-3", 3),
        policy="strict",
        category="legal",
        query="Is this allowed?",
        content="No.",
        producer="gen:x",
        produced_at_ms=made.produced_at_ms,
        previous_candidate_ids=("cand-1", "cand-2"),
        metadata={"truth": "accept", "tenant": "acme"},
    )
    assert before <= made.produced_at_ms <= after


@pytest.mark.parametrize(
    ("revision", "content", "metadata"),
    [
        pytest.param("plain text", "plain text", {"truth": "reject", "tenant": "acme"}, id="str"),
        pytest.param(Revision("r"), "r", {"truth": "reject", "tenant": "acme"}, id="no-metadata"),
        pytest.param(
            Revision("r", {"note": "n"}),
            "r",
            {"truth": "reject", "tenant": "acme", "note": "n"},
            id="added-key",
        ),
        pytest.param(
            Revision("r", {"tenant": "other"}),
            "r",
            {"truth": "reject", "tenant": "other"},
            id="revision-wins",
        ),
    ],
)
def test_content_and_metadata_merge(
    revision: str | Revision, content: str, metadata: dict[str, str]
) -> None:
    made = next_candidate(retry_for(), revision, producer="g")
    assert made.content == content
    assert dict(made.metadata) == metadata
    assert dict(FAILED.metadata) == {"truth": "reject", "tenant": "acme"}  # not changed in place


def test_previous_ids_chain_over_attempts() -> None:
    first = Candidate("c", 1, "id-1", "p", "g", "q", "a", "client", 0)
    second = next_candidate(retry_for(first, 2), "b", producer="g")
    third = next_candidate(retry_for(second, 3), "c", producer="g")
    assert second.previous_candidate_ids == ("id-1",)
    assert third.previous_candidate_ids == ("id-1", second.candidate_id)
    assert third.attempt == 3


def test_redelivered_retry_gives_the_same_candidate_id() -> None:
    one = next_candidate(retry_for(), "first try", producer="g1")
    two = next_candidate(retry_for(), "different text", producer="g2")
    assert one.candidate_id == two.candidate_id


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("case-1", 1), ("case-1", 2)),
        (("case-1", 2), ("case-2", 2)),
        (("case-1", 12), ("case-11", 2)),
    ],
)
def test_candidate_id_differs_per_case_and_attempt(a: tuple[str, int], b: tuple[str, int]) -> None:
    assert candidate_id_for(*a) != candidate_id_for(*b)


def test_candidate_id_is_a_stable_uuid5() -> None:
    value = candidate_id_for("case-1", 2)
    assert value == candidate_id_for("case-1", 2)
    parsed = uuid.UUID(value)
    assert parsed.version == 5
    assert str(parsed) == value
    # Fixed forever: a changed namespace would break deduplication across releases.
    namespace = uuid.UUID("6f2a5d0e-3c1b-4e8a-9a55-2b7c1d0f4e11")
    assert value == str(uuid.uuid5(namespace, "case-1/2"))
