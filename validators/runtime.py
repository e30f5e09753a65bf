"""Runs a validator callable as a Kafka consumer group: candidates in, verdicts out.

Every process started with the same validator id joins group ``<prefix>.validator.<id>``, so
Kafka spreads the candidate partitions over them and each candidate is judged once per group.
Candidates run on the consumer runtime (:mod:`ratifier.io.consume`): each is judged as soon as
one of ``concurrency`` slots is free and may finish out of order, so one slow or hung call holds
only its own slot. A candidate's offset is committed once its verdict is acknowledged and every
earlier candidate of its partition is done (at-least-once); the tally counts a validator's
repeated verdict for an attempt once. Only candidates whose policy lists the validator are
judged (:mod:`.routing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, ConsumerRecord
from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.errors import ValidatorTimeout, WireFormatError
from ratifier.core.models import (
    Candidate,
    DeadLetterReason,
    Judgement,
    Reason,
    Verdict,
    Vote,
    verdict_on,
)
from ratifier.core.signing import Signer
from ratifier.core.topics import TopicNames
from ratifier.io.consume import (
    ConsumerRuntime,
    InvalidRecord,
    Limits,
    PoisonHandling,
    PoisonMode,
    RuntimeWorker,
)
from ratifier.io.decided import DecidedAttempts
from ratifier.io.kafka import make_consumer, make_producer
from ratifier.io.keys import signer_from
from ratifier.io.metrics import Observability
from ratifier.io.rate_limits import Buckets, Budget, LocalBuckets, RateLimiter, RedisBuckets
from ratifier.io.redis_client import connect
from ratifier.schemas import codec
from ratifier.validators.metrics import ValidatorMetrics
from ratifier.validators.routing import PolicyRouting

logger = logging.getLogger(__name__)

Judge = Callable[[Candidate], Awaitable[Judgement]]

# The event-loop time by which the validator call in progress must return (its --timeout).
# Per task: each candidate is judged in a task of its own, which gets its own copy.
_deadline: ContextVar[float | None] = ContextVar("ratifier_validator_deadline", default=None)


@dataclass(slots=True)
class _Call:
    """What the validator call in progress reports to the runtime (per task, like _deadline)."""

    limiter: RateLimiter | None
    tokens: float = 0.0


_call: ContextVar[_Call | None] = ContextVar("ratifier_validator_call", default=None)


@contextlib.contextmanager
def reporting_to(limiter: RateLimiter | None) -> Iterator[_Call]:
    """While the block runs, :func:`report_tokens` and :func:`report_retry_after` (called by the
    validator, in this task) reach ``limiter``; the tokens reported are summed in the result."""
    call = _Call(limiter)
    token = _call.set(call)
    try:
        yield call
    finally:
        _call.reset(token)


def report_tokens(used: float) -> None:
    """Tell the runtime how many API tokens the call in progress used (its tokens/min budget).

    A no-op outside the runtime. The built-in LLM judge reports its answers' ``usage``."""
    call = _call.get()
    if call is not None:
        call.tokens += used


async def report_retry_after(seconds: float) -> None:
    """Tell the runtime the API answered 429 with ``Retry-After: seconds``: the validator's rate
    limit (shared by its instances, with Redis) grants nothing more before then."""
    call = _call.get()
    if call is not None and call.limiter is not None:
        await call.limiter.retry_after(seconds)


def time_left_s() -> float | None:
    """Seconds left of the runtime's time limit for the validator call in progress.

    None outside :func:`judge_safely`. A validator that retries reads it to stop in time with its
    own error, rather than be cut off and recorded as a bare timeout.
    """
    deadline = _deadline.get()
    return None if deadline is None else deadline - asyncio.get_running_loop().time()


