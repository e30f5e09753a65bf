"""Rate limits for calls to a paid API (an LLM): requests and tokens per minute, token buckets.

Each budget is a bucket that refills at ``per_minute / 60`` per second up to ``burst_s`` seconds'
worth (at least one call's). A call *reserves* what it needs and waits until the bucket has
paid it back: the bucket may go into debt, so callers queue in the order they reserved and none
starves. What a call uses is known only after it (an LLM's tokens): it reserves an estimate and
:meth:`RateLimiter.settle` charges or refunds the difference. A 429's ``Retry-After`` blocks the
bucket until then (:meth:`RateLimiter.retry_after`), for every caller sharing it.

Buckets are per process (:class:`LocalBuckets`) or shared by every instance of a validator group
through Redis (:class:`RedisBuckets`: the same arithmetic in one Lua script, on Redis's clock).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.io.redis_client import key_prefix

__all__ = [
    "Buckets",
    "Budget",
    "LocalBuckets",
    "RateLimiter",
    "RedisBuckets",
    "TokenBucket",
]

REQUESTS = "requests"
TOKENS = "tokens"


@dataclass(frozen=True, slots=True)
class Budget:
    requests_per_min: float | None = None
    tokens_per_min: float | None = None
    burst_s: float = 1.0  # how much unused budget a bucket keeps, in seconds of refill

    def __post_init__(self) -> None:
        for value in (self.requests_per_min, self.tokens_per_min):
            if value is not None and value <= 0:
                raise ValueError(f"a rate limit must be > 0 per minute, got {value}")
        if self.burst_s <= 0:
            raise ValueError(f"burst_s must be > 0, got {self.burst_s}")

    def rate_of(self, kind: str) -> float | None:
        """Per second, or None when ``kind`` has no limit."""
        per_min = self.requests_per_min if kind == REQUESTS else self.tokens_per_min
        return None if per_min is None else per_min / 60.0


class TokenBucket:
    """One budget, pure: ``now`` is passed in (seconds, any monotonic clock)."""

    def __init__(self, rate_per_s: float, burst_s: float, now: float) -> None:
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s * burst_s)
        self.tokens = self.capacity
        self.at = now
        self.blocked_until = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount`` (into debt if need be); seconds the caller must wait before using it."""
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens - amount)  # a refund fills it at most
        wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        return max(wait, self.blocked_until - now)

    def block(self, seconds: float, now: float) -> None:
        """Nothing is granted before ``now + seconds`` (a 429's Retry-After)."""
        self.blocked_until = max(self.blocked_until, now + seconds)


class Buckets(Protocol):
    async def reserve(self, kind: str, amount: float) -> float: ...

    async def block(self, seconds: float) -> None: ...


class LocalBuckets:
    """The buckets of one process."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._buckets = {
            kind: TokenBucket(rate, budget.burst_s, now)
            for kind in (REQUESTS, TOKENS)
            if (rate := budget.rate_of(kind)) is not None
        }

    async def reserve(self, kind: str, amount: float) -> float:
        bucket = self._buckets.get(kind)
        return 0.0 if bucket is None else bucket.reserve(amount, self._clock())

    async def block(self, seconds: float) -> None:
        for bucket in self._buckets.values():
            bucket.block(seconds, self._clock())


# KEYS[1]: the bucket's hash. ARGV: rate per s, capacity, amount to reserve (0: none),
# seconds to block (0: none). Returns the wait in seconds, as a string (Lua numbers would be cut
# to integers). Time is Redis's own, so instances on different machines share one clock.
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local amount, block = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'blocked_until')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
local blocked_until = tonumber(state[3]) or now
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
if block > 0 then blocked_until = math.max(blocked_until, now + block) end
tokens = math.min(capacity, tokens - amount)
local wait = 0
if tokens < 0 then wait = -tokens / rate end
wait = math.max(wait, blocked_until - now)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at),
           'blocked_until', tostring(blocked_until))
-- Idle buckets go away: a full bucket is what a missing one means.
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate + math.max(0, blocked_until - now)) + 60)
return tostring(wait)
"""


class RedisBuckets:
    """Buckets shared through Redis by every process given the same ``group`` name."""

    def __init__(self, redis: Redis, settings: Settings, group: str, budget: Budget) -> None:
        self._redis: Any = redis
        self._script = redis.register_script(_BUCKET)
        self._budget = budget
        self._keys = {
            kind: f"{key_prefix(settings)}ratelimit:{group}:{kind}" for kind in (REQUESTS, TOKENS)
        }

    async def _run(self, kind: str, amount: float, block: float) -> float:
        rate = self._budget.rate_of(kind)
        if rate is None:
            return 0.0
        capacity = max(1.0, rate * self._budget.burst_s)
        args = [repr(rate), repr(capacity), repr(amount), repr(block)]
        return float(await self._script(keys=[self._keys[kind]], args=args))

    async def reserve(self, kind: str, amount: float) -> float:
        return await self._run(kind, amount, 0.0)

    async def block(self, seconds: float) -> None:
        for kind in (REQUESTS, TOKENS):
            await self._run(kind, 0.0, seconds)


class RateLimiter:
    """Reserve before a call, settle after it; the waits are measured apart from the calls."""

    def __init__(self, budget: Budget, buckets: Buckets) -> None:
        self.budget = budget
        self._buckets = buckets
        self.tokens_estimate = 0.0  # tokens per call, learned from what calls report
        self.waited_s = 0.0
        self.retry_afters = 0

    async def acquire(self) -> tuple[float, float]:
        """Wait for one request and the estimated tokens; returns (seconds waited, tokens
        reserved), the latter for :meth:`settle`."""
        reserved = self.tokens_estimate
        wait = await self._buckets.reserve(REQUESTS, 1.0)
        if reserved > 0:
            wait = max(wait, await self._buckets.reserve(TOKENS, reserved))
        if wait > 0:
            await asyncio.sleep(wait)
        self.waited_s += wait
        return wait, reserved

    async def settle(self, reserved: float, used: float) -> None:
        """A call that reserved ``reserved`` tokens used ``used``: charge or refund the rest."""
        # An average over the last ~10 calls: prompts of one validator are alike in size.
        self.tokens_estimate += (used - self.tokens_estimate) * 0.1
        if used != reserved:
            await self._buckets.reserve(TOKENS, used - reserved)

    async def retry_after(self, seconds: float) -> None:
        self.retry_afters += 1
        await self._buckets.block(seconds)
