"""Accuracy against the reviewers, and the review queue's length and age, as Prometheus gauges.

Agreement counts live in Redis, not in a process: they cover every case a human ever resolved,
across restarts, and any process can serve them (the review page and the outcomes runtime both
do). :meth:`AgreementStore.record` adds a case's counts once: a Lua script adds them only if the
case was not counted before, so a redelivered resolution does not count twice.

    <p>:review:agreement        hash: attempts, attempts_agreed, votes:<validator>,
                                agreed:<validator>, cases
    <p>:review:agreement:cases  set of the case ids counted
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from prometheus_client import CollectorRegistry, Gauge
from redis.asyncio import Redis

from ratifier.features.review.config import ReviewConfig
from ratifier.features.review.core import Agreement
from ratifier.features.review.io.queue import ReviewQueue

# KEYS: counts hash, counted set. ARGV: case id, then field/amount pairs.
_RECORD_ONCE: Final = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""


@dataclass(frozen=True, slots=True)
class AgreementTotals:
    cases: int
    attempts: int
    attempts_agreed: int
    validators: dict[str, tuple[int, int]]  # validator -> (agreed, votes)

    @property
    def ratio(self) -> float | None:
        """Share of reviewed attempts whose automatic decision the reviewer agreed with."""
        return self.attempts_agreed / self.attempts if self.attempts else None


class AgreementStore:
    def __init__(self, redis: Redis, config: ReviewConfig) -> None:
        # Any: redis-py types replies as bytes | str (decode_responses is a runtime flag); the
        # client of connect() always answers bytes.
        self.redis: Any = redis
        base = f"{config.key_prefix}review:agreement"
        self.counts_key = base
        self.cases_key = f"{base}:cases"
        self._record = redis.register_script(_RECORD_ONCE)

    async def record(self, case_id: str, agreement: Agreement) -> bool:
        """Add one reviewed case's agreement; False if counted already or nothing to compare."""
        if not agreement.attempts:  # unresolved: the reviewer gave no answer to compare with
            return False
        args: list[str | int] = [case_id, "cases", 1]
        args += ["attempts", agreement.attempts, "attempts_agreed", agreement.attempts_agreed]
        for validator, (agreed, votes) in sorted(agreement.votes.items()):
            args += [f"votes:{validator}", votes, f"agreed:{validator}", agreed]
        counted = await self._record(keys=[self.counts_key, self.cases_key], args=args)
        return bool(counted)

    async def totals(self) -> AgreementTotals:
        raw = {k.decode(): int(v) for k, v in (await self.redis.hgetall(self.counts_key)).items()}
        validators = {
            name.removeprefix("votes:"): (raw.get(f"agreed:{name[6:]}", 0), votes)
            for name, votes in raw.items()
            if name.startswith("votes:")
        }
        return AgreementTotals(
            raw.get("cases", 0), raw.get("attempts", 0), raw.get("attempts_agreed", 0), validators
        )


class ReviewGauges:
    """The review figures as gauges of ``registry``; :meth:`refresh` reads them before a scrape."""

    def __init__(
        self, registry: CollectorRegistry, queue: ReviewQueue, agreement: AgreementStore
    ) -> None:
        self.queue = queue
        self.agreement = agreement
        self.length = Gauge(
            "ratifier_review_queue_length",
            "Escalated cases waiting for a reviewer's resolution (claimed or not)",
            registry=registry,
        )
        self.oldest = Gauge(
            "ratifier_review_queue_oldest_age_seconds",
            "Time since the oldest waiting case was escalated (0 when none waits)",
            registry=registry,
        )
        self.cases = Gauge(
            "ratifier_review_reviewed_cases",
            "Cases a reviewer confirmed or corrected, compared with the automatic decisions",
            registry=registry,
        )
        self.attempts = Gauge(
            "ratifier_review_compared_attempts",
            "Attempts of reviewed cases whose automatic decision was compared with the reviewer",
            registry=registry,
        )
        self.ratio = Gauge(
            "ratifier_review_auto_agreement_ratio",
            "Share of reviewed attempts whose automatic decision (reject) the reviewer agreed "
            "with; NaN before any review",
            registry=registry,
        )
        self.validator_ratio = Gauge(
            "ratifier_review_validator_agreement_ratio",
            "Share of a validator's ACCEPT/REJECT votes on reviewed cases that agreed with the "
            "reviewer",
            ["validator"],
            registry=registry,
        )

    async def refresh(self) -> None:
        stats = await self.queue.stats()
        self.length.set(stats.length)
        self.oldest.set(stats.oldest_age_s())
        totals = await self.agreement.totals()
        self.cases.set(totals.cases)
        self.attempts.set(totals.attempts)
        self.ratio.set(float("nan") if totals.ratio is None else totals.ratio)
        for validator, (agreed, votes) in totals.validators.items():
            if votes:
                self.validator_ratio.labels(validator).set(agreed / votes)
