"""Runs a validator callable as a Kafka consumer group: candidates in, verdicts out.

Debates (policy ``[debate]``, docs/debate.md): the group also reads ``<prefix>.rounds``; for a
round request it finds the candidate (a small cache of the debated candidates it judged, else
:func:`~ratifier.io.candidate_lookup.find_candidate`), calls the judge with the previous round's
verdicts (:func:`peer_verdicts`; a judge without a ``peers`` parameter is called as before) and
publishes its verdict with ``round`` set.

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
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaProducer, ConsumerRecord
from redis.asyncio import Redis

from ratifier.core.config import Settings
from ratifier.core.errors import ValidatorTimeout, WireFormatError
from ratifier.core.models import (
    Candidate,
    DeadLetterReason,
    Judgement,
    PeerVerdict,
    Reason,
    RoundRequest,
    Verdict,
    Vote,
    verdict_on,
)
from ratifier.core.signing import Signer
from ratifier.core.topics import TopicNames
from ratifier.io.candidate_lookup import find_candidate
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

# A judge may also take ``peers: Peers | None`` (keyword): then it is shown the previous
# round's verdicts in a debate. Judges without that parameter are called as before.
Judge = Callable[[Candidate], Awaitable[Judgement]]


@dataclass(frozen=True, slots=True)
class Peers:
    """What a judge is shown in debate round ``round``: round ``round - 1``'s verdicts."""

    round: int
    verdicts: tuple[PeerVerdict, ...]  # the judge's own is "you"; others ids, or "peer n"


def peer_verdicts(request: RoundRequest, validator_id: str) -> Peers:
    """The request's verdicts as ``validator_id`` sees them: its own as "you", the others by
    id, or as "peer 1".."peer n" (in the request's order) when the policy anonymises."""
    shown: list[PeerVerdict] = []
    others = 0
    for verdict in request.peers:
        if verdict.peer == validator_id:
            label = "you"
        elif request.anonymise:
            others += 1
            label = f"peer {others}"
        else:
            label = verdict.peer
        shown.append(replace(verdict, peer=label))
    return Peers(request.round, tuple(shown))


def takes_peers(judge: Judge) -> bool:
    """Whether ``judge`` accepts the ``peers`` keyword (debating judges do)."""
    try:
        parameters = inspect.signature(judge).parameters
    except (TypeError, ValueError):  # a callable without a signature: call it as before
        return False
    return "peers" in parameters


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


async def judge_safely(
    judge: Judge, candidate: Candidate, timeout_s: float, peers: Peers | None = None
) -> Judgement:
    """Call the validator; a failure or timeout becomes an ABSTAIN with the error as its reason.
    ``peers`` (a debate round's) reach only a judge that takes them (:func:`takes_peers`)."""
    limit = asyncio.timeout(timeout_s)
    error: Exception
    token = _deadline.set(asyncio.get_running_loop().time() + timeout_s)
    try:
        async with limit:
            if peers is not None:
                debater: Callable[..., Awaitable[Judgement]] = judge
                return await debater(candidate, peers=peers)
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
    round_: int | None = None,
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
        round_=round_,
    )


# Debated candidates kept for their later rounds: by count and by content size (a candidate
# may be up to RATIFIER_MAX_CANDIDATE_BYTES); a miss costs one read of the case's partition.
CANDIDATE_CACHE_ENTRIES = 4096
CANDIDATE_CACHE_BYTES = 64 * 1024 * 1024
# How far before a round opened its candidate may have been produced, beyond the rounds'
# windows: clock skew between the producer and the tally.
_LOOKUP_MARGIN_MS = 60_000


class CandidateCache:
    """The debated candidates this worker judged, newest kept, by candidate id."""

    def __init__(
        self, entries: int = CANDIDATE_CACHE_ENTRIES, size: int = CANDIDATE_CACHE_BYTES
    ) -> None:
        self._entries, self._size = entries, size
        self._items: OrderedDict[str, Candidate] = OrderedDict()
        self._bytes = 0

    def put(self, candidate: Candidate) -> None:
        if candidate.candidate_id in self._items:
            return
        self._items[candidate.candidate_id] = candidate
        self._bytes += _weight(candidate)
        while len(self._items) > self._entries or self._bytes > self._size:
            _, old = self._items.popitem(last=False)
            self._bytes -= _weight(old)

    def get(self, candidate_id: str) -> Candidate | None:
        return self._items.get(candidate_id)


def _weight(candidate: Candidate) -> int:
    return len(candidate.content) + len(candidate.query) + 256


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
        self._rounds_topic = names.rounds
        self.debates = takes_peers(judge)  # else debate rounds call it without the peers
        self.candidates = CandidateCache()
        self.rounds_judged = 0
        self.rounds_without_candidate = 0  # round requests whose candidate was not found
        default_in_flight = READ_AHEAD_PER_SLOT * concurrency + (WAVE_IN_FLIGHT if delay_s else 0)
        client_id = f"validator-{validator_id}"
        self._consumer = make_consumer(
            settings, group_id=names.validator_group(validator_id), client_id=client_id
        )
        self._producer = make_producer(settings, client_id=client_id)
        self.runtime = ConsumerRuntime(
            self._consumer,
            # Round requests only come for policies with [debate]; reading them costs nothing else.
            [names.candidates, names.rounds],
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
        if record.topic == self._rounds_topic:
            await self._judge_round(record)
            return
        try:
            candidate = codec.decode_as(record.value or b"", Candidate)
        except WireFormatError as exc:
            raise InvalidRecord(DeadLetterReason.MALFORMED, f"not a candidate: {exc}") from None
        policy = self.routing.policy(candidate.policy)
        if policy is not None and policy.debate is not None and self.routing.judges(policy.name):
            self.candidates.put(candidate)  # its later rounds need it
        await self._judge_one(candidate)

    async def _judge_round(self, record: ConsumerRecord) -> None:
        """Judge a debate round's candidate again, shown the previous round's verdicts."""
        try:
            request = codec.decode_as(record.value or b"", RoundRequest)
        except WireFormatError as exc:
            detail = f"not a round request: {exc}"
            raise InvalidRecord(DeadLetterReason.MALFORMED, detail) from None
        if not self.routing.judges(request.policy):
            self.not_listed += 1
            return
        candidate = self.candidates.get(request.candidate_id)
        if candidate is None:
            policy = self.routing.policy(request.policy)
            window_ms = policy.window_ms if policy is not None else 3_600_000
            since = request.opened_at_ms - request.round * window_ms - _LOOKUP_MARGIN_MS
            candidate = await find_candidate(
                self.settings, record.partition, request.case_id, request.candidate_id, since
            )
        if candidate is None:
            self.rounds_without_candidate += 1
            logger.warning(
                "round %d of case %s: candidate %s not found; no verdict (the round's window "
                "decides)",
                request.round,
                request.case_id,
                request.candidate_id,
            )
            return
        peers = peer_verdicts(request, self.validator_id)
        if await self._judge_one(candidate, peers if self.debates else None, request.round):
            self.rounds_judged += 1

    async def _judge_one(
        self, candidate: Candidate, peers: Peers | None = None, round_: int | None = None
    ) -> bool:
        """Judge ``candidate`` (in debate round ``round_``, None: the first) and publish the
        verdict; False when it is not ours to judge."""
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
                    judgement = await judge_safely(self.judge, candidate, self.timeout_s, peers)
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
            round_=round_,
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
