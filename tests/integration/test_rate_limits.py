"""Rate limits shared through the real Redis, and through a validator on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.models import Candidate, Judgement, Vote
from ratifier.core.topics import TopicNames
from ratifier.io.kafka import make_producer
from ratifier.io.rate_limits import Budget, RateLimiter, RedisBuckets
from ratifier.io.redis_client import connect, key_prefix
from ratifier.io.testing import wait_until, write_policy
from ratifier.ops.stack import StackStatus
from ratifier.schemas import codec
from ratifier.validators.runtime import ValidatorWorker, report_retry_after, report_tokens

pytestmark = pytest.mark.timeout(120)


async def send_candidates(settings: Settings, count: int) -> None:
    """``count`` candidates of policy ``alpha`` on the candidates topic."""
    producer = make_producer(settings, client_id="test")
    await producer.start()
    try:
        topic = TopicNames.from_settings(settings).candidates
        for n in range(count):
            c = Candidate(f"case-{n}", 1, f"cand-{n}", "alpha", "general", "q", "a", "t", 1)
            await producer.send(topic, codec.encode(c), key=c.case_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


@pytest.fixture
async def redis_settings(
    stack: StackStatus, base_settings: Settings
) -> AsyncIterator[tuple[Redis, Settings]]:
    settings = base_settings.with_overrides(topic_prefix=f"rl{uuid.uuid4().hex[:10]}")
    redis = connect(settings)
    try:
        yield redis, settings
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{key_prefix(settings)}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_instances_share_one_budget(redis_settings: tuple[Redis, Settings]) -> None:
    redis, settings = redis_settings
    budget = Budget(requests_per_min=1200)  # 20/s, a burst of 20
    first = RedisBuckets(redis, settings, "judge", budget)
    second = RedisBuckets(redis, settings, "judge", budget)
    waits = []
    for _ in range(30):
        waits.append(await first.reserve("requests", 1))
        waits.append(await second.reserve("requests", 1))
    # 60 requests against one bucket: the last waits for 40 refills (each alone: 10 refills).
    assert max(waits) == pytest.approx(2.0, abs=0.2)
    assert waits[:20] == [0.0] * 20
    other = RedisBuckets(redis, settings, "another-judge", budget)
    assert await other.reserve("requests", 1) == 0.0  # a budget per validator id


async def test_a_retry_after_holds_off_every_instance(
    redis_settings: tuple[Redis, Settings],
) -> None:
    redis, settings = redis_settings
    budget = Budget(requests_per_min=600, tokens_per_min=60_000)
    told = RateLimiter(budget, RedisBuckets(redis, settings, "judge", budget))
    other = RedisBuckets(redis, settings, "judge", budget)
    await told.retry_after(3.0)
    assert await other.reserve("requests", 1) == pytest.approx(3.0, abs=0.2)
    assert await other.reserve("tokens", 1) == pytest.approx(3.0, abs=0.2)
    assert told.retry_afters == 1


async def test_tokens_used_are_charged_to_the_shared_budget(
    redis_settings: tuple[Redis, Settings],
) -> None:
    redis, settings = redis_settings
    budget = Budget(tokens_per_min=600)  # 10/s, a burst of 10
    limiter = RateLimiter(budget, RedisBuckets(redis, settings, "judge", budget))
    _, reserved = await limiter.acquire()
    await limiter.settle(reserved, 50)  # 40 in debt
    other = RedisBuckets(redis, settings, "judge", budget)
    assert await other.reserve("tokens", 10) == pytest.approx(5.0, abs=0.2)


async def test_a_validator_reports_tokens_and_retry_after_to_its_shared_limit(
    settings: Settings, tmp_path: Path
) -> None:
    write_policy(tmp_path, "alpha", ["v"], accepts=1, window_seconds=10, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    calls = 0

    async def judge(candidate: Candidate) -> Judgement:
        nonlocal calls
        calls += 1
        if calls == 1:
            await report_retry_after(0.5)  # as the LLM judge does on a 429
        report_tokens(7)
        return Judgement(Vote.ACCEPT, 0.9)

    budget = Budget(requests_per_min=6000, tokens_per_min=600_000)
    worker = ValidatorWorker(tuned, "v", judge, rate_limit=budget, share_rate_limit=True)
    assert worker.rate_limiter is not None
    stop = asyncio.Event()
    await worker.start()
    task = asyncio.create_task(worker.run(stop))
    try:
        await send_candidates(tuned, 15)

        async def all_judged() -> bool:
            return worker.judged == 15

        await wait_until(all_judged, 60, "every candidate judged")
    finally:
        stop.set()
        await task
        redis = connect(tuned)
        keys = sorted([k async for k in redis.scan_iter(match=f"{key_prefix(tuned)}ratelimit:*")])
        await redis.aclose()
        await worker.stop()
    assert keys == [
        f"{key_prefix(tuned)}ratelimit:v:requests".encode(),
        f"{key_prefix(tuned)}ratelimit:v:tokens".encode(),
    ]
    assert worker.rate_limiter.retry_afters == 1
    assert worker.rate_limiter.tokens_estimate > 0
    scraped = generate_latest(worker.metrics.registry).decode()
    assert 'ratifier_validator_rate_limit_wait_seconds_count{validator="v"} 15.0' in scraped


async def test_two_instances_on_the_broker_keep_to_one_shared_request_budget(
    settings: Settings, tmp_path: Path
) -> None:
    """Two instances of one validator (one group, partitions split) and 40 candidates under a
    budget of 10 requests/s with a 1 s burst: both judge, and together they never go faster
    than the budget (the first 10 calls may come at once, the other 30 need >= 3 s)."""
    write_policy(tmp_path, "alpha", ["v"], accepts=1, window_seconds=30, max_attempts=1)
    tuned = settings.with_overrides(policy_dir=tmp_path)
    calls: list[tuple[int, float]] = []  # (instance, when)

    def judge_of(instance: int) -> Callable[[Candidate], Awaitable[Judgement]]:
        async def judge(candidate: Candidate) -> Judgement:
            calls.append((instance, asyncio.get_running_loop().time()))
            return Judgement(Vote.ACCEPT, 0.9)

        return judge

    budget = Budget(requests_per_min=600, burst_s=1.0)
    workers = [
        ValidatorWorker(tuned, "v", judge_of(n), rate_limit=budget, share_rate_limit=True)
        for n in range(2)
    ]
    stop = asyncio.Event()
    for worker in workers:
        await worker.start()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        group = TopicNames.from_settings(tuned).validator_group("v")

        async def both_assigned() -> bool:
            return all(w._consumer.assignment() for w in workers)

        await wait_until(both_assigned, 60, f"both instances assigned in {group}")
        await send_candidates(tuned, 40)

        async def all_judged() -> bool:
            return sum(w.judged for w in workers) == 40

        await wait_until(all_judged, 60, "every candidate judged")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for worker in workers:
            await worker.stop()
    assert {instance for instance, _ in calls} == {0, 1}
    times = sorted(when for _, when in calls)
    assert len(times) == 40
    # Beyond the burst, 30 calls at 10/s: the limiter's pace (a slower machine only adds time).
    assert times[-1] - times[0] >= 30 / 10 * 0.9
