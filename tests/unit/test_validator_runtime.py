"""The validator runtime's pure parts: calling user code safely and building the verdict."""

from __future__ import annotations

import asyncio

import pytest

from ratifier.core.errors import ValidatorError, ValidatorTimeout
from ratifier.core.models import Candidate, Judgement, Reason, Severity, Span, Verdict, Vote, now_ms
from ratifier.validators.runtime import judge_safely, to_verdict

CANDIDATE = Candidate(
    case_id="case-7",
    attempt=2,
    candidate_id="cand-7-2",
    policy="p",
    category="medical",
    query="q?",
    content="an answer",
    producer="test",
    produced_at_ms=1,
)


async def accept(candidate: Candidate) -> Judgement:
    return Judgement(Vote.ACCEPT, 0.8, None, (Reason("ok", f"fine: {candidate.content}"),))


async def hang(candidate: Candidate) -> Judgement:
    await asyncio.sleep(60)
    raise AssertionError("unreachable")


async def raise_value_error(candidate: Candidate) -> Judgement:
    raise ValueError("bad input")


async def raise_own_timeout(candidate: Candidate) -> Judgement:
    raise ValidatorTimeout("model took too long")


async def raise_validator_error(candidate: Candidate) -> Judgement:
    raise ValidatorError("upstream 503")


async def raise_long(candidate: Candidate) -> Judgement:
    raise RuntimeError("x" * 5_000)


def not_async(candidate: Candidate) -> Judgement:
    return Judgement(Vote.ACCEPT)


async def test_success_returns_the_judgement_unchanged() -> None:
    judgement = await judge_safely(accept, CANDIDATE, timeout_s=1.0)
    assert judgement == Judgement(Vote.ACCEPT, 0.8, None, (Reason("ok", "fine: an answer"),))


@pytest.mark.parametrize(
    ("judge", "timeout_s", "code", "message"),
    [
        pytest.param(
            hang,
            0.01,
            "validator.timeout",
            "ValidatorTimeout: no answer within 0.01s",
            id="asyncio-timeout",
        ),
        pytest.param(
            raise_own_timeout,
            1.0,
            "validator.timeout",
            "ValidatorTimeout: model took too long",
            id="own-timeout",
        ),
        pytest.param(
            raise_value_error, 1.0, "validator.error", "ValueError: bad input", id="exception"
        ),
        pytest.param(
            raise_validator_error,
            1.0,
            "validator.error",
            "ValidatorError: upstream 503",
            id="validator-error",
        ),
        pytest.param(not_async, 1.0, "validator.error", "TypeError: ", id="not-awaitable"),
    ],
)
async def test_failures_become_abstain_with_a_reason(
    judge: object, timeout_s: float, code: str, message: str
) -> None:
    judgement = await judge_safely(judge, CANDIDATE, timeout_s)  # type: ignore[arg-type]
    assert judgement.vote is Vote.ABSTAIN
    assert judgement.confidence == 0.0
    assert judgement.severity is None
    assert len(judgement.reasons) == 1
    reason = judgement.reasons[0]
    assert reason.code == code
    assert reason.message.startswith(message)
    assert reason.span is None


async def test_error_message_is_truncated() -> None:
    judgement = await judge_safely(raise_long, CANDIDATE, 1.0)
    message = judgement.reasons[0].message
    assert len(message) == 1000
    assert message.startswith("RuntimeError: xxx")


async def test_cancellation_is_not_swallowed() -> None:
    task = asyncio.create_task(judge_safely(hang, CANDIDATE, 30.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def verdict_for(judgement: Judgement, latency_ms: int = 42) -> Verdict:
    return to_verdict(
        CANDIDATE, judgement, validator_id="val-1", validator_version="2.3", latency_ms=latency_ms
    )


def test_to_verdict_copies_fields_from_candidate_and_judgement() -> None:
    reasons = (Reason("R1", "wrong dose", Span(3, 9)),)
    before = now_ms()
    verdict = verdict_for(Judgement(Vote.REJECT, 0.7, Severity.MAJOR, reasons), latency_ms=42)
    after = now_ms()
    assert verdict == Verdict(
        case_id="case-7",
        attempt=2,
        candidate_id="cand-7-2",
        validator_id="val-1",
        validator_version="2.3",
        vote=Vote.REJECT,
        confidence=0.7,
        severity=Severity.MAJOR,
        reasons=reasons,
        latency_ms=42,
        produced_at_ms=verdict.produced_at_ms,
    )
    assert before <= verdict.produced_at_ms <= after


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [(-0.5, 0.0), (0.0, 0.0), (0.25, 0.25), (1.0, 1.0), (1.5, 1.0), (float("inf"), 1.0)],
)
def test_to_verdict_clamps_confidence(confidence: float, expected: float) -> None:
    assert verdict_for(Judgement(Vote.ACCEPT, confidence)).confidence == expected


@pytest.mark.parametrize("latency_ms", [0, 1, 29_999])
def test_to_verdict_keeps_latency(latency_ms: int) -> None:
    assert verdict_for(Judgement(Vote.ABSTAIN), latency_ms).latency_ms == latency_ms


async def test_a_timeout_raised_inside_the_validator_keeps_its_own_message() -> None:
    async def judge(candidate: Candidate) -> Judgement:
        raise TimeoutError("upstream read timed out after 2s")

    judgement = await judge_safely(judge, _candidate_for_timeout_test(), timeout_s=30)
    (reason,) = judgement.reasons
    assert judgement.vote is Vote.ABSTAIN
    assert reason.code == "validator.timeout"
    assert "upstream read timed out after 2s" in reason.message


def _candidate_for_timeout_test() -> Candidate:
    return Candidate(
        case_id="c",
        attempt=1,
        candidate_id="k",
        policy="default",
        category="general",
        query="q",
        content="x",
        producer="t",
        produced_at_ms=0,
    )