async def judge_safely(judge: Judge, candidate: Candidate, timeout_s: float) -> Judgement:
    """Call the validator; a failure or timeout becomes an ABSTAIN with the error as its reason."""
    limit = asyncio.timeout(timeout_s)
    error: Exception
    token = _deadline.set(asyncio.get_running_loop().time() + timeout_s)
    try:
        async with limit:
            return await judge(candidate)
    except TimeoutError as exc:
        # Not expired: raised by the validator's own code (e.g. an HTTP client's timeout).
        ours = limit.expired()
        error = ValidatorTimeout(f"no answer within {timeout_s:g}s") if ours else exc
        code = "validator.timeout"
    except ValidatorTimeout as exc:  # the validator's own, more specific time limit
        error, code = exc, "validator.timeout"
    except Exception as exc:  # any failure of user code is reported, never dropped
        error, code = exc, "validator.error"
        logger.warning("validator failed on %s: %r", candidate.candidate_id, exc)
    finally:
        _deadline.reset(token)
    message = f"{type(error).__name__}: {error}"[:1000]
    return Judgement(vote=Vote.ABSTAIN, confidence=0.0, reasons=(Reason(code, message),))


def to_verdict(
    candidate: Candidate,
    judgement: Judgement,
    *,
    validator_id: str,
    validator_version: str,
    latency_ms: int,
) -> Verdict:
    return verdict_on(
        candidate,
        validator_id,
        judgement.vote,
        confidence=min(1.0, max(0.0, judgement.confidence)),
        version=validator_version,
        severity=judgement.severity,
        reasons=judgement.reasons,
        latency_ms=latency_ms,
    )


# Candidates read ahead per judge slot: while a slot's call runs, the next candidates are
# already decoded and waiting, so a slot that frees starts its next call at once.
READ_AHEAD_PER_SLOT = 4
# A later wave (--delay) holds each candidate for the delay before judging it: room for that many
# more, or the wave would judge at most (read-ahead / delay) candidates per second.
WAVE_IN_FLIGHT = 1024


