"""Token buckets for validators' rate limits (pure; the Redis-shared ones are in
tests/integration/test_rate_limits.py)."""

from __future__ import annotations

import pytest

from ratifier.io.rate_limits import Budget, LocalBuckets, RateLimiter, TokenBucket


def test_a_full_bucket_grants_its_burst_then_queues_callers_in_order() -> None:
    bucket = TokenBucket(rate_per_s=10, burst_s=1, now=0.0)  # capacity 10
    waits = [bucket.reserve(1, now=0.0) for _ in range(13)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == pytest.approx([0.1, 0.2, 0.3])


def test_the_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate_per_s=2, burst_s=2, now=0.0)  # capacity 4
    for _ in range(4):
        bucket.reserve(1, now=0.0)
    assert bucket.reserve(1, now=0.5) == 0.0  # one refilled
    assert bucket.reserve(1, now=0.5) == pytest.approx(0.5)
    assert bucket.reserve(0, now=100.0) == 0.0
    assert bucket.tokens == 4  # capped


def test_a_call_larger_than_the_bucket_waits_for_its_debt() -> None:
    bucket = TokenBucket(rate_per_s=100, burst_s=1, now=0.0)
    assert bucket.reserve(300, now=0.0) == pytest.approx(2.0)


def test_retry_after_blocks_even_a_full_bucket() -> None:
    bucket = TokenBucket(rate_per_s=10, burst_s=1, now=0.0)
    bucket.block(3.0, now=1.0)
    assert bucket.reserve(1, now=2.0) == pytest.approx(2.0)
    assert bucket.reserve(1, now=4.5) == 0.0


def test_a_refund_fills_the_bucket_at_most() -> None:
    bucket = TokenBucket(rate_per_s=10, burst_s=1, now=0.0)
    bucket.reserve(-50, now=0.0)
    assert bucket.tokens == 10


@pytest.mark.parametrize("value", [0, -1])
def test_a_budget_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        Budget(requests_per_min=value)


async def test_the_limiter_learns_tokens_per_call_and_charges_what_calls_used() -> None:
    now = [0.0]
    buckets = LocalBuckets(Budget(tokens_per_min=600), clock=lambda: now[0])  # 10/s, cap 10
    limiter = RateLimiter(Budget(tokens_per_min=600), buckets)
    waited, reserved = await limiter.acquire()  # nothing known yet: reserves no tokens
    assert (waited, reserved) == (0.0, 0.0)
    await limiter.settle(reserved, 50)  # the call used 50: 40 in debt
    assert limiter.tokens_estimate == pytest.approx(5.0)
    assert await buckets.reserve("tokens", 5) == pytest.approx(4.5)


async def test_without_a_budget_nothing_waits() -> None:
    buckets = LocalBuckets(Budget(requests_per_min=60))
    assert await buckets.reserve("tokens", 1_000_000) == 0.0  # no tokens budget
