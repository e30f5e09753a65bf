"""Shared pieces of the review tests: escalation packets, reviewer files, Redis clean-up."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.models import (
    AttemptRecord,
    Candidate,
    EscalationPacket,
    EscalationReason,
    FailureReason,
    OutcomeClass,
    PassDecision,
    Reason,
    Severity,
    Span,
    Verdict,
    Vote,
    now_ms,
)
from ratifier.io.redis_client import connect, key_prefix


def candidate(case_id: str, attempt: int, content: str = "") -> Candidate:
    return Candidate(
        case_id=case_id,
        attempt=attempt,
        candidate_id=f"{case_id}-c{attempt}",
        policy="default",
        category="qa",
        query=f"Summarise the refund policy for order {case_id} in two sentences.",
        content=content
        or (
            f"Order {case_id} can be refunded within 30 days of delivery (attempt {attempt}). "
            "Refunds go back to the original payment method within five business days."
        ),
        producer="test",
        produced_at_ms=now_ms(),
    )


def verdict(c: Candidate, validator: str, vote: Vote) -> Verdict:
    reasons: tuple[Reason, ...] = ()
    if vote is Vote.REJECT:
        start = c.content.find("30 days")
        reasons = (
            Reason("fact.wrong_number", "the policy says 14 days, not 30", Span(start, start + 7)),
        )
    return Verdict(
        c.case_id, c.attempt, c.candidate_id, validator, "1.0", vote, 0.9,
        Severity.MAJOR if vote is Vote.REJECT else None, reasons, 12, now_ms(),
    )  # fmt: skip


def packet(case_id: str, attempts: int = 2) -> EscalationPacket:
    records = []
    for n in range(1, attempts + 1):
        c = candidate(case_id, n)
        votes = (
            verdict(c, "fact", Vote.REJECT),
            verdict(c, "style", Vote.ACCEPT),
            verdict(c, "safety", Vote.ABSTAIN),
        )
        records.append(AttemptRecord(c, votes, FailureReason.THRESHOLD_UNREACHABLE))
    return EscalationPacket(
        f"esc-{case_id}", case_id, tuple(records), EscalationReason.MAX_ATTEMPTS_EXHAUSTED,
        "default", "v7", OutcomeClass.UNRESOLVED, now_ms() - 5_000,
    )  # fmt: skip


def pass_decision(case_id: str, attempt: int) -> PassDecision:
    c = candidate(case_id, attempt)
    kind = OutcomeClass.CONFIRMED if attempt == 1 else OutcomeClass.CORRECTED
    return PassDecision(
        f"pass-{case_id}", case_id, attempt, c, 0.9, (verdict(c, "fact", Vote.ACCEPT),),
        "default", "v7", kind, now_ms(),
    )  # fmt: skip


def write_reviewers(folder: Path, *names: str) -> dict[str, str]:
    """A tokens file with a fresh token per reviewer; returns reviewer -> token."""
    tokens = {name: secrets.token_urlsafe(24) for name in names}
    path = folder / "reviewers.txt"
    path.write_text("# test reviewers\n" + "".join(f"{n} {t}\n" for n, t in tokens.items()))
    return tokens


@asynccontextmanager
async def redis_for(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the stack's Redis; every key of the settings' prefix is deleted afterwards."""
    redis = connect(settings)
    try:
        yield redis
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{key_prefix(settings)}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