class ValidatorWorker(RuntimeWorker):
    """One instance of a validator group. Use ``async with`` or ``start()`` / ``stop()``."""

    _producer: AIOKafkaProducer

    def __init__(
        self,
        settings: Settings,
        validator_id: str,
        judge: Judge,
        *,
        version: str | None = None,
        timeout_s: float = 30.0,
        concurrency: int = 16,
        max_in_flight: int | None = None,
        signer: Signer | None = None,
        delay_s: float = 0.0,
        skip_decided: bool = False,
        routing: PolicyRouting | None = None,
        rate_limit: Budget | None = None,
        share_rate_limit: bool = False,
    ) -> None:
        """``signer`` signs every verdict (docs/signing.md); by default, the key in the file
        ``settings.signing_key`` (RATIFIER_SIGNING_KEY) if set, else verdicts go unsigned.

        ``concurrency`` judge calls run at once; ``max_in_flight`` candidates (default
        ``READ_AHEAD_PER_SLOT`` per slot, ``WAVE_IN_FLIGHT`` more with a delay) are read and not
        yet done, which bounds memory (and 16 MiB of them).

        Sequential consensus ("Waves" in docs/validators.md): ``delay_s`` waits that long after
        reading each candidate before judging it (holding no slot), and ``skip_decided`` then
        skips candidates whose attempt the tally has decided meanwhile (no call, no verdict).

        ``rate_limit``: requests and tokens per minute for the judge's API (docs/validators.md,
        "Rate limits"), per process, or with ``share_rate_limit`` for every instance of the
        validator id together, through Redis; the wait for it is measured apart from the call."""
        self.settings = settings
        self.validator_id = validator_id
        self.judge = judge
        self.version = version or str(getattr(judge, "version", "0"))
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.signer = signer or signer_from(settings.signing_key)
        self.routing = routing or PolicyRouting(validator_id, settings.policy_dir)
        self._slots = asyncio.Semaphore(concurrency)
        self._redis: Redis | None = None
        self.rate_limiter: RateLimiter | None = None
        if rate_limit is not None:
            buckets: Buckets = LocalBuckets(rate_limit)
            if share_rate_limit:
                self._redis = connect(settings)
                buckets = RedisBuckets(self._redis, settings, validator_id, rate_limit)
            self.rate_limiter = RateLimiter(rate_limit, buckets)
        names = TopicNames.from_settings(settings)
        self._verdicts_topic = names.verdicts
        default_in_flight = READ_AHEAD_PER_SLOT * concurrency + (WAVE_IN_FLIGHT if delay_s else 0)
        client_id = f"validator-{validator_id}"
        self._consumer = make_consumer(
            settings, group_id=names.validator_group(validator_id), client_id=client_id
        )
        self._producer = make_producer(settings, client_id=client_id)
        self.runtime = ConsumerRuntime(
            self._consumer,
            [names.candidates],
            self._handle,
            limits=Limits(max_in_flight=max_in_flight or default_in_flight),
            # The tally dead-letters malformed candidates; N validators must not repeat it.
            poison=PoisonHandling.from_settings(settings, mode=PoisonMode.SKIP),
        )
        self.metrics = ValidatorMetrics(validator_id, self._consumer, self)  # docs/monitoring
        self.judged = 0
        self.busy_slots = 0  # judge calls running now
        self.not_listed = 0  # candidates of policies that do not list this validator
        self.delay_s = delay_s
        self.skipped_decided = 0  # candidates not judged: their attempt was already decided
        self.decided = (
            DecidedAttempts(settings, client_id=f"{client_id}-decided") if skip_decided else None
        )

    @property
    def in_flight(self) -> int:
        return self.runtime.in_flight

    @property
    def skipped(self) -> int:
        """Undecodable candidates, skipped (the tally dead-letters them)."""
        return self.runtime.invalid

    async def on_start(self) -> None:
        if self.decided is not None:
            await self.decided.start()

    async def on_stop(self) -> None:
        try:
            if self.decided is not None:
                await self.decided.stop()
        finally:
            if self._redis is not None:
                await self._redis.aclose()
            aclose = getattr(self.judge, "aclose", None)  # e.g. the LLM judge's HTTP session
            if aclose is not None:
                await aclose()

    def observability(self) -> Observability:
        return self.metrics.observability()

    async def _handle(self, record: ConsumerRecord) -> None:
        try:
            candidate = codec.decode_as(record.value or b"", Candidate)
        except WireFormatError as exc:
            raise InvalidRecord(DeadLetterReason.MALFORMED, f"not a candidate: {exc}") from None
        await self._judge_one(candidate)

    async def _judge_one(self, candidate: Candidate) -> bool:
        """Judge ``candidate`` and publish the verdict; False when it is not ours to judge."""
        if not self.routing.judges(candidate.policy):
            self.not_listed += 1
            return False
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)  # a later wave: give earlier ones time to decide
        if self.decided is not None and (candidate.case_id, candidate.attempt) in self.decided:
            self.skipped_decided += 1
            return False
        reserved = 0.0
        if self.rate_limiter is not None:  # waits before taking a slot, so it holds none
            waited, reserved = await self.rate_limiter.acquire()
            self.metrics.rate_limit_waited(waited)
        queued = time.perf_counter()
        async with self._slots:
            started = time.perf_counter()
            self.metrics.waited(started - queued)
            self.busy_slots += 1
            try:
                with reporting_to(self.rate_limiter) as call:
                    judgement = await judge_safely(self.judge, candidate, self.timeout_s)
            finally:
                self.busy_slots -= 1
            call_seconds = time.perf_counter() - started
            latency_ms = int(call_seconds * 1000)
        if self.rate_limiter is not None:
            await self.rate_limiter.settle(reserved, call.tokens)
        verdict = to_verdict(
            candidate,
            judgement,
            validator_id=self.validator_id,
            validator_version=self.version,
            latency_ms=latency_ms,
        )
        self.metrics.observe(verdict, call_seconds)  # sub-millisecond, unlike latency_ms
        if self.signer is not None:
            verdict = self.signer.sign(verdict)
        delivery = await self._producer.send(
            self._verdicts_topic, codec.encode(verdict), key=candidate.case_id.encode()
        )
        await delivery  # acknowledged before the candidate counts as done (and is committed)
        self.judged += 1
        return True
